"""DenseNet-BC for 32x32 images (Huang et al., 2017), as in Veit (2017), the implementation the
paper's CIFAR experiments use (§3.2), with growth rate 40 for DenseNet-BC-190.

A 3x3 stem of 2k channels, three dense blocks of (depth-4)/6 bottleneck layers (BN-ReLU-conv1x1
to 4k, BN-ReLU-conv3x3 to k, concatenated), transitions that halve channels (compression 0.5) and
resolution, then BN-ReLU, global average pooling and one linear layer. DenseNet-BC-190 (k=40):
25,624,430 parameters for 10 classes (published: 25.6 M); DenseNet-BC-100 (k=12): 0.8 M.
"""
from __future__ import annotations

import torch
from torch import nn

from . import register_model
from .base import StagedNet


class Bottleneck(nn.Module):
    def __init__(self, cin: int, growth: int, dropout: float):
        super().__init__()
        inner = 4 * growth
        self.layers = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, inner, 1, bias=False),
            nn.BatchNorm2d(inner), nn.ReLU(inplace=True), nn.Conv2d(inner, growth, 3, padding=1, bias=False),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layers(x)], dim=1)


def _transition(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, bias=False),
                         nn.AvgPool2d(2))


def densenet_bc(num_classes: int, input_shape: tuple[int, ...], depth: int, growth: int,
                reduction: float = 0.5, dropout: float = 0.0) -> StagedNet:
    if (depth - 4) % 6 != 0:
        raise ValueError(f"DenseNet-BC depth must be 6n+4, got {depth}")
    n = (depth - 4) // 6
    channels = 2 * growth
    stages = []
    for index in range(3):
        layers: list[nn.Module] = [nn.Conv2d(input_shape[0], channels, 3, padding=1, bias=False)] if index == 0 else []
        for _ in range(n):
            layers.append(Bottleneck(channels, growth, dropout))
            channels += growth
        if index < 2:
            out = int(channels * reduction)
            layers.append(_transition(channels, out))
            channels = out
        stages.append(nn.Sequential(*layers))
    head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, num_classes))
    return StagedNet(stages, head)


@register_model("densenet-bc-190", num_classes=10, input_shape=(3, 32, 32))
def densenet_bc_190(num_classes: int, input_shape: tuple[int, ...], growth: int = 40, dropout: float = 0.0) -> StagedNet:
    """DenseNet-BC-190 with growth rate 40 (§3.2)."""
    return densenet_bc(num_classes, input_shape, 190, growth, dropout=dropout)


@register_model("densenet-bc-100", num_classes=10, input_shape=(3, 32, 32))
def densenet_bc_100(num_classes: int, input_shape: tuple[int, ...], growth: int = 12, dropout: float = 0.0) -> StagedNet:
    """DenseNet-BC-100 with growth rate 12 (Huang et al., 2017): a small member of the family."""
    return densenet_bc(num_classes, input_shape, 100, growth, dropout=dropout)
