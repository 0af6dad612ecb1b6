"""Who mixes with whom: the partner of each example in a batch (§3.8's RP/KNN and AC/SC).

A pairing returns `Partners`: the partner inputs and labels, and either `perm` (partners are rows
of the same batch, so hidden layers can be mixed too) or `partner_index` (partners are drawn
from the whole training set, as nearest neighbours are).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch

from ..errors import ConfigError
from ..registry import Registry

PAIRINGS: Registry = Registry("pairing")


@dataclasses.dataclass
class Partners:
    inputs: torch.Tensor
    labels: torch.Tensor
    perm: Optional[torch.Tensor] = None
    partner_index: Optional[torch.Tensor] = None


def within_class_permutation(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random permutation that maps every row to a row of the same class (per-class shuffling, SC).

    Sorting by (label, random key) twice with independent keys lists each class's rows in two
    random orders at the same positions; matching the two lists pairs rows within each class.
    Integer keys keep the sort exact; nothing leaves the device.
    """
    n = labels.shape[0]
    span = 1 << 20

    def order() -> torch.Tensor:
        noise = torch.randint(span, (n,), device=labels.device, generator=generator)
        return torch.argsort(labels.long() * span + noise)

    first, second = order(), order()
    perm = torch.empty_like(first)
    perm[first] = second
    return perm


@PAIRINGS.register("rp")
class RandomPairs:
    """Random pairs (RP): a random permutation of the batch (the paper's one-loader mixup, §2)."""

    needs_index = False

    def __init__(self, same_class: bool = False, **_):
        self.same_class = same_class

    def __call__(self, inputs, labels, index, generator) -> Partners:
        if self.same_class:
            perm = within_class_permutation(labels, generator)
        else:
            perm = torch.randperm(inputs.shape[0], device=inputs.device, generator=generator)
        return Partners(inputs[perm], labels[perm], perm=perm)


def nearest_neighbours(features: torch.Tensor, labels: torch.Tensor, k: int, same_class: bool,
                       chunk: int = 1024, progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """[N, k] indices of each row's k nearest other rows (Euclidean), optionally within its class.

    Computed in row chunks on the features' device so a CIFAR-sized set never holds an N x N matrix
    (a chunk x N block at a time); `progress(rows_done, N)` before the first chunk and after each (the
    work is quadratic in N: minutes on a CPU at 50k images, so callers show it).
    """
    features = features.reshape(features.shape[0], -1).float()
    squared = (features * features).sum(1)
    out = torch.empty(features.shape[0], k, dtype=torch.long, device=features.device)
    if progress is not None:
        progress(0, features.shape[0])
    for start in range(0, features.shape[0], chunk):
        rows = features[start:start + chunk]
        dist = squared[start:start + chunk, None] - 2 * rows @ features.T + squared[None, :]
        local = torch.arange(rows.shape[0], device=features.device)
        dist[local, start + local] = float("inf")  # never one's own neighbour
        if same_class:
            dist.masked_fill_(labels[start:start + chunk, None] != labels[None, :], float("inf"))
        out[start:start + chunk] = dist.topk(k, dim=1, largest=False).indices
        if progress is not None:
            progress(min(start + chunk, features.shape[0]), features.shape[0])
    return out


@PAIRINGS.register("knn")
class NeighbourPairs:
    """KNN (§3.8): each example mixes with a random one of its k nearest training neighbours in input
    space (from its own class with SC, as in SMOTE), the neighbour lists computed once per run.

    Partners are read from the un-augmented training split, so they are not cropped or flipped.
    """

    needs_index = True

    def __init__(self, same_class: bool = False, train_set=None, k: int = 200, device=None,
                 on_prepare: Optional[Callable[[str, int, int], None]] = None, **_):
        from ..data import TensorSplit

        if not isinstance(train_set, TensorSplit):
            raise ConfigError("mix_pairs knn needs a training set held in memory (a TensorSplit dataset such as "
                              "digits or cifar10); use mix_pairs rp with this dataset")
        split = train_set.to(device) if device is not None else train_set
        counts = torch.bincount(split.labels)
        smallest = int(counts[counts > 0].min()) if same_class else len(split)
        self.k = min(k, smallest - 1)  # a class of m examples has only m - 1 neighbours within it
        if self.k < 1:
            raise ConfigError("mix_pairs knn found no neighbours (a class with one example); use mix_pairs rp")
        self.split = split
        progress = (lambda done, total: on_prepare("knn neighbours", done, total)) if on_prepare else None
        self.neighbours = nearest_neighbours(split.to_raw(split.inputs), split.labels, self.k, same_class,
                                             progress=progress)

    def __call__(self, inputs, labels, index, generator) -> Partners:
        if index is None:
            raise ValueError("knn pairing needs the training-set index of every example in the batch")
        pick = torch.randint(self.k, (inputs.shape[0],), device=inputs.device, generator=generator)
        partner = self.neighbours[index.to(self.neighbours.device), pick.to(self.neighbours.device)]
        partner_inputs = self.split.to_raw(self.split.inputs[partner]).to(inputs.device)
        return Partners(partner_inputs, self.split.labels[partner].to(labels.device), partner_index=partner)
