"""The runs behind a reproduced table: each is one `mixup` command, run in its own process.

A job is a command line and a folder. Its JSON output (`--json`) is kept as `<folder>.json` once it
succeeded, so a stopped reproduction continues where it stopped: finished jobs are read back, a
training run with a `last.pt` is resumed, and nothing is trained twice when tables share runs (their
jobs have the same key). Jobs run side by side, one CPU thread each.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Optional

from ..errors import ConfigError, RunError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding mixup_cli/ (and examples/ in a checkout)


@dataclasses.dataclass(frozen=True)
class Job:
    key: str  # "<kind>/<name>", unique within a reproduction; shared by the tables that need it
    args: tuple[str, ...]  # `mixup` arguments, without --out, --json and resume flags
    estimate_s: float  # single-thread CPU seconds on an idle core of the machine the scale was measured on
    # A command that writes a run into its folder (train, corrupt-labels, gan) names the file whose
    # presence means a --resume can continue it (last.pt, experiment.yaml, config.yaml); None: a read-only job.
    resume_marker: Optional[str] = None

    @property
    def resumable(self) -> bool:
        return self.resume_marker is not None

    def folder(self, root: Path) -> Path:
        return root / self.key

    def result_path(self, root: Path) -> Path:
        return root / f"{self.key}.json"

    def done(self, root: Path) -> bool:
        return self.result_path(root).is_file()

    def settings_path(self, root: Path) -> Path:
        return root / f"{self.key}.args.json"

    def settings(self, root: Path) -> list[str]:
        """The arguments as recorded: recipes by file name and paths under `root` relative to it, so a
        moved checkout or output folder still matches."""
        def portable(arg: str) -> str:
            if arg.endswith(".yaml"):
                return Path(arg).name
            return str(Path(arg).relative_to(root)) if arg.startswith(str(root)) else arg
        return [portable(arg) for arg in self.args]

    def recorded_elsewise(self, root: Path) -> Optional[list[str]]:
        """The settings this job's folder was made with, when they differ from this job's; else None."""
        path = self.settings_path(root)
        if not path.is_file():
            return None  # not started, or made before settings were recorded
        recorded = json.loads(path.read_text())
        return None if recorded == self.settings(root) else recorded

    def command(self, root: Path) -> list[str]:
        """The command line; a run continues what a stopped one left, or replaces debris without a checkpoint."""
        base = [sys.executable, "-m", "mixup_cli", *self.args]
        if not self.resumable:
            return [*base, "--json"]  # attacks and analyses only read checkpoints
        folder = self.folder(root)
        again = "--resume" if (folder / self.resume_marker).is_file() else "--force"
        return [*base, "--out", str(folder), again, "--json"]


def check_settings(jobs: list[Job], root: Path) -> None:
    """Refuse to mix runs made with other settings (another --epochs, recipe, device) into a report."""
    for job in jobs:
        recorded = job.recorded_elsewise(root)
        if recorded is not None:
            raise ConfigError(f"'{root / job.key}' was made with other settings ({' '.join(recorded)}); pass "
                              f"another --out, or delete that run to make it again with these")


def unique(jobs: list[Job]) -> list[Job]:
    """Jobs in order, each key once (tables that share runs list them twice)."""
    return list({job.key: job for job in jobs}.values())


def read_result(job: Job, root: Path):
    return json.loads(job.result_path(root).read_text())


def run_job(job: Job, root: Path) -> float:
    """Run one job to completion; its JSON goes to <key>.json, its messages to <key>.log. Seconds taken."""
    folder = job.folder(root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    job.settings_path(root).write_text(json.dumps(job.settings(root)) + "\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])))
    start = time.monotonic()
    with open(root / f"{job.key}.log", "w") as log:
        proc = subprocess.run(job.command(root), stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    if proc.returncode != 0:
        said = _last_line(root / f"{job.key}.log")  # the command's own one-line error, e.g. missing files
        raise RunError(f"{job.key} failed (exit {proc.returncode}){': ' + said if said else ''}; see "
                       f"{root / job.key}.log, then run the same reproduce command again to continue")
    json.loads(proc.stdout)  # a job that printed no JSON did not finish
    tmp = job.result_path(root).with_suffix(".json.tmp")
    tmp.write_text(proc.stdout)
    os.replace(tmp, job.result_path(root))
    return time.monotonic() - start


def _last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].removeprefix("error: ") if lines else ""


def run_jobs(jobs: list[Job], root: Path, parallel: int,
             on_done: Optional[Callable[[Job, float], None]] = None) -> None:
    """Run the jobs not yet done, `parallel` at a time, in order (a job may need an earlier one's
    checkpoints: `after` dependencies are expressed by order and run in waves, see `waves`)."""
    for wave in waves(jobs):
        todo = [job for job in wave if not job.done(root)]
        pool = ThreadPoolExecutor(max_workers=max(1, parallel))
        futures = {pool.submit(run_job, job, root): job for job in todo}
        try:
            for future in as_completed(futures):  # report each as it ends, not in submission order
                seconds = future.result()  # a failed job's RunError: stop at once, not after the wave
                if on_done is not None:
                    on_done(futures[future], seconds)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # jobs not started yet are dropped


def waves(jobs: list[Job]) -> list[list[Job]]:
    """Training first (attacks and analyses read its checkpoints), then everything else."""
    first = [job for job in jobs if job.resumable]
    rest = [job for job in jobs if not job.resumable]
    return [wave for wave in (first, rest) if wave]


def estimate(jobs: list[Job], root: Path, parallel: int) -> tuple[float, float]:
    """(CPU seconds of the jobs still to run, wall seconds with `parallel` side by side)."""
    left = [job.estimate_s for job in jobs if not job.done(root)]
    return sum(left), sum(left) / max(1, min(parallel, len(left) or 1))
