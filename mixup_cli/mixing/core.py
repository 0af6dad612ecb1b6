"""The mixup operation (Zhang et al., 2018, §2) behind one interface every training path uses.

For a batch (x, y): lambda ~ Beta(alpha, alpha) once per batch, one random permutation of the
same batch (the paper's single-loader variant), x~ = lambda*x + (1-lambda)*x[perm], and the loss
lambda*CE(f(x~), y) + (1-lambda)*CE(f(x~), y[perm]). alpha = 0 returns the batch untouched:
plain ERM at no extra cost.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F


def sample_lambda(alpha: float, rng: np.random.Generator) -> float:
    """lambda ~ Beta(alpha, alpha); 1.0 (no mixing) for alpha = 0."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0


@dataclasses.dataclass
class MixedBatch:
    """What a training step feeds the model, and how its loss is scored.

    `inputs` is what the model sees; `targets_a`/`targets_b` are the two label sets and `lam` the
    weight of the first (a float, or one weight per example). `mix_at` names a hidden mixing
    point of the model when mixing happens inside it rather than on the input.
    """

    inputs: torch.Tensor
    targets_a: torch.Tensor
    targets_b: torch.Tensor
    lam: Union[float, torch.Tensor] = 1.0
    perm: Optional[torch.Tensor] = None
    mix_at: Optional[int] = None
    label_smoothing: float = 0.0
    loss_kind: str = "ce"  # ce, or bce: binary cross-entropy on the mixed target (TrainConfig.loss)
    # Training-set index of each row's partner when partners come from outside the batch (knn).
    partner_index: Optional[torch.Tensor] = None

    @property
    def is_mixed(self) -> bool:
        return self.perm is not None or self.partner_index is not None

    def forward(self, model: torch.nn.Module) -> torch.Tensor:
        if self.mix_at is None:
            return model(self.inputs)
        return model(self.inputs, mix_at=self.mix_at, mixer=self.mix_tensor)

    def mix_tensor(self, h: torch.Tensor) -> torch.Tensor:
        """lam*h + (1-lam)*h[perm], with per-example weights broadcast over h's other dims."""
        lam = self.lam
        if isinstance(lam, torch.Tensor):
            lam = lam.reshape(-1, *([1] * (h.dim() - 1))).to(h.dtype)
        return lam * h + (1 - lam) * h[self.perm]

    def micro_batches(self, parts: int) -> list[tuple["MixedBatch", float]]:
        """The batch cut into `parts` micro-batches of near-equal size (gradient accumulation), each
        with its share of the rows: the shares weight the micro-batches' mean losses so that their
        sum is this batch's mean loss, and the summed gradients its gradient. Mixing is done already,
        over the whole batch (one lambda, partners anywhere in it), so only the mixed inputs, both
        label sets and per-example weights are cut; mixing inside the model cannot be cut so."""
        if parts == 1:
            return [(self, 1.0)]
        if self.mix_at is not None:
            raise ValueError("a batch mixed inside the model pairs rows across the whole batch; it cannot be split")
        rows = self.inputs.shape[0]
        pieces = [torch.tensor_split(t, parts) for t in (self.inputs, self.targets_a, self.targets_b)]
        lams = torch.tensor_split(self.lam, parts) if isinstance(self.lam, torch.Tensor) else [self.lam] * parts
        return [(dataclasses.replace(self, inputs=x, targets_a=a, targets_b=b, lam=weight, perm=None,
                                     partner_index=None), x.shape[0] / rows)
                for x, a, b, weight in zip(*pieces, lams) if x.shape[0] > 0]

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "bce":
            return mixed_binary_cross_entropy(logits, self.targets_a, self.targets_b, self.lam, self.label_smoothing)
        return mixed_cross_entropy(logits, self.targets_a, self.targets_b, self.lam, self.label_smoothing)


def mixed_cross_entropy(logits: torch.Tensor, targets_a: torch.Tensor, targets_b: torch.Tensor,
                        lam: Union[float, torch.Tensor], label_smoothing: float = 0.0) -> torch.Tensor:
    """lam*CE(logits, a) + (1-lam)*CE(logits, b); one CE call when nothing is mixed."""
    if isinstance(lam, torch.Tensor):
        ce_a = F.cross_entropy(logits, targets_a, reduction="none", label_smoothing=label_smoothing)
        ce_b = F.cross_entropy(logits, targets_b, reduction="none", label_smoothing=label_smoothing)
        return (lam * ce_a + (1 - lam) * ce_b).mean()
    if lam == 1.0:
        return F.cross_entropy(logits, targets_a, label_smoothing=label_smoothing)
    return (lam * F.cross_entropy(logits, targets_a, label_smoothing=label_smoothing)
            + (1 - lam) * F.cross_entropy(logits, targets_b, label_smoothing=label_smoothing))


def mixed_target(num_classes: int, targets_a: torch.Tensor, targets_b: torch.Tensor,
                 lam: Union[float, torch.Tensor], label_smoothing: float = 0.0, dtype=torch.float32) -> torch.Tensor:
    """lam*y_a + (1-lam)*y_b over smoothed one-hot labels: eps/K off the label, 1-eps+eps/K on it
    (timm's mixup_target)."""
    off = label_smoothing / num_classes

    def one_hot(t: torch.Tensor) -> torch.Tensor:
        full = torch.full((t.shape[0], num_classes), off, device=t.device, dtype=dtype)
        return full.scatter_(1, t.long().view(-1, 1), 1.0 - label_smoothing + off)

    if isinstance(lam, torch.Tensor):
        lam = lam.to(dtype).view(-1, 1)
    return lam * one_hot(targets_a) + (1 - lam) * one_hot(targets_b)


def mixed_binary_cross_entropy(logits: torch.Tensor, targets_a: torch.Tensor, targets_b: torch.Tensor,
                               lam: Union[float, torch.Tensor], label_smoothing: float = 0.0) -> torch.Tensor:
    """Binary cross-entropy of every class's logit against the mixed, smoothed target, averaged over
    examples and classes (timm's BinaryCrossEntropy on mixup_target)."""
    target = mixed_target(logits.shape[-1], targets_a, targets_b, lam, label_smoothing, logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, target)


def mixup(inputs: torch.Tensor, targets: torch.Tensor, alpha: float,
          rng: Optional[np.random.Generator] = None, generator: Optional[torch.Generator] = None) -> MixedBatch:
    """Mix a batch with a permutation of itself (the paper's Figure 1a).

    `rng` draws lambda on the host (no device sync); `generator` draws the permutation on the
    batch's device. Both default to fresh, unseeded sources.
    """
    lam = sample_lambda(alpha, rng if rng is not None else np.random.default_rng())
    if alpha == 0:
        return MixedBatch(inputs, targets, targets)
    perm = torch.randperm(inputs.shape[0], device=inputs.device, generator=generator)
    mixed = lam * inputs + (1 - lam) * inputs[perm]
    return MixedBatch(mixed, targets, targets[perm], lam, perm)
