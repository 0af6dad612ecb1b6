"""`mixup eval` over several runs: one table, a JSON list, and the paper's best / last / median-of-
last-10 statistics read from each run's metrics.jsonl."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from mixup_cli.runs import history_statistics

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def iris_runs(tmp_path_factory):
    """ERM and mixup on Iris for 12 epochs (over the 10-epoch median window), a second each."""
    from conftest import run_inprocess

    root = tmp_path_factory.mktemp("iris-runs")
    runs = {}
    for method in ("erm", "mixup"):
        out = root / method
        result = run_inprocess("train", "--config", EXAMPLES / f"iris-mlp-{method}.yaml", "--epochs", "12",
                               "--device", "cpu", "--out", out)
        assert result.exit_code == 0, result.stderr
        runs[method] = out
    return runs


def test_history_statistics_best_last_and_median_of_last_ten():
    errors = [50, 40, 30, 9, 25, 20, 21, 22, 23, 24, 26, 27]  # 12 epochs; the last 10 start at 30
    history = [{"epoch": i + 1, "test_error": float(e)} for i, e in enumerate(errors)]
    stats = history_statistics(history)
    assert (stats["best_test_error"], stats["best_epoch"]) == (9.0, 4)
    assert stats["last_test_error"] == 27.0 and stats["epochs_run"] == 12
    assert stats["median_last10_test_error"] == 23.5  # sorted last 10: 9 20 21 22 23 | 24 25 26 27 30
    assert history_statistics(history[:3])["median_last10_test_error"] == 40.0
    assert all(v is None for v in history_statistics([]).values())


def test_eval_runs_side_by_side(cli, iris_runs):
    result = cli("eval", "--ckpt", iris_runs["erm"], "--ckpt", iris_runs["mixup"], "--device", "cpu", "--wide",
                 "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json()
    assert isinstance(rows, list) and [r["method"] for r in rows] == ["erm", "mixup"]
    for row, method in zip(rows, ("erm", "mixup")):
        history = [json.loads(line) for line in (iris_runs[method] / "metrics.jsonl").read_text().splitlines()]
        errors = [r["test_error"] for r in history]
        assert row["best_test_error"] == min(errors) and row["last_test_error"] == errors[-1]
        assert row["best_epoch"] == errors.index(min(errors)) + 1 and row["epochs_run"] == len(history)
        assert len(errors) == 12 and row["median_last10_test_error"] == statistics.median(errors[-10:])
        # A run directory is evaluated through its best.pt: the same error training logged for that epoch.
        assert row["test_error"] == pytest.approx(row["best_test_error"], abs=1e-6)
    assert "last 10 %" in result.stderr and "mixup" in result.stderr  # --wide: the run's statistics too


def test_eval_single_checkpoint_json_is_one_object(cli, iris_runs):
    result = cli("eval", "--ckpt", iris_runs["mixup"] / "last.pt", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    row = result.json()
    assert isinstance(row, dict) and row["epoch"] == row["epochs_run"] == 12
    assert row["test_error"] == pytest.approx(row["last_test_error"], abs=1e-6)
