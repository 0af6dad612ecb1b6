"""The benchmark script runs (smoke mode: tiny sizes, no speed assertion) and prints parseable JSON."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import SRC, THREADS_ENV

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def run_bench(*args):
    env = dict(os.environ, PYTHONPATH=str(SRC), **THREADS_ENV)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_benchmark_smoke_mode_reports_every_figure():
    result, stderr = run_bench()
    assert result["step"]["mixup_over_erm"] > 0 and result["epoch"]["reference_over_mixup_train"] > 0
    assert result["throughput"]["eval_samples_per_second"] > 0 and result["help_seconds"] > 0
    assert "mixup / ERM step" in stderr
    assert result["step"]["mixing_overhead_seconds"] is not None and result["settings"]["precision"] == "fp32"


def test_benchmark_on_synthetic_cifar_files():
    """--synthetic writes CIFAR-10's real on-disk format and times the cifar10 loader and crop/flip path."""
    result, stderr = run_bench("--synthetic", "40", "--model", "small-cnn", "--batch-size", "8",
                               "--eval-batch-size", "8", "--channels-last")
    assert result["dataset"] == "cifar10 (synthetic, 40 images)" and result["settings"]["channels_last"] is True
    assert result["epoch"]["reference_over_mixup_train"] > 0
