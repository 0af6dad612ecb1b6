"""Training labels replaced by other ones: randomly corrupted labels and the label files that carry them.

The corruption is that of Zhang et al. (2017), used in §3.4 / Table 2 of the paper: a fraction p of
the training examples is chosen and each chosen label is replaced by a class drawn uniformly at
random. Everything here is a pure function of (labels, p, seed), so the same seed gives the same
corrupted set on every machine; the test split is never touched.

A label file holds the corrupted labels with the mask of chosen examples, the original labels,
the seed and the dataset name. It is written with `torch.save` of plain tensors and scalars and
read back with `weights_only=True`, so loading someone else's file never runs code. `mixup
corrupt-labels --save-labels` writes one (its experiment module, corrupt_labels.py, writes one per
fraction); `mixup train --labels` applies one to the training split (`apply_label_file`).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Union

import torch
from torch.utils.data import Dataset

from ..checkpoint import save_atomic
from ..errors import ConfigError
from ..seeding import derive_seed
from . import get_dataset
from .tensor_split import TensorSplit

FORMAT = "mixup-cli-labels"
VERSION = 1
# derive_seed(seed, _STREAM, k): a key of its own length, so it never meets the trainer's
# (seed, epoch, step, stream) draws.
_STREAM = 0x1ABE1
_CHOOSE, _REPLACE = 0, 1


def corrupt_labels(labels: torch.Tensor, num_classes: int, fraction: float, seed: int,
                   exact: bool = False, exclude_true: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(new_labels, mask): `mask` marks the examples chosen for corruption.

    Each example is chosen independently with probability `fraction` (Zhang et al., 2017), or,
    with `exact`, exactly round(fraction * N) of them. A chosen label is replaced by a class drawn
    uniformly from all `num_classes`, so it can come out equal to the true one; `exclude_true`
    draws from the other classes only. One uniform number per example decides the choice, so for
    one seed the examples chosen at a smaller fraction are among those chosen at a larger one.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"corruption fraction must be in [0, 1], got {fraction}")
    if num_classes < 2:
        raise ConfigError(f"cannot corrupt labels of {num_classes} class(es); corruption needs at least 2 classes")
    labels = torch.as_tensor(labels).long().cpu()
    if labels.dim() != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {tuple(labels.shape)}")
    n = len(labels)
    choose = torch.Generator().manual_seed(derive_seed(seed, _STREAM, _CHOOSE))
    replace = torch.Generator().manual_seed(derive_seed(seed, _STREAM, _REPLACE))
    scores = torch.rand(n, generator=choose, dtype=torch.float64)
    if exact:
        mask = torch.zeros(n, dtype=torch.bool)
        mask[scores.argsort()[:round(fraction * n)]] = True
    else:
        mask = scores < fraction
    if exclude_true:
        # A shift of 1..C-1 classes never lands on the true label, and is uniform over the others.
        shift = torch.randint(1, num_classes, (n,), generator=replace)
        drawn = (labels + shift) % num_classes
    else:
        drawn = torch.randint(0, num_classes, (n,), generator=replace)
    return torch.where(mask, drawn, labels), mask


def realized_noise(labels: torch.Tensor, original: torch.Tensor) -> float:
    """The fraction of labels that differ from the truth (below the chosen fraction: some draws hit the true class)."""
    if len(labels) == 0:
        return 0.0
    return (torch.as_tensor(labels) != torch.as_tensor(original)).double().mean().item()


@dataclasses.dataclass
class CorruptedLabels:
    """A dataset's training labels after corruption, and how they were made."""

    labels: torch.Tensor  # int64, the labels to train on
    original: torch.Tensor  # int64, the dataset's own labels
    mask: torch.Tensor  # bool, the examples chosen for corruption
    dataset: str
    num_classes: int
    fraction: float
    seed: int
    exact: bool = False
    exclude_true: bool = False

    @property
    def realized_noise(self) -> float:
        return realized_noise(self.labels, self.original)

    def settings(self) -> dict:
        return {"dataset": self.dataset, "fraction": self.fraction, "seed": self.seed, "exact": self.exact,
                "exclude_true": self.exclude_true}


# ---------------------------------------------------------------------------------------------
# The labels of a dataset split, and a split with its labels replaced.

def dataset_labels(dataset: Dataset, name: str = "dataset") -> torch.Tensor:
    """All labels of a split as an int64 tensor; a ConfigError when they are not class indices."""
    if isinstance(dataset, TensorSplit):
        labels = dataset.labels
    elif hasattr(dataset, "targets"):  # torchvision's convention
        labels = torch.as_tensor(dataset.targets)
    else:
        labels = torch.as_tensor([dataset[i][1] for i in range(len(dataset))])
    if labels.dim() != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ConfigError(f"dataset '{name}' has no class labels to corrupt (its targets are "
                          f"{str(labels.dtype).replace('torch.', '')} of shape {tuple(labels.shape)}); "
                          f"choose a classification dataset")
    return labels.long().cpu()


class Relabeled(Dataset):
    """A per-sample dataset whose i-th label is `labels[i]` (for datasets that are not a TensorSplit)."""

    def __init__(self, base: Dataset, labels: torch.Tensor):
        self.base, self.labels = base, labels

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index):
        inputs, _ = self.base[index]
        return inputs, self.labels[index]


def relabel(dataset: Dataset, labels: torch.Tensor) -> Dataset:
    """`dataset` with its labels replaced; a TensorSplit stays one (so it still batches on the device)."""
    if len(labels) != len(dataset):
        raise ValueError(f"{len(labels)} labels for a dataset of {len(dataset)} examples")
    if isinstance(dataset, TensorSplit):
        return TensorSplit(dataset.inputs, labels.to(dataset.labels.device), dataset.scale)
    return Relabeled(dataset, labels)


def training_labels(dataset: str, data_dir: Optional[str] = None) -> torch.Tensor:
    """The training labels of a registered dataset; a ConfigError when it has no class labels."""
    spec = get_dataset(dataset)
    if spec.num_classes < 2:
        raise ConfigError(f"dataset '{spec.name}' has no class labels to corrupt; choose a classification dataset")
    return dataset_labels(spec.load("train", data_dir), spec.name)


def make_corrupted_labels(dataset: str, fraction: float, seed: int, exact: bool = False,
                          exclude_true: bool = False, data_dir: Optional[str] = None,
                          original: Optional[torch.Tensor] = None) -> CorruptedLabels:
    """Corrupt the training labels of a registered dataset (`original`: them, when already loaded)."""
    spec = get_dataset(dataset)
    if original is None:
        original = training_labels(dataset, data_dir)
    labels, mask = corrupt_labels(original, spec.num_classes, fraction, seed, exact, exclude_true)
    return CorruptedLabels(labels, original, mask, spec.name, spec.num_classes, float(fraction), int(seed),
                           bool(exact), bool(exclude_true))


# ---------------------------------------------------------------------------------------------
# Label files.

def save_label_file(corrupted: CorruptedLabels, path: Union[str, Path], overwrite: bool = False) -> Path:
    """Write atomically; an existing file is refused unless `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"labels file '{path}' already exists; delete it or choose another path")
    if not path.parent.is_dir():
        raise ConfigError(f"folder '{path.parent}' of labels file '{path}' does not exist; create it first")
    payload = {"format": FORMAT, "version": VERSION, "split": "train",
               **{k: v for k, v in dataclasses.asdict(corrupted).items() if not isinstance(v, torch.Tensor)},
               "labels": corrupted.labels.cpu().long(), "original": corrupted.original.cpu().long(),
               "mask": corrupted.mask.cpu().bool()}
    return save_atomic(payload, path, "labels file")


_SCALARS = {"dataset": str, "num_classes": int, "fraction": float, "seed": int, "exact": bool, "exclude_true": bool}


def load_label_file(path: Union[str, Path], dataset: Optional[str] = None,
                    size: Optional[int] = None) -> CorruptedLabels:
    """Read and check a label file; with `dataset`/`size`, also that it belongs to that training split.

    Anything wrong (not a label file, damaged, inconsistent, another dataset or split size) is a
    one-line ConfigError.
    """
    path = Path(path)
    corrupted = _validated(_read(path), path)
    if dataset is not None and corrupted.dataset != dataset:
        raise ConfigError(f"labels file '{path}' was made for dataset '{corrupted.dataset}', not '{dataset}'; "
                          f"train on '{corrupted.dataset}' or corrupt the labels of '{dataset}'")
    n = len(corrupted.labels)
    if size is not None and n != size:
        raise ConfigError(f"labels file '{path}' holds {n} labels but the training split of "
                          f"'{corrupted.dataset}' has {size}; it was made from another version of the data")
    return corrupted


def _read(path: Path):
    """The file's contents, loaded without running code (weights_only)."""
    if not path.is_file():
        raise ConfigError(f"labels file '{path}' does not exist; write one with mixup corrupt-labels --save-labels")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for damaged or foreign files
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ConfigError(f"labels file '{path}' cannot be read ({first}); write it again with "
                          f"mixup corrupt-labels --save-labels") from None


def _validated(payload, path: Path) -> CorruptedLabels:
    """The payload as CorruptedLabels, once every field has its type and the fields agree."""

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"labels file '{path}' is not a valid mixup labels file: {problem}")

    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise bad("missing its format marker")
    if not isinstance(payload.get("version"), int) or payload["version"] > VERSION:
        raise bad(f"format version {payload.get('version')!r}, this mixup reads up to {VERSION}")
    values = {}
    for key, kind in _SCALARS.items():
        value = payload.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise bad(f"'{key}' should be {kind.__name__}, got {value!r}")
        values[key] = value
    tensors = {}
    for key, dtype in (("labels", torch.int64), ("original", torch.int64), ("mask", torch.bool)):
        value = payload.get(key)
        if not isinstance(value, torch.Tensor) or value.dtype != dtype or value.dim() != 1:
            raise bad(f"'{key}' should be a one-dimensional {str(dtype).replace('torch.', '')} tensor")
        tensors[key] = value
    n = len(tensors["labels"])
    if len(tensors["original"]) != n or len(tensors["mask"]) != n:
        raise bad(f"'labels', 'original' and 'mask' have different lengths "
                  f"({n}, {len(tensors['original'])}, {len(tensors['mask'])})")
    classes = values["num_classes"]
    for key in ("labels", "original"):
        if n and (tensors[key].min() < 0 or tensors[key].max() >= classes):
            raise bad(f"'{key}' holds classes outside 0..{classes - 1}")
    if bool((tensors["labels"] != tensors["original"])[~tensors["mask"]].any()):
        raise bad("labels outside the mask differ from the original labels")
    if not 0.0 <= values["fraction"] <= 1.0:
        raise bad(f"fraction {values['fraction']} is outside [0, 1]")
    return CorruptedLabels(**tensors, **values)


def apply_label_file(train_set: Dataset, path: Optional[str], spec) -> Dataset:
    """The training split with the labels of `path` (the trainer's `--labels`); unchanged when None."""
    if path is None:
        return train_set
    corrupted = load_label_file(path, spec.name, len(train_set))
    if corrupted.num_classes != spec.num_classes:
        raise ConfigError(f"labels file '{path}' has {corrupted.num_classes} classes, dataset '{spec.name}' "
                          f"has {spec.num_classes}")
    # Only when the labels are at hand cheaply: reading every image of a large folder dataset to
    # check them would cost as much as an epoch.
    if isinstance(train_set, TensorSplit) or hasattr(train_set, "targets"):
        if not torch.equal(dataset_labels(train_set, spec.name), corrupted.original):
            raise ConfigError(f"labels file '{path}' was made from other training labels than those of "
                              f"'{spec.name}' here (another split or version); corrupt the labels again")
    return relabel(train_set, corrupted.labels)
