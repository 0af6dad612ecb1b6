"""The ImageNet loader (issue 17, bug 9): workers hand over uint8 images, the model gets [0, 1] floats made on
the device, the pixels are torchvision's ToTensor pipeline's, and persistent workers keep exact resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import transforms as T
from torchvision.datasets.folder import default_loader

from mixup_cli.data import load_dataset
from mixup_cli.data.batches import LoaderBatches, make_batches
from mixup_cli.data.imagenet import crop_params

CLASSES = ("n01440764", "n01443537")
SIZES = ((30, 40), (64, 48), (23, 90), (120, 17))  # (height, width): square-ish, upscaled, and too thin


def write_imagenet(root, per_class=4):
    from PIL import Image

    rng = np.random.default_rng(1)
    for split, count in (("train", per_class), ("val", 1)):
        for label, wnid in enumerate(CLASSES):
            (root / split / wnid).mkdir(parents=True)
            for i in range(count):
                height, width = SIZES[(i + label) % len(SIZES)]
                pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / wnid / f"{wnid}_{i}.png")
    return str(root)


@pytest.fixture
def data_dir(tmp_path):
    return write_imagenet(tmp_path)


def test_crop_draws_are_torchvisions():
    """Seeded alike, a per-example generator draws the crops torchvision draws from the global one,
    fallback (a too thin image) included."""
    for height, width in SIZES + ((500, 8), (8, 500)):
        image = torch.empty(3, height, width)
        for seed in range(40):
            torch.manual_seed(seed)
            theirs = T.RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3])
            assert crop_params(width, height, torch.Generator().manual_seed(seed)) == theirs


def test_uint8_samples_hold_the_float_pipelines_pixels(data_dir):
    """compact_sample's uint8 over 255 is exactly what the old ToTensor pipeline gave, for training
    crops and for the evaluation center crop; dataset[i] still gives those floats."""
    old_train = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
    old_eval = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
    train = load_dataset("imagenet", "train", data_dir, augment=True)
    val = load_dataset("imagenet", "test", data_dir)
    flips = set()
    for index in range(len(train)):
        torch.manual_seed(index)
        expected = old_train(default_loader(train.samples[index][0]))
        image, label = train.compact_sample(index, torch.Generator().manual_seed(index))
        assert image.dtype == torch.uint8 and image.shape == (3, 224, 224) and label == train.targets[index]
        assert torch.equal(image.float().div(255), expected)
        torch.manual_seed(index)
        assert torch.equal(train[index][0], expected)
        flips.add(torch.equal(image, image.flip(-1)))
    for index in range(len(val)):
        image, _ = val.compact_sample(index)
        assert torch.equal(image.float().div(255), old_eval(default_loader(val.samples[index][0])))
        assert torch.equal(val[index][0], image.float().div(255))


def expected_epoch(dataset, batches, epoch):
    """The epoch's batches built by hand: the sampler's order, each example cropped from its own seed."""
    from mixup_cli.seeding import AUGMENT, derive_seed

    batches.sampler.epoch, batches.sampler.start = epoch, 0
    order = [index for index, _ in batches.sampler]
    images = [dataset.compact_sample(i, torch.Generator().manual_seed(derive_seed(batches.seed, epoch, i, AUGMENT)))[0]
              for i in order]
    return [torch.stack(images[lo:lo + batches.batch_size]).float().div(255)
            for lo in range(0, len(order) - batches.batch_size + 1, batches.batch_size)]


def test_workers_send_uint8_and_the_model_gets_raw_floats(data_dir):
    train = load_dataset("imagenet", "train", data_dir, augment=True)
    batches = make_batches(train, 3, torch.device("cpu"), shuffle=True, seed=4, workers=2, drop_last=True)
    assert batches.loader.persistent_workers and batches.loader.pin_memory is False
    sent, _ = next(iter(batches.loader))  # what leaves the workers
    assert sent.dtype == torch.uint8 and sent.shape == (3, 3, 224, 224)
    got = [x for x, y in batches.epoch(1)]
    assert all(x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0 for x in got)
    assert len(got) == 2 and all(torch.equal(a, b) for a, b in zip(got, expected_epoch(train, batches, 1)))


def test_persistent_workers_keep_exact_resume(data_dir):
    """Workers live on from epoch to epoch, yet every epoch has its own crops, and a run resumed mid-epoch
    (new workers, another worker count) gets the very batches the uninterrupted run got."""
    train = load_dataset("imagenet", "train", data_dir, augment=True)
    cpu = torch.device("cpu")
    running = LoaderBatches(train, 2, cpu, shuffle=True, seed=9, workers=2, drop_last=True)
    first = list(running.epoch(0))
    workers = running.loader._iterator._workers
    second = list(running.epoch(1))
    assert running.loader._iterator._workers is workers and all(w.is_alive() for w in workers)
    assert not torch.equal(torch.cat([x for x, _ in first]), torch.cat([x for x, _ in second]))
    for count in (0, 1):
        resumed = list(LoaderBatches(train, 2, cpu, shuffle=True, seed=9, workers=count, drop_last=True)
                       .epoch(1, start_step=2))
        assert len(resumed) == len(second) - 2
        for (xa, ya), (xb, yb) in zip(resumed, second[2:]):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_ranks_take_disjoint_shards_with_their_own_crops(data_dir):
    train = load_dataset("imagenet", "train", data_dir, augment=True)
    shards = [make_batches(train, 2, torch.device("cpu"), shuffle=True, seed=1, workers=0, drop_last=True,
                           rank=r, world_size=2) for r in (0, 1)]
    seen = [[index for index, _ in shard.sampler] for shard in shards]
    assert len(seen[0]) == len(seen[1]) == len(train) // 2 and not set(seen[0]) & set(seen[1])
    assert all(len(list(shard.epoch(0))) == len(shard) == 2 for shard in shards)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_equal_the_cpus_without_host_syncs(data_dir):
    """Pinned uint8 batches copied on a side stream, scaled on the GPU: bit for bit the CPU's floats
    (a division, not a multiplication by 1/255), and no blocking call on the way."""
    import warnings

    train = load_dataset("imagenet", "train", data_dir, augment=True)
    cpu = list(make_batches(train, 2, torch.device("cpu"), shuffle=True, seed=2, workers=0).epoch(0))
    gpu_batches = make_batches(train, 2, torch.device("cuda"), shuffle=True, seed=2, workers=2)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            gpu = list(gpu_batches.epoch(0))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert not [w for w in caught if "synchroniz" in str(w.message)]
    assert len(gpu) == len(cpu)
    for (xa, ya), (xb, yb) in zip(gpu, cpu):
        assert xa.is_cuda and torch.equal(xa.cpu(), xb) and torch.equal(ya.cpu(), yb)
