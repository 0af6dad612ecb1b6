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
from mixup_cli.speed import compile_model, configure_torch, resolve_speed, set_layout, to_layout
from mixup_cli.trainer import peak_memory_mb, train


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, repeats: int, device) -> float:
    return statistics.median(timed(fn, device) for _ in range(repeats))


def timed(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds of each fn, measured in turns (a b, b a, a b, ...): a machine growing busier or
    quieter weighs on every contender alike, and none always runs right after another (caches)."""
    times = {name: [] for name in fns}
    for round_ in range(repeats):
        order = list(fns.items())
        for name, fn in (order if round_ % 2 == 0 else order[::-1]):
            times[name].append(fn())
    return {name: statistics.median(values) for name, values in times.items()}


def make_model(spec, name, device):
    net = build_model(name, spec.num_classes, spec.input_shape)
    return Normalized(net, list(spec.mean), list(spec.std), len(spec.input_shape)).to(device)


def step_times(args, spec, device, train_set) -> dict:
    """Median seconds per training step for ERM and mixup, same batch and model."""
    batches = make_batches(train_set, args.batch_size, device, shuffle=True, augment=spec.augment, drop_last=True)
    inputs, labels = next(iter(batches.epoch(0)))
    runners = {}
    for method, alpha in (("erm", 0.0), ("mixup", 1.0)):
        runners[method] = _step_runner(args, spec, device, inputs, labels, method, alpha)
        runners[method]()  # warm-up
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


def _step_runner(args, spec, device, inputs, labels, method, alpha):
    """args.steps training steps of `method` on one fixed batch, as the trainer takes them."""
    model = make_model(spec, args.model, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    config = resolve_config(TrainConfig, None, {"dataset": args.dataset, "model": args.model, "alpha": alpha,
                                                "channels_last": args.channels_last, "compile": args.compile})
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


def reference_epochs(args, spec, device, train_set) -> None:
    """args.epochs epochs the way the official script trains: per-sample transforms in a DataLoader, mixing per batch."""
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
    for x, y in (batch for _ in range(args.epochs) for batch in loader):
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
        """The trainer's own timing of its training epochs (the steps, without evaluation or checkpoints)."""
        with tempfile.TemporaryDirectory() as tmp:
            config = resolve_config(TrainConfig, None, {
                "dataset": args.dataset, "data_dir": args.data_dir, "model": args.model, "alpha": 1.0,
                "epochs": args.epochs, "batch_size": args.batch_size, "device": str(device), "out": tmp,
                "channels_last": args.channels_last, "compile": args.compile})
            return train(config, Path(tmp))["seconds"] / args.epochs

    ours()  # warm-up (first-touch allocations, dataset caches)
    medians = interleaved_medians({
        "ours": ours,
        "reference": lambda: timed(lambda: reference_epochs(args, spec, device, train_set), device) / args.epochs,
    }, args.repeats)
    return {"mixup_train_epoch_seconds": medians["ours"], "reference_epoch_seconds": medians["reference"],
            "reference_over_mixup_train": medians["reference"] / medians["ours"],
            "note": f"seconds per epoch over runs of {args.epochs} epochs; both time training only (the reference includes building its DataLoader iterator); "
                    "measured in turns"}


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
    parser.add_argument("--epochs", type=int, default=3, help="epochs per epoch-time measurement")
    parser.add_argument("--steps", type=int, default=20, help="training steps per step-time measurement")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the reference loop")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels_last layout for mixup's step and epoch (default: the trainer's, on for CUDA)")
    parser.add_argument("--compile", default="off", help="torch.compile mode for mixup's step and epoch")
    parser.add_argument("--synthetic", type=int, default=None, metavar="N",
                        help="time on N random images in CIFAR-10's format (and N/5 test images) instead of "
                             "--dataset/--data-dir: CIFAR's shapes and code path without its files")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs, measures nothing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.steps, args.epochs = 1, 2, 1
    if args.synthetic is not None:
        scratch = tempfile.TemporaryDirectory()
        write_synthetic_cifar10(Path(scratch.name), args.synthetic, max(args.synthetic // 5, 1))
        args.dataset, args.data_dir = "cifar10", scratch.name
    spec = get_dataset(args.dataset)
    args.model = args.model or spec.default_model
    device = resolve_device(args.device)
    train_set = spec.load("train", args.data_dir, augment=True)

    result = {"dataset": args.dataset + (f" (synthetic, {args.synthetic} images)" if args.synthetic else ""), "model": args.model, "batch_size": args.batch_size, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "threads": torch.get_num_threads(), "repeats": args.repeats}
    result["settings"] = resolve_speed(resolve_config(TrainConfig, None, {
        "dataset": args.dataset, "model": args.model, "channels_last": args.channels_last,
        "compile": args.compile}), device,
        spec.input_shape).describe()
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
        ("mixing op + mixed loss (us)", f"+{1e6 * s['mixing_overhead_seconds']:.0f}"),
        ("  = mixup / ERM step", f"{s['mixup_over_erm_from_overhead']:.3f}"),
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
    print(f"{args.model} on {result['dataset']}, batch {args.batch_size}, {result['device_name']}, "
          f"{result['threads']} threads, median of {args.repeats}", file=sys.stderr)
    print("  mixup train settings: " + ", ".join(f"{k} {v}" for k, v in result["settings"].items()), file=sys.stderr)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>16}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
