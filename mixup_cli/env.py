"""The environment variables a lab sets once for every command: where the datasets are and where
run directories go by default.

    MIXUP_DATA_DIR   the default of --data-dir (every command that takes it)
    MIXUP_RUNS_DIR   the parent of default run directories (train, corrupt-labels, gan, reproduce),
                     instead of runs/

Config fields name their variable in their metadata (`option(..., env=DATA_DIR_ENV)`), and
`resolve_config` applies it: defaults < YAML < environment < flags, for a new config only (a
resumed run keeps the value it was started with; a flag still changes it where resumable).
An empty variable counts as unset.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

DATA_DIR_ENV = "MIXUP_DATA_DIR"
RUNS_DIR_ENV = "MIXUP_RUNS_DIR"


def from_env(name: Optional[str]) -> Optional[str]:
    """The variable's value; None when `name` is None, or the variable is unset or empty."""
    return (os.environ.get(name) or None) if name else None


def runs_root() -> Path:
    """The folder that holds default run directories: $MIXUP_RUNS_DIR, else runs/."""
    return Path(from_env(RUNS_DIR_ENV) or "runs")
