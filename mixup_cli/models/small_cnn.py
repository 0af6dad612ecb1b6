"""The small CNN of the embedded default: two conv stages and a linear head, for 8x8 digits.

Sized so that `mixup train` with no flags finishes in about a minute on 2 CPU cores.
"""
from __future__ import annotations

from torch import nn

from . import register_model
from .base import StagedNet


def _conv_stage(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


@register_model("small-cnn", num_classes=10, input_shape=(1, 8, 8))
def small_cnn(num_classes: int, input_shape: tuple[int, ...], width: int = 32, dropout: float = 0.0) -> StagedNet:
    channels = input_shape[0]
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * width, num_classes),
    )
    return StagedNet([_conv_stage(channels, width, pool=True), _conv_stage(width, 2 * width, pool=False)], head)
