"""`mixup attack --ckpt DIR` on a multi-seed directory of `mixup train --seeds` (issue 16): every seed's
model attacked, and per --ckpt group, per method × ε, the mean ± std over the seeds; `--seeds` picks some."""
from __future__ import annotations

import statistics

import pytest

from conftest import run_inprocess

ATTACK = ("--method", "fgsm,ifgsm", "--epsilon", "4,8", "--steps", "2", "--limit", "60", "--device", "cpu")


@pytest.fixture(scope="module")
def seed_groups(tmp_path_factory):
    """Two multi-seed directories, made by the real CLI: ERM and mixup, seeds 0 and 1, one epoch each."""
    root = tmp_path_factory.mktemp("attack-seeds")
    groups = {}
    for name, alpha in (("erm", "0"), ("mixup", "1")):
        out = root / name
        result = run_inprocess("train", "--seeds", "0,1", "--epochs", "1", "--alpha", alpha, "--out", out)
        assert result.exit_code == 0, result.stderr
        assert (out / "summary.json").is_file() and (out / "seed-1" / "best.pt").is_file()
        groups[name] = out
    return groups


def attack_json(*args):
    result = run_inprocess("attack", *ATTACK, *map(str, args), "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_each_seed_is_attacked_and_the_aggregate_is_their_mean_and_std(seed_groups):
    payload = attack_json("--ckpt", seed_groups["erm"], "--ckpt", seed_groups["mixup"])
    results, aggregate = payload["results"], payload["aggregate"]
    assert len(results) == 2 * 2 * 4  # groups × seeds × (method, ε)
    assert len(aggregate) == 2 * 4
    for row in aggregate:
        seeds_rows = [r for r in results if r["group"] == row["group"] and r["method"] == row["method"]
                      and r["epsilon"] == row["epsilon"]]
        assert [r["seed"] for r in seeds_rows] == row["seeds"] == [0, 1]
        assert all(r["ckpt"].endswith(f"seed-{r['seed']}/best.pt") for r in seeds_rows)
        for key in ("clean_top1_error", "top1_error", "top5_error", "flip_rate"):
            values = [r[key] for r in seeds_rows]
            assert row[key]["values"] == values and row[key]["n"] == 2
            assert row[key]["mean"] == pytest.approx(statistics.fmean(values))
            assert row[key]["std"] == pytest.approx(statistics.stdev(values))
        assert row["train_method"] == ("erm" if row["group"] == str(seed_groups["erm"]) else "mixup")
        assert row["setting"] == "white-box" and row["source_ckpt"] is None


def test_a_seed_in_the_group_matches_attacking_its_run_alone(seed_groups):
    grouped = attack_json("--ckpt", seed_groups["mixup"])["results"]
    alone = attack_json("--ckpt", seed_groups["mixup"] / "seed-1")
    assert "aggregate" not in alone  # a plain run directory: the JSON is as before
    for row in alone["results"]:
        (same,) = [r for r in grouped if r["seed"] == 1 and (r["method"], r["epsilon"]) == (row["method"], row["epsilon"])]
        for key in ("clean_top1_error", "top1_error", "top5_error", "flip_rate", "ckpt"):
            assert same[key] == row[key]


def test_seeds_picks_a_subset(seed_groups):
    payload = attack_json("--ckpt", seed_groups["mixup"], "--seeds", "1")
    assert {r["seed"] for r in payload["results"]} == {1}
    for row in payload["aggregate"]:
        assert row["seeds"] == [1] and row["top1_error"]["std"] == 0.0 and row["top1_error"]["n"] == 1


def test_the_table_shows_mean_and_std_per_group(seed_groups):
    result = run_inprocess("attack", *ATTACK, "--ckpt", seed_groups["erm"], "--ckpt", seed_groups["mixup"])
    assert result.exit_code == 0, result.stderr
    table = result.stderr  # tables go to stderr; stdout is kept for --json
    assert "mean ± std over seeds" in table
    assert str(seed_groups["erm"] / "seed-0" / "best.pt") in table
    assert "0,1" in table and " ± " in table


@pytest.mark.parametrize("seeds, words", [("0,5", "holds no seed 5"), ("0,x", "not a comma-separated list")])
def test_missing_or_malformed_seeds_are_refused_in_one_line(seed_groups, seeds, words):
    result = run_inprocess("attack", *ATTACK, "--ckpt", seed_groups["mixup"], "--seeds", seeds)
    assert result.exit_code == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_seeds_without_a_multi_seed_directory_is_refused(seed_groups):
    result = run_inprocess("attack", *ATTACK, "--ckpt", seed_groups["mixup"] / "seed-0", "--seeds", "0")
    assert result.exit_code == 2 and "multi-seed directory" in result.stderr


def test_black_box_aggregates_the_same_way(seed_groups):
    source = seed_groups["erm"] / "seed-0"
    payload = attack_json("--ckpt", seed_groups["mixup"], "--source-ckpt", source)
    assert all(r["setting"] == "black-box" for r in payload["results"] + payload["aggregate"])
    assert all(r["source_ckpt"] == str(source / "best.pt") for r in payload["aggregate"])
    assert [row["seeds"] for row in payload["aggregate"]] == [[0, 1]] * 4


def test_a_multi_seed_black_box_source_is_refused(seed_groups):
    result = run_inprocess("attack", *ATTACK, "--ckpt", seed_groups["mixup"], "--source-ckpt", seed_groups["erm"])
    assert result.exit_code == 2 and "one model" in result.stderr and "seed-0" in result.stderr
