"""Batches for training and evaluation, from a TensorSplit on the device or a DataLoader.

Both yield (raw-scale float inputs, integer labels) on the training device, in an order fixed by
(seed, epoch); `start_step` skips the batches a resumed run has already trained on. With
`with_index=True`, TensorBatches also yields each example's index in the split (knn mixing needs it).
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..seeding import AUGMENT, ORDER, derive_seed
from ..speed import default_workers
from .augment import AUGMENTATIONS
from .tensor_split import TensorSplit


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(derive_seed(seed, epoch, 0, ORDER))
    return torch.randperm(n, generator=generator)


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


class TensorBatches:
    """Batches sliced from a whole-split tensor; augmentation done per batch on the training device.

    With `on_device` (the default) the split is copied to the device once and batches never cross
    the bus; without it the split stays in host memory and each compact batch is pinned and
    copied over before it is scaled and augmented. Both yield the same batches.
    """

    def __init__(self, split: TensorSplit, batch_size: int, device: torch.device, shuffle: bool,
                 augment: Optional[str] = None, seed: int = 0, drop_last: bool = False, rank: int = 0,
                 world_size: int = 1, on_device: bool = True):
        if on_device:
            split = split.to(device)
        self.split = split
        self.home = split.inputs.device  # where the split and the epoch's order live
        self.rank, self.world_size = rank, world_size
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.augment = AUGMENTATIONS.get(augment) if augment else None
        self.seed = seed
        # A last batch of one example breaks BatchNorm in training; drop it there, never in eval.
        self.drop_last = drop_last and self._local_size() > batch_size

    def _local_size(self) -> int:
        n = len(self.split)
        if self.world_size == 1:
            return n
        # Training shards are cut to equal sizes (DDP needs the same step count on every rank).
        return n // self.world_size if self.shuffle else len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        return num_batches(self._local_size(), self.batch_size, self.drop_last)

    def __iter__(self):
        return self.epoch(0)

    def epoch(self, epoch: int, start_step: int = 0, with_index: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
        n = self._local_size()
        order = epoch_order(len(self.split), self.seed, epoch).to(self.home) if self.shuffle else None
        if self.world_size > 1:  # this rank's shard: every world_size-th example of the epoch's order
            order = (order if order is not None else torch.arange(len(self.split), device=self.home))
            order = order[self.rank::self.world_size][:n]
        rank_part = (self.rank,) if self.rank else ()
        generator = torch.Generator(device=self.device) if self.augment else None
        for step in range(start_step, len(self)):
            lo, hi = step * self.batch_size, min((step + 1) * self.batch_size, n)
            index = order[lo:hi] if order is not None else slice(lo, hi)
            compact, labels = self.split.inputs[index], self.split.labels[index]
            if self.home != self.device:
                # Indexing the pinned split makes an unpinned batch, whose copy could not overlap
                # the running step; re-pin it (torch's host allocator reuses these buffers safely).
                compact = compact.pin_memory().to(self.device, non_blocking=True)
                labels = labels.pin_memory().to(self.device, non_blocking=True)
            inputs = self.split.to_raw(compact)
            if self.augment is not None:
                generator.manual_seed(derive_seed(self.seed, epoch, step, AUGMENT, *rank_part))
                inputs = self.augment(inputs, generator)
            if with_index:
                where = index if order is not None else torch.arange(lo, hi)
                yield inputs, labels, where.to(self.device)
            else:
                yield inputs, labels


class _OrderSampler(Sampler):
    def __init__(self, n: int, seed: int, shuffle: bool):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return self.n - self.start

    def __iter__(self):
        order = epoch_order(self.n, self.seed, self.epoch) if self.shuffle else torch.arange(self.n)
        return iter(order[self.start:].tolist())


class LoaderBatches:
    """Batches from a per-sample Dataset (images decoded from disk) through a DataLoader."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, shuffle: bool,
                 seed: int = 0, workers: int = 0, drop_last: bool = False):
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = device
        self.seed = seed
        self.drop_last = drop_last and len(dataset) > batch_size
        self.sampler = _OrderSampler(len(dataset), seed, shuffle)
        self.loader = DataLoader(
            dataset, batch_size=batch_size, sampler=self.sampler, num_workers=workers,
            drop_last=self.drop_last, pin_memory=device.type == "cuda",
            persistent_workers=False, prefetch_factor=4 if workers > 0 else None,
        )

    def __len__(self) -> int:
        return num_batches(len(self.dataset), self.batch_size, self.drop_last)

    def __iter__(self):
        return self.epoch(0)

    def epoch(self, epoch: int, start_step: int = 0, with_index: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if with_index:
            raise ValueError("LoaderBatches does not yield example indices; hold the dataset as a TensorSplit")
        self.sampler.epoch, self.sampler.start = epoch, start_step * self.batch_size
        # Per-sample transforms draw from torch's global RNG (workers: seeded from it).
        torch.manual_seed(derive_seed(self.seed, epoch, start_step, 1))
        for inputs, labels in self.loader:
            yield (inputs.to(self.device, non_blocking=True).float(),
                   labels.to(self.device, non_blocking=True).long())


def _loader_shard(n: int, rank: int, world_size: int, shuffle: bool) -> list[int]:
    """Per-sample datasets are sharded by a fixed strided split (the sampler then shuffles within it)."""
    indices = list(range(rank, n, world_size))
    return indices[: n // world_size] if shuffle else indices


def make_batches(dataset: Dataset, batch_size: int, device: torch.device, shuffle: bool,
                 augment: Optional[str] = None, seed: int = 0, workers: Optional[int] = None,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1, on_device: bool = True):
    """TensorBatches for a TensorSplit (held on the device when `on_device`), else a DataLoader with
    `workers` processes (default: speed.default_workers for the device)."""
    if isinstance(dataset, TensorSplit):
        return TensorBatches(dataset, batch_size, device, shuffle, augment, seed, drop_last, rank, world_size,
                             on_device)
    if world_size > 1:
        dataset = torch.utils.data.Subset(dataset, _loader_shard(len(dataset), rank, world_size, shuffle))
    workers = workers if workers is not None else default_workers(device)
    return LoaderBatches(dataset, batch_size, device, shuffle, seed, workers, drop_last)
