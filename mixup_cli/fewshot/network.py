"""The network S2M2 trains (Mangla et al. 2020, eq. 9): g = c_Wb o f_theta, a backbone f_theta with
a cosine classifier c_Wb over the base classes, plus a 4-way rotation head c_Wr (eq. 12).

The backbone is any registered model (models/): its stages and its head without the final linear
layer, so a model's mixing points are the backbone's and manifold mixup (mixing/) runs through it
unchanged. Only the backbone's features are used on novel classes.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..models import Normalized, build_model
from ..models.base import Mixer, run_stages

ROTATIONS = 4  # 0, 90, 180 and 270 degrees


class CosineClassifier(nn.Module):
    """Logits s * g_c * cos(f, w_c): cosine similarity to a direction per class, times a fixed scale s
    and a learnable norm g_c per class (the official code's distLinear: a weight-normalized linear
    layer scaled by 2 for up to 200 classes; Chen et al. 2019's Baseline++)."""

    def __init__(self, features: int, classes: int, scale: float):
        super().__init__()
        self.direction = nn.Parameter(torch.empty(classes, features))
        nn.init.kaiming_uniform_(self.direction, a=5 ** 0.5)  # nn.Linear's initialization
        self.norm = nn.Parameter(torch.ones(classes))
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        cosine = F.normalize(features, dim=1, eps=1e-5) @ F.normalize(self.direction, dim=1).T
        return self.scale * self.norm * cosine


class FewShotNet(nn.Module):
    """Backbone (raw-scale inputs, normalized inside), cosine classifier and rotation head."""

    def __init__(self, model: str, base_classes: int, input_shape: tuple, mean: list, std: list,
                 scale: float, options: Optional[dict] = None):
        super().__init__()
        net = build_model(model, base_classes, input_shape, **(options or {}))
        last = net.head[-1]
        if not isinstance(last, nn.Linear):
            raise ValueError(f"model '{model}' does not end in a linear layer; few-shot runs need its features")
        net.head = nn.Sequential(*list(net.head)[:-1])  # the head up to its features (pooling, flatten)
        self.backbone = Normalized(net, mean, std, len(input_shape))
        self.classifier = CosineClassifier(last.in_features, base_classes, scale)
        self.rotation = nn.Linear(last.in_features, ROTATIONS)

    @property
    def mixing_points(self) -> list[int]:
        return self.backbone.mixing_points

    def features(self, x: torch.Tensor, mix_at: Optional[int] = None, mixer: Optional[Mixer] = None):
        net = self.backbone.net
        return run_stages(net.stages, net.head, self.backbone.normalize(x), mix_at, mixer)

    def forward(self, x: torch.Tensor, mix_at: Optional[int] = None, mixer: Optional[Mixer] = None):
        """Base-class logits; `mix_at`/`mixer` as every registered model takes them (manifold mixup)."""
        return self.classifier(self.features(x, mix_at, mixer))


def rotate_batch(inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each image at 0, 90, 180 and 270 degrees (eq. 12): 4x the batch, its class labels, and the
    rotation labels 0..3 (rotation r is r quarter turns counter-clockwise)."""
    turned = torch.cat([torch.rot90(inputs, r, dims=(-2, -1)) for r in range(ROTATIONS)])
    angles = torch.arange(ROTATIONS, device=inputs.device).repeat_interleave(len(inputs))
    return turned, labels.repeat(ROTATIONS), angles


def rotation_losses(net: FewShotNet, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_class, L_rot) on the rotated batch (eqs. 12-13): base-class cross-entropy of every rotated
    image through the cosine classifier, and 4-way rotation cross-entropy through the rotation head."""
    turned, classes, angles = rotate_batch(inputs, labels)
    features = net.features(turned)
    return F.cross_entropy(net.classifier(features), classes), F.cross_entropy(net.rotation(features), angles)
