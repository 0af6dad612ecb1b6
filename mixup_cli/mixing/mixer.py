"""`build_mixer(config)`: the one batch transform the trainer calls, assembled from small pieces.

    mixer(inputs, labels, alpha, rng, generator, index=None) -> MixedBatch

A step of the transform, each a registry entry chosen by a TrainConfig key:
  pairing   (mix_pairs, mix_classes)   who mixes with whom            pairing.py: rp | knn, ac | sc
  combine   (mix_op)                   how two inputs become one       combine.py: interpolate | cutmix
  placement (mix_where, mix_layer)     where in the network they mix   PLACEMENTS: input | latent | manifold
  targets   (mix_targets)              what the loss scores            TARGETS: mixed | inputs-only
plus lambda per batch or per example (with the mixing coin and the CutMix switch per example too, timm's
mode 'elem'), a probability of mixing a batch at all, label smoothing and
Gaussian input noise (in normalized units: `noise_std`). alpha = 0 (or a batch left unmixed) is plain
ERM through the same code.
Randomness: `rng` (numpy, host) draws lambda, the layer, the coin and boxes; `generator` (torch,
on the batch's device) draws permutations, neighbours and noise, so no step waits on the device.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import numpy as np
import torch

from ..config.train import DEFAULT_ALPHA  # alpha by mix_where, re-exported by mixing
from ..registry import Registry
from .combine import COMBINES, switch_per_example
from .core import MixedBatch
from .pairing import PAIRINGS, Partners

PLACEMENTS: Registry = Registry("mixing place")
TARGETS: Registry = Registry("mixing target")



@PLACEMENTS.register("input")
def place_on_input(mixer: "Mixer", inputs, labels, partners: Partners, lam, rng, combine=None) -> MixedBatch:
    mixed, lam = (combine or mixer.combine)(inputs, partners.inputs, lam, rng)
    return MixedBatch(mixed, labels, partners.labels, lam, partners.perm, partner_index=partners.partner_index)


@PLACEMENTS.register("latent")
def place_in_layer(mixer: "Mixer", inputs, labels, partners: Partners, lam, rng, layer=None,
                   combine=None) -> MixedBatch:
    """Mix the representations after the model's stage `layer` (Table 5's "Layer k"); the input is
    left as is and the model mixes inside its forward (models/base.py: StagedNet)."""
    from .combine import lam_tensor

    layer = mixer.layer if layer is None else layer
    if layer == 0:
        return place_on_input(mixer, inputs, labels, partners, lam, rng, combine)
    return MixedBatch(inputs, labels, partners.labels, lam_tensor(lam, inputs.device), partners.perm, mix_at=layer)


@PLACEMENTS.register("manifold")
def place_at_random_layer(mixer: "Mixer", inputs, labels, partners: Partners, lam, rng,
                          combine=None) -> MixedBatch:
    """Manifold Mixup (Verma et al. 2019): per batch, one of the model's mixing points at random,
    the input (point 0) included."""
    layer = mixer.mixing_points[int(rng.integers(len(mixer.mixing_points)))]
    return place_in_layer(mixer, inputs, labels, partners, lam, rng, layer=layer, combine=combine)


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


def noise_std(sigma: float, model: Optional[torch.nn.Module] = None):
    """§3.8's Gaussian noise of std `sigma` in normalized units, as a std in the batch's raw units.

    The authors' pipeline normalizes in its data transforms, so noise on its batches is in normalized
    units; our batches are raw (images in [0, 1]) and the model normalizes (models/base.py: Normalized).
    sigma * std per channel here is N(0, sigma^2) after that normalization. Without a model that
    normalizes, `sigma` itself.
    """
    std = getattr(model, "std", None)
    if sigma == 0 or not isinstance(std, torch.Tensor):
        return sigma
    return sigma * std.detach().clone()


def add_noise(inputs: torch.Tensor, std, generator: torch.Generator) -> torch.Tensor:
    """inputs + std * N(0, 1), `std` a float or a per-channel tensor that broadcasts over the batch."""
    noise = torch.randn(inputs.shape, device=inputs.device, generator=generator)
    if isinstance(std, torch.Tensor):
        std = std.to(device=inputs.device, dtype=inputs.dtype)
    return inputs + std * noise


class Mixer:
    """The assembled transform; `needs_index` tells the trainer to pass each example's dataset index."""

    def __init__(self, pairing, combine: Callable, placement: Callable, targets: Callable, *,
                 layer: Optional[int] = None, mixing_points: Optional[list[int]] = None,
                 lam_per_example: bool = False, mix_prob: float = 1.0, label_smoothing: float = 0.0,
                 input_noise: float = 0.0, switch: Optional[tuple] = None, loss: str = "ce"):
        """`switch` (probability, cutmix combine, its alpha or None for the batch's): per mixed batch,
        that combine with that probability, else `combine` (timm's switch_prob)."""
        self.pairing, self.combine, self.placement, self.targets = pairing, combine, placement, targets
        self.layer, self.mixing_points = layer, mixing_points or [0]
        self.lam_per_example, self.mix_prob = lam_per_example, mix_prob
        self.label_smoothing, self.input_noise = label_smoothing, input_noise
        self.switch, self.loss = switch, loss

    @property
    def needs_index(self) -> bool:
        return self.pairing.needs_index

    def per_example(self, alpha: float, rng: np.random.Generator, n: int) -> tuple[Callable, np.ndarray]:
        """timm's mode 'elem' (its _params_per_elem): each example's operation (CutMix with the switch's
        probability, else mixup), its lambda from that operation's Beta, then its own mix_prob coin
        (lambda 1, left unmixed, where it fails); and the combine that applies them row by row. A host
        array of n lambdas (no device sync); coins are drawn only where they can come up both ways."""
        combine = self.combine
        if self.switch is None:
            lam = rng.beta(alpha, alpha, size=n)
        else:
            probability, cut, cut_alpha = self.switch
            cut_alpha = alpha if cut_alpha is None else cut_alpha
            if probability >= 1.0:
                combine, lam = cut, rng.beta(cut_alpha, cut_alpha, size=n)
            else:  # timm draws the coins, then both Betas for every example, CutMix's first
                use_cutmix = rng.random(n) < probability
                lam = np.where(use_cutmix, rng.beta(cut_alpha, cut_alpha, size=n), rng.beta(alpha, alpha, size=n))
                combine = functools.partial(switch_per_example, use_cutmix=use_cutmix, cut=cut, blend=self.combine)
        if self.mix_prob < 1.0:
            lam = np.where(rng.random(n) < self.mix_prob, lam, 1.0)
        return combine, lam

    def choose_combine(self, alpha: float, rng: np.random.Generator) -> tuple[Callable, float]:
        """This batch's combine and the alpha its lambda is drawn with: the switch's with its
        probability (a coin drawn only when a switch is set), else the configured one."""
        if self.switch is None:
            return self.combine, alpha
        probability, other, other_alpha = self.switch
        if probability >= 1.0 or rng.random() < probability:
            return other, alpha if other_alpha is None else other_alpha
        return self.combine, alpha

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor, alpha: float, rng: np.random.Generator,
                 generator: torch.Generator, index: Optional[torch.Tensor] = None) -> MixedBatch:
        # The coin is drawn only when it can come up tails, so default runs draw exactly what mixup() draws;
        # with lam_per_example every example tosses its own (per_example).
        skip = alpha == 0 or (not self.lam_per_example and self.mix_prob < 1.0 and rng.random() >= self.mix_prob)
        if skip:
            batch = MixedBatch(inputs, labels, labels)
        else:
            if self.lam_per_example:
                combine, lam = self.per_example(alpha, rng, inputs.shape[0])
            else:
                combine, alpha = self.choose_combine(alpha, rng)
                lam = float(rng.beta(alpha, alpha))
            partners = self.pairing(inputs, labels, index, generator)
            batch = self.targets(self.placement(self, inputs, labels, partners, lam, rng, combine=combine))
        batch.label_smoothing, batch.loss_kind = self.label_smoothing, self.loss
        if isinstance(self.input_noise, torch.Tensor) or self.input_noise > 0:
            batch.inputs = add_noise(batch.inputs, self.input_noise, generator)
        return batch


def build_mixer(config, model: Optional[torch.nn.Module] = None, train_set=None,
                device: Optional[torch.device] = None, on_prepare: Optional[Callable] = None) -> Mixer:
    """The batch transform a training run uses, from a validated TrainConfig.

    Every training path calls what this returns; ERM is alpha = 0 of it, not another loop. `model`
    gives the mixing points for manifold mixing, `train_set` the examples knn pairs with;
    `on_prepare(what, done, total)` reports the progress of slow preparation (knn's neighbour lists).
    """
    get = lambda key, default: getattr(config, key, default)  # noqa: E731  configs from older versions
    where = get("mix_where", "input")
    pairing = PAIRINGS.get(get("mix_pairs", "rp"))(same_class=get("mix_classes", "ac") == "sc",
                                                   train_set=train_set, k=get("knn_k", 200), device=device,
                                                   on_prepare=on_prepare)
    points = list(getattr(model, "mixing_points", [0])) if model is not None else [0]
    combine, switch = _combines(get)
    return Mixer(pairing, combine, PLACEMENTS.get(where),
                 TARGETS.get(get("mix_targets", "mixed")), layer=get("mix_layer", None), mixing_points=points,
                 lam_per_example=get("lam_per_example", False), mix_prob=get("mix_prob", 1.0),
                 label_smoothing=get("label_smoothing", 0.0), input_noise=noise_std(get("input_noise", 0.0), model),
                 switch=switch, loss=get("loss", "ce"))


def _combines(get) -> tuple[Callable, Optional[tuple]]:
    """The configured combine, and the CutMix switch: with switch_prob, CutMix that often (else
    interpolation); with mix_op cutmix, always. CutMix's lambda is drawn with cutmix_alpha (default:
    alpha), and with Beta(1, 1) when cutmix_minmax sets the box (timm forces cutmix_alpha 1 there)."""
    minmax = get("cutmix_minmax", []) or None
    cut = functools.partial(COMBINES.get("cutmix"), minmax=minmax, correct_lam=get("correct_lam", True))
    cut_alpha = 1.0 if minmax else get("cutmix_alpha", None)
    op, switch_prob = get("mix_op", "interpolate"), get("switch_prob", None)
    if switch_prob is not None:
        return COMBINES.get(op), (switch_prob, cut, cut_alpha)
    if op == "cutmix":
        if minmax is None and cut_alpha is None and get("correct_lam", True):
            return COMBINES.get(op), None  # plain CutMix: exactly the draws it always made
        return cut, (1.0, cut, cut_alpha)
    return COMBINES.get(op), None
