"""Training augmentations applied to whole batches on the training device.

These replace per-sample CPU transforms for datasets held in memory (TensorSplit): one gather
does every crop of a batch, so augmentation costs no DataLoader workers.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..registry import Registry

AUGMENTATIONS: Registry[Callable[..., torch.Tensor]] = Registry("augmentation")


@AUGMENTATIONS.register("crop-flip")
def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Zero-pad by `padding`, crop back to size at a random offset, flip half horizontally.

    The standard CIFAR training augmentation (He et al., 2016), as a batched gather.
    """
    n, _, h, w = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
    flip = torch.rand(n, 1, device=device, generator=generator) < 0.5
    rows = dy + torch.arange(h, device=device)  # n,h
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flip, cols.flip(1), cols) + dx  # n,w
    batch = torch.arange(n, device=device)[:, None, None]
    # padded: n,c,H,W -> pick [b, :, rows[b,i], cols[b,j]] -> n,h,w,c
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    # An (N, C, H, W) view of channels_last memory: speed.to_layout copies it to the run's layout
    # once, and not at all for a channels_last run.
    return out.permute(0, 3, 1, 2)
