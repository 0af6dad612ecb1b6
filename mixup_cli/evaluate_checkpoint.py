"""Evaluate a saved checkpoint on a split of its dataset (test by default): the figure `train`
reported for it, beside the best, last and median-of-last-10 errors of its metrics.jsonl."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import get_dataset
from .data.batches import make_batches
from .devices import resolve_device
from .errors import ConfigError
from .evaluation import evaluate
from .runs import history_statistics, read_metrics


def evaluate_checkpoint(path: str, device: str = "auto", data_dir: Optional[str] = None,
                        batch_size: int = 512, workers: Optional[int] = None, split: str = "test") -> dict:
    payload = load_checkpoint(path)
    config = payload["config"]
    spec = get_dataset(payload["dataset"]["name"])
    if spec.num_classes != payload["model"]["num_classes"]:
        raise ConfigError(f"checkpoint '{path}' has {payload['model']['num_classes']} classes but dataset "
                          f"'{spec.name}' has {spec.num_classes}")
    torch_device = resolve_device(device)
    model = model_from_checkpoint(payload).to(torch_device)
    examples = spec.load(split, data_dir or config.get("data_dir"))
    batches = make_batches(examples, batch_size, torch_device, shuffle=False, workers=workers)
    metrics = evaluate(model, batches, spec.num_classes)
    return {
        "ckpt": payload["path"], "dataset": spec.name, "model": payload["model"]["name"],
        "method": "mixup" if config.get("alpha", 0) > 0 else "erm", "alpha": config.get("alpha"),
        "epoch": payload["epoch"], "split": split, "n": metrics["n"], f"{split}_error": metrics["top1_error"],
        f"{split}_top5_error": metrics["top5_error"], f"{split}_loss": metrics["loss"],
        **history_statistics(read_metrics(Path(payload["path"]).parent), split),
    }
