"""mixup-cli: the experiments of "mixup: Beyond Empirical Risk Minimization" from one command.

The scripting API, imported lazily so that `mixup --help` does not pay for torch:

    from mixup_cli import TrainConfig, train, load_model, load_dataset, build_model, mixup
    summary = train(TrainConfig(epochs=2, out="runs/my-run"))  # the summary dict; files in runs/my-run
    model = load_model("runs/my-run/best.pt")          # eval mode, raw-scale inputs
    test = load_dataset("digits", "test")              # torch Dataset of (input, label)
    net = build_model("small-cnn", num_classes=10, input_shape=(1, 8, 8))
    batch = mixup(x, y, alpha=1.0)                     # MixedBatch: .inputs, .loss(logits)
    train_fewshot(FewShotConfig(method="s2m2", out="runs/fs"))          # S2M2 (mixup fewshot train)
    evaluate_fewshot("runs/fs", FewShotEvalConfig(ways=3, shots=[1, 5]))  # episodes (mixup fewshot eval)

docs/api.md describes each; examples/api.py runs them.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "load_model": "mixup_cli.checkpoint",
    "load_checkpoint": "mixup_cli.checkpoint",
    "open_checkpoint": "mixup_cli.checkpoint",
    "load_dataset": "mixup_cli.data",
    "get_dataset": "mixup_cli.data",
    "DATASETS": "mixup_cli.data",
    "build_model": "mixup_cli.models",
    "MODELS": "mixup_cli.models",
    "mixup": "mixup_cli.mixing",
    "mixed_cross_entropy": "mixup_cli.mixing",
    "MixedBatch": "mixup_cli.mixing",
    "TrainConfig": "mixup_cli.config",
    "train": "mixup_cli.trainer",
    "FewShotConfig": "mixup_cli.config.fewshot",
    "FewShotEvalConfig": "mixup_cli.config.fewshot",
    "train_fewshot": "mixup_cli.fewshot",
    "evaluate_fewshot": "mixup_cli.fewshot",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'mixup_cli' has no attribute '{name}'")
