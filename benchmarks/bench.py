"""Speed and memory of mixup-cli, measured (issue 8). Run by hand, never as a timed test.

    ./run python benchmarks/bench.py                                  # digits, small-cnn, CPU
    ./run python benchmarks/bench.py --dataset cifar10 --data-dir data --model preact-resnet18 --device cuda
    ./run python benchmarks/bench.py --smoke --json                   # tiny sizes (CI checks it runs)

Prints a table (stderr) and, with --json, one object (stdout) of:
- training-step time and samples/s for ERM (alpha 0) and mixup (alpha 1) on the same model, batch and
  device, and their ratio (the paper's "minimal computation overhead");
- end-to-end epoch time of `mixup train`'s trainer against a reference loop written the way the
  paper's official script works (DataLoader with per-sample CPU transforms, numpy Beta draw and
  randperm each batch, same model, data, batch size and optimizer), and that ratio;
- evaluation and FGSM attack throughput; peak memory (RSS on the CPU, peak allocated on CUDA);
- the start-up time of `mixup --help`.
Each figure is the median of --repeats measurements.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mixup_cli.attacks import attack
from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.data import get_dataset
from mixup_cli.data.batches import make_batches
from mixup_cli.devices import resolve_device
from mixup_cli.evaluation import evaluate
from mixup_cli.mixing import build_mixer
from mixup_cli.models import Normalized, build_model
from mixup_cli.trainer import peak_memory_mb, train


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, repeats: int, device) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_model(spec, name, device):
    net = build_model(name, spec.num_classes, spec.input_shape)
    return Normalized(net, list(spec.mean), list(spec.std), len(spec.input_shape)).to(device)


def step_times(args, spec, device, train_set) -> dict:
    """Median seconds per training step for ERM and mixup, same batch and model."""
    batches = make_batches(train_set, args.batch_size, device, shuffle=True, augment=spec.augment, drop_last=True)
    inputs, labels = next(iter(batches.epoch(0)))
    results = {}
    for method, alpha in (("erm", 0.0), ("mixup", 1.0)):
        model = make_model(spec, args.model, device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        config = resolve_config(TrainConfig, None, {"dataset": args.dataset, "model": args.model, "alpha": alpha})
        mixer = build_mixer(config, model=model, device=device)
        rng, generator = np.random.default_rng(0), torch.Generator(device=device).manual_seed(0)

        def steps():
            for _ in range(args.steps):
                batch = mixer(inputs, labels, alpha, rng, generator)
                loss = batch.loss(batch.forward(model))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        steps()  # warm-up
        seconds = median_time(steps, args.repeats, device) / args.steps
        results[method] = {"step_seconds": seconds, "samples_per_second": len(labels) / seconds}
    results["mixup_over_erm"] = results["mixup"]["step_seconds"] / results["erm"]["step_seconds"]
    return results


def reference_epoch(args, spec, device, train_set) -> None:
    """One epoch the way the official script trains: per-sample transforms in a DataLoader, mixing per batch."""
    import torchvision.transforms.v2 as T

    images = train_set.to_raw(train_set.inputs) if hasattr(train_set, "inputs") else None
    transform = T.Compose([T.RandomCrop(spec.input_shape[1:], padding=4), T.RandomHorizontalFlip()]) \
        if spec.augment == "crop-flip" else (lambda x: x)

    class PerSample(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return transform(images[i]), train_set.labels[i]

    loader = torch.utils.data.DataLoader(PerSample(), batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.workers, drop_last=True,
                                         pin_memory=device.type == "cuda")
    model = make_model(spec, args.model, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        lam = np.random.beta(1.0, 1.0)
        index = torch.randperm(x.size(0), device=device)
        mixed = lam * x + (1 - lam) * x[index]
        out = model(mixed)
        loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # the official script reads the loss every batch


def epoch_times(args, spec, device, train_set) -> dict:
    def ours() -> float:
        """The trainer's own timing of its training epoch (the steps, without evaluation or checkpoints)."""
        with tempfile.TemporaryDirectory() as tmp:
            config = resolve_config(TrainConfig, None, {
                "dataset": args.dataset, "data_dir": args.data_dir, "model": args.model, "alpha": 1.0,
                "epochs": 1, "batch_size": args.batch_size, "device": str(device), "out": tmp})
            return train(config, Path(tmp))["seconds"]

    ours()  # warm-up (first-touch allocations, dataset caches)
    mixup_cli = statistics.median(ours() for _ in range(args.repeats))
    reference = median_time(lambda: reference_epoch(args, spec, device, train_set), args.repeats, device)
    return {"mixup_train_epoch_seconds": mixup_cli, "reference_epoch_seconds": reference,
            "reference_over_mixup_train": reference / mixup_cli,
            "note": "both time the training epoch only (the reference includes building its DataLoader iterator)"}


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


def help_startup(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mixup_cli", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch-size", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="training steps per step-time measurement")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the reference loop")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs, measures nothing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.steps = 1, 2
    spec = get_dataset(args.dataset)
    args.model = args.model or spec.default_model
    device = resolve_device(args.device)
    train_set = spec.load("train", args.data_dir, augment=True)

    result = {"dataset": args.dataset, "model": args.model, "batch_size": args.batch_size, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "threads": torch.get_num_threads(), "repeats": args.repeats}
    result["step"] = step_times(args, spec, device, train_set)
    result["epoch"] = epoch_times(args, spec, device, train_set)
    result["throughput"] = throughput(args, spec, device)
    result["peak_memory_mb"] = peak_memory_mb(device)
    result["help_seconds"] = help_startup(args.repeats)

    s, e, t = result["step"], result["epoch"], result["throughput"]
    rows = [
        ("ERM step (ms)", f"{1000 * s['erm']['step_seconds']:.2f}"),
        ("mixup step (ms)", f"{1000 * s['mixup']['step_seconds']:.2f}"),
        ("mixup / ERM step", f"{s['mixup_over_erm']:.3f}"),
        ("ERM / mixup samples/s", f"{s['erm']['samples_per_second']:,.0f} / {s['mixup']['samples_per_second']:,.0f}"),
        ("mixup train epoch (s)", f"{e['mixup_train_epoch_seconds']:.3f}"),
        ("reference loop epoch (s)", f"{e['reference_epoch_seconds']:.3f}"),
        ("reference / mixup train", f"{e['reference_over_mixup_train']:.2f}"),
        ("eval samples/s", f"{t['eval_samples_per_second']:,.0f}"),
        ("FGSM samples/s", f"{t['fgsm_samples_per_second']:,.0f}"),
        ("peak memory (MB)", f"{result['peak_memory_mb']:.0f}"),
        ("mixup --help (s)", f"{result['help_seconds']:.3f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{args.model} on {args.dataset}, batch {args.batch_size}, {result['device_name']}, "
          f"{result['threads']} threads, median of {args.repeats}", file=sys.stderr)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>16}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
