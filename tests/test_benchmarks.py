"""The benchmark script runs (smoke mode: tiny sizes, no speed assertion) and prints parseable JSON."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import SRC, THREADS_ENV

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def test_benchmark_smoke_mode_reports_every_figure():
    env = dict(os.environ, PYTHONPATH=str(SRC), **THREADS_ENV)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["step"]["mixup_over_erm"] > 0 and result["epoch"]["reference_over_mixup_train"] > 0
    assert result["throughput"]["eval_samples_per_second"] > 0 and result["help_seconds"] > 0
    assert "mixup / ERM step" in proc.stderr
