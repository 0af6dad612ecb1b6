"""Run directories: where a training run keeps its config, metrics, checkpoints and summary.

    <run>/config.yaml     the resolved config
    <run>/metrics.jsonl   one JSON object per finished epoch
    <run>/last.pt         the latest checkpoint (also written on interruption)
    <run>/best.pt         the checkpoint of the best test error so far
    <run>/summary.json    the final summary
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from .errors import ConfigError

CONFIG, METRICS, LAST, BEST, SUMMARY = "config.yaml", "metrics.jsonl", "last.pt", "best.pt", "summary.json"


def default_run_name(config) -> str:
    alpha = f"-a{config.alpha:g}" if config.alpha > 0 else ""
    dataset = config.dataset.replace(":", "-").replace("/", "_")[-40:]
    return f"{dataset}-{config.model}-{config.method}{alpha}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_path(path, config) -> Path:
    """The run directory: `path` (--out) when given, else runs/<dataset>-<model>-<method>-<time>."""
    return Path(path) if path else Path("runs") / default_run_name(config)


def check_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Refuse what cannot be run in `run_dir`, touching nothing (so a refusal costs no files)."""
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / LAST).is_file():
            raise ConfigError(f"--resume: '{run_dir}' holds no {LAST} to resume from; check --out")
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"output path '{run_dir}' exists and is not a directory; choose another --out")
    if holds_run(run_dir) and not force:
        raise ConfigError(f"output directory '{run_dir}' already holds a run; pass --resume to continue it, "
                          f"--force to replace it, or choose another --out")


def holds_run(run_dir: Path) -> bool:
    return Path(run_dir).is_dir() and any((Path(run_dir) / name).exists() for name in (LAST, BEST, METRICS, SUMMARY))


def prepare_run_dir(path, config, resume: bool, force: bool) -> Path:
    """Check and create (or, for --resume, find) the run directory; never silently reuse one that
    holds a run. A run replaced by `force` is deleted later, by `clear_run`, once the new run can start."""
    run_dir = run_path(path, config)
    check_run_dir(run_dir, resume, force)
    return run_dir if resume else ensure_writable_dir(run_dir)


def clear_run(run_dir: Path) -> None:
    """Delete the files of a run being replaced (--force); anything else in the directory stays."""
    for name in (LAST, BEST, METRICS, SUMMARY, CONFIG):
        (Path(run_dir) / name).unlink(missing_ok=True)


@contextlib.contextmanager
def removing_new_empty_dirs(path):
    """Run a block that may create the folder `path`. If the block fails, the folders it created
    (`path` and parents that were missing) are removed again while empty, so a refused run or a failed
    download leaves no debris; a folder that existed before, or holds anything, is never removed."""
    created = []
    folder = Path(path).absolute()
    while not os.path.lexists(folder) and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    try:
        yield
    except BaseException:
        for folder in created:  # deepest first; rmdir refuses a folder that is not empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` and prove it takes a file, or refuse with a one-line ConfigError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"output directory '{path}' is not writable ({exc.strerror}); choose another --out") from None
    return path


def write_config(run_dir: Path, config_dict: dict) -> None:
    import yaml

    write_text_atomic(run_dir / CONFIG, yaml.safe_dump(config_dict, sort_keys=False))


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def append_metrics(run_dir: Path, record: dict) -> None:
    with open(run_dir / METRICS, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def rewrite_metrics(run_dir: Path, history: list[dict]) -> None:
    """On resume: the metrics file holds exactly the epochs the checkpoint has seen."""
    write_text_atomic(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in history))


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def history_statistics(history: list[dict], split: str = "test") -> dict:
    """The paper's ways of reading a run's per-epoch errors on `split`: the best epoch's (Table 2
    "best"), the last epoch's (Table 2 "last") and the median over the last 10 epochs (§3.8).
    All None when the history has no such errors (no metrics.jsonl, or no such split)."""
    key = f"{split}_error"
    epoch_key = "best_epoch" if split == "test" else f"best_{split}_epoch"
    names = (f"best_{key}", epoch_key, f"last_{key}", f"median_last10_{key}", "epochs_run")
    rows = [r for r in history if r.get(key) is not None]
    if not rows:
        return dict.fromkeys(names)
    best = min(rows, key=lambda r: r[key])
    tail = sorted(r[key] for r in rows[-10:])
    median = (tail[(len(tail) - 1) // 2] + tail[len(tail) // 2]) / 2
    return dict(zip(names, (best[key], best["epoch"], rows[-1][key], median, rows[-1]["epoch"])))
