"""Nothing lost: signals, SIGKILL and diverging losses, against a real `mixup train` process."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import SRC, THREADS_ENV, run_inprocess, wait_until
from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.errors import RunError
from mixup_cli.trainer import TrainCallbacks, train

ARGS = ["--epochs", "6", "--alpha", "1", "--dropout", "0.1"]


def start(out, *extra):
    env = dict(os.environ, PYTHONPATH=str(SRC), **THREADS_ENV)
    return subprocess.Popen([sys.executable, "-m", "mixup_cli", "train", *ARGS, "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_epochs(out, count, proc, timeout=120):
    metrics = out / "metrics.jsonl"
    wait_until(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= count, proc, timeout)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    result = run_inprocess("train", *ARGS, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    return out


def final_state(out):
    return torch.load(out / "last.pt", weights_only=True)["state_dict"]


def assert_same_run(a, b):
    sa, sb = final_state(a), final_state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ja, jb = json.loads((a / "summary.json").read_text()), json.loads((b / "summary.json").read_text())
    for key in ("test_error", "best_test_error", "train_loss", "test_loss"):
        assert ja[key] == jb[key], key


def test_sigkill_then_resume_ends_where_the_uninterrupted_run_ends(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = start(out)
    wait_for_epochs(out, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    torch.load(out / "last.pt", weights_only=True)  # the last complete checkpoint is intact
    result = run_inprocess("train", "--resume", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert_same_run(uninterrupted, out)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_last_checkpoint_and_says_how_to_resume(tmp_path, uninterrupted, sig, code):
    out = tmp_path / "run"
    proc = start(out)
    wait_for_epochs(out, 1, proc)
    time.sleep(0.05)  # land inside an epoch
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and f"mixup train --resume --out {out}" in stderr
    result = run_inprocess("train", "--resume", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert_same_run(uninterrupted, out)


def test_a_diverging_loss_stops_with_its_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = resolve_config(TrainConfig, None, {"epochs": 3, "out": str(tmp_path)})

    import mixup_cli.trainer as trainer_module

    built = []
    original = trainer_module._build

    def capture(config, spec):
        model, record = original(config, spec)
        built.append(model)
        return model, record

    class Poison(TrainCallbacks):
        def on_epoch(self, record):
            # after epoch 1 is saved, make every weight NaN: the next step's loss is NaN
            for p in built[0].parameters():
                p.data.fill_(float("nan"))

    trainer_module._build = capture
    try:
        with pytest.raises(RunError, match=r"epoch 2, step 1\b"):
            train(config, tmp_path, callbacks=Poison())
    finally:
        trainer_module._build = original
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())


def test_a_diverging_loss_through_the_cli_is_one_line_and_exit_1(cli, tmp_path):
    result = cli("train", "--epochs", "2", "--lr", "1e30", "--weight-decay", "0", "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "loss became" in result.stderr and "epoch 1, step" in result.stderr and "Traceback" not in result.stderr


def poisoned_mixer(monkeypatch, poisoned_steps):
    """Make the inputs of the given (epoch, step) batches NaN, as a bad record or an overflow would."""
    import mixup_cli.trainer as trainer_module

    original = trainer_module.build_mixer
    calls = []

    def build(*args, **kwargs):
        mixer = original(*args, **kwargs)

        class Poisoning:
            needs_index = mixer.needs_index

            def __call__(self, inputs, *rest):
                calls.append(len(calls))
                if len(calls) - 1 in poisoned_steps:
                    inputs = torch.full_like(inputs, float("nan"))
                return mixer(inputs, *rest)

        return Poisoning()

    monkeypatch.setattr(trainer_module, "build_mixer", build)
    return calls


def test_on_nonfinite_skip_drops_the_bad_steps_and_keeps_training(tmp_path, monkeypatch):
    poisoned_mixer(monkeypatch, {3, 30})  # digits: 22 steps an epoch, so epoch 1 step 4 and epoch 2 step 9
    config = resolve_config(TrainConfig, None, {"epochs": 2, "on_nonfinite": "skip", "out": str(tmp_path)})
    summary = train(config, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in records] == [1, 1]
    assert math.isfinite(summary["train_loss"]) and summary["test_error"] < 50
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())


def test_without_skip_the_same_bad_step_stops_the_run(tmp_path, monkeypatch):
    poisoned_mixer(monkeypatch, {3})
    config = resolve_config(TrainConfig, None, {"epochs": 2, "out": str(tmp_path)})
    with pytest.raises(RunError, match=r"epoch 1, step 4\b.*--on-nonfinite skip"):
        train(config, tmp_path)


def test_an_epoch_of_only_bad_steps_stops_even_when_skipping(tmp_path, monkeypatch):
    poisoned_mixer(monkeypatch, set(range(22)))
    config = resolve_config(TrainConfig, None, {"epochs": 2, "on_nonfinite": "skip", "out": str(tmp_path)})
    with pytest.raises(RunError, match="every step of epoch 1"):
        train(config, tmp_path)


def test_resume_with_on_nonfinite_skip_gets_past_the_step_that_stopped_the_run(cli, tmp_path, monkeypatch):
    """The user's way out of a NaN stop, through the CLI: a plain resume would meet the same bad step."""
    out = tmp_path / "run"
    poisoned_mixer(monkeypatch, {25})  # epoch 2, step 4 of the first process's batches
    stopped = cli("train", "--epochs", "2", "--out", out)
    assert stopped.exit_code == 1 and "--on-nonfinite skip" in stopped.stderr
    poisoned_mixer(monkeypatch, {3})  # the resumed process starts at epoch 2 step 1: the same bad batch
    resumed = cli("train", "--resume", "--out", out, "--on-nonfinite", "skip", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[1]["skipped_steps"] == 1


def test_on_nonfinite_refuses_unknown_values(cli, tmp_path):
    result = cli("train", "--on-nonfinite", "ignore", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "choose one of: stop, skip" in result.stderr
    assert not (tmp_path / "run").exists()
