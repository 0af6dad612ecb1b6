"""Evaluate a saved checkpoint on its dataset's test split: the figure `train` reported for it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import get_dataset
from .data.batches import make_batches
from .devices import resolve_device
from .errors import ConfigError
from .evaluation import evaluate
from .runs import read_metrics

HISTORY_KEYS = ("best_test_error", "best_epoch", "last_test_error", "median_last10_test_error", "epochs_run")


def history_statistics(history: list[dict]) -> dict:
    """The paper's ways of reading a run: the best epoch's test error (Table 2 "best"), the last
    epoch's (Table 2 "last"), and the median over the last 10 epochs (the §3.8 ablation).
    All None for a checkpoint with no metrics.jsonl beside it."""
    if not history:
        return dict.fromkeys(HISTORY_KEYS)
    best = min(history, key=lambda r: r["test_error"])
    tail = sorted(r["test_error"] for r in history[-10:])
    return {"best_test_error": best["test_error"], "best_epoch": best["epoch"],
            "last_test_error": history[-1]["test_error"],
            "median_last10_test_error": (tail[(len(tail) - 1) // 2] + tail[len(tail) // 2]) / 2,
            "epochs_run": history[-1]["epoch"]}


def evaluate_checkpoint(path: str, device: str = "auto", data_dir: Optional[str] = None,
                        batch_size: int = 512, workers: int = 0) -> dict:
    payload = load_checkpoint(path)
    config = payload["config"]
    spec = get_dataset(payload["dataset"]["name"])
    if spec.num_classes != payload["model"]["num_classes"]:
        raise ConfigError(f"checkpoint '{path}' has {payload['model']['num_classes']} classes but dataset "
                          f"'{spec.name}' has {spec.num_classes}")
    torch_device = resolve_device(device)
    model = model_from_checkpoint(payload).to(torch_device)
    test_set = spec.load("test", data_dir or config.get("data_dir"))
    batches = make_batches(test_set, batch_size, torch_device, shuffle=False, workers=workers)
    metrics = evaluate(model, batches, spec.num_classes)
    return {
        "ckpt": payload["path"], "dataset": spec.name, "model": payload["model"]["name"],
        "method": "mixup" if config.get("alpha", 0) > 0 else "erm", "alpha": config.get("alpha"),
        "epoch": payload["epoch"], "n": metrics["n"], "test_error": metrics["top1_error"],
        "test_top5_error": metrics["top5_error"], "test_loss": metrics["loss"],
        **history_statistics(read_metrics(Path(payload["path"]).parent)),
    }
