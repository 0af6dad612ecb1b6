"""The on-device pipeline against the DataLoader path (issue 8): same order, same crops and flips as
torchvision's per-sample transforms, and the same distribution of offsets and flips."""
import math

import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF

from mixup_cli.data.augment import random_crop_flip
from mixup_cli.data.batches import LoaderBatches, TensorBatches
from mixup_cli.data.tensor_split import TensorSplit

PAD = 4


def numbered_images(n: int, size: int = 8) -> torch.Tensor:
    """Every pixel of every image distinct and positive, so a crop's offset and flip can be read back."""
    return (torch.arange(n * size * size, dtype=torch.float32) + 1).reshape(n, 1, size, size)


def offsets_and_flip(original: torch.Tensor, out: torch.Tensor) -> tuple[int, int, bool]:
    """Read (dy, dx, flipped) back from a crop of the zero-padded `original` (1 x h x w)."""
    h, w = original.shape[-2:]
    padded = torch.nn.functional.pad(original, (PAD,) * 4)
    for flipped in (False, True):
        view = out.flip(-1) if flipped else out
        for dy in range(2 * PAD + 1):
            for dx in range(2 * PAD + 1):
                if torch.equal(padded[..., dy:dy + h, dx:dx + w], view):
                    return dy, dx, flipped
    raise AssertionError("output is not a padded crop of its input")


def test_batched_crop_flip_equals_torchvision_per_sample_with_the_same_draws():
    images = numbered_images(64)
    seed = 11
    out = random_crop_flip(images, torch.Generator().manual_seed(seed), padding=PAD)
    # the same draws, in the order the batched op makes them
    g = torch.Generator().manual_seed(seed)
    dy = torch.randint(0, 2 * PAD + 1, (64, 1), generator=g)[:, 0]
    dx = torch.randint(0, 2 * PAD + 1, (64, 1), generator=g)[:, 0]
    flip = (torch.rand(64, 1, generator=g) < 0.5)[:, 0]
    for i in range(64):
        expected = TF.crop(TF.pad(images[i], [PAD]), int(dy[i]), int(dx[i]), 8, 8)  # RandomCrop(padding=4)
        if flip[i]:
            expected = TF.horizontal_flip(expected)  # then RandomHorizontalFlip
        assert torch.equal(out[i], expected), i


def test_offsets_and_flips_are_distributed_as_torchvisions():
    """9 x 9 offsets uniform and flips at one half, for the batched op and for the DataLoader path's
    RandomCrop + RandomHorizontalFlip alike (counts within 5 standard deviations of the expectation)."""
    n = 2000
    images = numbered_images(n)
    ours = random_crop_flip(images, torch.Generator().manual_seed(0), padding=PAD)
    torch.manual_seed(0)
    per_sample = T.Compose([T.RandomCrop(8, padding=PAD), T.RandomHorizontalFlip()])
    theirs = torch.stack([per_sample(image) for image in images])
    for outputs in (ours, theirs):
        draws = [offsets_and_flip(images[i], outputs[i]) for i in range(n)]
        for axis in (0, 1):
            counts = torch.bincount(torch.tensor([d[axis] for d in draws]), minlength=2 * PAD + 1)
            p = 1 / (2 * PAD + 1)
            assert (counts - n * p).abs().max() < 5 * math.sqrt(n * p * (1 - p)), counts
        flips = sum(d[2] for d in draws)
        assert abs(flips - n / 2) < 5 * math.sqrt(n / 4)


def test_tensor_batches_yield_the_dataloader_paths_order_and_shards():
    split = TensorSplit(torch.randint(0, 255, (103, 1, 4, 4), dtype=torch.uint8), torch.arange(103) % 7,
                        scale=1 / 255)
    cpu = torch.device("cpu")
    for epoch in (0, 3):
        tensors = list(TensorBatches(split, 16, cpu, shuffle=True, seed=5).epoch(epoch))
        loader = list(LoaderBatches(split, 16, cpu, shuffle=True, seed=5).epoch(epoch))
        assert len(tensors) == len(loader) == 7
        for (xa, ya), (xb, yb) in zip(tensors, loader):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # a resumed epoch skips exactly the batches already trained on
    resumed = list(TensorBatches(split, 16, cpu, shuffle=True, seed=5).epoch(3, start_step=4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(resumed, tensors[4:]))
    # two ranks' training shards are disjoint halves of the epoch's order
    shards = [torch.cat([y for _, y, *_ in TensorBatches(split, 8, cpu, shuffle=True, seed=5, rank=r,
                                                            world_size=2).epoch(0, with_index=True)])
              for r in (0, 1)]
    assert len(shards[0]) == len(shards[1])
    indices = [torch.cat([i for *_, i in TensorBatches(split, 8, cpu, shuffle=True, seed=5, rank=r,
                                                         world_size=2).epoch(0, with_index=True)]) for r in (0, 1)]
    assert not set(indices[0].tolist()) & set(indices[1].tolist())


def test_a_channels_last_run_takes_the_augmented_batch_without_a_copy():
    """The gather already lays the batch out channels_last; converting it again cost two full copies."""
    from mixup_cli.config import TrainConfig, resolve_config
    from mixup_cli.speed import resolve_speed, to_layout

    out = random_crop_flip(torch.rand(8, 3, 32, 32), torch.Generator().manual_seed(0))
    settings = resolve_speed(resolve_config(TrainConfig, None, {"channels_last": True}), torch.device("cpu"), (3, 32, 32))
    assert to_layout(out, settings).data_ptr() == out.data_ptr()
    plain = resolve_speed(resolve_config(TrainConfig, None, {}), torch.device("cpu"), (3, 32, 32))
    assert to_layout(out, plain).is_contiguous()
