"""The config of `mixup attack` (§3.5, Table 3)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..errors import ConfigError
from ..env import DATA_DIR_ENV
from .options import option


def _attack_names() -> list[str]:
    from ..attacks import ATTACKS

    return ATTACKS.names()


@dataclasses.dataclass
class AttackConfig:
    """What `mixup attack` runs: methods × ε on the test split, white box or black box (§3.5)."""

    method: list[str] = option(["fgsm", "ifgsm"], "Attack methods, comma-separated: fgsm (Goodfellow et al. "
                                                   "2015), ifgsm (Kurakin et al. 2017).", choices=_attack_names)
    epsilon: list[float] = option([4.0], "L∞ radius in pixel levels of the 0–255 scale (4 = 4/255, the paper's); "
                                         "comma-separated to sweep, e.g. 1,2,4,8.", min=0.0)
    steps: int = option(10, "I-FGSM iterations.", min=1)
    step_size: Optional[float] = option(None, "I-FGSM step in pixel levels of the 0–255 scale; default epsilon/steps.",
                                        min=0.0, min_exclusive=True)
    source_ckpt: Optional[str] = option(None, "Black box: make the examples on this checkpoint (or run directory) "
                                              "and evaluate them on every --ckpt; default: white box.")
    limit: Optional[int] = option(None, "Attack only this many test examples (a fixed subset); default: all.", min=1)
    batch_size: int = option(256, "Examples per batch.", min=1)
    device: str = option("auto", "auto | cpu | cuda | cuda:N (auto = CUDA when present).")
    dataset: Optional[str] = option(None, "Dataset to attack on; default: the checkpoints' own.")
    data_dir: Optional[str] = option(None, "Dataset folder, if not the one the run used.", env=DATA_DIR_ENV)

    def fill_defaults(self) -> None:
        # Repeats would only double the work and the rows.
        self.method = list(dict.fromkeys(self.method))
        self.epsilon = list(dict.fromkeys(self.epsilon))

    def check(self) -> None:
        from ..devices import check_device_name

        check_device_name(self.device)
        if not self.method:
            raise ConfigError("config key 'method' is empty; give at least one of: " + ", ".join(_attack_names()))
        if not self.epsilon:
            raise ConfigError("config key 'epsilon' is empty; give at least one value, e.g. 4")
