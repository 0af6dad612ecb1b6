"""`mixup reproduce`: tables as resumable protocols over seeds, run through the real CLI on small
Fashion-MNIST files written in the real idx format (each run is a real `mixup` process)."""
from __future__ import annotations

import json

import pytest

from mixup_cli.reproduce.tables import collapsed
from mixup_cli.seeds import mean_std
from test_mnist import write_set

TABLES = ["table1", "table3", "figure2"]


@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    folder = tmp_path / "fashion"
    write_set(folder, sizes=(60, 30))
    return folder


def reproduce(cli, out, data, *extra):
    return cli("reproduce", *TABLES, "--seeds", "0,1", "--epochs", "1", "--out", out, "--data-dir", data,
               "--device", "cpu", *extra)


def test_dry_run_lists_every_run_once_and_runs_nothing(cli, tmp_path, tiny_fashion):
    result = reproduce(cli, tmp_path / "r", tiny_fashion, "--dry-run")
    assert result.exit_code == 0, result.stderr
    # 2 seeds x {erm, mixup} shared by the three tables, the black-box source, 2 attacks, 2 analyses
    assert "9 runs" in result.stderr and result.stderr.count("to run") == 9
    assert "train/erm-s100" in result.stderr and "of CPU time" in result.stderr
    assert not (tmp_path / "r").exists()


def test_tables_run_over_seeds_resume_and_report_beside_the_paper(cli, tmp_path, tiny_fashion):
    out = tmp_path / "r"
    result = reproduce(cli, out, tiny_fashion, "--json")
    assert result.exit_code == 0, result.stderr
    reports = result.json()["reports"]
    table1 = reports["table1"]
    assert [r["method"] for r in table1["rows"]] == ["erm", "mixup"]
    near_chance = 0
    for row in table1["rows"]:
        errors = [json.loads((out / f"train/{row['method']}-s{s}.json").read_text())["test_error"] for s in (0, 1)]
        # one epoch on 60 images may learn nothing: such runs are flagged, not averaged
        assert row["test_error"]["values"] == [e for e in errors if e < 81]
        near_chance += sum(e >= 81 for e in errors)
        assert row["paper_test_error"] in (5.6, 4.2)
    assert len(table1["collapsed"]) == near_chance
    assert len(reports["table3"]["rows"]) == 8  # white/black box x ERM/mixup x FGSM/I-FGSM
    assert reports["table3"]["rows"][0]["paper_top1_error"] == 90.7
    assert set(reports["figure2"]["direction_holds"]) == {
        "fewer misses in-between", "smaller gradient norms in-between", "lower calibration error"}
    markdown = (out / "table1.md").read_text()
    assert "| erm |" in markdown and " ± " in markdown and "The paper's direction" in markdown
    assert json.loads((out / "table3.json").read_text())["table"] == "table3"

    # A stopped reproduction continues: only the missing result is made again.
    (out / "analysis/calibration.json").unlink()
    again = reproduce(cli, out, tiny_fashion)
    assert again.exit_code == 0, again.stderr
    assert "finished analysis/calibration" in again.stderr
    assert "finished train/" not in again.stderr and "finished attack/" not in again.stderr

    # Runs made with other settings are never mixed into a report: another --epochs is refused.
    other = cli("reproduce", *TABLES, "--seeds", "0,1", "--epochs", "2", "--out", out, "--data-dir", tiny_fashion,
                "--device", "cpu", "--dry-run")
    assert other.exit_code == 2 and "other settings" in other.stderr and "--epochs 1" in other.stderr


def test_unknown_tables_and_bad_seeds_are_one_line_errors(cli, tmp_path):
    unknown = cli("reproduce", "tabel1", "--dry-run", "--out", tmp_path / "r")
    assert unknown.exit_code == 2 and "table1" in unknown.stderr and "Traceback" not in unknown.stderr
    seeds = cli("reproduce", "table1", "--seeds", "0,,1", "--dry-run", "--out", tmp_path / "r")
    assert seeds.exit_code == 2 and "--seeds" in seeds.stderr


def test_statistics_and_collapse_flags():
    stat = mean_std([10.0, 12.0, 14.0])
    assert stat["mean"] == 12.0 and stat["std"] == pytest.approx(2.0) and stat["n"] == 3
    assert mean_std([]) ["mean"] is None and mean_std([3.0])["std"] == 0.0
    assert collapsed({"test_error": 89.0}) and collapsed({"test_error": float("nan")})
    assert not collapsed({"test_error": 12.0})


def test_table5_rows_follow_the_papers_order():
    """Table 5's rows top to bottom: ERM, mixup (RP, KNN), Layer 1-5, inputs only (SC+KNN, AC+KNN, SC+RP,
    AC+RP), label smoothing, mixup + label smoothing, Gaussian noise; numbered rows in order."""
    from mixup_cli.reproduce.tables import table5_rows

    quick = [name.rsplit("-wd", 1)[0] for name, _ in table5_rows("quick")]
    assert quick == ["erm", "mixup-ac-rp", "mixup-ac-knn", "latent-layer1", "latent-layer2", "inputs-only-sc-knn",
                     "inputs-only-ac-knn", "inputs-only-sc-rp", "inputs-only-ac-rp", "label-smoothing-0.1",
                     "mix-inputs-label-smoothing-0.1", "gaussian-noise-0.1"]
    paper = [name.rsplit("-wd", 1)[0] for name, _ in table5_rows("paper") if name.endswith("-wd1e-4")]
    assert paper == ["erm", "mixup-ac-rp", "mixup-ac-knn", *[f"latent-layer{k}" for k in range(1, 6)],
                     "inputs-only-sc-knn", "inputs-only-ac-knn", "inputs-only-sc-rp", "inputs-only-ac-rp",
                     *[f"label-smoothing-{e}" for e in ("0.05", "0.1", "0.2")],
                     *[f"mix-inputs-label-smoothing-{e}" for e in ("0.05", "0.1", "0.2", "0.4")],
                     *[f"gaussian-noise-{s}" for s in ("0.05", "0.1", "0.2")]]


def test_a_run_that_cannot_start_is_named_with_its_own_error(cli, tmp_path):
    """--scale paper without the CIFAR files: the failing run and its one-line reason, exit 1."""
    result = cli("reproduce", "table1", "--scale", "paper", "--seeds", "0", "--parallel", "1", "--device", "cpu",
                 "--data-dir", tmp_path / "no-cifar-here", "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert "train/erm-s0 failed" in result.stderr and "no-cifar-here" in result.stderr
