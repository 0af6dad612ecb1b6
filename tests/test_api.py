"""The Python API as docs/api.md shows it: examples/api.py runs as a real process, and `mixup_cli.train`
works from a bare TrainConfig with the CLI's rules for run directories."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import SRC, THREADS_ENV

import mixup_cli
from mixup_cli.errors import ConfigError


def python(code_or_path: str, cwd, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, *([code_or_path] if code_or_path.endswith(".py") else ["-c", code_or_path]), *args]
    env = dict(os.environ, PYTHONPATH=str(SRC), **THREADS_ENV)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_api_example_runs_as_documented(tmp_path):
    proc = python(str(SRC / "examples" / "api.py"), tmp_path)
    assert proc.returncode == 0, proc.stderr
    trained, evaluated, step = proc.stdout.splitlines()
    assert trained.startswith("trained 2 epochs: test error")
    assert evaluated.startswith("best.pt on the 360 test digits:") and step.startswith("one mixup step: lambda")
    assert list(tmp_path.iterdir()) == []  # it trained in a temporary directory and cleaned up


def test_train_from_a_bare_config_writes_the_default_run_directory(tmp_path):
    code = "import json, mixup_cli; print(json.dumps(mixup_cli.train(mixup_cli.TrainConfig(epochs=1))))"
    proc = python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    run_dir = tmp_path / summary["run_dir"]
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.startswith("digits-small-cnn-mixup-a1-")
    assert summary["epochs"] == 1 and (run_dir / "best.pt").is_file() and (run_dir / "summary.json").is_file()


def test_train_checks_the_config_and_keeps_the_cli_rules_for_run_directories(tmp_path):
    config = mixup_cli.TrainConfig(epochs=1, out=str(tmp_path / "run"))
    summary = mixup_cli.train(config)
    assert config.model is None  # the caller's config is not filled in or changed
    assert summary["run_dir"] == str(tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds a run"):
        mixup_cli.train(config)
    assert mixup_cli.train(config, force=True)["epochs"] == 1
    with pytest.raises(ConfigError, match="must be at least 1"):
        mixup_cli.train(mixup_cli.TrainConfig(epochs=0, out=str(tmp_path / "never")))
    assert not (tmp_path / "never").exists()


def test_fewshot_trains_and_evaluates_from_python(tmp_path):
    code = ("import json, mixup_cli as m\n"
            "c = m.FewShotConfig(dataset='digits', split=['base:0-4', 'val:5-6', 'novel:7-9'], method='s2m2', epochs=1,"
            " finetune_epochs=1, val_episodes=5, per_class=40, out='fs')\n"
            "s = m.train_fewshot(c)\n"
            "r = m.evaluate_fewshot('fs', m.FewShotEvalConfig(ways=3, shots=[1], episodes=10))\n"
            "print(json.dumps([s['method'], r['results'][0]['shots'], r['results'][0]['episodes']]))")
    proc = python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == ["s2m2", 1, 10]
    assert (tmp_path / "fs" / "best.pt").is_file()
