"""Several seeds of one experiment: one run directory per seed, and their aggregate.

    <out>/seed-0/ ...      an ordinary run (or experiment) per seed
    <out>/summary.json     mean ± std over the seeds, and each seed's own figures

Used by `--seeds` of train, attack and corrupt-labels, and by `mixup reproduce`.
"""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Iterable

from .errors import ConfigError

# The figures of a training run that are aggregated: last epoch, best epoch, median of the last 10
# epochs (the paper's three ways of reading a run), top-5.
TRAIN_KEYS = ("test_error", "best_test_error", "median_last10_test_error", "test_top5_error")
_SEED_DIR = re.compile(r"^seed-(\d+)$")


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; empty items, repeats and non-numbers are refused rather than dropped."""
    items = [item.strip() for item in str(text).split(",")]
    if not all(item.isdigit() for item in items):
        raise ConfigError(f"--seeds '{text}' is not a comma-separated list of seeds (whole numbers); e.g. --seeds 0,1,2")
    seeds = [int(item) for item in items]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds '{text}' repeats a seed; give each once")
    return seeds


def seeds_for(seeds_text: str, overrides: dict) -> list[int]:
    """The seeds of a --seeds command, refusing a --seed beside them."""
    seeds = parse_seeds(seeds_text)
    if overrides.get("seed") is not None:
        raise ConfigError("--seed and --seeds both given; pass one of them")
    return seeds


def seed_dir(root: Path, seed: int) -> Path:
    return Path(root) / f"seed-{seed}"


def seed_runs(root) -> dict[int, Path]:
    """The seed-N folders of a multi-seed directory, by seed in increasing order; {} when `root` is not
    one (a file, or a run directory: one that holds best.pt or last.pt itself)."""
    root = Path(root)
    if not root.is_dir() or (root / "best.pt").is_file() or (root / "last.pt").is_file():
        return {}
    found = {}
    for child in root.iterdir():
        match = _SEED_DIR.match(child.name)
        if match and child.is_dir():
            found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def mean_std(values: Iterable[float]) -> dict:
    """{'mean', 'std', 'n', 'values'}; std is the sample standard deviation (0 for one value)."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0, "values": []}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}


def format_mean_std(stat: dict, digits: int = 2) -> str:
    """'mean ± std' of a mean_std dict, or '-' when it holds no value."""
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def aggregate_runs(summaries: list[dict], keys: Iterable[str] = TRAIN_KEYS) -> dict:
    """The seeds' summaries side by side and their mean ± std per key."""
    per_run = [{"seed": s.get("seed"), **{k: s.get(k) for k in (*keys, "best_epoch", "run_dir")}} for s in summaries]
    return {"seeds": [s.get("seed") for s in summaries], "runs": per_run,
            **{key: mean_std(s.get(key) for s in summaries) for key in keys}}


def write_aggregate(root: Path, payload: dict) -> Path:
    from .runs import write_text_atomic

    path = Path(root) / "summary.json"
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
    return path
