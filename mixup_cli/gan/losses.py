"""The GAN objectives of §3.7: the standard discriminator loss, its mixup form, the generator's.

Standard GAN (the paper's first equation): max_g min_d E l(d(x), 1) + l(d(g(z)), 0), with l the binary
cross-entropy. mixup GAN (its second equation): max_g min_d E l(d(lam*x + (1-lam)*g(z)), lam), lam drawn
per example. The generator's loss is a choice (GENERATOR_LOSSES, `--g-loss`), scored on unmixed fakes
whichever discriminator loss is used (mixup is the discriminator's, as in the authors' demo):
  minimax         the paper's max_g: g maximizes l(d(g(z)), 0), i.e. minimizes -softplus(d(g(z)))
  non-saturating  l(d(g(z)), 1) = softplus(-d(g(z))) (Goodfellow et al., 2014's practical variant)
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import Registry


def standard_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """(l(d(x), 1) + l(d(g(z)), 0)) / 2, each a batch mean: the mean BCE over the real and fake batch."""
    return 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def mixup_discriminator_loss(logits: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Mean of l(d(x~), lam) = -[lam*log s(d) + (1-lam)*log(1-s(d))] over the mixed batch."""
    return F.binary_cross_entropy_with_logits(logits, lam.to(logits.dtype))


GENERATOR_LOSSES: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("generator loss")


@GENERATOR_LOSSES.register("minimax")
def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The paper's objective: -l(d(g(z)), 0) = -softplus(d(g(z))), mean over the batch.

    The authors' demo (hongyi-zhang/mixup, gan/example_gan.py) computes lossG = -bce(d(data), labels)
    on an unmixed batch of B reals (label 1) and B fakes (label 0): half this value plus a term of
    the reals that carries no gradient to g, so the same direction of descent.
    """
    return -F.softplus(fake_logits).mean()


@GENERATOR_LOSSES.register("non-saturating")
def non_saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """l(d(g(z)), 1) = softplus(-d(g(z))), mean over the batch: strong gradients while d rejects the fakes."""
    return F.softplus(-fake_logits).mean()


def mix(real: torch.Tensor, fake: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """lam*x + (1-lam)*g(z), one lam per example (lam has shape (n, 1))."""
    return torch.lerp(fake, real, lam)


@dataclasses.dataclass(frozen=True)
class LambdaScheme:
    """How a discriminator step of mixup GAN builds its batch.

    `fakes` and `reals` say how many batches of each one step consumes; `draw(alpha, shape, rng)`
    draws the lambdas (host-side numpy, drawn in blocks so CUDA sees one copy per block);
    `loss(d, real, fake, lam, generator)` returns the discriminator loss.
    """

    name: str
    reals: int
    fakes: int
    lambdas_per_example: int  # lambdas one step needs, per row of a batch
    draw: Callable[[float, tuple, np.random.Generator], np.ndarray]
    loss: Callable[..., torch.Tensor]


LAMBDA_SCHEMES: Registry[LambdaScheme] = Registry("lambda distribution")


def _beta_loss(d: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, lam: torch.Tensor,
               generator: Optional[torch.Generator]) -> torch.Tensor:
    return mixup_discriminator_loss(d(mix(real, fake, lam)), lam)


def _pooled_loss(d: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, lam: torch.Tensor,
                 generator: Optional[torch.Generator]) -> torch.Tensor:
    """The released script's batch: two shuffled pools of (B real with target 1, B fake with target 0),
    mixed row by row, so real-real, real-fake and fake-fake pairs all occur."""
    b = real.shape[0] // 2
    device = real.device
    targets = torch.cat([torch.ones(b, 1, device=device), torch.zeros(b, 1, device=device)])
    pools, labels = [], []
    for k in range(2):
        data = torch.cat([real[k * b:(k + 1) * b], fake[k * b:(k + 1) * b]])
        perm = torch.randperm(2 * b, device=device, generator=generator)
        pools.append(data[perm])
        labels.append(targets[perm])
    mixed = torch.lerp(pools[1], pools[0], lam)
    return mixup_discriminator_loss(d(mixed), torch.lerp(labels[1], labels[0], lam))


LAMBDA_SCHEMES.register("beta")(LambdaScheme(
    "beta", reals=1, fakes=1, lambdas_per_example=1,
    draw=lambda alpha, shape, rng: rng.beta(alpha, alpha, size=shape), loss=_beta_loss))
LAMBDA_SCHEMES.register("uniform")(LambdaScheme(
    "uniform", reals=2, fakes=2, lambdas_per_example=2,
    draw=lambda alpha, shape, rng: rng.uniform(0.0, alpha, size=shape), loss=_pooled_loss))
