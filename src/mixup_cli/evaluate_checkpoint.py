"""Evaluate a saved checkpoint on its dataset's test split: the figure `train` reported for it."""
from __future__ import annotations

from typing import Optional

from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import get_dataset
from .data.batches import make_batches
from .devices import resolve_device
from .errors import ConfigError
from .evaluation import evaluate


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
    }
