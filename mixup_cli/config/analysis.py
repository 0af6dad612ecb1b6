"""The config of `mixup eval --between | --calibration | --boundary` (the analyses of analysis.py)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from .options import option

MODES = ("between", "calibration", "boundary")
PANEL = "Analysis"  # the --help panel of these options


@dataclasses.dataclass
class AnalysisConfig:
    """The analyses `mixup eval` runs instead of its test-error table, and their settings."""

    between: bool = option(False, "Figure 2: misses and input-gradient norms between random pairs of training "
                                  "examples, for each --ckpt side by side.", panel=PANEL)
    calibration: bool = option(False, "Expected calibration error (equal-width bins) and a reliability diagram "
                                      "for each --ckpt, on its test split.", panel=PANEL)
    boundary: bool = option(False, "Figure 1b: train ERM and mixup on two moons and plot their decision "
                                   "boundaries side by side (needs --plot, no --ckpt).", panel=PANEL)
    pairs: int = option(1000, "--between: random training pairs.", min=1, panel=PANEL)
    lambdas: str = option("0.5,0.6,0.7,0.8,0.9,1.0", "--between: lambda grid, comma-separated, in [0, 1].",
                          panel=PANEL)
    bins: int = option(15, "--calibration: confidence bins of the ECE.", min=1, panel=PANEL)
    seed: int = option(0, "Seed of the pairs (--between) and of the toy data and training (--boundary).", min=0,
                       panel=PANEL)
    plot: Optional[str] = option(None, "PNG file to draw the analysis into (never overwritten).", panel=PANEL,
                                 path="file")
    boundary_alpha: float = option(1.0, "--boundary: alpha of the mixup model (the other is ERM).", min=0.0,
                                   min_exclusive=True, panel=PANEL)
    boundary_steps: int = option(2000, "--boundary: Adam steps of each toy model.", min=1, panel=PANEL)
    boundary_samples: int = option(200, "--boundary: two-moons training points.", min=4, panel=PANEL)
