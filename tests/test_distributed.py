"""`torchrun -m mixup_cli train` with DistributedDataParallel: two CPU processes, gloo, loopback."""
import json
import os
import subprocess
import sys

import pytest

from conftest import SRC, THREADS_ENV, run_inprocess


def torchrun(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(SRC), COLUMNS="200", **THREADS_ENV)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "mixup_cli", "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


ERM_IRIS = ["--dataset", "iris", "--model", "mlp", "--alpha", "0", "--epochs", "3", "--optimizer", "sgd",
            "--lr", "0.05", "--schedule", "constant"]


def test_two_ranks_equal_one_process_with_the_global_batch(tmp_path):
    """ERM, no BatchNorm: 2 ranks x batch 8 see the same 16 examples per step as 1 process x batch 16,
    and DDP averages their gradients, so the runs agree up to float rounding. The linear lr scaling
    rule sees the same global batch of 16 in both: lr 0.05 * 16 / 32."""
    scaled = ["--lr-scale-batch", "32"]
    proc = torchrun(*ERM_IRIS, *scaled, "--batch-size", "8", "--out", tmp_path / "ddp", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads(proc.stdout)  # rank 0 alone writes stdout: exactly one JSON object
    assert ddp["world_size"] == 2
    records = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["lr"] == pytest.approx(0.025)
    single = run_inprocess("train", *ERM_IRIS, *scaled, "--batch-size", "16", "--out", tmp_path / "one",
                           "--json").json()
    # Compare the first epoch only: the all-reduced gradient sums in another order than the single
    # batch's, and later epochs would amplify that rounding by amounts that depend on the CPU.
    first = json.loads((tmp_path / "one" / "metrics.jsonl").read_text().splitlines()[0])
    assert records[0]["train_loss"] == pytest.approx(first["train_loss"], rel=1e-4)
    assert records[0]["test_loss"] == pytest.approx(first["test_loss"], rel=1e-4)
    assert single["epochs"] == ddp["epochs"] == 3
    # one run directory, written once
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        ["config.yaml", "metrics.jsonl", "last.pt", "best.pt", "summary.json"])
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == 3


def test_mixup_on_two_ranks_reduces_its_evaluation_and_resumes(tmp_path):
    out = tmp_path / "run"
    proc = torchrun("--epochs", "2", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["method"] == "mixup" and summary["test_error"] < 60  # chance is 90 %
    # the sharded, all-reduced test error is the error of the saved weights on the whole test split
    evaluated = run_inprocess("eval", "--ckpt", out / "last.pt", "--json").json()
    assert evaluated["test_error"] == pytest.approx(summary["test_error"], abs=1e-9)
    proc = torchrun("--resume", "--out", out, "--epochs", "3", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["epochs"] == 3
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_each_rank_takes_its_gpu_before_the_first_collective(monkeypatch):
    """NCCL binds a rank to the current CUDA device: set_device must come before the process group
    starts and before any collective, or every rank lands on GPU 0 (checked without GPUs, by
    recording the order of the calls)."""
    import torch

    from mixup_cli import distributed

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", str(device))))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group",
                        lambda backend, **kw: calls.append(("init", backend, str(kw.get("device_id")))))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "broadcast_object_list", lambda box, src: calls.append(("broadcast",)))
    dist = distributed.from_environment("auto")
    dist.on_main(lambda: "run-dir")
    assert calls == [("set_device", "cuda:1"), ("init", "nccl", "cuda:1"), ("broadcast",)]


def test_a_rank_with_an_empty_shard_reduces_on_the_models_device():
    """The zeros an empty shard contributes live where the model lives (NCCL reduces device tensors only)."""
    import torch

    from mixup_cli.evaluation import evaluate

    model = torch.nn.Linear(4, 3, device="meta")  # stands in for a GPU: any device but the CPU
    seen = []

    def all_reduce(tensor):
        seen.append(tensor.device)
        return torch.tensor([3.0, 1.0, 1.0, 2.0])  # this rank's zeros plus the other rank's sums

    result = evaluate(model, [], num_classes=3, all_reduce=all_reduce)
    assert seen == [next(model.parameters()).device] and result["n"] == 2 and result["top1_error"] == 50.0
