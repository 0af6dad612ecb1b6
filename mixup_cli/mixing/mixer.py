"""`build_mixer(config)`: the one batch transform the trainer calls, assembled from small pieces.

    mixer(inputs, labels, alpha, rng, generator, index=None) -> MixedBatch

A step of the transform, each a registry entry chosen by a TrainConfig key:
  pairing   (mix_pairs, mix_classes)   who mixes with whom            pairing.py: rp | knn, ac | sc
  combine   (mix_op)                   how two inputs become one       combine.py: interpolate | cutmix
  placement (mix_where, mix_layer)     where in the network they mix   PLACEMENTS: input | latent | manifold
  targets   (mix_targets)              what the loss scores            TARGETS: mixed | inputs-only
plus lambda per batch or per example, a probability of mixing a batch at all, label smoothing and
Gaussian input noise. alpha = 0 (or a batch left unmixed) is plain ERM through the same code.
Randomness: `rng` (numpy, host) draws lambda, the layer, the coin and boxes; `generator` (torch,
on the batch's device) draws permutations, neighbours and noise, so no step waits on the device.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from ..config.train import DEFAULT_ALPHA  # alpha by mix_where, re-exported by mixing
from ..registry import Registry
from .combine import COMBINES
from .core import MixedBatch
from .pairing import PAIRINGS, Partners

PLACEMENTS: Registry = Registry("mixing place")
TARGETS: Registry = Registry("mixing target")



@PLACEMENTS.register("input")
def place_on_input(mixer: "Mixer", inputs, labels, partners: Partners, lam, rng) -> MixedBatch:
    mixed, lam = mixer.combine(inputs, partners.inputs, lam, rng)
    return MixedBatch(mixed, labels, partners.labels, lam, partners.perm, partner_index=partners.partner_index)


@PLACEMENTS.register("latent")
def place_in_layer(mixer: "Mixer", inputs, labels, partners: Partners, lam, rng, layer=None) -> MixedBatch:
    """Mix the representations after the model's stage `layer` (Table 5's "Layer k"); the input is
    left as is and the model mixes inside its forward (models/base.py: StagedNet)."""
    from .combine import lam_tensor

    layer = mixer.layer if layer is None else layer
    if layer == 0:
        return place_on_input(mixer, inputs, labels, partners, lam, rng)
    return MixedBatch(inputs, labels, partners.labels, lam_tensor(lam, inputs.device), partners.perm, mix_at=layer)


@PLACEMENTS.register("manifold")
def place_at_random_layer(mixer: "Mixer", inputs, labels, partners: Partners, lam, rng) -> MixedBatch:
    """Manifold Mixup (Verma et al. 2019): per batch, one of the model's mixing points at random,
    the input (point 0) included."""
    layer = mixer.mixing_points[int(rng.integers(len(mixer.mixing_points)))]
    return place_in_layer(mixer, inputs, labels, partners, lam, rng, layer=layer)


@TARGETS.register("mixed")
def mixed_targets(batch: MixedBatch) -> MixedBatch:
    """lam*y + (1-lam)*y': the paper's mixup target."""
    return batch


@TARGETS.register("inputs-only")
def larger_weight_target(batch: MixedBatch) -> MixedBatch:
    """§3.8's 'mix inputs only': the one-hot label of the example weighing more in the mix.

    Both label sets become that label, so the loss is plain cross-entropy while lam still says how
    the inputs (or hidden layers) are mixed.
    """
    lam = batch.lam
    if isinstance(lam, torch.Tensor):
        chosen = torch.where(lam >= 0.5, batch.targets_a, batch.targets_b)
    else:
        chosen = batch.targets_a if lam >= 0.5 else batch.targets_b
    batch.targets_a = batch.targets_b = chosen
    return batch


class Mixer:
    """The assembled transform; `needs_index` tells the trainer to pass each example's dataset index."""

    def __init__(self, pairing, combine: Callable, placement: Callable, targets: Callable, *,
                 layer: Optional[int] = None, mixing_points: Optional[list[int]] = None,
                 lam_per_example: bool = False, mix_prob: float = 1.0, label_smoothing: float = 0.0,
                 input_noise: float = 0.0):
        self.pairing, self.combine, self.placement, self.targets = pairing, combine, placement, targets
        self.layer, self.mixing_points = layer, mixing_points or [0]
        self.lam_per_example, self.mix_prob = lam_per_example, mix_prob
        self.label_smoothing, self.input_noise = label_smoothing, input_noise

    @property
    def needs_index(self) -> bool:
        return self.pairing.needs_index

    def draw_lambda(self, alpha: float, rng: np.random.Generator, n: int):
        """Beta(alpha, alpha): one float per batch, or a host array of n (drawn on the host: no sync)."""
        if self.lam_per_example:
            return rng.beta(alpha, alpha, size=n)
        return float(rng.beta(alpha, alpha))

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor, alpha: float, rng: np.random.Generator,
                 generator: torch.Generator, index: Optional[torch.Tensor] = None) -> MixedBatch:
        # The coin is drawn only when it can come up tails, so default runs draw exactly what mixup() draws.
        skip = alpha == 0 or (self.mix_prob < 1.0 and rng.random() >= self.mix_prob)
        if skip:
            batch = MixedBatch(inputs, labels, labels)
        else:
            lam = self.draw_lambda(alpha, rng, inputs.shape[0])
            partners = self.pairing(inputs, labels, index, generator)
            batch = self.targets(self.placement(self, inputs, labels, partners, lam, rng))
        batch.label_smoothing = self.label_smoothing
        if self.input_noise > 0:
            noise = torch.randn(batch.inputs.shape, device=batch.inputs.device, generator=generator)
            batch.inputs = batch.inputs + self.input_noise * noise
        return batch


def build_mixer(config, model: Optional[torch.nn.Module] = None, train_set=None,
                device: Optional[torch.device] = None) -> Mixer:
    """The batch transform a training run uses, from a validated TrainConfig.

    Every training path calls what this returns; ERM is alpha = 0 of it, not another loop. `model`
    gives the mixing points for manifold mixing, `train_set` the examples knn pairs with.
    """
    get = lambda key, default: getattr(config, key, default)  # noqa: E731  configs from older versions
    where = get("mix_where", "input")
    pairing = PAIRINGS.get(get("mix_pairs", "rp"))(same_class=get("mix_classes", "ac") == "sc",
                                                   train_set=train_set, k=get("knn_k", 200), device=device)
    points = list(getattr(model, "mixing_points", [0])) if model is not None else [0]
    return Mixer(pairing, COMBINES.get(get("mix_op", "interpolate")), PLACEMENTS.get(where),
                 TARGETS.get(get("mix_targets", "mixed")), layer=get("mix_layer", None), mixing_points=points,
                 lam_per_example=get("lam_per_example", False), mix_prob=get("mix_prob", 1.0),
                 label_smoothing=get("label_smoothing", 0.0), input_noise=get("input_noise", 0.0))
