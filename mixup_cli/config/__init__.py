"""Typed configs: the single source of defaults, help text and validation, for every command.

Each config is a dataclass whose fields carry `help`, and optionally `choices` (a list, or a
callable returning one, for registry-backed names) and bounds. YAML files and command-line
flags both land in the same dataclass through `resolve_config`: defaults < YAML < flags, then
type, range and choice checks, the derived defaults in one step (`fill_defaults`: a config's
defaults that depend on its other keys), and the config's own `check`, which only checks. Errors
name a value by where it came from: the flag (`--mix-where`) or the key in its YAML file
(`config key 'mix_where' in c.yaml`). A config's `RESUMABLE` names the keys a resume may change.

    options.py          the machinery: option, same_option, resolve_config, validation, YAML
    train.py            TrainConfig (`mixup train`)
    corrupt_labels.py   CorruptLabelsConfig (`mixup corrupt-labels`), TrainConfig's recipe fields
    gan.py              GanConfig (`mixup gan`)
    attack.py           AttackConfig (`mixup attack`)
    analysis.py         AnalysisConfig (`mixup eval --between | --calibration | --boundary`)

Nothing here imports torch: the CLI builds its options and `--help` from these classes.
"""
from __future__ import annotations

from .analysis import AnalysisConfig
from .attack import AttackConfig
from .corrupt_labels import (PER_FRACTION_FIELDS, CorruptLabelsConfig, parse_per_fraction, per_fraction_text,
                             resolve_experiment_config)
from .gan import PAPER_SNAPSHOTS, GanConfig, default_threads
from .options import (PANELS, check_keys, choices_of, field_type, fill_defaults, from_dict, load_yaml, option,
                      resolve_config, same_option, to_dict, validate)
from .train import COMPILE_MODES, DEFAULT_ALPHA, TrainConfig

__all__ = ["AnalysisConfig", "AttackConfig", "COMPILE_MODES", "CorruptLabelsConfig", "DEFAULT_ALPHA", "GanConfig",
           "PANELS", "PAPER_SNAPSHOTS", "PER_FRACTION_FIELDS", "TrainConfig", "check_keys", "choices_of",
           "default_threads", "field_type", "fill_defaults", "from_dict", "load_yaml", "option",
           "parse_per_fraction", "per_fraction_text", "resolve_config", "resolve_experiment_config", "same_option",
           "to_dict", "validate"]
