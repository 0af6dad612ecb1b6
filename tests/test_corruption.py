"""Corrupted labels (§3.4, Table 2): the corruption itself, label files, `train --labels`, the
per-subset training errors, and `mixup corrupt-labels` end to end on digits with the small CNN."""
from __future__ import annotations

import json
import math

import pytest
import torch

from mixup_cli.config import CorruptLabelsConfig, parse_per_fraction, resolve_experiment_config
from mixup_cli.corrupt_labels import (METHODS, ExperimentCallbacks, prepare_experiment, run_experiment, subset_errors,
                                      train_config, value_at)
from mixup_cli.data import DatasetSpec, get_dataset, load_dataset
from mixup_cli.data.labels import (CorruptedLabels, apply_label_file, corrupt_labels, load_label_file,
                                   make_corrupted_labels, realized_noise, save_label_file)
from mixup_cli.errors import ConfigError
from mixup_cli.trainer import Interrupted

TINY = ("--dataset", "digits", "--model", "small-cnn", "--batch-size", "128", "--milestones", "1")


# ---------------------------------------------------------------------------------------------
# The corruption.

def test_rate_is_within_sampling_error_and_draws_cover_all_classes():
    n, classes, p = 20000, 10, 0.3
    labels = torch.arange(n) % classes
    new, mask = corrupt_labels(labels, classes, p, seed=1)
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(mask.double().mean().item() - p) < 4 * sigma
    # Uniform over all classes: a chosen label keeps its value with probability 1/C.
    expected_noise = p * (1 - 1 / classes)
    assert abs(realized_noise(new, labels) - expected_noise) < 4 * math.sqrt(expected_noise * (1 - expected_noise) / n)
    assert torch.equal(new[~mask], labels[~mask])
    assert set(new[mask].tolist()) == set(range(classes))


def test_same_seed_same_labels_other_seed_other_labels_and_fractions_nest():
    labels = torch.arange(1000) % 7
    a = corrupt_labels(labels, 7, 0.5, seed=3)
    b = corrupt_labels(labels, 7, 0.5, seed=3)
    c = corrupt_labels(labels, 7, 0.5, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    small = corrupt_labels(labels, 7, 0.2, seed=3)[1]
    assert bool((small <= a[1]).all())  # chosen at 20% => chosen at 50%


@pytest.mark.parametrize("fraction", [0.0, 0.37, 0.5, 1.0])
def test_exact_corrupts_exactly_round_p_n(fraction):
    labels = torch.arange(333) % 10
    _, mask = corrupt_labels(labels, 10, fraction, seed=0, exact=True)
    assert int(mask.sum()) == round(fraction * 333)


def test_exclude_true_never_keeps_a_label():
    labels = torch.arange(5000) % 3
    new, mask = corrupt_labels(labels, 3, 1.0, seed=2, exclude_true=True)
    assert bool(mask.all()) and bool((new != labels).all())
    assert realized_noise(new, labels) == 1.0
    assert set(new[labels == 0].tolist()) == {1, 2}


def test_fraction_outside_unit_interval_is_refused():
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        corrupt_labels(torch.zeros(10, dtype=torch.long), 10, 1.5, seed=0)


def test_only_training_labels_are_corrupted():
    corrupted = make_corrupted_labels("digits", 0.5, seed=0)
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(corrupted.labels) == len(train) != len(test)
    assert torch.equal(corrupted.original, train.labels)
    assert torch.equal(load_dataset("digits", "test").labels, test.labels)


# ---------------------------------------------------------------------------------------------
# Label files.

def test_label_file_round_trips_and_relabels_the_training_split(tmp_path):
    corrupted = make_corrupted_labels("digits", 0.4, seed=5, exact=True, exclude_true=True)
    path = save_label_file(corrupted, tmp_path / "labels.pt")
    back = load_label_file(path, "digits", len(corrupted.labels))
    assert back.settings() == corrupted.settings()
    for key in ("labels", "original", "mask"):
        assert torch.equal(getattr(back, key), getattr(corrupted, key))
    spec = get_dataset("digits")
    relabeled = apply_label_file(spec.load("train"), str(path), spec)
    assert torch.equal(relabeled.labels, corrupted.labels)
    with pytest.raises(ConfigError, match="already exists"):
        save_label_file(corrupted, path)


def _write(path, corrupted: CorruptedLabels):
    save_label_file(corrupted, path, overwrite=True)
    return str(path)


def test_train_refuses_labels_of_another_dataset_size_or_a_damaged_file(tmp_path, cli):
    good = make_corrupted_labels("digits", 0.5, seed=0)
    other = CorruptedLabels(**{**good.__dict__, "dataset": "cifar10"})
    short = CorruptedLabels(**{**good.__dict__, "labels": good.labels[:-1], "original": good.original[:-1],
                               "mask": good.mask[:-1]})
    out_of_range = CorruptedLabels(**{**good.__dict__, "labels": torch.where(good.mask, 10, good.labels)})
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "mixup-cli-labels", "version": 1, "labels": torch.zeros(3)}, foreign)
    cases = {
        _write(tmp_path / "other.pt", other): "made for dataset 'cifar10', not 'digits'",
        _write(tmp_path / "short.pt", short): f"holds {len(good.labels) - 1} labels but the training split",
        _write(tmp_path / "range.pt", out_of_range): "classes outside 0..9",
        str(garbage): "cannot be read",
        str(foreign): "not a valid mixup labels file",
        str(tmp_path / "missing.pt"): "does not exist",
    }
    for path, message in cases.items():
        out = tmp_path / ("run-" + path.split("/")[-1])
        result = cli("train", "--epochs", "1", "--labels", path, "--out", out)
        assert result.exit_code == 2, (path, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert not (out / "last.pt").exists()


def test_train_with_labels_trains_and_records_the_file(tmp_path, cli):
    labels = tmp_path / "noisy.pt"
    result = cli("corrupt-labels", *TINY, "--fraction", "0.3", "--save-labels", labels, "--labels-only", "--json")
    assert result.exit_code == 0, result.stderr
    info = result.json()
    assert info["fraction"] == 0.3 and info["dataset"] == "digits" and info["n"] == 1437
    assert info["realized_noise"] == pytest.approx(load_label_file(labels).realized_noise)
    result = cli("train", "--epochs", "1", "--labels", labels, "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.stderr
    assert "labels: " + str(labels) in (tmp_path / "run" / "config.yaml").read_text()
    again = cli("corrupt-labels", *TINY, "--fraction", "0.3", "--save-labels", labels, "--labels-only")
    assert again.exit_code == 2 and "already exists" in again.stderr


# ---------------------------------------------------------------------------------------------
# Training error per subset.

def test_subset_errors_score_each_subset_against_its_labels():
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    predictions = torch.tensor([0, 1, 2, 0, 4, 0, 0, 7])
    mask = torch.tensor([True, True, True, True, False, False, False, False])
    errors = subset_errors(predictions, labels, mask)
    assert errors == {"train_error_real": 50.0, "train_error_corrupted": 25.0, "n_real": 4, "n_corrupted": 4}
    none_chosen = subset_errors(predictions, labels, torch.zeros(8, dtype=torch.bool))
    assert none_chosen["train_error_corrupted"] is None and none_chosen["train_error_real"] == 37.5


# ---------------------------------------------------------------------------------------------
# The protocol.

def test_paper_defaults_per_fraction_and_overrides():
    config = resolve_experiment_config(overrides={"dataset": "digits", "model": "small-cnn"})
    settings = {(f, m): METHODS.get(m).settings(config, f) for f in (0.2, 0.5, 0.8) for m in METHODS.names()}
    assert settings[(0.2, "mixup")] == (8.0, None) and settings[(0.5, "mixup")] == (32.0, None)
    assert settings[(0.8, "erm+dropout")] == (0.0, 0.8) and settings[(0.2, "erm+dropout")] == (0.0, 0.7)
    assert settings[(0.2, "mixup+dropout")] == (4.0, 0.1) and settings[(0.8, "mixup+dropout")] == (8.0, 0.3)
    assert settings[(0.5, "erm")] == (0.0, None)
    assert value_at(parse_per_fraction("k", "0.2:8,0.5:32"), 0.3) == 8.0
    assert value_at(parse_per_fraction("k", "16"), 0.9) == 16.0
    flagged = resolve_experiment_config(overrides={"dataset": "digits", "model": "small-cnn", "mixup_alpha": "4"})
    assert METHODS.get("mixup").settings(flagged, 0.5) == (4.0, None)


def test_yaml_takes_per_fraction_mappings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: digits\nmodel: small-cnn\nmixup-alpha: {0.5: 16, 0.8: 2}\ndropout: 0.5\n")
    config = resolve_experiment_config(path)
    assert METHODS.get("mixup").settings(config, 0.5) == (16.0, None)
    assert METHODS.get("erm+dropout").settings(config, 0.2) == (0.0, 0.5)


def _datasets_without_labels(monkeypatch):
    """Two datasets with nothing to corrupt, registered for one test only."""
    from torch.utils.data import TensorDataset

    from mixup_cli.data import DATASETS

    def regression(split, data_dir, augment):
        return TensorDataset(torch.rand(20, 3), torch.rand(20))

    for name, classes in (("tiny-one-class", 1), ("tiny-regression", 2)):
        spec = DatasetSpec(name, classes, (3,), (0.0,) * 3, (1.0,) * 3, "small-cnn", loader=regression)
        monkeypatch.setitem(DATASETS._entries, name, spec)


@pytest.mark.parametrize("args, message", [
    (("--fraction", "0.5,1.5"), "must be at most 1"),
    (("--fraction", "-0.1"), "must be at least 0"),
    (("--methods", "erm,mixpu"), "did you mean 'mixup'"),
    (("--mixup-alpha", "0.5:x"), "FRACTION:VALUE"),
    (("--dropout", "1.2"), "in [0, 1)"),
    (("--dataset", "tiny-one-class"), "no class labels to corrupt"),
    (("--dataset", "tiny-regression"), "no class labels to corrupt"),
    (("--save-labels", "x.pt", "--fraction", "0.2,0.5"), "give a single --fraction"),
])
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, monkeypatch, args, message):
    _datasets_without_labels(monkeypatch)
    result = cli("corrupt-labels", *TINY, "--out", tmp_path / "x", *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_miniature_protocol_end_to_end(cli, tmp_path):
    out = tmp_path / "exp"
    result = cli("corrupt-labels", *TINY, "--epochs", "1", "--fraction", "0.5", "--methods", "erm,mixup+dropout",
                 "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    payload = result.json()
    rows = payload["rows"]
    assert [(r["fraction"], r["method"]) for r in rows] == [(0.5, "erm"), (0.5, "mixup+dropout")]
    assert (rows[0]["alpha"], rows[0]["dropout"]) == (0.0, None)
    assert (rows[1]["alpha"], rows[1]["dropout"]) == (8.0, 0.3)
    labels = load_label_file(out / "fraction-0.5" / "labels.pt", "digits", 1437)
    for r in rows:
        assert r["realized_noise"] == pytest.approx(labels.realized_noise)
        assert r["paper"] is None  # digits is not the paper's setting
        for key in ("best_test_error", "last_test_error", "train_error_real", "train_error_corrupted"):
            assert 0.0 <= r[key] <= 100.0
        assert r["best_test_error"] <= r["last_test_error"]
        assert r["n_real"] + r["n_corrupted"] == 1437 and r["n_corrupted"] == int(labels.mask.sum())
    assert "Table 2" in result.stderr and "mixup + dropout (α = 8, p = 0.3)" in result.stderr

    # The training errors are those of the final model on the un-augmented training split, per subset.
    from mixup_cli.checkpoint import load_model

    model = load_model(rows[1]["run_dir"] + "/last.pt")
    train = load_dataset("digits", "train")
    with torch.no_grad():
        predicted = model(train.to_raw(train.inputs)).argmax(1)
    wrong = predicted != labels.labels
    assert rows[1]["train_error_real"] == pytest.approx(100 * wrong[~labels.mask].double().mean().item())
    assert rows[1]["train_error_corrupted"] == pytest.approx(100 * wrong[labels.mask].double().mean().item())

    # Each sub-run is a normal run directory: `mixup eval` scores it on the untouched test split.
    evaluated = cli("eval", "--ckpt", rows[0]["run_dir"], "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert evaluated.json()["test_error"] == pytest.approx(rows[0]["best_test_error"])

    # The directory is not reused without --resume.
    again = cli("corrupt-labels", *TINY, "--epochs", "1", "--fraction", "0.5", "--out", out)
    assert again.exit_code == 2 and "--resume" in again.stderr


class _StopInSecondRun(ExperimentCallbacks):
    def __init__(self):
        self.runs, self.steps = 0, 0

    def on_run_start(self, info):
        self.runs += 1

    def on_step(self, epoch, step, steps, loss, samples_per_second):
        self.steps += self.runs == 2

    def __call__(self) -> bool:
        return self.runs == 2 and self.steps >= 3


def test_interrupted_experiment_resumes_without_redoing_finished_runs(cli, tmp_path):
    out = tmp_path / "exp"
    overrides = {"dataset": "digits", "model": "small-cnn", "batch_size": 128, "epochs": 2, "milestones": [1],
                 "fraction": [0.5], "methods": ["erm", "mixup"], "out": str(out)}
    config = resolve_experiment_config(overrides=overrides)
    root = prepare_experiment(config, resume=False, explicit=set(overrides))
    stop = _StopInSecondRun()
    with pytest.raises(Interrupted):
        run_experiment(config, root, callbacks=stop, should_stop=stop)
    erm, mixup = out / "fraction-0.5" / "erm", out / "fraction-0.5" / "mixup"
    assert (erm / "summary.json").is_file() and not (mixup / "summary.json").exists()
    assert (mixup / "last.pt").is_file()
    finished = (erm / "last.pt").stat().st_mtime_ns

    contradicting = cli("corrupt-labels", "--resume", "--out", out, "--lr", "0.5")
    assert contradicting.exit_code == 2 and "contradict" in contradicting.stderr

    result = cli("corrupt-labels", "--resume", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert "ERM: finished already" in result.stderr and "mixup (α = 32): resuming" in result.stderr
    assert (erm / "last.pt").stat().st_mtime_ns == finished
    rows = result.json()["rows"]
    assert [r["method"] for r in rows] == ["erm", "mixup"] and all(r["epochs"] == 2 for r in rows)
    metrics = [json.loads(line) for line in (mixup / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert train_config(config, 0.5, "mixup", mixup, out / "fraction-0.5" / "labels.pt").alpha == 32.0


def test_paper_numbers_stand_only_beside_the_papers_setting():
    from mixup_cli.corrupt_labels import is_paper_setting

    paper = CorruptLabelsConfig()  # the defaults: CIFAR-10, PreAct ResNet-18, 200 epochs
    assert is_paper_setting(paper, 0.5, "mixup") and is_paper_setting(paper, 0.2, "erm+dropout")
    assert not is_paper_setting(paper, 0.3, "mixup")
    for change in ({"epochs": 100}, {"dataset": "digits"}, {"mixup_alpha": "16"}, {"exclude_true": True}):
        config = CorruptLabelsConfig(**change)
        assert not is_paper_setting(config, 0.5, "mixup"), change
    assert is_paper_setting(CorruptLabelsConfig(mixup_alpha="16"), 0.5, "erm")
