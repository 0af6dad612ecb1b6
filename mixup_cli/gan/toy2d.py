"""Two-dimensional toy distributions for the GAN experiment (§3.7, Figure 5).

Each dataset is a mixture of equally weighted isotropic Gaussians ("modes"). The two shipped
ones follow the authors' released toy-GAN script: `ring` puts 8 modes evenly on the unit circle,
`grid` puts 25 modes on a 5x5 grid over [-1, 1]^2 (spacing 0.5); both use a standard deviation
of 0.01 per coordinate. More can be added with `@register_toy`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import torch

from ..registry import Registry


@dataclasses.dataclass(frozen=True)
class Toy2D:
    """A mixture of Gaussians: `centres` (k x 2 list), shared `std`, uniform weights."""

    name: str
    centres: tuple
    std: float
    description: str

    @property
    def num_modes(self) -> int:
        return len(self.centres)

    def centres_tensor(self, device=None) -> torch.Tensor:
        return torch.tensor(self.centres, dtype=torch.float32, device=device)

    def sample(self, n: int, generator: Optional[torch.Generator] = None, device=None,
               centres: Optional[torch.Tensor] = None) -> torch.Tensor:
        """n points: a uniformly chosen mode plus Gaussian noise of `std`."""
        centres = self.centres_tensor(device) if centres is None else centres
        index = torch.randint(len(centres), (n,), generator=generator, device=centres.device)
        noise = torch.randn(n, 2, generator=generator, device=centres.device)
        return centres[index] + self.std * noise


TOY_DATASETS: Registry[Callable[[], Toy2D]] = Registry("toy dataset")


def register_toy(name: str):
    return TOY_DATASETS.register(name)


def get_toy(name: str) -> Toy2D:
    return TOY_DATASETS.get(name)()


@register_toy("ring")
def ring(modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Toy2D:
    """8 modes at angles 0, 45, ..., 315 degrees on a circle of radius 1 (first mode at (0, 1))."""
    centres = tuple((radius * math.sin(2 * math.pi * i / modes), radius * math.cos(2 * math.pi * i / modes))
                    for i in range(modes))
    return Toy2D("ring", centres, std, f"{modes} Gaussians on a circle of radius {radius:g}, std {std:g}")


@register_toy("grid")
def grid(side: int = 5, extent: float = 1.0, std: float = 0.01) -> Toy2D:
    """25 modes at {-1, -0.5, 0, 0.5, 1}^2: a 5x5 grid spanning [-1, 1] with spacing 0.5."""
    step = 2 * extent / (side - 1)
    coords = [-extent + i * step for i in range(side)]
    centres = tuple((x, y) for x in coords for y in coords)
    return Toy2D("grid", centres, std,
                 f"{side * side} Gaussians on a {side}x{side} grid over [-{extent:g}, {extent:g}]^2 "
                 f"(spacing {step:g}), std {std:g}")


def mode_metrics(samples: torch.Tensor, toy: Toy2D, cover_share: float, radius_stds: float = 3.0) -> dict:
    """Modes covered and share of high-quality samples (the usual toy-GAN metrics).

    A sample is high-quality when it lies within `radius_stds` standard deviations (Euclidean
    distance) of some mode's centre. A mode is covered when at least `cover_share` of all
    samples (and at least one) are high-quality samples of that mode.
    """
    centres = toy.centres_tensor(samples.device)
    distances = torch.cdist(samples.float(), centres)  # n x k
    nearest, which = distances.min(dim=1)
    good = nearest <= radius_stds * toy.std
    counts = torch.bincount(which[good], minlength=len(centres))
    needed = max(1, math.ceil(cover_share * len(samples)))
    return {
        "modes_covered": int((counts >= needed).sum()),
        "num_modes": len(centres),
        "high_quality": float(good.float().mean()) if len(samples) else 0.0,
        "samples_per_mode": counts.tolist(),
    }
