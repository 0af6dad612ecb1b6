"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) from torchvision's on-disk format, for §3.2.

    DATA_DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    DATA_DIR/cifar-100-python/{train, test, meta}

Each file is a pickled dict with b'data' (N x 3072 uint8, channel-major) and b'labels' (CIFAR-10)
or b'fine_labels' (CIFAR-100). A split loads as one uint8 TensorSplit (150 MB for the 50,000
training images), augmented on the training device with the standard 4-pixel padded random crop
and horizontal flip (data/augment.py). `--download` fetches the archives through torchvision.
"""
from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, RunError
from ..runs import removing_new_empty_dirs
from . import DatasetSpec, register_dataset
from .files import data_root, missing_files_error
from .tensor_split import TensorSplit

LAYOUT = {
    # name: (folder, training files, test files, label key, meta file, torchvision class)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels",
                "batches.meta", "CIFAR10"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", "meta", "CIFAR100"),
}


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ConfigError(f"'{path}' is not a readable CIFAR batch ({exc}); replace it with the original file") from None
    # torchvision writes bytes keys; a re-pickled batch may carry str keys.
    batch = {k.encode() if isinstance(k, str) else k: v for k, v in batch.items()}
    if b"data" not in batch or label_key not in batch:
        raise ConfigError(f"'{path}' is not a CIFAR batch: it lacks the keys b'data' and {label_key!r}")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ConfigError(f"'{path}' holds data of shape {data.shape} for {len(labels)} labels; expected N x 3072")
    return data.reshape(-1, 3, 32, 32), labels


@lru_cache(maxsize=4)
def _load_arrays(name: str, folder: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    subdir, train_files, test_files, label_key, _, _ = LAYOUT[name]
    root = Path(folder) / subdir
    files = train_files if split == "train" else test_files
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise missing_files_error(name, Path(folder), [f"{subdir}/{f}" for f in files],
                                  ", or add --download to fetch them")
    parts = [_read_batch(root / f, label_key) for f in files]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return images, labels


def _loader(name: str, num_classes: int):
    def load(split: str, data_dir, augment: bool) -> TensorSplit:
        images, labels = _load_arrays(name, str(data_root(data_dir)), split)
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ConfigError(f"{name} labels must lie in 0..{num_classes - 1}; found {labels.min()}..{labels.max()}")
        return TensorSplit(images, labels, scale=1.0 / 255.0)

    return load


def _downloader(name: str):
    def download(data_dir) -> None:
        import torchvision.datasets

        root = data_root(data_dir)
        cls = getattr(torchvision.datasets, LAYOUT[name][5])
        # A failed download takes back the folders it made (data/ by default) and its partial archive.
        with removing_new_empty_dirs(root):
            try:
                for train in (True, False):
                    cls(root=str(root), train=train, download=True)
            except (OSError, RuntimeError) as exc:
                _remove_partial_archive(root, cls)
                raise RunError(f"downloading {name} into '{root}' failed ({exc}); place the files there by hand "
                               f"({LAYOUT[name][0]}/) and run without --download") from None
        _load_arrays.cache_clear()

    return download


def _remove_partial_archive(root: Path, cls) -> None:
    """An archive that fails its checksum is a broken download: useless, and the next --download fetches it anew."""
    from torchvision.datasets.utils import check_integrity

    path = root / getattr(cls, "filename", "")
    if getattr(cls, "filename", None) and path.is_file() and not check_integrity(str(path), cls.tgz_md5):
        path.unlink(missing_ok=True)


# Per-channel mean and std of each training set (the widely used values).
CIFAR10 = register_dataset(DatasetSpec(
    name="cifar10", num_classes=10, input_shape=(3, 32, 32),
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    default_model="preact-resnet18", loader=_loader("cifar10", 10), augment="crop-flip", pixel_levels=255,
    download=_downloader("cifar10"),
    description="CIFAR-10, 32x32 colour, 50k/10k, torchvision format",
))
CIFAR100 = register_dataset(DatasetSpec(
    name="cifar100", num_classes=100, input_shape=(3, 32, 32),
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    default_model="preact-resnet18", loader=_loader("cifar100", 100), augment="crop-flip", pixel_levels=255,
    download=_downloader("cifar100"),
    description="CIFAR-100 (fine labels), 32x32 colour, 50k/10k, torchvision format",
))
