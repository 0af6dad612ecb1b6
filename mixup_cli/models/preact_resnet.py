"""PreAct ResNet-18 for 32x32 images (He et al., 2016, "Identity mappings in deep residual networks").

Built as in Liu (2017, kuangliu/pytorch-cifar), the implementation the paper's CIFAR experiments
use (§3.2): a 3x3 stem, four stages of two pre-activation basic blocks (64, 128, 256, 512
channels), global average pooling and one linear layer; 11,171,146 parameters for 10 classes.
Like Liu's code, there is no batch norm between the last block and the pooling.
"""
from __future__ import annotations

import torch
from torch import nn

from . import register_model
from .base import StagedNet


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3 plus the identity (or a 1x1 projection).

    `dropout` is the §3.4 variant: one dropout layer after the ReLU between the two convolutions
    (as suggested by Zagoruyko & Komodakis, 2016).
    """

    def __init__(self, cin: int, cout: int, stride: int, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        # The projection sees the pre-activated input, as in He et al. and Liu's code.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + shortcut


def preact_resnet(num_classes: int, input_shape: tuple[int, ...], blocks: tuple[int, ...],
                  dropout: float = 0.0) -> StagedNet:
    widths = (64, 128, 256, 512)
    # The stem is a stage of its own so the mixing points are the paper's (§3.8): k = 1..4 lie before
    # each group of residual blocks ("Layer 1-4"), k = 5 before the pooling + linear head ("Layer 5").
    stem = nn.Conv2d(input_shape[0], widths[0], 3, stride=1, padding=1, bias=False)
    stages, cin = [stem], widths[0]
    for index, (width, count) in enumerate(zip(widths, blocks)):
        layers = []
        for b in range(count):
            stride = 2 if (index > 0 and b == 0) else 1
            layers.append(PreActBlock(cin, width, stride, dropout))
            cin = width
        stages.append(nn.Sequential(*layers))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
    return StagedNet(stages, head)


@register_model("preact-resnet18", num_classes=10, input_shape=(3, 32, 32))
def preact_resnet18(num_classes: int, input_shape: tuple[int, ...], dropout: float = 0.0) -> StagedNet:
    """PreAct ResNet-18 (§3.2); `dropout` adds one dropout per block after its middle ReLU (§3.4)."""
    return preact_resnet(num_classes, input_shape, (2, 2, 2, 2), dropout)
