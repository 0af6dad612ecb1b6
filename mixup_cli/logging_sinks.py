"""Experiment tracking (`--log csv,tensorboard,wandb`): a run's records (train's per-epoch records of
metrics.jsonl, gan's snapshots), also written where the tools researchers already use read them.

    csv          <run>/summary.csv, timm's: a header, then one row per record, appended as they come
    tensorboard  <run>/tensorboard/, event files of torch.utils.tensorboard.SummaryWriter: one scalar per key
    wandb        a Weights & Biases run, when the wandb package is installed (never required)

Each record carries its step under `step_key` ("epoch" for train and corrupt-labels, "iteration" for
gan), the x-axis of TensorBoard and wandb. A sink is opened with the history already trained (a
resume's, taken from its checkpoint): the CSV is rewritten to exactly those records, as metrics.jsonl
is, and TensorBoard discards the events of later steps (its purge_step).
"""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import math
import re
import shutil
from pathlib import Path
from typing import Optional

from .errors import ConfigError

SINKS = ["csv", "tensorboard", "wandb"]
CSV_FILE, TENSORBOARD_DIR = "summary.csv", "tensorboard"
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}  # sink -> the package it needs


def check_sinks(names: list[str]) -> None:
    """Refuse, before anything is trained, a sink whose package is not installed."""
    for name in names:
        package = _PACKAGES.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"--log {name} needs the {package} package, which is not installed; "
                              f"pip install {package}")


def _scalars(record: dict) -> dict:
    """The record's numbers (booleans and text left out), as TensorBoard and wandb take them."""
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


class CsvSink:
    """timm's summary.csv: the header once, a row per record; a new key rewrites the file with it."""

    def __init__(self, run_dir: Path, history: list[dict]):
        self.path = Path(run_dir) / CSV_FILE
        self.rows = [dict(r) for r in history]
        self.fields: list[str] = []
        self._rewrite()

    def _rewrite(self) -> None:
        self.fields = list(dict.fromkeys(k for row in self.rows for k in row))
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields)
            if self.fields:
                writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)

    def log(self, record: dict) -> None:
        self.rows.append(dict(record))
        if not self.fields or any(k not in self.fields for k in record):
            self._rewrite()
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.fields).writerow(record)

    def close(self) -> None:
        pass


class TensorBoardSink:
    """Scalars per record under <run>/tensorboard/, at the record's step (its `step_key`)."""

    def __init__(self, run_dir: Path, history: list[dict], step_key: str = "epoch"):
        from torch.utils.tensorboard import SummaryWriter

        self.step_key = step_key
        folder = Path(run_dir) / TENSORBOARD_DIR
        if not history:  # a new run (or one --force replaces): no events of an earlier one
            shutil.rmtree(folder, ignore_errors=True)
        # purge_step: events at later steps than the checkpoint's (a resume replays them) are discarded
        purge = int(history[-1][step_key]) + 1 if history else None
        self.writer = SummaryWriter(str(folder), purge_step=purge)

    def log(self, record: dict) -> None:
        step = int(record.get(self.step_key, 0))
        for key, value in _scalars(record).items():
            if key != self.step_key:
                self.writer.add_scalar(key, value, step)
        self.writer.flush()  # an interrupted run keeps every finished record

    def close(self) -> None:
        self.writer.close()


def wandb_id(run_dir: Path) -> str:
    """The run's wandb id: its folder's name and a hash of its absolute path, so a resume continues the
    same wandb run while sub-runs of the same name in other experiments (gan's, corrupt-labels') do not."""
    path = Path(run_dir).resolve()
    return f"{path.name}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


_WANDB_RUN = re.compile(r"^(?:offline-)?run-(\d{8}_\d{6})-(.+)$")  # wandb's folder per run: run-<date>_<time>-<id>


def recorded_wandb_id(run_dir: Path) -> Optional[str]:
    """The id of the wandb run this directory logged to last, read from the folder wandb keeps in it
    (wandb/run-<date>_<time>-<id>/, offline-run-... offline); None when it holds none."""
    folder = Path(run_dir) / "wandb"
    found = [m.groups() for p in (folder.iterdir() if folder.is_dir() else ()) if p.is_dir()
             for m in [_WANDB_RUN.match(p.name)] if m]
    return max(found)[1] if found else None


class WandbSink:
    def __init__(self, run_dir: Path, history: list[dict], config: Optional[dict] = None, step_key: str = "epoch"):
        import wandb

        self.step_key = step_key
        # A resume continues the wandb run the directory already logged to, whatever its id: one from before
        # ids carried the path's hash (the folder's name alone), or from where the folder was before a move.
        run_id = (recorded_wandb_id(run_dir) if history else None) or wandb_id(run_dir)
        self.run = wandb.init(dir=str(run_dir), name=Path(run_dir).name, config=config or {}, resume="allow",
                              id=run_id)

    def log(self, record: dict) -> None:
        self.run.log(_scalars(record), step=int(record.get(self.step_key, 0)))

    def close(self) -> None:
        self.run.finish()


class Sinks:
    """The sinks of one run, called together."""

    def __init__(self, sinks: list):
        self.sinks = sinks

    def log(self, record: dict) -> None:
        for sink in self.sinks:
            sink.log(record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def open_sinks(names: list[str], run_dir: Path, history: list[dict], config: Optional[dict] = None,
               step_key: str = "epoch") -> Sinks:
    """The sinks `names` for the run in `run_dir`, whose records so far are `history`; every record
    holds its step (epoch, iteration) under `step_key`."""
    check_sinks(names)
    made = {"csv": lambda: CsvSink(run_dir, history),
            "tensorboard": lambda: TensorBoardSink(run_dir, history, step_key),
            "wandb": lambda: WandbSink(run_dir, history, config, step_key)}
    return Sinks([made[name]() for name in dict.fromkeys(names)])
