"""`mixup train` and `mixup eval` end to end, through the real CLI."""
import json

import pytest
import torch
import yaml

from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.trainer import Interrupted, train

SUMMARY_KEYS = {"dataset", "model", "method", "alpha", "epochs", "test_error", "best_test_error", "test_top5_error",
                "train_loss", "seconds", "samples_per_second", "run_dir", "checkpoint"}


def test_train_json_is_the_only_stdout_and_the_run_dir_is_complete(cli_subprocess, tmp_path):
    out = tmp_path / "run"
    result = cli_subprocess("train", "--epochs", "2", "--alpha", "1", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # nothing but one JSON object on stdout
    assert SUMMARY_KEYS <= set(summary)
    assert summary["method"] == "mixup" and summary["epochs"] == 2 and summary["dataset"] == "digits"
    assert 0 <= summary["test_error"] <= 100 and summary["test_top5_error"] is not None
    assert "summary" in result.stderr and "epoch" in result.stderr  # the table and progress went to stderr
    for name in ("config.yaml", "metrics.jsonl", "last.pt", "best.pt", "summary.json"):
        assert (out / name).is_file(), name
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert yaml.safe_load((out / "config.yaml").read_text())["alpha"] == 1.0
    assert json.loads((out / "summary.json").read_text()) == summary


def test_default_run_learns(cli, tmp_path):
    """The embedded default (mixup alpha=1 on digits), shortened to 8 epochs, clearly learns."""
    result = cli("train", "--epochs", "8", "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["method"] == "mixup" and summary["alpha"] == 1.0
    assert summary["test_error"] < 10.0  # chance is 90 %


def test_eval_reports_the_figure_train_reported(cli, digits_runs):
    for run_dir in digits_runs.values():
        summary = json.loads((run_dir / "summary.json").read_text())
        result = cli("eval", "--ckpt", run_dir / "last.pt", "--json")
        assert result.exit_code == 0, result.stderr
        evaluated = result.json()
        assert evaluated["test_error"] == pytest.approx(summary["test_error"], abs=1e-9)
        assert evaluated["test_top5_error"] == pytest.approx(summary["test_top5_error"], abs=1e-9)
        assert evaluated["method"] == summary["method"]


def test_existing_run_is_never_overwritten_without_force(cli, digits_runs, tmp_path):
    run_dir = digits_runs["erm"]
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    result = cli("train", "--epochs", "1", "--out", run_dir)
    assert result.exit_code == 2 and "already holds a run" in result.stderr and "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in before.items():
        (copy / name).write_bytes(data)
    result = cli("train", "--epochs", "1", "--out", copy, "--force", "--json")
    assert result.exit_code == 0 and result.json()["epochs"] == 1


def _config(tmp_path, **overrides):
    values = {"epochs": 3, "alpha": 1.0, "out": str(tmp_path), "dropout": 0.2, **overrides}
    return resolve_config(TrainConfig, None, values)


def test_resume_after_interruption_mid_epoch_is_exact(tmp_path):
    """Stopped inside epoch 2 and resumed, a run ends with the uninterrupted run's weights and metrics."""
    whole_dir, split_dir = tmp_path / "whole", tmp_path / "split"
    whole_dir.mkdir(), split_dir.mkdir()
    whole = train(_config(whole_dir), whole_dir)

    steps = {"n": 0}

    def stop_after_30_steps():
        steps["n"] += 1
        return steps["n"] >= 30  # 22 steps per epoch: inside epoch 2

    with pytest.raises(Interrupted) as info:
        train(_config(split_dir), split_dir, should_stop=stop_after_30_steps)
    assert info.value.epoch == 1 and info.value.step == 7  # 22 step checks + 1 epoch-end check, then 7
    resumed = train(_config(split_dir), split_dir, resume=True)

    for key in ("test_error", "best_test_error", "train_loss", "test_loss"):
        assert resumed[key] == whole[key], key
    a = torch.load(whole_dir / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(split_dir / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("epoch_seconds", "samples_per_second", "peak_memory_mb", "checkpoint_seconds")} for r in rows]
    read = lambda d: [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert strip(read(whole_dir)) == strip(read(split_dir))


def test_resume_refuses_contradicting_settings_and_missing_checkpoints(cli, digits_runs, tmp_path):
    result = cli("train", "--resume", "--out", digits_runs["mixup"], "--alpha", "0.2")
    assert result.exit_code == 2 and "alpha" in result.stderr and "contradict" in result.stderr
    result = cli("train", "--resume", "--out", tmp_path / "nothing")
    assert result.exit_code == 2 and "no last.pt" in result.stderr


def test_resume_can_extend_a_finished_run(cli, digits_runs, tmp_path):
    import shutil

    run_dir = tmp_path / "extend"
    shutil.copytree(digits_runs["erm"], run_dir)
    result = cli("train", "--resume", "--out", run_dir, "--epochs", "4", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["epochs"] == 4 and len((run_dir / "metrics.jsonl").read_text().splitlines()) == 4


def test_list_models_shows_parameter_counts(cli):
    result = cli("list", "models", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in result.json()["models"]}
    assert rows["small-cnn"]["parameters"] == 65834
    result = cli("list", "datasets", "--json")
    assert "digits" in {r["name"] for r in result.json()["datasets"]}


@pytest.mark.parametrize("args, needle", [
    (["--device", "cuda"], "CUDA is not available"),
    (["--device", "cuda:7"], "cuda:7"),
    (["--model", "preact-resnet-18"], "did you mean 'preact-resnet18'"),
    (["--dataset", "cifar-10"], "did you mean 'cifar10'"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_bad_flags_are_one_line_and_exit_2(cli, tmp_path, args, needle):
    result = cli("train", "--epochs", "1", "--out", tmp_path / "run", *args)
    assert result.exit_code == 2, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_unwritable_output_directory_is_refused(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    result = cli("train", "--epochs", "1", "--out", blocker / "run")
    assert result.exit_code == 2 and "not writable" in result.stderr and "Traceback" not in result.stderr
    assert blocker.read_text() == "keep me"


def test_usage_errors_from_the_real_entry_point_are_one_line(cli_subprocess):
    result = cli_subprocess("train", "--modl", "x")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert "did you mean" in result.stderr or "Possible options" in result.stderr
