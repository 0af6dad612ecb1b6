"""The fully-connected network of the tabular experiments (§3.6): two hidden layers of 128 ReLU
units and a linear output. Mixing points: the input and each hidden layer's output."""
from __future__ import annotations

import math

from torch import nn

from . import register_model
from .base import StagedNet


@register_model("mlp", num_classes=3, input_shape=(4,))
def mlp(num_classes: int, input_shape: tuple[int, ...], hidden: int = 128, layers: int = 2,
        dropout: float = 0.0) -> StagedNet:
    """Reference setting: Iris (4 features, 3 classes), 17,539 parameters."""
    cin = math.prod(input_shape)
    stages = []
    for index in range(layers):
        block: list[nn.Module] = [nn.Flatten()] if index == 0 and len(input_shape) > 1 else []
        block += [nn.Linear(cin, hidden), nn.ReLU(inplace=True)]
        if dropout > 0:
            block.append(nn.Dropout(dropout))
        stages.append(nn.Sequential(*block))
        cin = hidden
    return StagedNet(stages, nn.Linear(cin, num_classes))
