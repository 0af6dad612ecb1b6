"""Wide ResNets WRN-D-K for 32x32 images (Zagoruyko & Komodakis, 2016), as the paper trains
WRN-28-10 on CIFAR (§3.2): a 3x3 stem of 16 channels, three stages of (D-4)/6 pre-activation
blocks of 16K, 32K and 64K channels, BN-ReLU, global average pooling, one linear layer.
WRN-28-10 has 36,479,194 parameters for 10 classes (published: 36.5 M).

Registered names: wrn16-4, wrn16-8, wrn22-10, wrn28-10, wrn28-12, wrn40-4; any other D-K is one
`register_wide_resnet(D, K)` call away (D = 6n + 4).
"""
from __future__ import annotations

from torch import nn

from . import register_model
from .base import StagedNet
from .preact_resnet import PreActBlock  # the same pre-activation block, dropout between the convolutions


def wide_resnet(num_classes: int, input_shape: tuple[int, ...], depth: int, width: int,
                dropout: float = 0.0) -> StagedNet:
    if (depth - 4) % 6 != 0:
        raise ValueError(f"WRN depth must be 6n+4, got {depth}")
    n = (depth - 4) // 6
    widths = (16 * width, 32 * width, 64 * width)
    stem = nn.Conv2d(input_shape[0], 16, 3, stride=1, padding=1, bias=False)
    stages, cin = [], 16
    for index, cout in enumerate(widths):
        blocks = [PreActBlock(cin if b == 0 else cout, cout, (1 if index == 0 else 2) if b == 0 else 1, dropout)
                  for b in range(n)]
        cin = cout
        stages.append(nn.Sequential(stem, *blocks) if index == 0 else nn.Sequential(*blocks))
    # The final BN-ReLU belongs to the head, so the last mixing point sees the last block's output.
    head = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cin, num_classes))
    return StagedNet(stages, head)


def register_wide_resnet(depth: int, width: int) -> None:
    def factory(num_classes: int, input_shape: tuple[int, ...], dropout: float = 0.0) -> StagedNet:
        return wide_resnet(num_classes, input_shape, depth, width, dropout)

    factory.__doc__ = f"WRN-{depth}-{width} (Zagoruyko & Komodakis, 2016); `dropout` between each block's convolutions."
    register_model(f"wrn{depth}-{width}", num_classes=10, input_shape=(3, 32, 32))(factory)


for _depth, _width in ((16, 4), (16, 8), (22, 10), (28, 10), (28, 12), (40, 4)):
    register_wide_resnet(_depth, _width)
