"""Shared fixtures: run the real CLI (in-process through the Typer app, or as a subprocess through
`python -m mixup_cli`), and a small trained digits checkpoint made once per session."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

# One thread everywhere, in this process and in the CLI processes tests start: tiny models gain nothing
# from more on 2 cores, and exact-resume comparisons need the same thread count on both sides
# (float reductions split differently across threads).
torch.set_num_threads(1)
THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

SRC = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_subprocess(*args: str, cwd=None, timeout: float = 300, env_extra=None) -> Result:
    """`python -m mixup_cli ARGS` in a child process: the real entry point, exit code and streams."""
    env = dict(os.environ, PYTHONPATH=str(SRC), COLUMNS="200", **THREADS_ENV, **(env_extra or {}))
    proc = subprocess.run([sys.executable, "-m", "mixup_cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_inprocess(*args: str) -> Result:
    """The same Typer app in this process (fast: torch is imported once for the whole suite)."""
    from typer.testing import CliRunner

    from mixup_cli.cli import app

    runner = CliRunner()
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli():
    return run_inprocess


@pytest.fixture
def cli_subprocess():
    return run_subprocess


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory) -> dict:
    """An ERM and a mixup run on digits, 3 epochs each (a few seconds): {'erm': dir, 'mixup': dir}."""
    root = tmp_path_factory.mktemp("digits-runs")
    runs = {}
    for method, alpha in (("erm", 0), ("mixup", 1)):
        out = root / method
        result = run_inprocess("train", "--epochs", "3", "--alpha", alpha, "--out", out, "--json")
        assert result.exit_code == 0, result.stderr
        runs[method] = out
    return runs


def wait_until(condition, proc, timeout=120):
    """Poll `condition` while the subprocess `proc` runs; fail if it ends first or time runs out."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the process ended early: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the process did not get there in time")
