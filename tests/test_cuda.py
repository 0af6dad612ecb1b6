"""CUDA paths, run where a GPU is present (a lent GPU machine); skipped on CPU-only machines and in CI."""
import pytest
import torch

from mixup_cli.data import get_dataset
from mixup_cli.data.batches import make_batches
from mixup_cli.seeding import seed_device_generators

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cuda_defaults_train_and_evaluate(cli, tmp_path):
    summary = cli("train", "--epochs", "2", "--device", "cuda", "--out", tmp_path / "run", "--json").json()
    assert summary["device"].startswith("cuda") and summary["channels_last"] is True
    assert summary["precision"] == ("bf16 autocast" if torch.cuda.is_bf16_supported() else "fp32")
    assert summary["test_error"] < 50
    evaluated = cli("eval", "--ckpt", tmp_path / "run" / "last.pt", "--device", "cuda", "--json").json()
    assert evaluated["test_error"] == pytest.approx(summary["test_error"], abs=1.0)


def test_batches_from_host_memory_equal_batches_held_on_the_gpu():
    spec = get_dataset("digits")
    split = spec.load("train", None, augment=True)
    device = torch.device("cuda", 0)
    kept = make_batches(split, 64, device, shuffle=True, augment="crop-flip", seed=3, on_device=True)
    copied = make_batches(split, 64, device, shuffle=True, augment="crop-flip", seed=3, on_device=False)
    for (xa, ya), (xb, yb) in zip(kept.epoch(1), copied.epoch(1)):
        assert xa.device == xb.device == device
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_device_seeding_fixes_cuda_dropout():
    device = torch.device("cuda", 0)
    x = torch.ones(1000, device=device)
    seed_device_generators(7, device)
    first = torch.nn.functional.dropout(x, 0.5)
    seed_device_generators(7, device)
    assert torch.equal(torch.nn.functional.dropout(x, 0.5), first)
