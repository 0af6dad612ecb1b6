"""Conv-4: four 3x3 conv (64) - BatchNorm - ReLU - 2x2 max-pool blocks, then a linear head on the
flattened map (Vinyals et al. 2016, "Matching networks for one shot learning"; Snell et al. 2017).

The few-shot literature's small backbone (the Conv-4 rows of Chen et al. 2019 and Mangla et al.
2020); here it is the CPU-scale backbone of `mixup fewshot`. Pooling rounds up (ceil_mode), so
inputs as small as 8x8 (digits) keep a 1x1 map after the fourth block rather than vanishing.
"""
from __future__ import annotations

import math

from torch import nn

from . import register_model
from .base import StagedNet


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2, ceil_mode=True))


@register_model("conv4", num_classes=64, input_shape=(3, 32, 32))
def conv4(num_classes: int, input_shape: tuple[int, ...], width: int = 64, dropout: float = 0.0) -> StagedNet:
    """Conv-4 of `width` channels; its features are the flattened last map (width x 2 x 2 at 32x32)."""
    channels, height, side_w = input_shape
    for _ in range(4):
        height, side_w = math.ceil(height / 2), math.ceil(side_w / 2)
    stages = [_block(channels if i == 0 else width, width) for i in range(4)]
    head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * height * side_w, num_classes))
    return StagedNet(stages, head)
