"""Experiment tracking (`--log csv,tensorboard,wandb`): the per-epoch records of metrics.jsonl, also written
where the tools researchers already use read them.

    csv          <run>/summary.csv, timm's: a header, then one row per epoch, appended as epochs finish
    tensorboard  <run>/tensorboard/, event files of torch.utils.tensorboard.SummaryWriter: one scalar per key
    wandb        a Weights & Biases run, when the wandb package is installed (never required)

A sink is opened with the history already trained (a resume's, taken from its checkpoint): the CSV is
rewritten to exactly those epochs, as metrics.jsonl is, and TensorBoard discards the events of later
epochs (its purge_step). Every command that trains epochs can use `open_sinks`; train does today.
"""
from __future__ import annotations

import csv
import importlib.util
import math
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
    """timm's summary.csv: the header once, a row per epoch; a new key rewrites the file with it."""

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
    """Scalars per epoch (step = the epoch, 1-based) under <run>/tensorboard/."""

    def __init__(self, run_dir: Path, history: list[dict]):
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(run_dir) / TENSORBOARD_DIR
        if not history:  # a new run (or one --force replaces): no events of an earlier one
            shutil.rmtree(folder, ignore_errors=True)
        # purge_step: events at later epochs than the checkpoint's (a resume replays them) are discarded
        self.writer = SummaryWriter(str(folder), purge_step=len(history) + 1 if history else None)

    def log(self, record: dict) -> None:
        step = int(record.get("epoch", 0))
        for key, value in _scalars(record).items():
            if key != "epoch":
                self.writer.add_scalar(key, value, step)
        self.writer.flush()  # an interrupted run keeps every finished epoch

    def close(self) -> None:
        self.writer.close()


class WandbSink:
    def __init__(self, run_dir: Path, history: list[dict], config: Optional[dict] = None):
        import wandb

        self.run = wandb.init(dir=str(run_dir), name=Path(run_dir).name, config=config or {}, resume="allow",
                              id=Path(run_dir).name)

    def log(self, record: dict) -> None:
        self.run.log(_scalars(record), step=int(record.get("epoch", 0)))

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


def open_sinks(names: list[str], run_dir: Path, history: list[dict], config: Optional[dict] = None) -> Sinks:
    """The sinks `names` for the run in `run_dir`, which has trained the epochs of `history` so far."""
    check_sinks(names)
    made = {"csv": lambda: CsvSink(run_dir, history), "tensorboard": lambda: TensorBoardSink(run_dir, history),
            "wandb": lambda: WandbSink(run_dir, history, config)}
    return Sinks([made[name]() for name in dict.fromkeys(names)])
