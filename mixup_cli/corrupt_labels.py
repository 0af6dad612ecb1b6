"""`mixup corrupt-labels`: the memorization experiment of §3.4 (Table 2). ERM, dropout, mixup and
mixup + dropout are trained on the same randomly corrupted CIFAR-10 labels and compared on test error
(best and last epoch) and on training error over the kept ("real") and the corrupted examples.

Here is the experiment's protocol (its methods, per-fraction settings, config, directory and the
training errors per subset); the corrupted labels and their files are data (data/labels.py).

An experiment lives in one directory:

    <out>/experiment.yaml                  the resolved CorruptLabelsConfig
    <out>/fraction-<p>/labels.pt           the corrupted labels of fraction p (usable by `mixup train --labels`)
    <out>/fraction-<p>/<method>/           a normal run directory (trainer.train), resumable, evaluable
    <out>/fraction-<p>/<method>/memorization.json   its training errors per subset, once finished

A sub-run whose summary.json holds the experiment's epochs is finished and is never trained again;
one with last.pt and no such summary (interrupted, or --epochs raised on --resume) is resumed from it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from . import runs
from .config import CorruptLabelsConfig, TrainConfig, load_yaml, parse_per_fraction, resolve_config, to_dict
from .errors import ConfigError
from .registry import Registry

if TYPE_CHECKING:  # torch is imported inside the functions: the CLI builds its options without it
    import torch

    from .data.labels import CorruptedLabels

EXPERIMENT = runs.EXPERIMENT
LABELS = "labels.pt"
MEMORIZATION = "memorization.json"

# ---------------------------------------------------------------------------------------------
# Per-fraction settings (parsed by config/corrupt_labels.py).

def value_at(pairs: dict[float, float], fraction: float) -> float:
    """The value for `fraction`: its own, else the nearest listed fraction's (the larger on a tie)."""
    if -1.0 in pairs:
        return pairs[-1.0]
    return pairs[min(pairs, key=lambda f: (abs(f - fraction), -f))]


# ---------------------------------------------------------------------------------------------
# The methods of Table 2, as presets over the trainer's alpha and dropout.

@dataclasses.dataclass(frozen=True)
class MethodPreset:
    name: str
    title: str  # the row label of Table 2
    alpha_key: Optional[str] = None  # config key of its per-fraction alpha; None: ERM (alpha 0)
    dropout_key: Optional[str] = None  # config key of its per-fraction dropout; None: the model's default

    def settings(self, config: "CorruptLabelsConfig", fraction: float) -> tuple[float, Optional[float]]:
        """(alpha, dropout) of this method at `fraction`."""
        alpha = value_at(parse_per_fraction(self.alpha_key, getattr(config, self.alpha_key)), fraction) \
            if self.alpha_key else 0.0
        dropout = value_at(parse_per_fraction(self.dropout_key, getattr(config, self.dropout_key)), fraction) \
            if self.dropout_key else None
        return alpha, dropout

    def label(self, alpha: float, dropout: Optional[float]) -> str:
        """'mixup + dropout (α = 8, p = 0.3)', as Table 2 writes it."""
        parts = ([f"α = {alpha:g}"] if self.alpha_key else []) + ([f"p = {dropout:g}"] if self.dropout_key else [])
        return f"{self.title} ({', '.join(parts)})" if parts else self.title


METHODS: Registry[MethodPreset] = Registry("method")


def register_method(preset: MethodPreset) -> MethodPreset:
    METHODS.register(preset.name)(preset)
    return preset


register_method(MethodPreset("erm", "ERM"))
register_method(MethodPreset("erm+dropout", "ERM + dropout", dropout_key="dropout"))
register_method(MethodPreset("mixup", "mixup", alpha_key="mixup_alpha"))
register_method(MethodPreset("mixup+dropout", "mixup + dropout", alpha_key="mixup_dropout_alpha",
                             dropout_key="mixup_dropout_p"))

# Table 2 of the paper (PreAct ResNet-18 on CIFAR-10, 200 epochs): (fraction, method) ->
# (best test error, last test error, training error real, training error corrupted), percent.
PAPER_TABLE2: dict[tuple[float, str], tuple[float, float, float, float]] = {
    (0.2, "erm"): (12.7, 16.6, 0.05, 0.28),
    (0.2, "erm+dropout"): (8.8, 10.4, 5.26, 83.55),
    (0.2, "mixup"): (5.9, 6.4, 2.27, 86.32),
    (0.2, "mixup+dropout"): (6.2, 6.2, 1.92, 85.02),
    (0.5, "erm"): (18.8, 44.6, 0.26, 0.64),
    (0.5, "erm+dropout"): (14.1, 15.5, 12.71, 86.98),
    (0.5, "mixup"): (11.3, 12.7, 5.84, 85.71),
    (0.5, "mixup+dropout"): (10.9, 10.9, 7.56, 87.90),
    (0.8, "erm"): (36.5, 73.9, 0.62, 0.83),
    (0.8, "erm+dropout"): (30.9, 35.1, 29.84, 86.37),
    (0.8, "mixup"): (25.3, 30.9, 18.92, 85.44),
    (0.8, "mixup+dropout"): (24.0, 24.8, 19.70, 87.67),
}


def experiment_dir(config: CorruptLabelsConfig) -> Path:
    return runs.resolve_out(runs.CORRUPT_LABELS_EXPERIMENT, config.out, config)


def fraction_dir(root: Path, fraction: float) -> Path:
    return root / f"fraction-{fraction:g}"


def prepare_experiment(config: CorruptLabelsConfig, resume: bool, explicit: set[str], force: bool = False,
                       lock: Optional[runs.DirLock] = None) -> Path:
    """Create the experiment directory, or check that a resumed one was started with these settings.
    `force` replaces an experiment already there (its own files only). `lock` (a DirLock) is taken on
    the directory before anything is written or deleted in it."""
    if lock is None:  # held while preparing only; experiment() holds one for the whole experiment
        with runs.DirLock() as own:
            return prepare_experiment(config, resume, explicit, force, own)
    root = experiment_dir(config)
    if resume:
        _check_resumed(root, config, explicit)
        lock.take(root)
    else:
        _create(root, config, force, lock)
    import yaml

    runs.write_text_atomic(root / EXPERIMENT, yaml.safe_dump({**to_dict(config), "out": str(root)}, sort_keys=False))
    return root


def _check_resumed(root: Path, config: CorruptLabelsConfig, explicit: set[str]) -> None:
    saved = runs.read_saved_config(runs.CORRUPT_LABELS_EXPERIMENT, root)
    runs.check_resume_config(runs.CORRUPT_LABELS_EXPERIMENT, saved, config, explicit)
    planned = int(saved.get("epochs", 0))
    if config.epochs < planned:  # its finished runs hold `planned` epochs, which a lower number would contradict
        raise ConfigError(f"--resume --epochs {config.epochs}: the runs of the experiment in '{root}' train {planned} "
                          f"epochs (finished ones hold all of them); pass --epochs {planned} or more (or leave it "
                          f"out), or start a new experiment with --force")


def _create(root: Path, config: CorruptLabelsConfig, force: bool, lock: runs.DirLock) -> None:
    """Everything is checked before the first write; `force` deletes the old experiment only then."""
    runs.check_out(runs.CORRUPT_LABELS_EXPERIMENT, root, resume=False, force=force)
    from .data.labels import training_labels

    original = training_labels(config.dataset, config.data_dir)  # a dataset without labels fails here, before any write
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory '{root}' ({exc.strerror}); choose another --out") from None
    lock.take(root)
    if force:
        clear_experiment(root)
    for fraction in config.fraction:
        experiment_labels(config, fraction, root, original)


def clear_experiment(root: Path) -> None:
    """Delete an experiment's own files (experiment.yaml, each fraction's labels, its sub-runs' files)
    and the folders that leaves empty; anything else under `root` stays."""
    (root / EXPERIMENT).unlink(missing_ok=True)
    for folder in (p for p in root.glob("fraction-*") if p.is_dir()):
        for run_dir in (p for p in folder.iterdir() if p.is_dir()):
            runs.clear_run(run_dir)
            (run_dir / MEMORIZATION).unlink(missing_ok=True)
            _remove_if_empty(run_dir)
        (folder / LABELS).unlink(missing_ok=True)
        _remove_if_empty(folder)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # it holds something that is not ours


@contextlib.contextmanager
def experiment(config: CorruptLabelsConfig, resume: bool, explicit: set[str], force: bool = False):
    """prepare_experiment around a block that runs it in the yielded directory. When a new experiment's
    block fails before any sub-run saved a checkpoint (a refused start), its files go again, and the
    folders this call created with them: nothing is left to resume, so nothing is left behind."""
    root = experiment_dir(config)
    with runs.removing_new_empty_dirs(root), runs.DirLock() as lock:
        root = prepare_experiment(dataclasses.replace(config, out=str(root)), resume, explicit, force, lock)
        try:
            yield root
        except BaseException:
            if not resume and not any(root.glob(f"fraction-*/*/{runs.LAST}")):
                clear_experiment(root)
            raise


def experiment_labels(config: CorruptLabelsConfig, fraction: float, root: Path, original=None):
    """The corrupted labels of `fraction`: made once, then read back from the experiment directory."""
    from .data.labels import load_label_file, make_corrupted_labels, save_label_file

    path = fraction_dir(root, fraction) / LABELS
    wanted = {"dataset": _dataset_name(config), "fraction": float(fraction), "seed": config.corruption_seed,
              "exact": config.exact, "exclude_true": config.exclude_true}
    if path.is_file():
        corrupted = load_label_file(path)
        if corrupted.settings() != wanted:
            raise ConfigError(f"labels file '{path}' was made with {corrupted.settings()}, not this experiment's "
                              f"{wanted}; start a new experiment in another --out")
        return corrupted, path
    corrupted = make_corrupted_labels(config.dataset, fraction, config.corruption_seed, config.exact,
                                      config.exclude_true, config.data_dir, original)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_label_file(corrupted, path)
    return corrupted, path


def _dataset_name(config: CorruptLabelsConfig) -> str:
    from .data import get_dataset

    return get_dataset(config.dataset).name


def train_config(config: CorruptLabelsConfig, fraction: float, method: str, run_dir: Path,
                 labels_path: Path) -> TrainConfig:
    """The TrainConfig of one sub-run: the shared recipe, the method's alpha and dropout, the labels."""
    alpha, dropout = METHODS.get(method).settings(config, fraction)
    shared = {k: getattr(config, k) for k in (
        "dataset", "data_dir", "model", "model_options", "epochs", "batch_size", "eval_batch_size", "optimizer",
        "lr", "momentum", "weight_decay", "schedule", "milestones", "gamma", "seed", "device", "bf16", "workers",
        "log")}
    return resolve_config(TrainConfig, overrides={**shared, "alpha": alpha, "dropout": dropout, "out": str(run_dir),
                                                  "labels": str(labels_path)})


def is_paper_setting(config: CorruptLabelsConfig, fraction: float, method: str) -> bool:
    """Whether Table 2 reports this very setting (so its numbers may stand beside ours)."""
    if (fraction, method) not in PAPER_TABLE2 or config.exact or config.exclude_true:
        return False
    defaults = CorruptLabelsConfig()
    recipe = ("dataset", "model", "model_options", "epochs", "batch_size", "optimizer", "lr", "momentum",
              "weight_decay", "schedule", "milestones", "gamma")
    if any(getattr(config, k) != getattr(defaults, k) for k in recipe):
        return False
    preset = METHODS.get(method)
    return preset.settings(config, fraction) == preset.settings(defaults, fraction)


# ---------------------------------------------------------------------------------------------
# Running it.

class ExperimentCallbacks:
    """The trainer's hooks (trainer.TrainCallbacks, not imported here so the CLI loads without torch),
    plus one before and one after each sub-run."""

    def on_start(self, info: dict) -> None: ...

    def on_step(self, epoch: int, step: int, steps: int, loss: float, samples_per_second: float) -> None: ...

    def on_epoch(self, record: dict) -> None: ...

    def on_run_start(self, info: dict) -> None: ...

    def on_run_end(self, row: dict) -> None: ...


def sub_run_state(run_dir: Path, epochs: Optional[int] = None) -> str:
    """'done' (a summary.json of at least `epochs` epochs), 'resume' (a last.pt to continue from: an
    interrupted run, or a finished one whose epochs were raised) or 'new'."""
    summary = run_dir / runs.SUMMARY
    if summary.is_file() and (epochs is None or json.loads(summary.read_text())["epochs"] >= epochs):
        return "done"
    if (run_dir / runs.LAST).is_file():
        return "resume"
    return "new"


def run_experiment(config: CorruptLabelsConfig, root: Path, callbacks: Optional[ExperimentCallbacks] = None,
                   should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Train every (fraction, method) not finished yet under `root`; the rows of Table 2.

    Raises trainer.Interrupted when `should_stop` says so; running it again with the same
    arguments continues where it stopped.
    """
    from .trainer import train

    callbacks = callbacks or ExperimentCallbacks()
    labels = {fraction: experiment_labels(config, fraction, root) for fraction in config.fraction}
    rows = []
    for fraction in config.fraction:
        corrupted, labels_path = labels[fraction]
        for method in config.methods:
            run_dir = fraction_dir(root, fraction) / method
            train_cfg = train_config(config, fraction, method, run_dir, labels_path)
            state = sub_run_state(run_dir, train_cfg.epochs)
            callbacks.on_run_start({"fraction": fraction, "method": method, "alpha": train_cfg.alpha,
                                    "dropout": train_cfg.dropout, "run_dir": str(run_dir), "state": state,
                                    "label": METHODS.get(method).label(train_cfg.alpha, train_cfg.dropout),
                                    "epochs": train_cfg.epochs})
            if state != "new":
                saved = load_yaml(run_dir / runs.CONFIG)
                # Paths may be spelled differently (another cwd); the labels file itself is checked above.
                runs.check_resume_config(runs.TRAIN_RUN, saved, train_cfg, set(saved) - {"labels", "data_dir"})
            if state != "done":
                (run_dir / MEMORIZATION).unlink(missing_ok=True)  # computed from the model about to change
                train(train_cfg, run_dir, resume=state == "resume", force=state == "new", callbacks=callbacks,
                      should_stop=should_stop)
            row = sub_run_row(config, fraction, method, train_cfg, run_dir, corrupted)
            rows.append(row)
            callbacks.on_run_end(row)
    return {"dataset": _dataset_name(config), "model": config.model, "epochs": config.epochs, "out": str(root),
            "exact": config.exact, "exclude_true": config.exclude_true, "label_seed": config.corruption_seed,
            "rows": rows}


def sub_run_row(config: CorruptLabelsConfig, fraction: float, method: str, train_cfg: TrainConfig,
                run_dir: Path, corrupted) -> dict:
    """One row of Table 2 for a finished sub-run (training errors computed once, then cached)."""
    summary = json.loads((run_dir / runs.SUMMARY).read_text())
    errors = _memorization(run_dir, corrupted, train_cfg)
    paper = PAPER_TABLE2.get((fraction, method)) if is_paper_setting(config, fraction, method) else None
    return {
        "fraction": fraction, "method": method, "alpha": train_cfg.alpha, "dropout": train_cfg.dropout,
        "best_test_error": summary["best_test_error"], "last_test_error": summary["test_error"],
        "train_error_real": errors["train_error_real"], "train_error_corrupted": errors["train_error_corrupted"],
        "realized_noise": corrupted.realized_noise, "n_real": errors["n_real"], "n_corrupted": errors["n_corrupted"],
        "best_epoch": summary["best_epoch"], "epochs": summary["epochs"], "run_dir": str(run_dir),
        "paper": dict(zip(("best_test_error", "last_test_error", "train_error_real", "train_error_corrupted"), paper))
        if paper else None,
    }


def _memorization(run_dir: Path, corrupted, train_cfg: TrainConfig) -> dict:
    from .checkpoint import open_checkpoint

    cache = run_dir / MEMORIZATION
    if cache.is_file():
        return json.loads(cache.read_text())
    opened = open_checkpoint(run_dir / runs.LAST, train_cfg.device)  # the last epoch's model, as Table 2 reads
    errors = memorization_errors(opened.model, corrupted, opened.device, train_cfg.data_dir,
                                 train_cfg.eval_batch_size, train_cfg.workers)
    runs.write_text_atomic(cache, json.dumps(errors, indent=2) + "\n")
    return errors


# ---------------------------------------------------------------------------------------------
# Memorization: training error on the kept and on the corrupted examples (Table 2's last columns).

def predict(model: torch.nn.Module, batches: Iterable) -> torch.Tensor:
    """The predicted class of every example, in batch order, on the batches' device."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([model(inputs).argmax(dim=1) for inputs, _ in batches])
    finally:
        model.train(was_training)


def subset_errors(predictions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> dict:
    """Error (percent) of `predictions` against `labels` on the kept (~mask) and the corrupted (mask) examples.

    The kept examples' labels are their true ones, so "real" is the error against the truth there;
    "corrupted" is the error against the corrupted labels, near 0 when a model has memorized them.
    An empty subset gives None.
    """
    import torch

    mask = mask.to(predictions.device)
    wrong = predictions != labels.to(predictions.device)
    counts = torch.stack([(~mask).sum(), mask.sum(), (wrong & ~mask).sum(), (wrong & mask).sum()]).tolist()
    n_real, n_corrupted, wrong_real, wrong_corrupted = counts  # the one host sync

    def percent(k: int, n: int) -> Optional[float]:
        return 100.0 * k / n if n else None

    return {"train_error_real": percent(wrong_real, n_real),
            "train_error_corrupted": percent(wrong_corrupted, n_corrupted),
            "n_real": n_real, "n_corrupted": n_corrupted}


def memorization_errors(model: torch.nn.Module, corrupted: CorruptedLabels, device: torch.device,
                        data_dir: Optional[str] = None, batch_size: int = 512,
                        workers: Optional[int] = None) -> dict:
    """Evaluate `model` on the un-augmented training split against the corrupted labels, per subset."""
    from .data import get_dataset
    from .data.batches import make_batches
    from .data.labels import relabel

    spec = get_dataset(corrupted.dataset)
    train_set = relabel(spec.load("train", data_dir), corrupted.labels)
    batches = make_batches(train_set, batch_size, device, shuffle=False, workers=workers)
    predictions = predict(model, batches)
    return subset_errors(predictions, corrupted.labels, corrupted.mask)


TABLE2_KEYS = ("best_test_error", "last_test_error", "train_error_real", "train_error_corrupted")


def aggregate_seeds(results: list[dict]) -> list[dict]:
    """Table 2's rows over several seeds' experiments: mean ± std per (fraction, method) and key."""
    from .seeds import mean_std

    rows = [row for result in results for row in result["rows"]]
    cells = list(dict.fromkeys((r["fraction"], r["method"]) for r in rows))
    merged = []
    for fraction, method in cells:
        chosen = [r for r in rows if (r["fraction"], r["method"]) == (fraction, method)]
        merged.append({"fraction": fraction, "method": method, "runs": len(chosen),
                       "realized_noise": mean_std(r["realized_noise"] for r in chosen),
                       **{key: mean_std(r[key] for r in chosen) for key in TABLE2_KEYS},
                       # the paper's numbers only where each run was the paper's setting (sub_run_row says)
                       "paper": chosen[0]["paper"] if all(r["paper"] for r in chosen) else None})
    return merged
