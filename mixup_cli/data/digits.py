"""scikit-learn's handwritten digits: 1,797 real 8x8 grayscale images, 10 classes.

Ships inside scikit-learn, so it is the embedded default that runs anywhere without a download.
Pixels are integers 0..16 (stored as uint8, scaled to [0, 1]); the split is a fixed stratified
80/20 split of the indices (1,437 train, 360 test), the same on every machine.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from . import DatasetSpec, register_dataset
from .tensor_split import TensorSplit

SPLIT_SEED = 0
TEST_FRACTION = 0.2


@lru_cache(maxsize=1)
def _split_indices() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    train, test = train_test_split(np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels,
                                   random_state=SPLIT_SEED)
    return {"train": np.sort(train), "test": np.sort(test)}


def _load(split: str, data_dir, augment: bool) -> TensorSplit:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    index = _split_indices()[split]
    images = torch.from_numpy(bunch.images[index].astype(np.uint8)).unsqueeze(1)  # N,1,8,8
    labels = torch.from_numpy(bunch.target[index].astype(np.int64))
    return TensorSplit(images, labels, scale=1.0 / 16.0)


DIGITS = register_dataset(DatasetSpec(
    name="digits",
    num_classes=10,
    input_shape=(1, 8, 8),
    mean=(0.3054,),  # of the training split, checked by tests/test_data.py
    std=(0.3761,),
    default_model="small-cnn",
    loader=_load,
    pixel_levels=16,
    description="scikit-learn handwritten digits, 8x8, embedded",
))
