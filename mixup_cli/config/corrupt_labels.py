"""The config of `mixup corrupt-labels` (§3.4, Table 2), and its per-fraction settings.

The training recipe every sub-run receives is TrainConfig's own fields (`same_option`), declared
once there; only the defaults of the paper's protocol (CIFAR-10, PreAct ResNet-18, 200 epochs,
the step schedule of §3.2) are this config's.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..errors import ConfigError
from ..env import RUNS_DIR_ENV
from .options import check_keys, load_yaml, option, resolve_config, same_option
from .train import TrainConfig

# ---------------------------------------------------------------------------------------------
# Per-fraction settings: "0.2:8,0.5:32,0.8:32", or one number for every fraction.

PER_FRACTION_FIELDS = ("mixup_alpha", "dropout", "mixup_dropout_alpha", "mixup_dropout_p")


def parse_per_fraction(key: str, text: str) -> dict[float, float]:
    """{fraction: value} from 'F:V,F:V' ('*' for a single number V)."""
    wrong = ConfigError(f"config key '{key}' must be a number or FRACTION:VALUE pairs like 0.2:8,0.5:32, got {text!r}")
    pairs: dict[float, float] = {}
    for item in (s.strip() for s in str(text).split(",")):
        if not item:
            continue
        fraction, sep, value = item.rpartition(":")
        try:
            pairs[float(fraction) if sep else -1.0] = float(value)
        except ValueError:
            raise wrong from None
    if not pairs or (-1.0 in pairs and len(pairs) > 1):
        raise wrong
    return pairs


def per_fraction_text(value) -> str:
    """A YAML value (number, mapping or string) in the flag's 'F:V,...' form."""
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items())
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


# ---------------------------------------------------------------------------------------------
# The config.

def _method_names() -> list[str]:
    from ..corrupt_labels import METHODS

    return METHODS.names()


def _recipe(name: str, default=dataclasses.MISSING):
    """TrainConfig's field `name` (its help, choices and limits), passed on to every sub-run; listed in
    this command's plain 'Options' panel. A folder given for data_dir is checked by the dataset."""
    return same_option(TrainConfig, name, default, panel=None, must_exist=False)


@dataclasses.dataclass
class CorruptLabelsConfig:
    """Table 2's protocol; the defaults are the paper's (§3.4, with the CIFAR recipe of §3.2)."""

    # Keys a resumed experiment may change: where and how it runs, which (fraction, method) pairs, and
    # (only upwards, as `mixup train --resume` allows) the epochs.
    RESUMABLE = ("device", "workers", "eval_batch_size", "out", "data_dir", "fraction", "methods", "epochs", "log")

    dataset: str = _recipe("dataset", "cifar10")
    data_dir: Optional[str] = _recipe("data_dir")
    model: str = _recipe("model", "preact-resnet18")
    model_options: dict = _recipe("model_options")
    fraction: list[float] = option([0.2, 0.5, 0.8], "Fractions of training labels to corrupt, e.g. 0.2,0.5,0.8.",
                                   min=0.0, max=1.0)
    methods: list[str] = option(["erm", "erm+dropout", "mixup", "mixup+dropout"], "Methods to compare: erm, erm+dropout, mixup, mixup+dropout (Table 2's rows).",
                                choices=_method_names)
    exact: bool = option(False, "Corrupt exactly round(fraction*N) labels, instead of each with probability fraction.")
    exclude_true: bool = option(False, "Draw a corrupted label from the other classes only (never the true one).")
    label_seed: Optional[int] = option(None, "Seed of the corruption; default: --seed.", min=0)
    mixup_alpha: str = option("0.2:8,0.5:32,0.8:32", "mixup's alpha per fraction (FRACTION:ALPHA pairs, or one "
                                                     "number); an unlisted fraction takes the nearest one's.")
    dropout: str = option("0.2:0.7,0.5:0.8,0.8:0.8", "erm+dropout's dropout probability per fraction.")
    mixup_dropout_alpha: str = option("0.2:4,0.5:8,0.8:8", "mixup+dropout's alpha per fraction.")
    mixup_dropout_p: str = option("0.2:0.1,0.5:0.3,0.8:0.3", "mixup+dropout's dropout probability per fraction.")
    epochs: int = _recipe("epochs", 200)
    batch_size: int = _recipe("batch_size", 128)
    eval_batch_size: int = _recipe("eval_batch_size")
    optimizer: str = _recipe("optimizer")
    lr: float = _recipe("lr", 0.1)
    momentum: float = _recipe("momentum")
    weight_decay: float = _recipe("weight_decay")
    schedule: str = _recipe("schedule", "step")
    milestones: list[int] = _recipe("milestones", [100, 150])
    gamma: float = _recipe("gamma")
    seed: int = _recipe("seed")
    device: str = _recipe("device")
    bf16: Optional[bool] = same_option(TrainConfig, "bf16")
    workers: Optional[int] = same_option(TrainConfig, "workers")
    log: list[str] = same_option(TrainConfig, "log")  # each sub-run logs into its own run directory
    out: Optional[str] = option(None, "Experiment directory; default runs/corrupt-labels-<dataset>-<time> "
                                      "(under $MIXUP_RUNS_DIR instead of runs/ when set).", env_root=RUNS_DIR_ENV)

    def check(self) -> None:
        from ..corrupt_labels import METHODS
        from ..data import get_dataset
        from ..devices import check_device_name
        from ..models import MODELS, model_options

        spec = get_dataset(self.dataset)
        if spec.num_classes < 2:
            raise ConfigError(f"dataset '{self.dataset}' has no class labels to corrupt; choose a classification dataset")
        MODELS.get(self.model)
        check_device_name(self.device)
        if not self.fraction:
            raise ConfigError("config key 'fraction' is empty; give at least one fraction, e.g. 0.5")
        if not self.methods:
            raise ConfigError(f"config key 'methods' is empty; choose from: {', '.join(METHODS.names())}")
        for key in ("fraction", "methods"):
            if len(set(getattr(self, key))) != len(getattr(self, key)):
                raise ConfigError(f"config key '{key}' repeats a value: {getattr(self, key)}")
        self._check_per_fraction()
        dropout_methods = [m for m in self.methods if METHODS.get(m).dropout_key]
        if dropout_methods and "dropout" not in model_options(self.model):
            raise ConfigError(f"model '{self.model}' has no dropout option, which {', '.join(dropout_methods)} "
                              f"need; drop them from --methods or choose a model with dropout")
        if self.milestones and sorted(self.milestones) != self.milestones:
            raise ConfigError(f"config key 'milestones' must be increasing, got {self.milestones}")

    def _check_per_fraction(self) -> None:
        for key in PER_FRACTION_FIELDS:
            high = 1.0 if key in ("dropout", "mixup_dropout_p") else None
            for fraction, value in parse_per_fraction(key, getattr(self, key)).items():
                if value < 0 or (high is not None and value >= high):
                    bounds = "in [0, 1)" if high else "at least 0"
                    raise ConfigError(f"config key '{key}' must be {bounds}, got {value:g}"
                                      + (f" at fraction {fraction:g}" if fraction >= 0 else ""))

    @property
    def corruption_seed(self) -> int:
        return self.seed if self.label_seed is None else self.label_seed


def resolve_experiment_config(yaml_path=None, overrides: Optional[dict] = None, base: Optional[dict] = None,
                              ) -> CorruptLabelsConfig:
    """defaults < base < YAML < flags; the per-fraction keys also take a number or a mapping in YAML."""
    data = load_yaml(yaml_path) if yaml_path else {}
    data = {k.replace("-", "_") if isinstance(k, str) else k: v for k, v in data.items()}
    check_keys(CorruptLabelsConfig, data, f"config file '{yaml_path}'")
    data = {k: per_fraction_text(v) if k in PER_FRACTION_FIELDS else v for k, v in data.items()}
    return resolve_config(CorruptLabelsConfig, overrides=overrides, base={**(base or {}), **data})
