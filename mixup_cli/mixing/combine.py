"""How two inputs become one: interpolation (mixup, §2) or a pasted box (CutMix, Yun et al. 2019).

A combine takes the batch, the partners' inputs and lambda (a float, or a host array of one weight
per example, drawn on the host so nothing waits on the device) and returns the mixed inputs and
the weight of the first example as the loss should count it (a float, or a device tensor).
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

from ..registry import Registry

COMBINES: Registry = Registry("mixing operation")
Lam = Union[float, np.ndarray]


def lam_tensor(lam: Lam, device) -> Union[float, torch.Tensor]:
    """A host array of weights as a float32 tensor on `device`; a float stays a float."""
    if isinstance(lam, np.ndarray):
        return torch.as_tensor(lam, dtype=torch.float32).to(device, non_blocking=True)
    return lam


@COMBINES.register("interpolate")
def interpolate(inputs: torch.Tensor, partners: torch.Tensor, lam: Lam, rng: np.random.Generator):
    """lam*x + (1-lam)*x', the paper's virtual example."""
    lam = lam_tensor(lam, inputs.device)
    weight = lam.reshape(-1, *([1] * (inputs.dim() - 1))).to(inputs.dtype) if isinstance(lam, torch.Tensor) else lam
    return weight * inputs + (1 - weight) * partners, lam


def cut_boxes(lam: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 4] boxes (y0, y1, x0, x1) covering about 1-lam of the image each, centred uniformly at
    random and clipped at the border (CutMix's sampling; timm's rand_bbox)."""
    side = np.sqrt(1.0 - lam)
    cut_h, cut_w = (height * side).astype(int), (width * side).astype(int)
    cy, cx = rng.integers(0, height, size=lam.shape), rng.integers(0, width, size=lam.shape)
    return np.stack([np.clip(cy - cut_h // 2, 0, height), np.clip(cy + cut_h // 2, 0, height),
                     np.clip(cx - cut_w // 2, 0, width), np.clip(cx + cut_w // 2, 0, width)], axis=1)


def cut_boxes_minmax(n: int, height: int, width: int, minmax, rng: np.random.Generator) -> np.ndarray:
    """[n, 4] boxes whose sides are a ratio of the image's drawn uniformly from [low, high) (as
    integers: int(side*low) <= cut < int(side*high)), placed wholly inside the image (timm's
    rand_bbox_minmax); lambda plays no part in them."""
    low, high = minmax

    def sides(size: int) -> np.ndarray:
        lo, hi = int(size * low), int(size * high)
        return rng.integers(lo, max(hi, lo + 1), size=n)

    cut_h, cut_w = sides(height), sides(width)
    y0, x0 = rng.integers(0, height - cut_h), rng.integers(0, width - cut_w)
    return np.stack([y0, y0 + cut_h, x0, x0 + cut_w], axis=1)


@COMBINES.register("cutmix")
def cutmix(inputs: torch.Tensor, partners: torch.Tensor, lam: Lam, rng: np.random.Generator, *,
           minmax=None, correct_lam: bool = True):
    """Paste a box of each partner into the example; lambda becomes the area of the example kept.

    `minmax` (low, high): box sides drawn as that ratio of the image's instead of from lambda.
    `correct_lam` False keeps the drawn lambda although the box was clipped at the border (timm's
    correct_lam); with `minmax` lambda is always the area kept, as in timm. Boxes are drawn on the
    host from `rng` (no device sync); the mask is built on the device.
    """
    if inputs.dim() != 4:
        raise ValueError(f"cutmix needs image batches (N, C, H, W), got shape {tuple(inputs.shape)}")
    height, width = inputs.shape[-2:]
    per_example = isinstance(lam, np.ndarray)
    lam_host = lam.astype(np.float64) if per_example else np.array([lam])
    if minmax:
        boxes = cut_boxes_minmax(len(lam_host), height, width, minmax, rng)
    else:
        boxes = cut_boxes(lam_host, height, width, rng)
    boxes[lam_host >= 1.0] = 0  # an example left unmixed (lambda 1) gets no box, as timm's `if lam != 1`
    if correct_lam or minmax:
        lam_host = 1.0 - (boxes[:, 1] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 2]) / (height * width)
    # non_blocking: a blocking copy from host memory waits for every queued kernel (a sync per step).
    box = torch.from_numpy(boxes).to(inputs.device, non_blocking=True)
    ys = torch.arange(height, device=inputs.device)[None, :, None]
    xs = torch.arange(width, device=inputs.device)[None, None, :]
    inside = ((ys >= box[:, 0, None, None]) & (ys < box[:, 1, None, None])
              & (xs >= box[:, 2, None, None]) & (xs < box[:, 3, None, None]))
    mixed = torch.where(inside[:, None], partners, inputs)
    return mixed, lam_tensor(lam_host, inputs.device) if per_example else float(lam_host[0])


def switch_per_example(inputs: torch.Tensor, partners: torch.Tensor, lam: np.ndarray, rng: np.random.Generator, *,
                       use_cutmix: np.ndarray, cut, blend):
    """Both operations in one batch, chosen per example (timm's mode 'elem' with switch_prob): rows
    where `use_cutmix` get a box of their partner by `cut` (lambda corrected to the area kept, row by
    row), the others are mixed by `blend`; each operation leaves the other's rows alone (lambda 1).
    The choice is a host array, copied to the device without waiting."""
    boxed, boxed_lam = cut(inputs, partners, np.where(use_cutmix, lam, 1.0), rng)
    blended, blended_lam = blend(inputs, partners, np.where(use_cutmix, 1.0, lam), rng)
    chosen = torch.from_numpy(use_cutmix).to(inputs.device, non_blocking=True)
    mixed = torch.where(chosen.view(-1, *([1] * (inputs.dim() - 1))), boxed, blended)
    return mixed, torch.where(chosen, boxed_lam, blended_lam)
