"""The dataset registry: a `DatasetSpec` per name, `load_dataset(name, split)` for the data.

Every dataset yields inputs in their raw scale (images in [0, 1]) and integer labels; the
per-channel normalization travels with the spec into the model (models/base.py: Normalized).
Small datasets load as a `TensorSplit` (the whole split as one compact tensor), which the trainer
batches on the training device without a DataLoader; large ones are ordinary torch Datasets.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from ..errors import ConfigError
from ..registry import Registry, suggest
from .tensor_split import TensorSplit


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    default_model: str
    # (split, data_dir, augment) -> Dataset of raw-scale inputs; augment only matters for
    # per-sample pipelines (the DataLoader path), TensorSplits are augmented in batches.
    loader: Callable[..., object]
    augment: Optional[str] = None  # batch augmentation for TensorSplit training data (data/augment.py)
    pixel_levels: Optional[int] = None  # images: levels per unit of input (255), used by attacks
    description: str = ""
    download: Optional[Callable[[Optional[str]], None]] = None  # data_dir -> fetch the files (--download)
    # Splits the loader knows. A "validation" split is evaluated every epoch beside the test split.
    splits: tuple[str, ...] = ("train", "test")

    @property
    def has_validation(self) -> bool:
        return "validation" in self.splits

    def load(self, split: str, data_dir: Optional[str] = None, augment: bool = False):
        if split not in self.splits:
            raise ConfigError(f"dataset '{self.name}' has no split '{split}'{suggest(split, list(self.splits))}; "
                              f"choose one of: {', '.join(self.splits)}")
        return self.loader(split, data_dir, augment)


DATASETS: Registry[DatasetSpec] = Registry("dataset")
# Families of datasets named with a prefix and an argument, e.g. csv:PATH.
DATASET_FAMILIES: dict[str, Callable[[str], DatasetSpec]] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.register(spec.name)(spec)
    return spec


def get_dataset(name: str) -> DatasetSpec:
    prefix, sep, argument = name.partition(":")
    if sep and prefix in DATASET_FAMILIES:
        return DATASET_FAMILIES[prefix](argument)
    return DATASETS.get(name)


def load_dataset(name: str, split: str = "train", data_dir: Optional[str] = None, augment: bool = False):
    """A torch Dataset of raw-scale inputs and integer labels."""
    return get_dataset(name).load(split, data_dir, augment)


def download_dataset(name: str, data_dir: Optional[str] = None) -> None:
    """Fetch a dataset's files into data_dir, where a download exists (--download)."""
    spec = get_dataset(name)
    if spec.download is None:
        raise ConfigError(f"dataset '{name}' has no download; place its files under --data-dir by hand")
    spec.download(data_dir)


# Importing the dataset modules fills the registry.
from . import cifar, digits, imagenet, mnist, speech_commands, tables, uci  # noqa: E402,F401

__all__ = ["DATASETS", "DatasetSpec", "TensorSplit", "download_dataset", "get_dataset", "load_dataset", "register_dataset"]
