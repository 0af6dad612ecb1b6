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
    assert summary["precision"] == ("bf16 autocast" if torch.cuda.get_device_capability() >= (8, 0) else "fp32")
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


def test_deterministic_gpu_runs_repeat_exactly(cli, tmp_path):
    runs = [cli("train", "--epochs", "1", "--device", "cuda", "--deterministic", "--out", tmp_path / f"r{i}",
                "--json").json() for i in range(2)]
    assert runs[0]["train_loss"] == runs[1]["train_loss"] and runs[0]["test_loss"] == runs[1]["test_loss"]


def test_benchmark_smoke_on_cuda():
    from test_benchmarks import run_bench

    result, _ = run_bench("--device", "cuda")
    assert result["device"].startswith("cuda") and result["peak_memory_mb"] > 0


@pytest.mark.slow
def test_compile_on_cuda(cli, tmp_path):
    summary = cli("train", "--epochs", "2", "--device", "cuda", "--compile", "default", "--out", tmp_path / "c",
                  "--json").json()
    assert summary["compile"] == "default" and summary["test_error"] < 50


@pytest.mark.parametrize("per_example", [False, True])
def test_cutmix_queues_without_waiting_for_the_gpu(per_example):
    """CutMix draws its boxes on the host; their copy to the GPU must not be a blocking one."""
    import numpy as np

    from mixup_cli.mixing.combine import cutmix

    x = torch.rand(16, 3, 32, 32, device="cuda")
    lam = np.full(16, 0.7) if per_example else 0.7
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        mixed, _ = cutmix(x, x.flip(0), lam, np.random.default_rng(0))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert mixed.shape == x.shape
