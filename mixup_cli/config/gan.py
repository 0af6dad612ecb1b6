"""The config of `mixup gan` (§3.7): one dataclass, the single source of defaults and help."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from ..errors import ConfigError
from ..env import RUNS_DIR_ENV
from .options import option

#: The iterations Figure 5 shows.
PAPER_SNAPSHOTS = [10, 100, 1000, 10000, 20000]


def _toy_names() -> list[str]:
    from ..gan.toy2d import TOY_DATASETS

    return TOY_DATASETS.names()


def _lambda_names() -> list[str]:
    from ..gan.losses import LAMBDA_SCHEMES

    return LAMBDA_SCHEMES.names()


def _generator_loss_names() -> list[str]:
    from ..gan.losses import GENERATOR_LOSSES

    return GENERATOR_LOSSES.names()


def default_threads() -> int:
    """Half the cores (at least 1, at most 4): these small matrices gain little from more threads,
    and oversubscribing a busy machine slows every step down."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


@dataclasses.dataclass
class GanConfig:
    """A GAN experiment: one dataset, ERM and/or mixup, over a grid of seeds, z-dims and lrs."""

    # Keys a resumed experiment may change; any other explicitly given difference is refused. The grid
    # lists may grow (or shrink): a sub-run's directory is named by everything that varies between
    # sub-runs, so finished ones stay valid and only the new cells are trained.
    RESUMABLE = ("device", "threads", "out", "seeds", "z_dim", "lr", "compare", "log")

    dataset: str = option("ring", "Toy dataset: ring (8 modes) or grid (25 modes).", choices=_toy_names,
                          choice_names=["ring", "grid"], panel="Common")
    alpha: float = option(0.2, "mixup strength of the discriminator (Figure 5 uses 0.2); 0 is the standard GAN.",
                          min=0.0, panel="Common")
    compare: bool = option(True, "Train the standard GAN (alpha 0) beside mixup with the same seeds and data.",
                           panel="Common")
    lam_dist: str = option("beta", "How lambda is drawn per example: beta = Beta(alpha, alpha) mixing real with "
                                   "fake (the paper's formula); uniform = U[0, alpha] mixing two shuffled "
                                   "real+fake batches (the authors' released script).", choices=_lambda_names,
                           choice_names=["beta", "uniform"], panel="Mixing")
    g_loss: str = option("minimax", "Generator loss, on unmixed fakes: minimax = -l(d(g(z)), 0), the paper's max_g "
                                    "of the discriminator's loss (§3.7; the authors' demo too); non-saturating = "
                                    "l(d(g(z)), 1) (Goodfellow et al., 2014).", choices=_generator_loss_names,
                         choice_names=["minimax", "non-saturating"], panel="Optimization")
    iterations: int = option(20000, "Generator iterations (the paper: 20,000).", min=1, panel="Common")
    d_steps: int = option(5, "Discriminator steps before every generator step (the paper: 5).", min=1,
                          panel="Optimization")
    batch_size: int = option(128, "Batch size (the paper: 128).", min=1, panel="Optimization")
    z_dim: list[int] = option([2], "Noise dimension(s) of the generator; a list runs a grid, e.g. 2,5,10.", min=1,
                              panel="Model")
    lr: list[float] = option([1e-3], "Adam learning rate(s) (default: Adam's own 1e-3); a list runs a grid.",
                             min=0.0, min_exclusive=True, panel="Optimization")
    seeds: list[int] = option([0], "Seeds; a list runs each setting once per seed, e.g. 0,1,2.", min=0,
                              panel="Common")
    hidden: int = option(512, "Units in each hidden ReLU layer of both networks (the paper: 512).", min=1,
                         panel="Model")
    layers: int = option(3, "Hidden layers of both networks (the paper: 3).", min=1, panel="Model")
    snapshots: list[int] = option(PAPER_SNAPSHOTS, "Iterations at which samples are drawn, scored and plotted "
                                                   "(those above --iterations are dropped; the last iteration "
                                                   "is always one).", min=1, panel="Run")
    num_samples: int = option(2000, "Generated points per snapshot (scored, plotted and saved as CSV).", min=1,
                              panel="Run")
    cover_share: float = option(0.01, "A mode counts as covered when at least this share of the samples lies "
                                      "within 3 standard deviations of its centre.", min=0.0, max=1.0, panel="Run")
    log: list[str] = option([], "Experiment tracking of every snapshot, e.g. csv,tensorboard, in each sub-run's "
                                "directory (runs/<key>/): csv (summary.csv, one row per snapshot iteration), "
                                "tensorboard (event files under tensorboard/, step = the iteration), wandb (when "
                                "installed).", choices=["csv", "tensorboard", "wandb"], panel="Run")
    checkpoint_every: int = option(1000, "Iterations between checkpoints of an unfinished sub-run.", min=1,
                                   panel="Run")
    threads: Optional[int] = option(None, "CPU threads for torch; auto: half the cores, at most 4.", min=1,
                                    panel="Speed", shown_default="auto")
    device: str = option("auto", "auto | cpu | cuda | cuda:N (auto = CUDA when present).", panel="Common")
    out: Optional[str] = option(None, "Output directory; by default a new folder under $MIXUP_RUNS_DIR when set, "
                                "else under runs/.", panel="Common", path="dir", env_root=RUNS_DIR_ENV,
                                shown_default="runs/gan-<dataset>-<time>")

    def check(self) -> None:
        from ..devices import check_device_name
        from ..gan.losses import GENERATOR_LOSSES, LAMBDA_SCHEMES
        from ..gan.toy2d import TOY_DATASETS
        from ..logging_sinks import check_sinks

        TOY_DATASETS.get(self.dataset)
        LAMBDA_SCHEMES.get(self.lam_dist)
        GENERATOR_LOSSES.get(self.g_loss)
        check_sinks(self.log)
        check_device_name(self.device)
        for key in ("z_dim", "lr", "seeds"):
            values = getattr(self, key)
            if not values:
                raise ConfigError(f"config key '{key}' needs at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(f"config key '{key}' lists a value twice: {values}")

    @property
    def methods(self) -> list[tuple[str, float]]:
        """(name, alpha) of each method trained: ERM first, so the figure's top row is the baseline."""
        if self.alpha == 0:
            return [("erm", 0.0)]
        return ([("erm", 0.0)] if self.compare else []) + [("mixup", self.alpha)]

    def snapshot_iterations(self) -> list[int]:
        return sorted({s for s in self.snapshots if s <= self.iterations} | {self.iterations})
