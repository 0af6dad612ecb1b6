"""A whole dataset split held as one tensor, in its compact storage type."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset


class TensorSplit(Dataset):
    """inputs stored compactly (uint8 pixels, say) and scaled to the raw range on the way out.

    Keeping uint8 until the batch is on the device is what lets a whole CIFAR training set sit
    in GPU memory (150 MB rather than 600 MB).
    """

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, scale: float = 1.0):
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs = inputs
        self.labels = labels.long()
        self.scale = scale

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.to_raw(self.inputs[index]), self.labels[index]

    def to_raw(self, inputs: torch.Tensor) -> torch.Tensor:
        """Compact storage -> float inputs in the dataset's raw scale."""
        return inputs.float() * self.scale if self.scale != 1.0 or not inputs.is_floating_point() else inputs.float()

    def to(self, device) -> "TensorSplit":
        return TensorSplit(self.inputs.to(device), self.labels.to(device), self.scale)
