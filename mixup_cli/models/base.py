"""The shape every registered model has: a stack of stages, then a head.

Splitting a network into stages gives each model a declared list of mixing points (the input,
and the output of each stage) for latent-layer and manifold mixup (§3.8, Verma et al. 2019),
without a second forward function per architecture.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

Mixer = Callable[[torch.Tensor], torch.Tensor]


class StagedNet(nn.Module):
    """`stages` run in order, then `head`. Mixing point 0 is the input; point k follows stage k."""

    def __init__(self, stages: list[nn.Module], head: nn.Module):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.head = head

    @property
    def mixing_points(self) -> list[int]:
        return list(range(len(self.stages) + 1))

    def forward(self, x: torch.Tensor, mix_at: Optional[int] = None, mixer: Optional[Mixer] = None):
        if mix_at == 0:
            x = mixer(x)
        for index, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if mix_at == index:
                x = mixer(x)
        return self.head(x)


class Normalized(nn.Module):
    """Takes inputs in the dataset's raw scale (images in [0, 1]) and normalizes them itself.

    Checkpointed models carry their normalization, so attacks perturb raw pixels and outside
    tools need no knowledge of the training pipeline.
    """

    def __init__(self, net: nn.Module, mean: list[float], std: list[float], input_ndim: int):
        super().__init__()
        self.net = net
        # One value per channel (images: C,1,1) or per feature (tables: F); broadcast over the rest.
        shape = (-1,) + (1,) * (input_ndim - 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(shape))

    @property
    def mixing_points(self) -> list[int]:
        return self.net.mixing_points

    def forward(self, x: torch.Tensor, mix_at: Optional[int] = None, mixer: Optional[Mixer] = None):
        x = (x - self.mean) / self.std
        if mix_at is None:
            return self.net(x)
        return self.net(x, mix_at=mix_at, mixer=mixer)
