"""`mixup fewshot train | eval` through the real CLI on tiny data: the two-stage schedule and its
early stop, exact resume in either stage, episodic evaluation, one-line errors, CIFAR-FS on
CIFAR-100 files written in their real pickle format, and the shipped recipes."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mixup_cli.checkpoint import load_checkpoint
from mixup_cli.config import resolve_config
from mixup_cli.config.fewshot import FewShotConfig
from mixup_cli.errors import Interrupted
from mixup_cli.fewshot import training
from mixup_cli.fewshot.splits import CIFAR100_CLASSES, cifar_fs

# Digits: base 0-4, val 5-6, novel 7-9 (the default split), Conv-4, a few seconds a run.
QUICK = ["--epochs", "2", "--finetune-epochs", "2", "--patience", "5", "--val-episodes", "20", "--batch-size", "32",
         "--threads", "1", "--device", "cpu"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "fewshot"


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """An s2m2 and a baseline run on digits: {'s2m2': dir, 'baseline': dir, 'summary': s2m2's summary}."""
    from conftest import run_inprocess

    root = tmp_path_factory.mktemp("fewshot")
    found = {}
    for method in ("s2m2", "baseline"):
        result = run_inprocess("fewshot", "train", *QUICK, "--method", method, "--out", root / method, "--json")
        assert result.exit_code == 0, result.stderr
        found[method] = root / method
        found[f"{method}-summary"] = result.json()
    return found


# --- train ----------------------------------------------------------------------------------------

def test_s2m2_trains_two_stages_and_keeps_the_best_validation_epoch_of_stage_two(runs):
    summary, run = runs["s2m2-summary"], runs["s2m2"]
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.jsonl", "last.pt", "best.pt", "summary.json"}
    records = metrics(run)
    assert [(r["stage"], r["stage_epoch"], r["epoch"]) for r in records] == [(1, 1, 1), (1, 2, 2), (2, 1, 3), (2, 2, 4)]
    best = max(records[2:], key=lambda r: r["val_accuracy"])  # Algorithm 1 outputs the fine-tuned backbone
    assert summary["best_epoch"] == best["epoch"] and summary["best_val_accuracy"] == best["val_accuracy"]
    assert summary["best_stage"] == 2
    assert load_checkpoint(run / "best.pt")["epoch"] == best["epoch"]  # eval reads best.pt
    assert summary["split"] == {"base": [0, 1, 2, 3, 4], "val": [5, 6], "novel": [7, 8, 9]}
    assert summary["val_ways"] == 2 and summary["finetune_epochs_run"] == 2  # 5 ways capped at the 2 val classes
    saved = (run / "config.yaml").read_text()
    assert "split:\n- base:0-4\n- val:5-6\n- novel:7-9" in saved  # the split is stated in the run's config


def test_baselines_train_one_stage(runs):
    assert [r["stage"] for r in metrics(runs["baseline"])] == [1, 1]
    assert runs["baseline-summary"]["finetune_epochs_run"] == 0


def test_stage_two_stops_at_the_first_epoch_without_a_better_validation_accuracy(cli, tmp_path, monkeypatch):
    """Algorithm 1: fine-tune 'while val_acc > val_acc_prev'; validation accuracies scripted per epoch."""
    scripted = iter([50.0, 60.0, 70.0, 65.0, 90.0, 95.0])

    def fake_episodes(*args, **kwargs):
        return {"mean": next(scripted), "ci95": 1.0}

    monkeypatch.setattr(training, "evaluate_episodes", fake_episodes)
    result = cli("fewshot", "train", *QUICK, "--finetune-epochs", "4", "--patience", "1", "--out", tmp_path / "r",
                 "--json")
    assert result.exit_code == 0, result.stderr
    records = metrics(tmp_path / "r")
    assert [r["val_accuracy"] for r in records] == [50.0, 60.0, 70.0, 65.0]  # 90 and 95 never reached
    assert records[-1]["early_stop"] and not records[-2]["early_stop"]
    summary = result.json()
    assert summary["stopped_early"] and summary["finetune_epochs_run"] == 2
    assert summary["best_epoch"] == 3 and summary["best_stage"] == 2
    assert "stage 2 ran 2 epochs (stopped early)" in result.stderr


def test_stage_two_that_runs_all_its_epochs_did_not_stop_early(cli, tmp_path, monkeypatch):
    """The last allowed epoch without a better accuracy ends stage 2 at --finetune-epochs, not early."""
    scripted = iter([50.0, 60.0, 70.0, 65.0])
    monkeypatch.setattr(training, "evaluate_episodes", lambda *a, **k: {"mean": next(scripted), "ci95": 1.0})
    result = cli("fewshot", "train", *QUICK, "--patience", "1", "--out", tmp_path / "r", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["finetune_epochs_run"] == 2 and not summary["stopped_early"]
    assert not metrics(tmp_path / "r")[-1]["early_stop"] and "stopped early" not in result.stderr


def test_patience_lets_stage_two_wait_for_a_later_best_and_stage_one_is_never_chosen(cli, tmp_path, monkeypatch):
    scripted = iter([99.0, 60.0, 70.0, 65.0, 90.0, 95.0])  # stage 1's 99 % is not the fine-tuned backbone
    monkeypatch.setattr(training, "evaluate_episodes", lambda *a, **k: {"mean": next(scripted), "ci95": 1.0})
    result = cli("fewshot", "train", *QUICK, "--finetune-epochs", "4", "--patience", "2", "--out", tmp_path / "r",
                 "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["finetune_epochs_run"] == 4 and result.json()["best_epoch"] == 6


def _stop_after(calls: int):
    count = {"n": 0}

    def should_stop() -> bool:
        count["n"] += 1
        return count["n"] > calls

    return should_stop


@pytest.mark.parametrize("calls", [3, 70], ids=["stage-1", "stage-2"])
def test_resume_in_either_stage_ends_where_the_uninterrupted_run_ends(cli, runs, tmp_path, calls):
    """Stopped mid-epoch in stage 1 or in stage 2 (an epoch is 28 steps of 32 of the ~900 base images,
    and a stop request is asked after each step and each epoch: 29 asks), then resumed through the
    CLI: the same records and the same weights as the uninterrupted run."""
    out = tmp_path / "r"
    overrides = {k[2:].replace("-", "_"): v if k == "--device" else int(v) for k, v in zip(QUICK[::2], QUICK[1::2])}
    config = resolve_config(FewShotConfig, overrides=dict(overrides, method="s2m2", out=str(out)))
    with pytest.raises(Interrupted):
        training.train_fewshot(config, should_stop=_stop_after(calls))
    stopped = load_checkpoint(out / "last.pt")["state"]
    assert stopped["stage"] == (1 if calls == 3 else 2) and stopped["step"] > 0  # inside an epoch
    result = cli("fewshot", "train", "--resume", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    strip = lambda records: [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in records]  # noqa: E731
    assert strip(metrics(out)) == strip(metrics(runs["s2m2"]))
    resumed, uninterrupted = (load_checkpoint(run / "last.pt")["state_dict"] for run in (out, runs["s2m2"]))
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_sigterm_saves_the_position_and_prints_the_resume_command(tmp_path):
    """The real process: SIGTERM mid-run ends with exit 143, last.pt and the command that resumes."""
    import os
    import signal
    import subprocess
    import sys

    from conftest import SRC, THREADS_ENV, wait_until

    out = tmp_path / "r"
    env = dict(os.environ, PYTHONPATH=str(SRC), **THREADS_ENV)
    proc = subprocess.Popen([sys.executable, "-m", "mixup_cli", "fewshot", "train", *QUICK, "--epochs", "50",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wait_until(lambda: (out / "metrics.jsonl").is_file(), proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert f"resume with: mixup fewshot train --resume --out {out}" in stderr and (out / "last.pt").is_file()


def test_resume_refuses_a_changed_recipe_and_an_empty_directory(cli, runs, tmp_path):
    changed = cli("fewshot", "train", "--resume", "--out", runs["s2m2"], "--method", "rotation")
    assert changed.exit_code == 2
    assert "contradict the run (method: 's2m2' in the run, 'rotation' given)" in changed.stderr
    empty = cli("fewshot", "train", "--resume", "--out", tmp_path / "none")
    assert empty.exit_code == 2 and "holds no last.pt" in empty.stderr
    occupied = cli("fewshot", "train", "--out", runs["s2m2"])
    assert occupied.exit_code == 2 and "already holds a run; pass --resume" in occupied.stderr


# --- eval -----------------------------------------------------------------------------------------

def test_eval_reports_mean_and_ci_per_shot_on_the_same_episodes_for_every_checkpoint(cli, runs):
    result = cli("fewshot", "eval", "--ckpt", runs["s2m2"], "--ckpt", runs["baseline"], "--ways", "3",
                 "--shots", "1,5", "--episodes", "50", "--threads", "1", "--json")
    assert result.exit_code == 0, result.stderr
    s2m2, baseline = result.json()
    for report in (s2m2, baseline):
        assert report["ckpt"].endswith("best.pt") and report["novel_classes"] == 3
        assert [(r["ways"], r["shots"], r["queries"], r["episodes"]) for r in report["results"]] == [
            (3, 1, 15, 50), (3, 5, 15, 50)]
        assert all(33 < r["mean"] <= 100 and 0 <= r["ci95"] < 10 for r in report["results"])
    # the same episodes: the same images in every episode, whatever the checkpoint
    assert [r["episodes_digest"] for r in s2m2["results"]] == [r["episodes_digest"] for r in baseline["results"]]
    assert re.search(r"1-shot.*5-shot", result.stderr) and "±" in result.stderr
    other = cli("fewshot", "eval", "--ckpt", runs["s2m2"], "--ways", "3", "--shots", "1", "--episodes", "50",
                "--episode-seed", "1", "--json").json()
    assert other["results"][0]["episodes_digest"] != s2m2["results"][0]["episodes_digest"]


def test_eval_notes_checkpoints_whose_novel_images_give_other_episodes(cli, runs, tmp_path):
    """--per-class limits the novel images too: such checkpoints cannot see the same episodes, and say so."""
    few = tmp_path / "few"
    trained = cli("fewshot", "train", "--method", "baseline", "--epochs", "1", "--per-class", "30",
                  "--val-episodes", "5", "--threads", "1", "--device", "cpu", "--out", few)
    assert trained.exit_code == 0, trained.stderr
    result = cli("fewshot", "eval", "--ckpt", runs["s2m2"], "--ckpt", few, "--ways", "3", "--shots", "1",
                 "--episodes", "10", "--threads", "1", "--json")
    assert result.exit_code == 0, result.stderr
    first, second = result.json()
    assert first["results"][0]["episodes_digest"] != second["results"][0]["episodes_digest"]
    assert "note: the checkpoints saw different 1-shot episodes" in result.stderr
    paired = cli("fewshot", "eval", "--ckpt", runs["s2m2"], "--ckpt", runs["baseline"], "--ways", "3", "--shots",
                 "1", "--episodes", "10", "--threads", "1")
    assert paired.exit_code == 0 and "note:" not in paired.stderr


@pytest.mark.parametrize("args, message", [
    (["--ways", "5"], "--ways 5 is more than the 3 novel classes of the split; pass --ways 3 or fewer"),
    (["--ways", "3", "--shots", "1,170"], "170 shots + 15 queries = 185 images per class, but a novel class holds"),
    (["--ways", "3", "--shots", "1,0"], "--shots"),
])
def test_eval_refuses_episodes_the_novel_classes_cannot_fill_in_one_line(cli, runs, args, message):
    result = cli("fewshot", "eval", "--ckpt", runs["s2m2"], *args)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_eval_refuses_a_missing_checkpoint_naming_the_command_that_writes_one(cli, tmp_path):
    result = cli("fewshot", "eval", "--ckpt", tmp_path / "nope")
    assert result.exit_code == 2 and "does not exist; pass a .pt file written by mixup fewshot train" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_eval_refuses_a_checkpoint_of_mixup_train(cli, digits_runs):
    result = cli("fewshot", "eval", "--ckpt", digits_runs["erm"], "--ways", "3")
    assert result.exit_code == 2 and "is not a few-shot backbone" in result.stderr


@pytest.mark.parametrize("command", [["eval", "--ckpt"], ["attack", "--method", "fgsm", "--ckpt"]])
def test_the_whole_dataset_commands_refuse_a_few_shot_backbone_in_one_line(cli, runs, command):
    result = cli(*command, runs["baseline"])
    assert result.exit_code == 2 and "is a few-shot backbone" in result.stderr and "mixup fewshot eval" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_resume_across_commands_says_which_wrote_the_run(cli, runs, digits_runs):
    """A fewshot run resumed by mixup train, and a train run by mixup fewshot train: neither config fits."""
    for command, run in ((["train"], runs["baseline"]), (["fewshot", "train"], digits_runs["erm"])):
        result = cli(*command, "--resume", "--out", run)
        assert result.exit_code == 2 and "the saved config holds keys this command does not know" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--split", "base:0-5,val:5-7,novel:8-9"], "puts class 5 in base and val"),
    (["--split", "cifar-fs"], "split 'cifar-fs' is a split of cifar100's classes, not of digits's"),
    (["--split", "base:0-5,val:6-7,novel:8-9", "--val-ways", "3"], "--val-ways (3) is more than the 2 val classes"),
    (["--split", "base:0-7,val:8,novel:9"], "the split gives one val class (8); every role needs at least 2"),
    (["--split", "base:0,val:5-6,novel:7-9"], "the split gives one base class (0)"),
    (["--method", "mixup"], "has no choice 'mixup'"),
    (["--dataset", "iris"], "dataset 'iris' is not of square images"),  # not "declare a split": none would do
    # validation episodes the val classes cannot fill: refused before the first epoch, naming the val flags
    (["--per-class", "10"], "5 shots + 15 queries = 20 images per class, but a val class holds only 10; lower "
                            "--val-shots or --queries"),
    (["--val-shots", "200"], "but a val class holds only 181; lower --val-shots"),
])
def test_train_refuses_a_bad_split_or_method_in_one_line(cli, tmp_path, args, message):
    result = cli("fewshot", "train", *args, "--out", tmp_path / "r")
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_force_with_validation_episodes_the_val_classes_cannot_fill_keeps_the_run_it_would_replace(cli, tmp_path):
    out = tmp_path / "r"
    quick = ["--method", "baseline", "--epochs", "1", "--per-class", "30", "--val-episodes", "5", "--threads", "1",
             "--device", "cpu", "--out", out]
    assert cli("fewshot", "train", *quick).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = cli("fewshot", "train", *quick, "--val-shots", "20", "--force")
    assert result.exit_code == 2 and "a val class holds only 30; lower --val-shots" in result.stderr
    # Raised once the progress display has started, yet still exactly one line: no blank line before it.
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1, repr(result.stderr)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


# --- CIFAR-FS on CIFAR-100 files in their real format -----------------------------------------------

def write_cifar100(root: Path, per_class: dict) -> None:
    """cifar-100-python/{train,test,meta} as torchvision unpacks them: pickled dicts with bytes keys."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, count in per_class.items():
        labels = [c for c in range(100) for _ in range(count)]
        data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
        batch = {b"filenames": [b"x.png"] * len(labels), b"batch_label": name.encode(), b"fine_labels": labels,
                 b"coarse_labels": [c // 5 for c in labels], b"data": data}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"fine_label_names": [n.encode() for n in CIFAR100_CLASSES],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))


def test_cifar_fs_trains_on_64_classes_and_evaluates_5_way_on_the_20_novel_ones(cli, tmp_path):
    write_cifar100(tmp_path / "data", {"train": 3, "test": 1})  # 4 images a class: train and test pooled
    out = tmp_path / "run"
    result = cli("fewshot", "train", "--dataset", "cifar100", "--data-dir", tmp_path / "data", "--method", "baseline",
                 "--epochs", "1", "--val-shots", "1", "--queries", "2", "--val-episodes", "5", "--batch-size", "64",
                 "--threads", "1", "--device", "cpu", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["split"] == cifar_fs().to_dict() and summary["val_ways"] == 5
    assert "64 base / 16 val / 20 novel classes: 256 base / 64 val images" in result.stderr
    assert "split:\n- cifar-fs" in (out / "config.yaml").read_text()
    names = {CIFAR100_CLASSES[c] for c in summary["split"]["novel"]}
    assert {"baby", "bed", "bicycle", "chimpanzee", "fox"} <= names
    assert load_checkpoint(out / "best.pt")["model"]["num_classes"] == 64  # the cosine classifier's base classes
    evaluated = cli("fewshot", "eval", "--ckpt", out, "--ways", "5", "--shots", "1", "--queries", "3",
                    "--episodes", "10", "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    report = evaluated.json()
    assert report["novel_classes"] == 20 and report["novel_images"] == 80
    too_many = cli("fewshot", "eval", "--ckpt", out, "--ways", "21")
    assert too_many.exit_code == 2 and "--ways 21 is more than the 20 novel classes" in too_many.stderr


# --- recipes and help -----------------------------------------------------------------------------

RECIPES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_names_its_command_and_resolves(path, tmp_path):
    first = path.read_text().splitlines()[0]
    assert re.match(rf"^# mixup fewshot train .*--config examples/fewshot/{path.name}\b", first), first
    config = resolve_config(FewShotConfig, path, {"data_dir": str(tmp_path)})
    assert config.method in ("baseline", "manifold", "rotation", "s2m2")


def test_the_paper_scale_recipe_is_s2m2_on_cifar_fs_with_the_official_settings():
    text = (EXAMPLES / "cifar-fs-s2m2-wrn.yaml").read_text()
    config = resolve_config(FewShotConfig, EXAMPLES / "cifar-fs-s2m2-wrn.yaml", {"data_dir": "/"})
    assert (config.dataset, config.split, config.model, config.method) == ("cifar100", ["cifar-fs"], "wrn28-10",
                                                                           "s2m2")
    assert (config.epochs, config.alpha, config.lr, config.cosine_scale, config.queries) == (400, 2.0, 1e-3, 2.0, 15)
    assert "74.81 ± 0.19" in text and "87.47 ± 0.13" in text and "nupurkmr9/S2M2_fewshot" in text


@pytest.mark.parametrize("command", ["train", "eval"])
def test_fewshot_help_fits_80_columns(command):
    from conftest import THREADS_ENV  # noqa: F401  (the suite's environment)
    from typer.testing import CliRunner

    from mixup_cli.cli import app

    result = CliRunner().invoke(app, ["fewshot", command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and f"Usage: mixup fewshot {command}" in result.stdout
    assert max(map(len, result.stdout.splitlines())) <= 80 and "…" not in result.stdout
