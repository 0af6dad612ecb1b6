"""Speed and memory of mixup-cli, measured. Run by hand, never as a timed test.

    ./run python benchmarks/bench.py                                  # digits, small-cnn, CPU
    ./run python benchmarks/bench.py --dataset cifar10 --data-dir data --model preact-resnet18 --device cuda
    ./run python benchmarks/bench.py --smoke --json                   # tiny sizes (CI checks it runs)

Prints a table (stderr) and, with --json, one object (stdout) of:
- training-step time and samples/s for ERM (alpha 0) and mixup (alpha 1) on the same model, batch and
  device, and their ratio (the paper's "minimal computation overhead");
- training-epoch time of `mixup train`'s trainer against a reference loop written the way the paper's
  official script works (DataLoader with per-sample CPU transforms, numpy Beta draw and randperm each
  batch, a loss.item() each batch, same model, data, batch size, optimizer, precision and layout), and
  that ratio;
- the time of one checkpoint write (model + optimizer state, as the trainer writes last.pt), apart;
- each throughput beside the FLOP limit: training FLOPs per image counted by torch's FlopCounterMode
  on one forward + backward, the TFLOP/s achieved and, where the peak is known (or --peak-tflops), its
  fraction;
- evaluation and FGSM attack throughput; peak memory (RSS on the CPU, peak allocated on CUDA);
- the start-up time of `mixup --help`.

Only steps are timed. Set-up (data conversion, model build, DataLoader) happens before the clock
starts, and both loops are warmed up first: the reference loop by --warmup untimed steps, the trainer
by one untimed first epoch (its own clock times each epoch's steps, without evaluation or checkpoint).
On CUDA the device is synchronized at both ends of each timed region. Each figure is the median of
--repeats measurements taken in turns.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from mixup_cli.attacks import attack
from mixup_cli.checkpoint import save_checkpoint
from mixup_cli.config import TrainConfig, resolve_config, to_dict
from mixup_cli.data import get_dataset
from mixup_cli.data.batches import make_batches
from mixup_cli.devices import resolve_device
from mixup_cli.evaluation import evaluate
from mixup_cli.mixing import build_mixer
from mixup_cli.models import Normalized, build_model
from mixup_cli.speed import compile_model, configure_torch, resolve_speed, set_layout, to_layout
from mixup_cli.trainer import TrainCallbacks, peak_memory_mb, train

# Dense peak TFLOP/s (bf16, tf32) from NVIDIA's data sheets, matched against the device name in this
# order. fp32 runs count against the TF32 peak: the trainer allows TF32 unless --deterministic.
PEAK_TFLOPS = (("H100 PCIe", (756.0, 378.0)), ("H100", (989.0, 494.0)), ("H200", (989.0, 494.0)),
               ("A100", (312.0, 156.0)), ("L4", (121.0, 60.0)))


# --------------------------------------------------------------------------- timing

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> float:
    """Seconds of fn() alone: queued GPU work is drained before the clock starts and before it stops."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def median_time(fn, repeats: int, device) -> float:
    return statistics.median(timed(fn, device) for _ in range(repeats))


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds of each fn, measured in turns (a b, b a, a b, ...): a machine growing busier or
    quieter weighs on every contender alike, and none always runs right after another (caches)."""
    times = {name: [] for name in fns}
    for round_ in range(repeats):
        order = list(fns.items())
        for name, fn in (order if round_ % 2 == 0 else order[::-1]):
            times[name].append(fn())
    return {name: statistics.median(values) for name, values in times.items()}


# --------------------------------------------------------------------------- settings, model, FLOPs

def run_config(args, **extra) -> TrainConfig:
    """The config both loops run under: one precision, layout and compile mode for every figure."""
    return resolve_config(TrainConfig, None, {"dataset": args.dataset, "model": args.model, "bf16": args.bf16,
                                              "channels_last": args.channels_last, "compile": args.compile,
                                              **extra})


def make_model(spec, name, device):
    net = build_model(name, spec.num_classes, spec.input_shape)
    return Normalized(net, list(spec.mean), list(spec.std), len(spec.input_shape)).to(device)


def flops_per_image(spec, model_name: str) -> float:
    """Training FLOPs per image: one forward and backward counted by torch's FlopCounterMode (convolutions
    and matmuls; elementwise ops are not counted). Counted on the CPU: the count is the same anywhere."""
    from torch.utils.flop_counter import FlopCounterMode

    model = make_model(spec, model_name, torch.device("cpu")).train()
    inputs, labels = torch.rand(2, *spec.input_shape), torch.zeros(2, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(inputs), labels).backward()
    return counter.get_total_flops() / len(labels)


def peak_tflops(device, device_name: str, bf16: bool, given: Optional[float]) -> tuple[Optional[float], str]:
    """The peak to compare against and where it comes from: --peak-tflops, else the table for known GPUs."""
    if given is not None:
        return given, "given (--peak-tflops)"
    if device.type == "cuda":
        for fragment, (bf16_peak, tf32_peak) in PEAK_TFLOPS:
            if fragment in device_name:
                return (bf16_peak, f"{fragment} bf16 dense") if bf16 else (tf32_peak, f"{fragment} tf32 dense")
    return None, "unknown (pass --peak-tflops)"


def flop_rate(samples_per_second: float, flops: float, peak: Optional[float]) -> dict:
    tflops = samples_per_second * flops / 1e12
    return {"samples_per_second": samples_per_second, "tflops": tflops,
            "of_peak": tflops / peak if peak else None}


# --------------------------------------------------------------------------- ERM vs mixup steps

def step_times(args, spec, device, train_set) -> dict:
    """Median seconds per training step for ERM and mixup, same batch and model, after a warm-up."""
    batches = make_batches(train_set, args.batch_size, device, shuffle=True, augment=spec.augment, drop_last=True)
    inputs, labels = next(iter(batches.epoch(0)))
    runners = {}
    for method, alpha in (("erm", 0.0), ("mixup", 1.0)):
        runners[method] = _step_runner(args, spec, device, inputs, labels, alpha)
        runners[method]()  # warm-up: first allocations, cuDNN autotuning, compilation
    medians = interleaved_medians({m: (lambda r=r: timed(r, device)) for m, r in runners.items()}, args.repeats)
    results = {}
    for method, seconds in medians.items():
        per_step = seconds / args.steps
        results[method] = {"step_seconds": per_step, "samples_per_second": len(labels) / per_step}
    results["mixup_over_erm"] = results["mixup"]["step_seconds"] / results["erm"]["step_seconds"]
    # The ratio of two noisy step times hides a small difference; time the difference itself: the
    # mixing op and the mixed loss (forward and backward) against ERM's, on fixed logits.
    extra = mixing_overhead_seconds(args, inputs, labels, spec.num_classes, device)
    results["mixing_overhead_seconds"] = extra
    results["mixup_over_erm_from_overhead"] = 1 + extra / results["erm"]["step_seconds"]
    return results


def mixing_overhead_seconds(args, inputs, labels, num_classes, device) -> float:
    logits = torch.randn(len(labels), num_classes, device=device, requires_grad=True)
    rng, generator = np.random.default_rng(0), torch.Generator(device=device).manual_seed(0)
    calls = 200

    def mix_and_score(alpha):
        mixer = build_mixer(resolve_config(TrainConfig, None, {"dataset": args.dataset, "alpha": alpha}),
                            device=device)

        def run():
            for _ in range(calls):
                mixer(inputs, labels, alpha, rng, generator).loss(logits).backward()
        return lambda: timed(run, device)

    fns = {"erm": mix_and_score(0.0), "mixup": mix_and_score(1.0)}
    for fn in fns.values():
        fn()
    medians = interleaved_medians(fns, max(args.repeats, 5))
    return (medians["mixup"] - medians["erm"]) / calls


def _step_runner(args, spec, device, inputs, labels, alpha):
    """args.steps training steps on one fixed batch, as the trainer takes them."""
    model = make_model(spec, args.model, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    config = run_config(args, alpha=alpha)
    mixer = build_mixer(config, model=model, device=device)
    rng, generator = np.random.default_rng(0), torch.Generator(device=device).manual_seed(0)
    configure_torch(config, device)
    settings = resolve_speed(config, device, spec.input_shape)  # the trainer's precision and layout
    set_layout(model, settings)
    step_model = compile_model(model, settings)
    inputs, autocast = to_layout(inputs, settings), settings.autocast_dtype

    def steps():
        for _ in range(args.steps):
            batch = mixer(inputs, labels, alpha, rng, generator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast is not None):
                loss = batch.loss(batch.forward(step_model).float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return steps


# --------------------------------------------------------------------------- trainer vs reference loop

def reference_images(train_set) -> torch.Tensor:
    """The whole split as raw-scale floats, converted once, as the official script's dataset hands them out."""
    return train_set.to_raw(train_set.inputs)


class ReferenceLoop:
    """Training the way the official script does: per-sample transforms in a DataLoader, mixing per batch,
    the loss read every batch. Built (data, model, loader) in __init__, outside any timed region; it
    runs at the trainer's precision and layout, so the two differ only in loop design."""

    def __init__(self, args, spec, device, train_set, settings):
        import torchvision.transforms.v2 as T

        images, labels = reference_images(train_set), train_set.labels
        transform = T.Compose([T.RandomCrop(spec.input_shape[1:], padding=4), T.RandomHorizontalFlip()]) \
            if spec.augment == "crop-flip" else (lambda x: x)

        class PerSample(torch.utils.data.Dataset):
            def __len__(self):
                return len(images)

            def __getitem__(self, i):
                return transform(images[i]), labels[i]

        # persistent_workers off, as in the official script: its workers restart every epoch.
        self.loader = torch.utils.data.DataLoader(PerSample(), batch_size=args.batch_size, shuffle=True,
                                                  num_workers=args.workers, drop_last=True,
                                                  pin_memory=device.type == "cuda")
        self.device, self.settings = device, settings
        self.model = make_model(spec, args.model, device)
        set_layout(self.model, settings)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        self.model.train()

    def warm_up(self, steps: int) -> None:
        self.run(itertools.islice(self.loader, steps))

    def epochs(self, count: int) -> None:
        for _ in range(count):
            self.run(self.loader)

    def run(self, batches) -> None:
        bf16 = self.settings.autocast_dtype is not None
        for x, y in batches:
            x, y = to_layout(x.to(self.device), self.settings), y.to(self.device)
            lam = np.random.beta(1.0, 1.0)
            index = torch.randperm(x.size(0), device=self.device)
            mixed = lam * x + (1 - lam) * x[index]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                out = self.model(mixed).float()
            loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[index])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            loss.item()  # the official script reads the loss every batch


def reference_epoch_seconds(args, spec, device, train_set, settings) -> float:
    loop = ReferenceLoop(args, spec, device, train_set, settings)  # set-up: not timed
    loop.warm_up(args.warmup)
    return timed(lambda: loop.epochs(args.epochs), device) / args.epochs


def trainer_epoch_seconds(args, device) -> float:
    """The trainer's own clock over args.epochs epochs after an untimed first one (the warm-up). Each
    epoch's clock runs from its first batch to its last step (synchronized on CUDA): no set-up,
    evaluation or checkpoint."""
    records = []

    class Records(TrainCallbacks):
        def on_epoch(self, record: dict) -> None:
            records.append(record)

    with tempfile.TemporaryDirectory() as tmp:
        config = run_config(args, data_dir=args.data_dir, alpha=1.0, epochs=1 + args.epochs,
                            batch_size=args.batch_size, device=str(device), out=tmp)
        train(config, Path(tmp), callbacks=Records())
    return sum(record["epoch_seconds"] for record in records[1:]) / args.epochs


def epoch_times(args, spec, device, train_set, settings) -> dict:
    medians = interleaved_medians({
        "ours": lambda: trainer_epoch_seconds(args, device),
        "reference": lambda: reference_epoch_seconds(args, spec, device, train_set, settings),
    }, args.repeats)
    steps = len(train_set) // args.batch_size  # both drop the last partial batch
    return {"mixup_train_epoch_seconds": medians["ours"], "reference_epoch_seconds": medians["reference"],
            "reference_over_mixup_train": medians["reference"] / medians["ours"],
            "steps_per_epoch": steps, "samples_per_epoch": steps * args.batch_size,
            "note": f"seconds per epoch over {args.epochs} timed epochs, steps only, after a warm-up "
                    f"(trainer: one untimed epoch; reference: {args.warmup} untimed steps); measured in turns"}


# --------------------------------------------------------------------------- checkpoint, evaluation

def checkpoint_seconds(args, spec, device, settings) -> dict:
    """One write of last.pt as the trainer makes it (model and optimizer state, torch.save, fsync, rename),
    after one step so that the optimizer holds its momentum buffers. Timed apart from the epochs."""
    model = make_model(spec, args.model, device)
    set_layout(model, settings)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = to_layout(torch.rand(2, *spec.input_shape, device=device), settings)
    F.cross_entropy(model(x), torch.zeros(2, dtype=torch.long, device=device)).backward()
    optimizer.step()
    config = run_config(args)
    payload = {"model": {"name": args.model}, "dataset": {"name": spec.name}, "config": to_dict(config),
               "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
               "state": {"epoch": 1, "step": 0, "history": []}, "epoch": 1}
    with tempfile.TemporaryDirectory(prefix=".bench-checkpoint-", dir=args.checkpoint_dir) as tmp:
        path = Path(tmp) / "last.pt"
        seconds = median_time(lambda: save_checkpoint(payload, path), args.repeats, device)
        size = path.stat().st_size
    return {"seconds": seconds, "megabytes": size / 1e6, "directory": str(Path(args.checkpoint_dir).resolve())}


def throughput(args, spec, device) -> dict:
    test_set = spec.load("test", args.data_dir)
    model = make_model(spec, args.model, device).eval()
    batches = make_batches(test_set, args.eval_batch_size, device, shuffle=False)
    n = len(test_set)
    eval_seconds = median_time(lambda: evaluate(model, batches, spec.num_classes), args.repeats, device)
    x, y = next(iter(batches))

    def fgsm():
        attack("fgsm", model, x, y, epsilon=4 / 255, steps=1, step_size=4 / 255)

    attack_seconds = median_time(fgsm, args.repeats, device)
    return {"eval_samples_per_second": n / eval_seconds, "fgsm_samples_per_second": len(y) / attack_seconds}


def write_synthetic_cifar10(root: Path, n_train: int, n_test: int) -> None:
    """Random pixels in CIFAR-10's on-disk format (five training batches, a test batch, the meta file):
    CIFAR's sizes and loader path for timing where the real files cannot be had. Errors are noise."""
    import pickle

    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    parts = [(f"data_batch_{i}", n_train // 5) for i in range(1, 6)] + [("test_batch", n_test)]
    for name, n in parts:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, size=n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"%d" % i for i in range(10)]}))


def write_idx_subset(name: str, data_dir: Optional[str], root: Path, n_train: int) -> None:
    """The first n_train training and n_train // 5 test images (and labels) of an idx dataset, as idx files."""
    import struct

    from mixup_cli.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, SIDE, STEMS, locate, read_idx

    for split, count in (("train", n_train), ("test", max(n_train // 5, 1))):
        for path, stem, magic, tail in zip(locate(name, split, data_dir), STEMS[split], (IMAGES_MAGIC, LABELS_MAGIC),
                                           ((SIDE, SIDE), ())):
            part = read_idx(path, magic, tail)[:count]
            header = struct.pack(f">I{part.ndim}I", magic, *part.shape)
            (root / f"{stem}-{'idx3' if tail else 'idx1'}-ubyte").write_bytes(header + part.tobytes())


def help_startup(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mixup_cli", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- command line

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per epoch-time measurement")
    parser.add_argument("--steps", type=int, default=20, help="training steps per step-time measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps of the reference loop before its "
                                                               "timed epochs (the trainer's first epoch is untimed)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the reference loop")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast in every loop (default: the trainer's, on for GPUs with native bf16)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels_last layout in every loop (default: the trainer's, on for CUDA)")
    parser.add_argument("--compile", default="off", help="torch.compile mode for mixup's step and epoch "
                                                         "(the reference loop, like the official script, is eager)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak TFLOP/s at the run's precision (default: a table of known GPUs)")
    parser.add_argument("--checkpoint-dir", default=".", help="where the checkpoint write is timed (default: here, "
                                                              "the file system runs/ is on)")
    parser.add_argument("--synthetic", type=int, default=None, metavar="N",
                        help="time on N random images in CIFAR-10's format (and N/5 test images) instead of "
                             "--dataset/--data-dir: CIFAR's shapes and code path without its files")
    parser.add_argument("--subset", type=int, default=None, metavar="N",
                        help="time on the first N training images (and N/5 test images) of an idx dataset "
                             "(fashion-mnist, mnist, kmnist), rewritten in its own format: a large model's epoch "
                             "on real images within a CPU's minutes")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs, measures nothing")
    parser.add_argument("--json", action="store_true", help="print every figure as one JSON object on stdout")
    parser.add_argument("--output", default=None, metavar="FILE", help="write that JSON object to FILE")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.steps, args.epochs, args.warmup = 1, 2, 1, 1
    return args


def measure(args) -> dict:
    """Every figure, as one dict (what --json prints)."""
    scratch = None
    if args.synthetic is not None:
        scratch = tempfile.TemporaryDirectory()
        write_synthetic_cifar10(Path(scratch.name), args.synthetic, max(args.synthetic // 5, 1))
        args.dataset, args.data_dir = "cifar10", scratch.name
    elif args.subset is not None:
        scratch = tempfile.TemporaryDirectory()
        write_idx_subset(args.dataset, args.data_dir, Path(scratch.name), args.subset)
        args.data_dir = scratch.name
    spec = get_dataset(args.dataset)
    args.model = args.model or spec.default_model
    device = resolve_device(args.device)
    train_set = spec.load("train", args.data_dir, augment=True)
    configure_torch(run_config(args), device)  # threads first: the settings report them
    settings = resolve_speed(run_config(args), device, spec.input_shape)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"dataset": args.dataset + (f" (synthetic, {args.synthetic} images)" if args.synthetic else "")
              + (f" (first {args.subset} training images)" if args.subset else ""),
              "model": args.model, "batch_size": args.batch_size, "device": str(device), "device_name": name,
              "threads": torch.get_num_threads(), "repeats": args.repeats, "settings": settings.describe()}
    peak, source = peak_tflops(device, name, settings.autocast_dtype is not None, args.peak_tflops)
    result["flops"] = {"per_training_image": flops_per_image(spec, args.model), "peak_tflops": peak,
                       "peak_source": source}
    result["step"] = step_times(args, spec, device, train_set)
    result["epoch"] = epoch_times(args, spec, device, train_set, settings)
    result["checkpoint"] = checkpoint_seconds(args, spec, device, settings)
    result["checkpoint"]["over_epoch"] = result["checkpoint"]["seconds"] / result["epoch"]["mixup_train_epoch_seconds"]
    result["flops"]["rates"] = flop_rates(result, peak)
    result["throughput"] = throughput(args, spec, device)
    result["peak_memory_mb"] = peak_memory_mb(device)
    result["help_seconds"] = help_startup(args.repeats)
    if scratch is not None:
        scratch.cleanup()
    return result


def flop_rates(result: dict, peak: Optional[float]) -> dict:
    """samples/s, TFLOP/s and the fraction of the peak for each training figure."""
    flops, step, epoch = result["flops"]["per_training_image"], result["step"], result["epoch"]
    per_second = {"erm_step": step["erm"]["samples_per_second"], "mixup_step": step["mixup"]["samples_per_second"],
                  "mixup_train_epoch": epoch["samples_per_epoch"] / epoch["mixup_train_epoch_seconds"],
                  "reference_epoch": epoch["samples_per_epoch"] / epoch["reference_epoch_seconds"]}
    return {name: flop_rate(value, flops, peak) for name, value in per_second.items()}


def rate_text(rate: dict) -> str:
    share = f" {100 * rate['of_peak']:5.1f}%" if rate["of_peak"] is not None else ""
    return f"{rate['samples_per_second']:,.0f}/s {rate['tflops']:.3g} TF/s{share}"


def report(args, result: dict) -> None:
    s, e, t, c, f = (result[k] for k in ("step", "epoch", "throughput", "checkpoint", "flops"))
    rates = f["rates"]
    rows = [
        ("ERM step (ms)", f"{1000 * s['erm']['step_seconds']:.2f}"),
        ("mixup step (ms)", f"{1000 * s['mixup']['step_seconds']:.2f}"),
        ("mixup / ERM step", f"{s['mixup_over_erm']:.3f}"),
        ("mixing op + mixed loss (us)", f"+{1e6 * s['mixing_overhead_seconds']:.0f}"),
        ("  = mixup / ERM step", f"{s['mixup_over_erm_from_overhead']:.3f}"),
        ("ERM step throughput", rate_text(rates["erm_step"])),
        ("mixup step throughput", rate_text(rates["mixup_step"])),
        ("mixup train epoch (s)", f"{e['mixup_train_epoch_seconds']:.3f}"),
        ("  throughput", rate_text(rates["mixup_train_epoch"])),
        ("reference loop epoch (s)", f"{e['reference_epoch_seconds']:.3f}"),
        ("  throughput", rate_text(rates["reference_epoch"])),
        ("reference / mixup train", f"{e['reference_over_mixup_train']:.2f}"),
        ("checkpoint write (s)", f"{c['seconds']:.3f} ({c['megabytes']:.1f} MB, {c['over_epoch']:.2f} epoch)"),
        ("eval samples/s", f"{t['eval_samples_per_second']:,.0f}"),
        ("FGSM samples/s", f"{t['fgsm_samples_per_second']:,.0f}"),
        ("peak memory (MB)", f"{result['peak_memory_mb']:.0f}"),
        ("mixup --help (s)", f"{result['help_seconds']:.3f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{args.model} on {result['dataset']}, batch {args.batch_size}, {result['device_name']}, "
          f"{result['threads']} threads, median of {args.repeats}", file=sys.stderr)
    print("  settings (every loop): " + ", ".join(f"{k} {v}" for k, v in result["settings"].items()), file=sys.stderr)
    peak = f"{f['peak_tflops']:g} TFLOP/s, {f['peak_source']}" if f["peak_tflops"] else f["peak_source"]
    print(f"  FLOP limit: {f['per_training_image'] / 1e9:.4g} GFLOP per training image (forward + backward, "
          f"FlopCounterMode); peak {peak}", file=sys.stderr)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>28}", file=sys.stderr)


def main(argv=None) -> None:
    args = parse_args(argv)
    result = measure(args)
    report(args, result)
    if args.json:
        print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
