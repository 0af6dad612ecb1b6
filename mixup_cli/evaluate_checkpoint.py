"""Evaluate a saved checkpoint on a split of its dataset (test by default): the figure `train`
reported for it, beside the best, last and median-of-last-10 errors of its metrics.jsonl."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .checkpoint import open_checkpoint
from .data.batches import make_batches
from .evaluation import evaluate
from .runs import history_statistics, read_metrics


def evaluate_checkpoint(path: str, device: str = "auto", data_dir: Optional[str] = None,
                        batch_size: int = 512, workers: Optional[int] = None, split: str = "test") -> dict:
    opened = open_checkpoint(path, device)
    spec, config, info = opened.spec, opened.config, opened.info
    examples = spec.load(split, data_dir or config.get("data_dir"))
    batches = make_batches(examples, batch_size, opened.device, shuffle=False, workers=workers)
    metrics = evaluate(opened.model, batches, spec.num_classes)
    return {
        **{key: info[key] for key in ("ckpt", "dataset", "model", "method", "alpha", "epoch")},
        "split": split, "n": metrics["n"], f"{split}_error": metrics["top1_error"],
        f"{split}_top5_error": metrics["top5_error"], f"{split}_loss": metrics["loss"],
        **history_statistics(read_metrics(Path(opened.path).parent), split),
    }
