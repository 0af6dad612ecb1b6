"""Typed configs: the single source of defaults, help text and validation.

Each config is a dataclass whose fields carry `help`, and optionally `choices` (a list, or a
callable returning one, for registry-backed names) and bounds. YAML files and command-line
flags both land in the same dataclass through `resolve_config`: defaults < YAML < flags, and
everything is checked before any work starts. Errors name a value by where it came from: the
flag (`--mix-where`) or the key in its YAML file (`config key 'mix_where' in c.yaml`).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .errors import ConfigError
from .registry import suggest


# The panels of `--help`, in the order shown; a field's `panel` names one ("Common": the options most
# runs set, shown first).
PANELS = ("Common", "Data", "Model", "Mixing", "Optimization", "Speed", "Run")


def option(default: Any, help: str, *, choices: Union[list, Callable[[], list], None] = None,
           min: Optional[float] = None, max: Optional[float] = None, min_exclusive: bool = False,
           cli: bool = True, panel: Optional[str] = None, shown_default: Optional[str] = None,
           choice_names: Optional[list] = None, path: Optional[str] = None,
           must_exist: Union[bool, str] = False) -> Any:
    """A config field: its default, its help text, and what values it accepts.

    For `--help`: `panel` (one of PANELS); `shown_default`, the default to show where the value is
    None because it is decided at run time ("auto"); `choice_names`, the names to list where
    `choices` is a callable (calling it imports torch, seconds too slow for --help; a test keeps
    them equal). `path` is "file" or "dir"; `must_exist` (True, or a hint for the error) refuses a
    path that does not exist, first, before anything imports torch."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "min_exclusive": min_exclusive, "cli": cli,
            "panel": panel, "shown_default": shown_default, "choice_names": choice_names, "path": path,
            "must_exist": must_exist}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def same_option(cls: type, name: str):
    """A field declared like `cls`'s `name` (default, help, limits), for a config that passes it on."""
    source = {f.name: f for f in dataclasses.fields(cls)}[name]
    return dataclasses.field(default=source.default, metadata=source.metadata)


def field_type(cls: type, name: str) -> Any:
    return _type_hints(cls)[name]


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict:
    # Resolving `from __future__` string annotations evaluates every field; once per class, not per
    # lookup, keeps `mixup --help` and every validation fast (about 40 ms saved at start-up).
    return typing.get_type_hints(cls)


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


_PLURALS = {int: "integers", float: "numbers", str: "names"}


def _describe(annotation: Any) -> str:
    base, _ = _base_type(annotation)
    origin = typing.get_origin(base)
    if origin is list:
        item = typing.get_args(base)[0]
        return f"a comma-separated list of {_PLURALS.get(item, item.__name__)}"
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(base, str(base))


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check one value against its field's type, converting only where no information is lost."""
    base, nullable = _base_type(annotation)
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"config key '{key}' must be {_describe(annotation)}, not empty")
    origin = typing.get_origin(base)
    wrong = ConfigError(f"config key '{key}' must be {_describe(annotation)}, got {value!r}")
    if origin is list:
        (item_type,) = typing.get_args(base)
        if isinstance(value, str):  # "100,150" from a flag or YAML
            value = _split_list(key, value)
        elif not isinstance(value, (list, tuple)):
            value = [value]
        try:
            return [_coerce(key, _parse_scalar(v, item_type), item_type) for v in value]
        except ConfigError:
            raise wrong from None
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong
        return dict(value)
    if base is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise wrong
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        return float(value)
    if base is str:
        if not isinstance(value, (str, Path)):
            raise wrong
        return str(value)
    return value


def _split_list(key: str, text: str) -> list[str]:
    """'0,1,2' -> ['0', '1', '2']; '' is the empty list. An empty item ('0,,1', '0,') is a typo that
    would silently shrink a grid of seeds, so it is refused."""
    items = [item.strip() for item in text.split(",")]
    if items == [""]:
        return []
    if "" in items:
        raise ConfigError(f"config key '{key}' has an empty item in {text!r}; separate the values by single "
                          f"commas, e.g. {','.join(i for i in items if i) or '0,1'}")
    return items


def _parse_scalar(value: Any, item_type: type) -> Any:
    if isinstance(value, str) and item_type in (int, float):
        try:
            return item_type(value)
        except ValueError:
            try:
                as_float = float(value)
            except ValueError:
                return value
            return int(as_float) if item_type is int and as_float.is_integer() else value
    return value


def _check_range(key: str, value: Any, meta: dict) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"config key '{key}' must be a finite number, got {v}")
        low, high = meta.get("min"), meta.get("max")
        if low is not None:
            if meta.get("min_exclusive") and v <= low:
                raise ConfigError(f"config key '{key}' must be greater than {low}, got {v}")
            if not meta.get("min_exclusive") and v < low:
                raise ConfigError(f"config key '{key}' must be at least {low}, got {v}")
        if high is not None and v > high:
            raise ConfigError(f"config key '{key}' must be at most {high}, got {v}")


def choices_of(meta: dict) -> Optional[list]:
    choices = meta.get("choices")
    return choices() if callable(choices) else choices


def _check_choice(key: str, value: Any, meta: dict) -> None:
    allowed = choices_of(meta)
    if allowed is None or value is None:
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v not in allowed:
            names = [str(a) for a in allowed]
            raise ConfigError(
                f"config key '{key}' has no choice {v!r}{suggest(str(v), names)}; choose one of: {', '.join(names)}"
            )


def _check_paths(config: Any) -> None:
    """Fields that name an existing file or folder; first, since the other checks import torch."""
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), f.metadata.get("must_exist")
        if not hint or not isinstance(value, (str, Path)) or not str(value):
            continue
        if getattr(config, "download", False) is True and f.metadata.get("path") == "dir":
            continue  # --download creates the folder
        kind = "folder" if f.metadata.get("path") == "dir" else "file"
        found = Path(value).is_dir() if kind == "folder" else Path(value).is_file()
        if not found:
            where = f"; {hint}" if isinstance(hint, str) else ""
            raise ConfigError(f"config key '{f.name}': {kind} '{value}' does not exist{where}")


def validate(config: Any) -> Any:
    """Path, type, range and choice checks for every field, then the config's own cross-field checks."""
    _check_paths(config)
    for f in dataclasses.fields(config):
        value = _coerce(f.name, getattr(config, f.name), field_type(type(config), f.name))
        _check_range(f.name, value, f.metadata)
        setattr(config, f.name, value)
    for f in dataclasses.fields(config):  # after the cheap checks: registry-backed choices import torch
        _check_choice(f.name, getattr(config, f.name), f.metadata)
    check = getattr(config, "check", None)
    if check is not None:
        check()
    return config


def load_yaml(path: Union[str, Path]) -> dict:
    import yaml  # only paid for when a file is given

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass the path of a YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise ConfigError(f"config file '{path}' is not valid YAML{where}: {problem}; fix the file and retry") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{path}' is not a text file; pass a YAML file to --config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys to values, not {type(data).__name__}")
    return data


def check_keys(cls: type, values: dict, source: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise ConfigError(
                f"unknown config key '{key}' in {source}{suggest(str(key), names)}; valid keys: {', '.join(names)}"
            )


def resolve_config(cls: type, yaml_path: Union[str, Path, None] = None, overrides: Optional[dict] = None,
                   base: Optional[dict] = None):
    """defaults < base < YAML < overrides (flags; None means 'not given'), validated."""
    values: dict = {}
    names: dict = {}  # key -> how errors name it: by its flag, or by its YAML file
    for source, layer in (("base", base or {}), ("", load_yaml(yaml_path) if yaml_path else {}),
                          ("flags", overrides or {})):
        layer = {k.replace("-", "_") if isinstance(k, str) else k: v for k, v in layer.items()}
        check_keys(cls, layer, f"config file '{yaml_path}'" if source == "" else source)
        given = {k: v for k, v in layer.items() if not (source == "flags" and v is None)}
        values.update(given)
        for key in given:
            if source == "flags":
                names[key] = "--" + key.replace("_", "-")
            elif source == "":
                names[key] = f"config key '{key}' in {yaml_path}"
    config = cls()
    for key, value in values.items():
        setattr(config, key, value)
    try:
        return validate(config)
    except ConfigError as exc:
        exc.args = (_name_sources(str(exc), names),)
        raise


_KEY_IN_MESSAGE = re.compile(r"config key '(\w+)'")


def _name_sources(message: str, names: dict) -> str:
    """Checks everywhere name a value "config key 'x'"; only here is it known whether the user typed
    the flag --x or wrote x in a YAML file, so the message names it the way it was given."""
    return _KEY_IN_MESSAGE.sub(lambda m: names.get(m.group(1), m.group(0)), message)


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict):
    """Rebuild a saved config; keys this version no longer knows are refused, not dropped."""
    return resolve_config(cls, base=values)


# ---------------------------------------------------------------------------------------------
# The config of `mixup train`.

def _optimizer_names() -> list[str]:
    from .optim import OPTIMIZERS

    return OPTIMIZERS.names()


def _schedule_names() -> list[str]:
    from .optim import SCHEDULES

    return SCHEDULES.names()


# torch.compile modes offered by --compile ("off" runs the model eagerly).
COMPILE_MODES = ["off", "default", "reduce-overhead", "max-autotune"]


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; saved in the run directory and in every checkpoint."""

    dataset: str = option("digits", "Dataset name from the registry (`mixup list datasets`), or csv:PATH.",
                          panel="Common")
    data_dir: Optional[str] = option(None, "Folder holding the dataset's files (not needed for embedded datasets).",
                                     panel="Data", path="dir",
                                     must_exist="pass the folder that holds the dataset's files, or add --download")
    download: bool = option(False, "Download the dataset into --data-dir first, where a download exists (CIFAR).",
                            panel="Data")
    model: Optional[str] = option(None, "Model name from the registry (`mixup list models`).", panel="Common",
                                  shown_default="the dataset's own")
    model_options: dict = option({}, "Extra keyword options for the model factory (YAML mapping), e.g. {width: 64}.",
                                 cli=False, panel="Model")
    dropout: Optional[float] = option(None, "Dropout probability inside the model, where it has dropout (§3.4).",
                                      min=0.0, max=1.0, panel="Model", shown_default="the model's own")
    alpha: Optional[float] = option(None, "mixup strength: lambda ~ Beta(alpha, alpha); 0 is plain ERM.", min=0.0,
                                    panel="Common", shown_default="1, or 2 with mix_where manifold")
    # Mixing options (§3.8's ablations and later methods); mixing/checks.py says which combine.
    mix_where: str = option("input", "Where to mix: input (mixup), latent (after the model's mixing point mix_layer, "
                            "Table 5's 'Layer k'), or manifold (a random mixing point per batch, input included; "
                            "Manifold Mixup).", choices=["input", "latent", "manifold"], panel="Mixing")
    mix_layer: Optional[int] = option(None, "Mixing point for mix_where latent: k mixes after the model's stage k.",
                                      min=0, panel="Mixing")
    mix_pairs: str = option("rp", "Partners: rp (a random permutation of the batch) or knn (a random one of each "
                            "example's knn_k nearest training neighbours in input space, §3.8).",
                            choices=["rp", "knn"], panel="Mixing")
    mix_classes: str = option("ac", "ac: partners from all classes; sc: only from the example's own class (§3.8).",
                              choices=["ac", "sc"], panel="Mixing")
    knn_k: int = option(200, "Neighbours per example for mix_pairs knn (the paper's 200).", min=1, panel="Mixing")
    mix_targets: str = option("mixed", "mixed: lambda-weighted labels (mixup); inputs-only: the label of the example "
                              "with the larger weight (§3.8).", choices=["mixed", "inputs-only"], panel="Mixing")
    mix_op: str = option("interpolate", "How two inputs combine: interpolate (mixup) or cutmix (paste a box of the "
                         "partner; lambda becomes the area kept; Yun et al. 2019).",
                         choices=["interpolate", "cutmix"], panel="Mixing")
    lam_per_example: bool = option(False, "Draw lambda for every example rather than once per batch.",
                                   panel="Mixing")
    mix_prob: float = option(1.0, "Probability that a batch is mixed at all; the others train as ERM.", min=0.0,
                             max=1.0, panel="Mixing")
    label_smoothing: float = option(0.0, "Label smoothing epsilon (Szegedy et al. 2016): target 1-eps+eps/K for the "
                                    "label, eps/K for the others (§3.8's baseline).", min=0.0, max=1.0,
                                    panel="Mixing")
    input_noise: float = option(0.0, "Std of Gaussian noise added to training inputs in their raw scale (pixels in "
                                "[0, 1]) (§3.8's baseline).", min=0.0, panel="Mixing")
    epochs: int = option(30, "Number of training epochs.", min=1, panel="Common")
    batch_size: int = option(64, "Training batch size of each process (under torchrun the global batch is this "
                             "times the number of processes).", min=1, panel="Common")
    eval_batch_size: int = option(512, "Evaluation batch size.", min=1, panel="Speed")
    optimizer: str = option("sgd", "Optimizer.", choices=_optimizer_names, choice_names=["sgd", "adam"],
                            panel="Optimization")
    lr: float = option(0.05, "Peak learning rate (for the reference batch when lr_scale_batch is set).", min=0.0,
                       min_exclusive=True, panel="Common")
    lr_scale_batch: Optional[int] = option(None, "Linear scaling rule (Goyal et al. 2017): the peak lr becomes "
                                           "lr * global batch / this (e.g. 256); global batch = batch_size * "
                                           "processes.", min=1, panel="Optimization", shown_default="off")
    momentum: float = option(0.9, "SGD momentum.", min=0.0, max=1.0, panel="Optimization")
    nesterov: bool = option(False, "Nesterov momentum for SGD.", panel="Optimization")
    weight_decay: float = option(1e-4, "Weight decay (L2), the paper's default 1e-4.", min=0.0, panel="Optimization")
    schedule: str = option("cosine", "Learning-rate schedule after warm-up.", choices=_schedule_names,
                           choice_names=["constant", "step", "cosine"], panel="Optimization")
    milestones: list[int] = option([], "Epochs at which the step schedule multiplies the lr by gamma, e.g. 100,150.",
                                   min=1, panel="Optimization")
    gamma: float = option(0.1, "Factor of the step schedule.", min=0.0, min_exclusive=True, panel="Optimization")
    warmup_epochs: float = option(0.0, "Linear learning-rate warm-up length in epochs (Goyal et al.).", min=0.0,
                                  panel="Optimization")
    warmup_start_lr: Optional[float] = option(None, "Learning rate at the start of warm-up; auto: the peak lr/10, "
                                              "or lr itself when lr_scale_batch scales it up (Goyal et al.).",
                                              min=0.0, panel="Optimization", shown_default="auto")
    erm_warmup_epochs: int = option(0, "Epochs of plain ERM before mixup starts (the speech recipe, §3.3).", min=0,
                                    panel="Mixing")
    on_nonfinite: str = option("stop", "What a non-finite loss or gradient does: stop (exit 1, keeping the last "
                               "good checkpoint) or skip (drop that step's update and go on; checks every step, "
                               "which costs a host-device sync per step on CUDA). A resumed run may switch to skip.",
                               choices=["stop", "skip"], panel="Run")
    save_every: Optional[int] = option(None, "Write last.pt after every N epochs; auto: whenever the previous write "
                                       "took at most 5 % of the time since it (small runs write every epoch). It is "
                                       "also written after the last epoch, on Ctrl-C/SIGTERM and with every new "
                                       "best.pt; a resume replays the epochs since it, exactly.", min=1, panel="Run",
                                       shown_default="auto")
    seed: int = option(0, "Random seed: fixes initialization, data order, augmentation and mixup draws.", min=0,
                       panel="Common")
    device: str = option("auto", "auto | cpu | cuda | cuda:N (auto = CUDA when present).", panel="Common")
    bf16: Optional[bool] = option(None, "bf16 autocast of the forward pass; auto: on for CUDA GPUs that support "
                                  "it, off on the CPU.", panel="Speed", shown_default="auto")
    channels_last: Optional[bool] = option(None, "channels_last memory layout for image models; auto: on for CUDA, "
                                           "off on the CPU.", panel="Speed", shown_default="auto")
    compile: str = option("off", "torch.compile the model for training, in this mode (the first steps then take "
                          "longer while it compiles).", choices=COMPILE_MODES, panel="Speed")
    threads: Optional[int] = option(None, "CPU threads for torch; default 1 on the CPU (a second thread pays only on "
                                    "an idle machine), OMP_NUM_THREADS when set (torchrun sets 1), torch's own on CUDA.",
                                    min=1, panel="Speed", shown_default="auto")
    deterministic: bool = option(False, "Repeatable GPU runs: deterministic cuDNN and cuBLAS kernels, no cuDNN "
                                 "autotuning and no TF32 (slower). Off, cuDNN picks the fastest algorithms for the "
                                 "input shape. The CPU is repeatable either way, for a fixed --threads.",
                                 panel="Run")
    data_on_device: bool = option(True, "Hold in-memory datasets (digits, tables, CIFAR, spectrograms) on the "
                                  "training device as one compact tensor and augment there; off keeps them in host "
                                  "memory and copies each batch (for a GPU short of memory).", panel="Speed")
    workers: Optional[int] = option(None, "DataLoader worker processes, for datasets read from disk per sample "
                                    "(ImageNet); default on CUDA 8 per process (at most its share of the cores), 0 on the CPU.",
                                    min=0, panel="Speed", shown_default="auto")
    out: Optional[str] = option(None, "Run directory.", panel="Common", path="dir",
                                shown_default="runs/<dataset>-<model>-<method>-<time>")
    labels: Optional[str] = option(None, "Train on the labels of this file (`mixup corrupt-labels --save-labels`, "
                                         "§3.4) instead of the dataset's own.", panel="Data", path="file",
                                   must_exist="write one with mixup corrupt-labels --save-labels")

    def check(self) -> None:
        from .data import get_dataset
        from .devices import check_device_name
        from .mixing.checks import check_mixing
        from .models import MODELS

        spec = get_dataset(self.dataset)
        if self.download and spec.download is None:
            raise ConfigError(f"dataset '{spec.name}' has no download; drop --download and place its files "
                              f"under --data-dir")
        if self.model is None:
            self.model = spec.default_model
        MODELS.get(self.model)
        check_device_name(self.device)
        check_mixing(self, spec)
        if self.milestones and sorted(self.milestones) != self.milestones:
            raise ConfigError(f"config key 'milestones' must be increasing, got {self.milestones}")
        if self.erm_warmup_epochs >= self.epochs and self.alpha > 0:
            raise ConfigError(
                f"config key 'erm_warmup_epochs' ({self.erm_warmup_epochs}) leaves no mixup epoch out of "
                f"{self.epochs}; lower it or raise epochs"
            )

    @property
    def method(self) -> str:
        return "mixup" if (self.alpha is None or self.alpha > 0) else "erm"
