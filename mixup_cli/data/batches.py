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
                # A batch in pinned memory copies without blocking, overlapping the running step
                # (torch's caching host allocator reuses these buffers safely).
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
    """The epoch's order from position `start` on, as dataset indices (through `indices`, a rank's shard,
    when given); with `with_epoch`, each index comes with the epoch, for _CompactSamples to seed from.

    It lives in the main process: persistent workers receive the indices it yields each epoch."""

    def __init__(self, n: int, seed: int, shuffle: bool, indices: Optional[list[int]] = None,
                 with_epoch: bool = False):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.indices, self.with_epoch = indices, with_epoch
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        return self.n - self.start

    def __iter__(self):
        order = epoch_order(self.n, self.seed, self.epoch) if self.shuffle else torch.arange(self.n)
        chosen = order[self.start:].tolist()
        if self.indices is not None:
            chosen = (self.indices[i] for i in chosen)
        epoch = self.epoch
        return ((i, epoch) for i in chosen) if self.with_epoch else iter(chosen)


class _CompactSamples(Dataset):
    """A dataset's compact samples (uint8 images), each augmented from a generator seeded by (seed, epoch,
    example): the same draws whichever worker decodes it, whether workers persist across epochs or
    restart, and where a run resumes."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, epoch = item
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch, index, AUGMENT))
        return self.dataset.compact_sample(index, generator)


class LoaderBatches:
    """Batches from a per-sample Dataset (images decoded from disk) through a DataLoader.

    A dataset with `compact_sample(index, generator)` and `pixel_levels` (ImageNet) hands its workers'
    output over as uint8: a quarter of float32's bytes through the worker queues, pinned memory and the
    bus; the batch becomes raw-scale floats (levels / pixel_levels) on the device, and its workers
    persist across epochs (each sample seeds its own augmentation). On CUDA the next batch's copy is
    issued on a side stream while this one trains.
    """

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device, shuffle: bool,
                 seed: int = 0, workers: int = 0, drop_last: bool = False, indices: Optional[list[int]] = None):
        self.dataset = dataset
        self.n = len(indices) if indices is not None else len(dataset)
        self.batch_size = batch_size
        self.device = device
        self.seed = seed
        self.drop_last = drop_last and self.n > batch_size
        compact = hasattr(dataset, "compact_sample")
        # A device tensor, not a Python number: CUDA divides by a host scalar as a multiplication by
        # its reciprocal, one rounding away from the CPU's (and torchvision's ToTensor's) division.
        self.levels = torch.full((), float(dataset.pixel_levels), device=device) if compact else None
        self.sampler = _OrderSampler(self.n, seed, shuffle, indices, with_epoch=compact)
        self.loader = DataLoader(
            _CompactSamples(dataset, seed) if compact else dataset, batch_size=batch_size, sampler=self.sampler,
            num_workers=workers, drop_last=self.drop_last, pin_memory=device.type == "cuda",
            # Other datasets' workers restart each epoch, to be seeded anew (see epoch()).
            persistent_workers=workers > 0 and compact, prefetch_factor=4 if workers > 0 else None,
        )

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size, self.drop_last)

    def __iter__(self):
        return self.epoch(0)

    def epoch(self, epoch: int, start_step: int = 0, with_index: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if with_index:
            raise ValueError("LoaderBatches does not yield example indices; hold the dataset as a TensorSplit")
        self.sampler.epoch, self.sampler.start = epoch, start_step * self.batch_size
        if self.levels is None:
            # Other datasets' per-sample transforms draw from torch's global RNG (workers: seeded from
            # it when they start, so they must start again each epoch).
            torch.manual_seed(derive_seed(self.seed, epoch, start_step, 1))
        copies = _side_stream_copies if self.device.type == "cuda" else _plain_copies
        for inputs, labels in copies(self.loader, self.device):
            inputs = torch.div(inputs, self.levels) if self.levels is not None else inputs.float()
            yield inputs, labels.long()


def _plain_copies(batches, device: torch.device):
    for inputs, labels in batches:
        yield inputs.to(device), labels.to(device)


def _side_stream_copies(batches, device: torch.device):
    """(inputs, labels) on `device`, each batch's copy from pinned memory issued on a side stream one
    batch ahead, so it runs while the model computes on the previous batch; the compute stream waits
    for that batch's copy only."""
    stream, pending = torch.cuda.Stream(device), None
    for host in batches:
        with torch.cuda.stream(stream):
            copied = tuple(t.to(device, non_blocking=True) for t in host)
            done = torch.cuda.Event()
            done.record(stream)
        if pending is not None:
            yield _after(*pending, device)
        pending = copied, done
    if pending is not None:
        yield _after(*pending, device)


def _after(copied: tuple, done, device: torch.device) -> tuple:
    current = torch.cuda.current_stream(device)
    current.wait_event(done)
    for tensor in copied:
        tensor.record_stream(current)  # made on the side stream, freed after the compute stream's use
    return copied


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
    shard = _loader_shard(len(dataset), rank, world_size, shuffle) if world_size > 1 else None
    workers = workers if workers is not None else default_workers(device)
    return LoaderBatches(dataset, batch_size, device, shuffle, seed, workers, drop_last, shard)
