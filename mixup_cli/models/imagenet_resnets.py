"""The ImageNet models of Table 1 (§3.1): ResNet-50/101 (He et al., 2016) and ResNeXt-101 32x4d
and 64x4d (Xie et al., 2017), built by torchvision's own builders with weights=None (nothing is
ever downloaded) and regrouped into stages: stem+layer1, layer2, layer3, layer4, then the
average-pool+linear head, so each has the standard mixing points.

Parameters for 1000 classes: ResNet-50 25.6 M, ResNet-101 44.5 M, ResNeXt-101 32x4d 44.2 M,
ResNeXt-101 64x4d 83.5 M (the published figures).
"""
from __future__ import annotations

from torch import nn

from . import register_model
from .base import StagedNet


def _staged(net) -> StagedNet:
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return StagedNet([nn.Sequential(stem, net.layer1), net.layer2, net.layer3, net.layer4],
                     nn.Sequential(net.avgpool, nn.Flatten(), net.fc))


def _resnet(num_classes: int, input_shape: tuple[int, ...], layers: list[int], groups: int = 1,
            width_per_group: int = 64, zero_init_residual: bool = True) -> StagedNet:
    """`zero_init_residual`: the last BN of every residual block starts at gamma = 0, as in
    Goyal et al. (2017), whose large-batch recipe §3.1 follows."""
    from torchvision.models.resnet import Bottleneck, ResNet

    net = ResNet(Bottleneck, layers, num_classes=num_classes, groups=groups, width_per_group=width_per_group,
                 zero_init_residual=zero_init_residual)
    if input_shape[0] != 3:
        net.conv1 = nn.Conv2d(input_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
    return _staged(net)


@register_model("resnet50", num_classes=1000, input_shape=(3, 224, 224))
def resnet50(num_classes: int, input_shape: tuple[int, ...], zero_init_residual: bool = True) -> StagedNet:
    return _resnet(num_classes, input_shape, [3, 4, 6, 3], zero_init_residual=zero_init_residual)


@register_model("resnet101", num_classes=1000, input_shape=(3, 224, 224))
def resnet101(num_classes: int, input_shape: tuple[int, ...], zero_init_residual: bool = True) -> StagedNet:
    return _resnet(num_classes, input_shape, [3, 4, 23, 3], zero_init_residual=zero_init_residual)


@register_model("resnext101-32x4d", num_classes=1000, input_shape=(3, 224, 224))
def resnext101_32x4d(num_classes: int, input_shape: tuple[int, ...], zero_init_residual: bool = True) -> StagedNet:
    return _resnet(num_classes, input_shape, [3, 4, 23, 3], groups=32, width_per_group=4,
                   zero_init_residual=zero_init_residual)


@register_model("resnext101-64x4d", num_classes=1000, input_shape=(3, 224, 224))
def resnext101_64x4d(num_classes: int, input_shape: tuple[int, ...], zero_init_residual: bool = True) -> StagedNet:
    return _resnet(num_classes, input_shape, [3, 4, 23, 3], groups=64, width_per_group=4,
                   zero_init_residual=zero_init_residual)
