"""`mixup train --log csv,tensorboard`: the files are read back with the csv module and TensorBoard's own reader."""
from __future__ import annotations

import csv
import importlib.util
import json
import shutil

import pytest

from mixup_cli import logging_sinks


def read_csv(run_dir):
    with open(run_dir / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def read_jsonl(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_csv_has_one_row_per_epoch_with_the_keys_of_metrics_jsonl(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--epochs", "2", "--log", "csv", "--out", out)
    assert result.exit_code == 0, result.stderr
    rows, records = read_csv(out), read_jsonl(out)
    assert len(rows) == 2
    assert list(rows[0]) == list(records[0])  # the same keys, in the same order
    for row, record in zip(rows, records):
        assert {k: float(v) for k, v in row.items()} == pytest.approx({k: float(v) for k, v in record.items()})
    assert (out / "summary.csv").read_text().count("test_error") == 1  # the header once
    assert not (out / "tensorboard").exists()  # only the sinks asked for


def test_resume_rewrites_the_csv_to_the_checkpoints_epochs(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", "--epochs", "2", "--out", out).exit_code == 0  # no --log yet: a resume may add it
    kept = tmp_path / "epoch2.pt"
    shutil.copy(out / "last.pt", kept)
    assert cli("train", "--resume", "--epochs", "3", "--log", "csv", "--out", out).exit_code == 0
    assert [r["epoch"] for r in read_csv(out)] == ["1", "2", "3"]
    shutil.copy(kept, out / "last.pt")  # epoch 3 was never checkpointed: a resume replays it
    result = cli("train", "--resume", "--epochs", "4", "--log", "csv", "--out", out)
    assert result.exit_code == 0, result.stderr
    rows = read_csv(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert [float(r["test_error"]) for r in rows] == [r["test_error"] for r in read_jsonl(out)]


def test_csv_rewrites_its_header_when_a_record_brings_a_new_key(tmp_path):
    sinks = logging_sinks.open_sinks(["csv"], tmp_path, [{"epoch": 1, "a": 1.0}])
    sinks.log({"epoch": 2, "a": 2.0, "b": 3.0})
    sinks.close()
    assert read_csv(tmp_path) == [{"epoch": "1", "a": "1.0", "b": ""}, {"epoch": "2", "a": "2.0", "b": "3.0"}]


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_tensorboard_event_files_hold_a_scalar_per_key_and_epoch(cli, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    result = cli("train", "--epochs", "2", "--log", "tensorboard,csv", "--out", out)
    assert result.exit_code == 0, result.stderr
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    records = read_jsonl(out)
    assert set(events.Tags()["scalars"]) == set(records[0]) - {"epoch"}
    for key in ("test_error", "train_loss", "lr"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in records], rel=1e-6)


def test_a_missing_tensorboard_is_one_line_naming_pip_install_before_training(cli, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    out = tmp_path / "run"
    result = cli("train", "--epochs", "1", "--log", "tensorboard", "--out", out)
    assert result.exit_code != 0
    message = result.stderr.strip()
    assert "pip install tensorboard" in message and len(message.splitlines()) == 1
    assert not out.exists()  # refused before the run started


def test_log_refuses_an_unknown_sink(cli, tmp_path):
    result = cli("train", "--log", "mlflow", "--out", tmp_path / "run")
    assert result.exit_code != 0 and "csv, tensorboard, wandb" in result.stderr


def test_corrupt_labels_sub_runs_log_too(cli, tmp_path):
    """--log on the Table 2 experiment reaches every sub-run's own run directory."""
    import csv

    out = tmp_path / "t2"
    result = cli("corrupt-labels", "--dataset", "digits", "--model", "small-cnn", "--epochs", "2", "--milestones", "1",
                 "--fraction", "0.5", "--methods", "erm,mixup", "--log", "csv", "--out", out)
    assert result.exit_code == 0, result.stderr
    for method in ("erm", "mixup"):
        run = out / "fraction-0.5" / method
        with open(run / "summary.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [int(r["epoch"]) for r in rows] == [1, 2]
