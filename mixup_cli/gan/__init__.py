"""The GAN stabilization experiment of §3.7 (Figure 5): toy 2-D data, standard vs mixup GAN.

    toy2d.py     the toy datasets (registry) and the mode-coverage metrics
    losses.py    standard and mixup discriminator losses, the generator losses, lambda schemes
    training.py  the resumable training loop and the experiment grid
    plot.py      the Figure 5 layout (matplotlib, Agg)

Its config, GanConfig, is in mixup_cli/config/gan.py (re-exported here).

Names are imported lazily so that `mixup --help` (which reads GanConfig) does not load torch.
"""
from __future__ import annotations

import importlib

_API = {
    "GanConfig": "..config", "GENERATOR_LOSSES": "losses", "LAMBDA_SCHEMES": "losses", "mix": "losses",
    "minimax_generator_loss": "losses", "non_saturating_generator_loss": "losses",
    "mixup_discriminator_loss": "losses", "standard_discriminator_loss": "losses", "TOY_DATASETS": "toy2d",
    "Toy2D": "toy2d", "get_toy": "toy2d", "mode_metrics": "toy2d", "register_toy": "toy2d",
    "SubRun": "training", "aggregate": "training", "plan": "training", "run_experiment": "training",
    "train_subrun": "training",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        module = _API[name]
        return getattr(importlib.import_module(module if module.startswith(".") else f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
