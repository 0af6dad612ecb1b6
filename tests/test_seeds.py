"""--seeds: one run per seed, resumable as a whole, with mean ± std beside the runs (issue 16)."""
import json

import pytest

from mixup_cli.seeds import aggregate_runs, mean_std, parse_seeds


def test_train_over_seeds_aggregates_and_resumes_as_a_whole(cli, tmp_path):
    out = tmp_path / "seeds"
    first = cli("train", "--seeds", "0,1", "--epochs", "1", "--out", out, "--json")
    assert first.exit_code == 0, first.stderr
    payload = first.json()
    runs = [json.loads((out / f"seed-{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert [r["seed"] for r in runs] == [0, 1] == payload["seeds"]
    assert payload["test_error"]["values"] == [r["test_error"] for r in runs]
    assert payload["test_error"]["mean"] == pytest.approx(sum(r["test_error"] for r in runs) / 2)
    assert json.loads((out / "summary.json").read_text())["test_error"] == payload["test_error"]
    assert "mean ± std" in first.stderr

    more = cli("train", "--resume", "--seeds", "0,1,2", "--out", out, "--json")
    assert more.exit_code == 0, more.stderr
    assert more.stderr.count("finished already") == 2  # seeds 0 and 1 are kept, seed 2 trained
    assert more.json()["test_error"]["n"] == 3 and (out / "seed-2" / "last.pt").is_file()


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0,,1"], "--seeds"),
    (["--seeds", "0,1,0"], "repeats"),
    (["--seeds", "0,1", "--seed", "3"], "--seed and --seeds"),
])
def test_bad_seed_lists_are_one_line_errors(cli, tmp_path, args, message):
    result = cli("train", *args, "--epochs", "1", "--out", tmp_path / "s")
    assert result.exit_code == 2 and message in result.stderr and not (tmp_path / "s").exists()


def test_statistics():
    assert parse_seeds("2, 0,5") == [2, 0, 5]
    stat = mean_std([10.0, 12.0, 14.0])
    assert (stat["mean"], stat["n"]) == (12.0, 3) and stat["std"] == pytest.approx(2.0)
    merged = aggregate_runs([{"seed": 0, "test_error": 1.0}, {"seed": 1, "test_error": 3.0}], keys=["test_error"])
    assert merged["seeds"] == [0, 1] and merged["test_error"]["mean"] == 2.0


def test_corrupt_labels_over_seeds(cli, tmp_path):
    out = tmp_path / "t2"
    result = cli("corrupt-labels", "--dataset", "digits", "--model", "small-cnn", "--epochs", "1", "--milestones", "1",
                 "--fraction", "0.5", "--methods", "erm,mixup", "--seeds", "0,1", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json()["rows"]
    assert [(r["fraction"], r["method"], r["runs"]) for r in rows] == [(0.5, "erm", 2), (0.5, "mixup", 2)]
    for row in rows:  # each seed's sub-run of this method ended at the error aggregated
        expected = [json.loads((out / f"seed-{s}" / "fraction-0.5" / row["method"] / "summary.json").read_text())
                    ["test_error"] for s in (0, 1)]
        assert row["last_test_error"]["values"] == expected
    assert json.loads((out / "summary.json").read_text())["seeds"] == [0, 1]


@pytest.mark.parametrize("args", [
    ["train", "--seeds", "0,1", "--print-config"],
    ["corrupt-labels", "--seeds", "0,1", "--print-config"],
    ["corrupt-labels", "--seeds", "0,1", "--save-labels", "labels.pt", "--labels-only"],
])
def test_one_run_options_are_refused_with_seeds(cli, tmp_path, args):
    result = cli(*args, "--out", tmp_path / "s")
    assert result.exit_code == 2 and "--seeds" in result.stderr and not (tmp_path / "s").exists()
