"""The benchmark script runs (smoke mode: tiny sizes, no speed assertion) and prints parseable JSON; its
timed regions hold training steps only; the GPU check script runs end to end on the CPU at tiny sizes."""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import SRC, THREADS_ENV

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "bench.py"


def run_bench(*args):
    env = dict(os.environ, PYTHONPATH=str(SRC), **THREADS_ENV)
    with tempfile.TemporaryDirectory() as scratch:  # the checkpoint write is timed in the current folder
        proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", *args], capture_output=True,
                              text=True, env=env, timeout=300, cwd=scratch)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_benchmark_smoke_mode_reports_every_figure():
    result, stderr = run_bench()
    assert result["step"]["mixup_over_erm"] > 0 and result["epoch"]["reference_over_mixup_train"] > 0
    assert result["throughput"]["eval_samples_per_second"] > 0 and result["help_seconds"] > 0
    assert "mixup / ERM step" in stderr and "FLOP limit" in stderr and "checkpoint write" in stderr
    assert result["step"]["mixing_overhead_seconds"] is not None and result["settings"]["precision"] == "fp32"
    assert result["checkpoint"]["seconds"] > 0 and result["checkpoint"]["megabytes"] > 0
    rates = result["flops"]["rates"]
    assert set(rates) == {"erm_step", "mixup_step", "mixup_train_epoch", "reference_epoch"}
    # No peak is known for a CPU: TFLOP/s are reported, their fraction of a peak is not.
    assert all(r["tflops"] > 0 and r["of_peak"] is None for r in rates.values())


def test_benchmark_on_synthetic_cifar_files():
    """--synthetic writes CIFAR-10's real on-disk format and times the cifar10 loader and crop/flip path;
    --bf16 and --peak-tflops reach every figure."""
    result, stderr = run_bench("--synthetic", "40", "--model", "small-cnn", "--batch-size", "8",
                               "--eval-batch-size", "8", "--channels-last", "--bf16", "--peak-tflops", "2")
    assert result["dataset"] == "cifar10 (synthetic, 40 images)" and result["settings"]["channels_last"] is True
    assert result["settings"]["precision"] == "bf16 autocast"
    assert result["epoch"]["reference_over_mixup_train"] > 0 and result["epoch"]["steps_per_epoch"] == 5
    rate = result["flops"]["rates"]["mixup_train_epoch"]
    assert result["flops"]["peak_source"].startswith("given") and rate["of_peak"] == rate["tflops"] / 2


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SLOW = 1000.0  # seconds the fake clock jumps in each set-up and warm-up


class FakeClock:
    """time.perf_counter plus jumps: each set-up and each model's first training forward (the warm-up) adds
    SLOW seconds, each later training forward (a step) one second. A timed region that took in set-up or
    warm-up would read >= SLOW; one that missed its steps would read less than their count."""

    def __init__(self, real):
        self.real, self.offset, self.counts = real, 0.0, {"setup": 0, "warm-up": 0, "step": 0}

    def __call__(self) -> float:
        return self.real() + self.offset

    def jump(self, kind: str) -> None:
        self.counts[kind] += 1
        self.offset += 1.0 if kind == "step" else SLOW

    def slow_setup(self, fn):
        def wrapper(*args, **kwargs):
            self.jump("setup")
            return fn(*args, **kwargs)
        return wrapper

    def ticking_build(self, build):
        def wrapper(*args, **kwargs):
            net, started = self.slow_setup(build)(*args, **kwargs), []

            def tick(module, inputs):
                if module.training:
                    self.jump("step" if started else "warm-up")
                    started.append(True)
            net.register_forward_pre_hook(tick)
            return net
        return wrapper


def test_timed_regions_hold_steps_only_not_set_up_or_warm_up(monkeypatch, tmp_path):
    """Both loops and the step timings run under a fake clock that makes set-up (data loading and
    conversion, model builds) and the first training step of every model cost 1000 s, and every
    later step 1 s: the figures must count the steps and nothing else. No real time is asserted."""
    import mixup_cli.trainer as trainer
    from mixup_cli.data import DatasetSpec

    bench = load_bench()
    clock = FakeClock(time.perf_counter)
    monkeypatch.setattr(time, "perf_counter", clock)
    build = clock.ticking_build(bench.build_model)
    monkeypatch.setattr(bench, "build_model", build)
    monkeypatch.setattr(trainer, "build_model", build)
    monkeypatch.setattr(bench, "reference_images", clock.slow_setup(bench.reference_images))
    monkeypatch.setattr(DatasetSpec, "load", clock.slow_setup(DatasetSpec.load))
    args = bench.parse_args(["--smoke", "--checkpoint-dir", str(tmp_path)])
    result = bench.measure(args)

    steps = result["epoch"]["steps_per_epoch"]
    assert steps > 1 and clock.counts["setup"] >= 6 and clock.counts["warm-up"] >= 4
    for figure in ("mixup_train_epoch_seconds", "reference_epoch_seconds"):
        assert steps <= result["epoch"][figure] < steps + SLOW / 2, figure  # one epoch: `steps` ticks only
    for method in ("erm", "mixup"):
        assert 1.0 <= result["step"][method]["step_seconds"] < SLOW / args.steps / 2, method
    assert result["checkpoint"]["seconds"] < SLOW / 2


def test_gpu_check_runs_every_check_on_the_cpu_at_tiny_sizes(tmp_path):
    """benchmarks/gpu_check.sh end to end on the CPU: each check runs (the CUDA tests skip, compile is left
    out at tiny sizes, DDP runs on gloo) and the summary at the end names each with its figures."""
    env = dict(os.environ, **THREADS_ENV)
    proc = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), "--device", "cpu", "--tiny", "--keep",
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    block = proc.stdout.split("== GPU check summary: device cpu (tiny)")[1].splitlines()[1:]
    rows = {line.split()[0]: line.split(None, 3)[1:] for line in block if line.strip()}
    assert list(rows) == ["cuda-tests", "train", "bench", "bench-compile", "ddp"]
    assert rows["cuda-tests"][0] == "SKIP" and "skipped" in rows["cuda-tests"][2]
    assert rows["train"][0] == "PASS" and "host syncs n/a" in rows["train"][2]
    assert rows["bench"][0] == "PASS" and "trainer" in rows["bench"][2] and "reference" in rows["bench"][2]
    assert rows["bench-compile"][0] == "SKIP"
    assert rows["ddp"][0] == "PASS" and "world size 2" in rows["ddp"][2]
    assert json.loads((tmp_path / "bench.json").read_text())["model"] == "small-cnn"


def test_sync_count_keeps_every_sync_by_line(monkeypatch):
    """The train check counts each host sync, by the line that made it: torch warns per sync, and the
    default warning filter would show a line's warning only once."""
    import warnings

    import torch

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import check_tools

    modes = []
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)

    def run():
        for _ in range(3):
            warnings.warn("called a synchronizing CUDA operation")
        warnings.warn("something else")
        return "done"

    result, by_line = check_tools.counted_syncs(run)
    assert result == "done" and modes == ["warn", "default"]
    assert list(by_line.values()) == [3] and next(iter(by_line)).startswith("test_benchmarks.py:")


def test_gpu_check_stops_at_its_time_budget(tmp_path):
    """A spent budget runs no further check and fails the whole: the script never outlasts its lease."""
    env = dict(os.environ, **THREADS_ENV)
    proc = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), "--device", "cpu", "--tiny", "--budget", "0",
                           "--keep", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    summary = proc.stdout.split("== GPU check summary")[1]
    assert summary.count("not run: the 0s budget is spent") == 4 and "bench-compile  SKIP" in summary


def test_benchmark_on_a_subset_of_real_idx_files(tmp_path):
    """--subset rewrites the first N images of an idx dataset in its own format and times on exactly those."""
    from test_mnist import write_set

    write_set(tmp_path / "data", sizes=(40, 20))
    result, _ = run_bench("--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "data"), "--subset", "24",
                          "--model", "small-cnn", "--batch-size", "8", "--eval-batch-size", "8")
    assert result["dataset"] == "fashion-mnist (first 24 training images)"
    assert result["epoch"]["steps_per_epoch"] == 3  # 24 of the 40 written images, batch 8


def test_write_idx_subset_keeps_the_first_images_in_the_idx_format(tmp_path):
    import importlib.util

    from test_mnist import write_set

    from mixup_cli.data import load_dataset

    spec = importlib.util.spec_from_file_location("bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    written = write_set(tmp_path / "data", sizes=(40, 20))
    bench.write_idx_subset("fashion-mnist", str(tmp_path / "data"), tmp_path, 10)
    subset = load_dataset("fashion-mnist", "train", str(tmp_path))
    assert subset.inputs.shape == (10, 1, 28, 28)
    assert (subset.inputs[:, 0].numpy() == written["train"][0][:10]).all()
    assert (subset.labels.numpy() == written["train"][1][:10]).all()
    assert len(load_dataset("fashion-mnist", "test", str(tmp_path)).labels) == 2
