"""The two spectrogram classifiers of the speech experiment (§3.3), for 1x160x101 inputs.

Both follow the Google-commands PyTorch code the paper's speech experiments come from
(Adi, GCommandsPytorch), which the paper describes as "two convolutional and two fully-connected
layers" ahead of the classifier:
- `lenet`: conv5x5(20)-maxpool-ReLU, conv5x5(20)-[dropout]-maxpool-ReLU, fc 1000-ReLU-[dropout], fc.
  16.3 M parameters for 30 classes (almost all in the first fully-connected layer).
- `vgg11`: VGG-11's eight conv3x3-BN-ReLU layers with five max-pools (Simonyan & Zisserman,
  2015), then fc 512 and fc. 13.2 M parameters for 30 classes.
The first fully-connected layer's width follows from `input_shape`, so smaller inputs work too.
"""
from __future__ import annotations

from torch import nn

from . import register_model
from .base import StagedNet


def _halving(size: int) -> int:
    """A max-pool's kernel along one side: 2, or 1 once the side is down to one pixel, so that
    inputs smaller than the reference (28x28 images: 28, 14, 7, 3, 1) survive all five pools."""
    return 2 if size >= 2 else 1


@register_model("lenet", num_classes=30, input_shape=(1, 160, 101))
def lenet(num_classes: int, input_shape: tuple[int, ...], dropout: float = 0.5) -> StagedNet:
    """`dropout` 0.5 as in the reference code (spatial dropout after conv2, dropout after fc1)."""
    c, h, w = input_shape
    # Each conv5x5 (no padding) takes 4 pixels off, each max-pool halves: (s - 4) // 2, twice.
    h2, w2 = (h - 4) // 2, (w - 4) // 2
    h2, w2 = (h2 - 4) // 2, (w2 - 4) // 2
    stages = [
        nn.Sequential(nn.Conv2d(c, 20, 5), nn.MaxPool2d(2), nn.ReLU(inplace=True)),
        nn.Sequential(nn.Conv2d(20, 20, 5), nn.Dropout2d(dropout), nn.MaxPool2d(2), nn.ReLU(inplace=True)),
        nn.Sequential(nn.Flatten(), nn.Linear(20 * h2 * w2, 1000), nn.ReLU(inplace=True), nn.Dropout(dropout)),
    ]
    return StagedNet(stages, nn.Linear(1000, num_classes))


VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


@register_model("vgg11", num_classes=30, input_shape=(1, 160, 101))
def vgg11(num_classes: int, input_shape: tuple[int, ...], dropout: float = 0.0) -> StagedNet:
    """Mixing points: the input, after each of the five conv blocks (each ends in a max-pool), and
    after the first fully-connected layer."""
    c, h, w = input_shape
    stages, block, cin = [], [], c
    for item in VGG11:
        if item == "M":
            kernel = (_halving(h), _halving(w))
            block.append(nn.MaxPool2d(kernel))
            h, w = h // kernel[0], w // kernel[1]
            stages.append(nn.Sequential(*block))
            block = []
        else:
            block += [nn.Conv2d(cin, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
            cin = item
    flat = cin * h * w
    stages.append(nn.Sequential(nn.Flatten(), nn.Linear(flat, 512),
                                nn.Dropout(dropout) if dropout > 0 else nn.Identity()))
    return StagedNet(stages, nn.Linear(512, num_classes))
