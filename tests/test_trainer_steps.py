"""The trainer's steps: last.pt on a cadence with exact resumes, what a run's time went to, rank 0's
BatchNorm statistics under DDP, and manifold mixing under torch.compile without recompiles."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import SRC, THREADS_ENV, run_inprocess
from mixup_cli.checkpoint import SaveCadence
from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.trainer import train

# Iris trains in milliseconds, and its 30 test examples make the test error stop improving after a few
# epochs, so some epochs write no checkpoint (digits improves every epoch of a short run).
IRIS = {"dataset": "iris", "model": "mlp", "epochs": 10, "alpha": 1.0, "dropout": 0.1}
SAVE_EVERY = 3


def iris_config(out, **overrides):
    return resolve_config(TrainConfig, None, {**IRIS, "out": str(out), "save_every": SAVE_EVERY, **overrides})


def records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def written_epochs(rows, every, epochs):
    """The epochs after which last.pt is written: every `every`th, each new best test error, the last."""
    best, written = float("inf"), set()
    for row in rows:
        if row["epoch"] % every == 0 or row["test_error"] < best or row["epoch"] == epochs:
            written.add(row["epoch"])
        best = min(best, row["test_error"])
    return written


def test_the_cadence_counts_epochs_or_bounds_the_share_of_time_spent_writing():
    every = SaveCadence(3)
    assert [e for e in range(1, 10) if every.due(e)] == [3, 6, 9]
    now = [100.0]
    auto = SaveCadence(None, share=0.05, clock=lambda: now[0])
    assert auto.due(1)  # the first write measures what a write costs
    auto.wrote(2.0)
    now[0] += 39.0
    assert not auto.due(2)  # 2 s of writing in 39 s would be over 5 %
    now[0] += 1.0
    assert auto.due(3)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    summary = train(iris_config(out), out)
    return out, summary


def test_last_pt_follows_the_cadence_and_best_pt_is_the_same_file_when_both_are_written(uninterrupted):
    out, summary = uninterrupted
    rows = records(out)
    assert {r["epoch"] for r in rows if r["checkpoint_seconds"] > 0} == written_epochs(rows, SAVE_EVERY, 10)
    assert summary["checkpoint_seconds"] == pytest.approx(sum(r["checkpoint_seconds"] for r in rows))
    assert summary["wall_seconds"] > summary["seconds"] + summary["checkpoint_seconds"]
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["epoch"] == summary["best_epoch"] < 10  # a later last.pt write left best.pt as it was
    assert not os.path.samefile(out / "best.pt", out / "last.pt")


KILL_AFTER = """
import json, os, signal, sys
from pathlib import Path
from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.trainer import TrainCallbacks, train

class KillAfterEpoch(TrainCallbacks):
    def on_epoch(self, record):
        if record["epoch"] == {epoch}:
            os.kill(os.getpid(), signal.SIGKILL)  # after the epoch's checkpoints and metrics line

config = resolve_config(TrainConfig, None, {{**json.loads({values!r}), "save_every": {every}}})
train(config, Path(config.out), callbacks=KillAfterEpoch())
"""


def test_sigkill_after_an_epoch_without_a_checkpoint_resumes_from_the_older_one_exactly(tmp_path, uninterrupted):
    whole, summary = uninterrupted
    expected = records(whole)
    written = written_epochs(expected, SAVE_EVERY, 10)
    unwritten = [e for e in range(2, 10) if e not in written]
    assert unwritten, f"every epoch wrote last.pt ({expected}); pick settings whose test error stops improving"
    kill_at = unwritten[-1]
    resume_from = max(e for e in written if e < kill_at)
    out = tmp_path / "run"
    script = KILL_AFTER.format(epoch=kill_at, values=json.dumps({**IRIS, "out": str(out)}), every=SAVE_EVERY)
    env = dict(os.environ, PYTHONPATH=str(SRC), **THREADS_ENV)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert len(records(out)) == kill_at  # metrics.jsonl ran ahead of last.pt
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == resume_from

    resumed = train(iris_config(out), out, resume=True)  # replays the epochs after resume_from
    a = torch.load(whole / "last.pt", weights_only=True)
    b = torch.load(out / "last.pt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    for key in ("test_error", "best_test_error", "best_epoch", "train_loss", "test_loss"):
        assert resumed[key] == summary[key], key
    timing = ("epoch_seconds", "samples_per_second", "peak_memory_mb", "checkpoint_seconds")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
    assert strip(records(out)) == strip(expected)  # cut back to last.pt's epochs, then replayed
    # The record of the epoch last.pt was written at keeps its write time across the resume.
    assert {r["epoch"] for r in records(out) if r["checkpoint_seconds"] > 0} == written


def torchrun(*args):
    env = dict(os.environ, PYTHONPATH=str(SRC), COLUMNS="200", **THREADS_ENV)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "mixup_cli",
           "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_two_ranks_evaluate_with_rank_zeros_batchnorm_statistics(tmp_path):
    """small-cnn has BatchNorm; each rank updates its running statistics on its own shard. The
    all-reduced test loss must be that of the saved model (rank 0's statistics), not a blend: the loss
    shows a difference in the statistics that the error, a count over 360 digits, may not."""
    out = tmp_path / "run"
    proc = torchrun("--epochs", "1", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    evaluated = run_inprocess("eval", "--ckpt", out / "last.pt", "--json").json()
    assert evaluated["test_loss"] == pytest.approx(summary["test_loss"], rel=1e-6)
    assert evaluated["test_error"] == pytest.approx(summary["test_error"], abs=1e-9)


def dynamo_counts():
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"], counters["frames"]["total"] - counters["frames"]["ok"]


def test_manifold_mixing_compiles_each_stage_once_past_the_recompile_limit(tmp_path, monkeypatch):
    """An MLP of 12 hidden layers has 13 mixing points, more than dynamo's recompile limit (8) allows
    graphs of one function. Compiled whole, with the point passed into forward, it runs past the limit
    and falls back to eager; compiled stage by stage it makes one graph per stage and head."""
    import torch._dynamo

    from mixup_cli.mixing.core import MixedBatch
    from mixup_cli.models import Normalized, build_model

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, mode=None: real_compile(module, backend="eager"))
    options = {"model_options": {"layers": 12}, "mix_where": "manifold", "alpha": 2.0, "epochs": 2}
    summary = train(iris_config(tmp_path / "run", compile="default", **options), tmp_path / "run")
    assert summary["compile_regions"] == 13 and summary["compile_graphs"] == 13, summary
    assert summary["compile_fallbacks"] == 0

    # The counters the summary reads do see the fallback of the whole-model compile.
    torch._dynamo.reset()  # this test's graphs go with it: later tests compile models of their own
    before = dynamo_counts()
    model = Normalized(build_model("mlp", 3, (4,), layers=12), [0.0] * 4, [1.0] * 4, 1)
    compiled = real_compile(model, backend="eager")
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    for point in range(1, 13):
        batch = MixedBatch(x, y, y, torch.full((8,), 0.5), torch.randperm(8), mix_at=point)
        batch.loss(batch.forward(compiled)).backward()
    graphs, fallbacks = (now - then for now, then in zip(dynamo_counts(), before))
    torch._dynamo.reset()
    assert graphs == torch._dynamo.config.recompile_limit and fallbacks > 0
