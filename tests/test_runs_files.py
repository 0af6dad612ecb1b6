"""Runs and files (issue 14, and the NaN-stop and debris items of issue 21), through the real CLI: a
resume never contradicts what a run holds, a NaN stop names a way out that exists, a refused start or a
failed download leaves no folder it made, corrupt-labels replaces and extends like train, and the
Table 5 example writes where it may and prints the paper's row order."""
from __future__ import annotations

import pickle
import subprocess
import urllib.error
from pathlib import Path

import pytest
import torch

from conftest import SRC
from test_interruption import poisoned_mixer

TINY = ("--dataset", "digits", "--model", "small-cnn", "--batch-size", "128", "--milestones", "1")


def run_files(run_dir: Path) -> dict:
    """name -> bytes of every file of a run directory (to show a refusal changed nothing)."""
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def one_line_error(result) -> str:
    """The one error line, last on stderr (after any progress), with no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == lines[-1:] and "Traceback" not in result.stderr, result.stderr
    return errors[0]


# ---------------------------------------------------------------------------------------------
# 1. --resume never lowers --epochs

def test_resume_refuses_fewer_epochs_than_the_run_finished_and_changes_nothing(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", "--epochs", "2", "--out", out).exit_code == 0
    before = run_files(out)
    result = cli("train", "--resume", "--epochs", "1", "--out", out)
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "has finished 2 of its 2 epochs" in line and "--epochs 2 or more" in line
    assert run_files(out) == before  # config.yaml, summary.json, metrics.jsonl, last.pt as they were

    raised = cli("train", "--resume", "--epochs", "3", "--out", out, "--json")
    assert raised.exit_code == 0, raised.stderr
    assert raised.json()["epochs"] == 3 and len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_of_an_interrupted_run_refuses_fewer_epochs_than_it_was_set_to(cli, tmp_path):
    from mixup_cli.config import TrainConfig, resolve_config
    from mixup_cli.trainer import Interrupted, TrainCallbacks, train

    class StopAfterOneEpoch(TrainCallbacks):
        epochs = 0

        def on_epoch(self, record):
            self.epochs += 1

    out = tmp_path / "run"
    stop = StopAfterOneEpoch()
    with pytest.raises(Interrupted):
        train(resolve_config(TrainConfig, None, {"epochs": 3, "out": str(out)}), callbacks=stop,
              should_stop=lambda: stop.epochs >= 1)
    result = cli("train", "--resume", "--epochs", "2", "--out", out)
    assert result.exit_code == 2 and "has finished 1 of its 3 epochs" in one_line_error(result)
    assert "epochs: 3" in (out / "config.yaml").read_text()


# ---------------------------------------------------------------------------------------------
# 2. The NaN stop names a way out that exists

def test_a_nan_before_any_checkpoint_says_nothing_was_saved_and_starting_again_works(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--epochs", "2", "--lr", "1e30", "--weight-decay", "0", "--out", out)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "loss became" in line and "epoch 1, step" in line
    assert "before any checkpoint was saved" in line and "nothing to resume" in line
    assert "--resume" not in line and not (out / "last.pt").exists()
    again = cli("train", "--epochs", "1", "--out", out)  # the advice: start again in the same --out
    assert again.exit_code == 0, again.stderr


def test_a_nan_after_a_checkpoint_names_the_resume_command(cli, tmp_path, monkeypatch):
    out = tmp_path / "run"
    poisoned_mixer(monkeypatch, {25})  # digits: 22 steps an epoch, so epoch 2, step 4
    result = cli("train", "--epochs", "2", "--out", out)
    assert result.exit_code == 1 and (out / "last.pt").is_file()
    line = one_line_error(result)
    assert f"mixup train --resume --out {out} --on-nonfinite skip" in line and "nothing to resume" not in line


# ---------------------------------------------------------------------------------------------
# 3. No debris: a refused start or a failed download leaves no folder it made

def _bad_labels(tmp_path):
    (tmp_path / "labels.pt").write_bytes(b"not a labels file")
    return ("--labels", tmp_path / "labels.pt")


def _bad_model_option(tmp_path):
    (tmp_path / "c.yaml").write_text("model_options: {depth: 3}\n")
    return ("--config", tmp_path / "c.yaml")


def _missing_data(tmp_path):
    (tmp_path / "empty-data").mkdir(exist_ok=True)  # the folder exists, the dataset's files are not in it
    return ("--dataset", "cifar10", "--model", "small-cnn", "--data-dir", tmp_path / "empty-data")


def _unreadable_data(tmp_path):
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": "garbage"})[:-3])  # truncated pickle
    return ("--dataset", "cifar10", "--model", "small-cnn", "--data-dir", tmp_path / "cifar")


REFUSALS = {"bad labels file": (_bad_labels, "labels file"), "bad model option": (_bad_model_option, "depth"),
            "missing data files": (_missing_data, "are missing"), "unreadable dataset": (_unreadable_data, "CIFAR")}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_run_refused_at_start_up_leaves_no_directory_it_made(cli, tmp_path, case):
    make_args, message = REFUSALS[case]
    args = make_args(tmp_path)
    new = tmp_path / "new" / "run"  # two folders this invocation would make
    result = cli("train", "--epochs", "1", *args, "--out", new)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "new").exists()

    existing = tmp_path / "existing"  # a folder the user made is never removed, even when empty
    existing.mkdir()
    assert cli("train", "--epochs", "1", *args, "--out", existing).exit_code == 2
    assert existing.is_dir() and not any(existing.iterdir())


def test_a_refused_force_keeps_the_run_it_would_have_replaced(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", "--epochs", "1", "--out", out).exit_code == 0
    before = run_files(out)
    result = cli("train", "--force", "--epochs", "1", *_missing_data(tmp_path), "--out", out)
    assert result.exit_code == 2 and run_files(out) == before


def test_a_failed_download_leaves_no_data_folder_or_partial_archive(cli, tmp_path, monkeypatch):
    """The connection drops after part of the archive arrived: torchvision's own code made the folder
    and wrote the partial file; both go, and so does the run directory."""
    from torchvision.datasets import utils

    def dropped(url, filename, chunk_size=None):
        Path(filename).write_bytes(b"the first bytes of an archive")
        raise urllib.error.URLError("connection reset by peer")

    monkeypatch.setattr(utils, "_get_redirect_url", lambda url, max_hops=3: url)
    monkeypatch.setattr(utils, "_urlretrieve", dropped)
    data, out = tmp_path / "fresh" / "data", tmp_path / "runs" / "r"
    result = cli("train", "--dataset", "cifar10", "--model", "small-cnn", "--download", "--data-dir", data,
                 "--epochs", "1", "--out", out)
    assert result.exit_code == 1 and "downloading cifar10" in one_line_error(result)
    assert not (tmp_path / "fresh").exists() and not (tmp_path / "runs").exists()

    kept = tmp_path / "kept"  # a data folder that was there before stays, without the broken archive
    (kept / "notes").mkdir(parents=True)
    assert cli("train", "--dataset", "cifar10", "--model", "small-cnn", "--download", "--data-dir", kept,
               "--epochs", "1", "--out", out).exit_code == 1
    assert sorted(p.name for p in kept.iterdir()) == ["notes"]


def test_a_spectrogram_cache_that_does_not_fit_leaves_no_partial_file_or_folder(tmp_path, monkeypatch):
    """A full disk while caching Speech Commands spectrograms: the split still loads, and the data folder
    is left as it was (torch.save reports a full disk as a RuntimeError after writing part of the file)."""
    from test_data_formats import write_speech

    from mixup_cli.data import load_dataset

    write_speech(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())

    def disk_full(payload, path):
        Path(path).write_bytes(b"part of a tensor archive")
        raise RuntimeError("[enforce fail at inline_container.cc] . unexpected pos 4096 vs 3850")

    monkeypatch.setattr(torch, "save", disk_full)
    assert len(load_dataset("speechcommands", "train", str(tmp_path))) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_gitignore_covers_downloaded_data_and_runs_but_not_the_data_package():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=SRC).returncode == 0

    assert ignored("data/cifar-10-batches-py/data_batch_1") and ignored("runs/quickstart/last.pt")
    assert not ignored("mixup_cli/data/new_dataset.py")


# ---------------------------------------------------------------------------------------------
# 4. corrupt-labels: --force, and raising --epochs on --resume

def test_corrupt_labels_force_replaces_an_experiment_and_keeps_other_files(cli, tmp_path):
    out = tmp_path / "exp"
    first = cli("corrupt-labels", *TINY, "--epochs", "1", "--fraction", "0.5", "--methods", "erm", "--out", out)
    assert first.exit_code == 0, first.stderr
    (out / "notes.txt").write_text("mine")
    again = cli("corrupt-labels", *TINY, "--epochs", "1", "--fraction", "0.5", "--methods", "erm", "--out", out)
    assert again.exit_code == 2 and "--force" in one_line_error(again)

    replaced = cli("corrupt-labels", *TINY, "--epochs", "1", "--fraction", "0.2", "--methods", "mixup",
                   "--force", "--out", out, "--json")
    assert replaced.exit_code == 0, replaced.stderr
    assert [(r["fraction"], r["method"]) for r in replaced.json()["rows"]] == [(0.2, "mixup")]
    assert not (out / "fraction-0.5").exists() and (out / "notes.txt").read_text() == "mine"
    both = cli("corrupt-labels", "--resume", "--force", "--out", out)
    assert both.exit_code == 2 and "pass one of them" in one_line_error(both)


def test_corrupt_labels_resume_extends_finished_runs_and_refuses_fewer_epochs(cli, tmp_path):
    out = tmp_path / "exp"
    first = cli("corrupt-labels", *TINY, "--epochs", "1", "--fraction", "0.5", "--methods", "erm", "--out", out,
                "--json")
    assert first.exit_code == 0, first.stderr
    run = out / "fraction-0.5" / "erm"
    extended = cli("corrupt-labels", "--resume", "--epochs", "2", "--out", out, "--json")
    assert extended.exit_code == 0, extended.stderr
    assert "ERM: resuming" in extended.stderr
    row = extended.json()["rows"][0]
    assert row["epochs"] == 2 and len((run / "metrics.jsonl").read_text().splitlines()) == 2
    # The training errors are the extended model's, not the cached ones of epoch 1.
    from mixup_cli.checkpoint import load_model
    from mixup_cli.corrupt_labels import memorization_errors
    from mixup_cli.data.labels import load_label_file

    labels = load_label_file(out / "fraction-0.5" / "labels.pt")
    fresh = memorization_errors(load_model(run / "last.pt"), labels, torch.device("cpu"))
    assert row["train_error_real"] == pytest.approx(fresh["train_error_real"])

    fewer = cli("corrupt-labels", "--resume", "--epochs", "1", "--out", out)
    assert fewer.exit_code == 2 and "--epochs 2 or more" in one_line_error(fewer)


def test_corrupt_labels_refused_at_start_up_leaves_nothing(cli, tmp_path):
    (tmp_path / "c.yaml").write_text("model_options: {depth: 3}\n")
    out = tmp_path / "new" / "exp"
    result = cli("corrupt-labels", *TINY, "--config", tmp_path / "c.yaml", "--epochs", "1", "--fraction", "0.5",
                 "--methods", "erm", "--out", out)
    assert result.exit_code == 2 and "depth" in result.stderr
    assert not (tmp_path / "new").exists()
