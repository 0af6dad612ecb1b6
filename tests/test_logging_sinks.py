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


GAN_TINY = ["--hidden", "16", "--iterations", "24", "--d-steps", "2", "--batch-size", "16", "--num-samples", "100",
            "--snapshots", "10", "--threads", "1", "--device", "cpu", "--json"]
GAN_KEYS = ["iteration", "modes_covered", "num_modes", "high_quality", "modes_reached", "near_share", "d_loss",
            "g_loss"]


def test_gan_logs_every_snapshot_by_iteration_in_each_sub_runs_directory(cli, tmp_path):
    """--log csv on `mixup gan`: one row per snapshot, keyed by iteration (no made-up epochs), the numbers of
    result.json; the per-mode counts (a list) stay in result.json."""
    out = tmp_path / "gan"
    result = cli("gan", *GAN_TINY, "--log", "csv", "--out", out)
    assert result.exit_code == 0, result.stderr
    runs = result.json()["runs"]
    assert [r["method"] for r in runs] == ["erm", "mixup"]
    for run in runs:
        rows = read_csv(out / "runs" / run["key"])
        assert list(rows[0]) == GAN_KEYS
        assert [int(r["iteration"]) for r in rows] == [10, 24]
        for row, snap in zip(rows, run["snapshots"]):
            assert {k: float(v) for k, v in row.items()} == pytest.approx({k: float(snap[k]) for k in GAN_KEYS})
        assert not (out / "runs" / run["key"] / "tensorboard").exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_gan_tensorboard_steps_are_the_snapshot_iterations(cli, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "gan"
    result = cli("gan", *GAN_TINY, "--no-compare", "--log", "tensorboard", "--out", out)
    assert result.exit_code == 0, result.stderr
    (run,) = result.json()["runs"]
    events = EventAccumulator(str(out / "runs" / run["key"] / "tensorboard")).Reload()
    assert set(events.Tags()["scalars"]) == set(GAN_KEYS) - {"iteration"}
    for key in ("modes_covered", "d_loss", "g_loss"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [10, 24]
        assert [s.value for s in scalars] == pytest.approx([s[key] for s in run["snapshots"]], rel=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_a_resumed_history_purges_later_steps_of_any_step_key(tmp_path):
    """Reopened with the records up to iteration 100, the sinks drop what was written after it (a resume
    replays it): the CSV is rewritten, TensorBoard's purge_step is the step after the last kept one."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first = [{"iteration": 10, "g_loss": 1.0}, {"iteration": 100, "g_loss": 2.0}, {"iteration": 1000, "g_loss": 3.0}]
    sinks = logging_sinks.open_sinks(["csv", "tensorboard"], tmp_path, [], step_key="iteration")
    for record in first:
        sinks.log(record)
    sinks.close()
    sinks = logging_sinks.open_sinks(["csv", "tensorboard"], tmp_path, first[:2], step_key="iteration")
    sinks.log({"iteration": 1000, "g_loss": 4.0})
    sinks.close()
    assert [(r["iteration"], r["g_loss"]) for r in read_csv(tmp_path)] == [("10", "1.0"), ("100", "2.0"),
                                                                          ("1000", "4.0")]
    scalars = EventAccumulator(str(tmp_path / "tensorboard")).Reload().Scalars("g_loss")
    assert [(s.step, s.value) for s in scalars] == [(10, 1.0), (100, 2.0), (1000, 4.0)]


def test_wandb_ids_keep_sub_runs_of_the_same_name_apart(tmp_path, monkeypatch):
    """gan and corrupt-labels name sub-runs alike in every experiment (erm-z2-lr0.001-seed0, erm): each gets
    its own wandb id, stable for a resume of the same directory. wandb itself is stood in for."""
    import sys
    import types

    calls = []
    fake = types.SimpleNamespace(init=lambda **kw: calls.append(kw) or types.SimpleNamespace(log=None, finish=None))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    for experiment in ("a", "b", "a"):
        logging_sinks.WandbSink(tmp_path / experiment / "runs" / "erm-z2-lr0.001-seed0", [], step_key="iteration")
    ids = [c["id"] for c in calls]
    assert ids[0] != ids[1] and ids[0] == ids[2] and all(i.startswith("erm-z2-lr0.001-seed0-") for i in ids)


def test_a_resumed_run_continues_the_wandb_run_its_directory_logged_to(tmp_path, monkeypatch):
    """Ids carry a hash of the directory's path (above), so a run started when the id was the folder's name
    alone, or a run folder moved since, would start a second wandb run on --resume. A resume takes the id
    wandb recorded in the directory (wandb/run-<date>_<time>-<id>/, the newest); a new run (no history)
    gets the path's id as before."""
    import sys
    import types

    calls = []
    fake = types.SimpleNamespace(init=lambda **kw: calls.append(kw) or types.SimpleNamespace(log=None, finish=None))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run = tmp_path / "moved" / "erm"
    (run / "wandb" / "run-20261130_101500-erm").mkdir(parents=True)  # the id an older version gave it
    (run / "wandb" / "offline-run-20261201_080000-erm-1a2b3c4d").mkdir()  # newer: after a move, say
    (run / "wandb" / "latest-run").mkdir()  # not a run folder
    logging_sinks.WandbSink(run, [{"epoch": 1}])
    logging_sinks.WandbSink(run, [])
    logging_sinks.WandbSink(tmp_path / "fresh", [{"epoch": 1}])  # a resume with nothing recorded
    old = tmp_path / "old" / "erm"
    (old / "wandb" / "run-20261130_101500-erm").mkdir(parents=True)
    logging_sinks.WandbSink(old, [{"epoch": 1}])
    ids = [c["id"] for c in calls]
    assert ids[0] == "erm-1a2b3c4d"
    assert ids[1] == logging_sinks.wandb_id(run) != ids[0]
    assert ids[2] == logging_sinks.wandb_id(tmp_path / "fresh")
    assert ids[3] == "erm"
