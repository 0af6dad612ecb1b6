"""Helpers of benchmarks/gpu_check.sh: synthetic CIFAR-10 files, `mixup` run in this process with its host
syncs counted, and one summary line per check.

    python benchmarks/check_tools.py synthetic DIR N_TRAIN N_TEST [DIR N_TRAIN N_TEST ...]
    python benchmarks/check_tools.py train-syncs RESULT.json -- train --device cuda ...   (any mixup arguments)
    python benchmarks/check_tools.py summarize train|bench|ddp RESULT.json
"""
from __future__ import annotations

import collections
import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def synthetic(*triples: str) -> None:
    """CIFAR-10 files of random pixels in each FOLDER N_TRAIN N_TEST triple (bench.py's writer)."""
    from bench import write_synthetic_cifar10

    for folder, n_train, n_test in zip(triples[::3], triples[1::3], triples[2::3]):
        write_synthetic_cifar10(Path(folder), int(n_train), int(n_test))


def run_cli(arguments: list[str]) -> int:
    """`mixup ARGUMENTS` in this process, through the same entry point as the command; its exit code."""
    from mixup_cli.cli import main

    sys.argv = ["mixup", *arguments]
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def counted_syncs(run) -> tuple[int, collections.Counter]:
    """run()'s result and its host syncs by the Python line that caused them. torch's sync debug mode
    warns at each synchronizing CUDA call (.item(), a blocking copy, a device-to-host save, ...); every
    warning is kept (the default filter would show each line once)."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            result = run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    return result, collections.Counter(f"{_short(w.filename)}:{w.lineno}" for w in syncs)


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for root in ("mixup_cli", "torch"):
        if root in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(root) - 1:])
    return Path(filename).name


def train_syncs(result_path: str, arguments: list[str]) -> int:
    """Run `mixup ARGUMENTS`, counting host syncs where CUDA is in use; write the count and the run's summary."""
    import torch

    cuda = "--device" in arguments and arguments[arguments.index("--device") + 1].startswith("cuda")
    if cuda and torch.cuda.is_available():
        code, by_line = counted_syncs(lambda: run_cli(arguments))
        syncs = {"total": sum(by_line.values()), "by_line": by_line.most_common(8)}
    else:
        code, syncs = run_cli(arguments), None  # sync debug mode exists on CUDA only
    out = Path(arguments[arguments.index("--out") + 1])
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else None
    Path(result_path).write_text(json.dumps({"exit_code": code, "syncs": syncs, "summary": summary}, indent=2))
    return code


def summarize(kind: str, result_path: str) -> str:
    result = json.loads(Path(result_path).read_text())
    if kind == "bench":
        return _bench_line(result)
    summary = result["summary"] if kind == "train" else result
    line = (f"test error {summary['test_error']:.2f}%, {summary['samples_per_second']:,.0f} samples/s, "
            f"{summary['precision']}, world size {summary.get('world_size', 1)}")
    if kind == "train":
        syncs = result["syncs"]
        if syncs is None:
            line += "; host syncs n/a (sync debug mode is CUDA's)"
        else:
            where = ", ".join(f"{place} x{count}" for place, count in syncs["by_line"][:4])
            line += f"; host syncs {syncs['total']} over {summary['epochs']} epochs ({where})"
    return line


def _bench_line(result: dict) -> str:
    step, epoch, rates = result["step"], result["epoch"], result["flops"]["rates"]
    ours = rates["mixup_train_epoch"]
    peak = f" = {100 * ours['of_peak']:.1f}% of peak" if ours["of_peak"] is not None else ""
    return (f"{result['settings']['precision']}, compile {result['settings']['compile']}: "
            f"mixup/ERM step {step['mixup_over_erm']:.3f} (op alone {step['mixup_over_erm_from_overhead']:.3f}); "
            f"trainer {ours['samples_per_second']:,.0f}/s vs reference "
            f"{rates['reference_epoch']['samples_per_second']:,.0f}/s = {epoch['reference_over_mixup_train']:.2f}x; "
            f"trainer {ours['tflops']:.3g} TFLOP/s{peak}; checkpoint {result['checkpoint']['seconds']:.2f} s")


def main(argv: list[str]) -> int:
    if argv[:1] == ["synthetic"] and len(argv) > 1 and len(argv) % 3 == 1:
        synthetic(*argv[1:])
        return 0
    if argv[:1] == ["train-syncs"] and len(argv) > 3 and argv[2] == "--":
        return train_syncs(argv[1], argv[3:])
    if argv[:1] == ["summarize"] and len(argv) == 3:
        print(summarize(argv[1], argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
