"""MNIST, Fashion-MNIST and KMNIST: 28x28 grey images of 10 classes, 60,000 train / 10,000 test,
in the idx files their authors publish (LeCun et al., 1998; Xiao et al., 2017; Clanuwat et al., 2018).

A split is two files, its images and its labels, looked for in this order:
    DATA_DIR/<Name>/raw/   torchvision's layout (Name: MNIST, FashionMNIST, KMNIST)
    DATA_DIR/              a plain folder holding the files
    /usr/share/datasets/fashion-mnist/   Debian's dataset-fashion-mnist (fashion-mnist only, and
                           only when no --data-dir is given: an explicit folder is never overridden)
DATA_DIR is --data-dir, or ./data without one. Copies name their files train-images-idx3-ubyte or
train-images.idx3-ubyte, gzipped (.gz) or not; gzip is told from the stream's first two bytes,
since some copies are recompressed or renamed. The idx header (magic number, counts, 28x28) is
checked against the file's length and the labels file, so a wrong or cut file is one clear error.
A split loads as one uint8 TensorSplit (47 MB for 60,000 images). `--download` goes through
torchvision, which writes DATA_DIR/<Name>/raw/.
"""
from __future__ import annotations

import gzip
import math
import shutil
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError, RunError
from . import DatasetSpec, register_dataset
from .files import data_root
from .tensor_split import TensorSplit

SIDE = 28
NUM_CLASSES = 10
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
GZIP_MAGIC = b"\x1f\x8b"
# split -> file name stems of its images and labels
STEMS = {"train": ("train-images", "train-labels"), "test": ("t10k-images", "t10k-labels")}
# dataset -> torchvision's class, which is also its folder under DATA_DIR
TORCHVISION_NAMES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}
# dataset -> (Debian package, where it puts the files). Tests point the folder elsewhere.
SYSTEM_DIRS = {"fashion-mnist": ("dataset-fashion-mnist", Path("/usr/share/datasets/fashion-mnist"))}


def file_names(stem: str, idx: str) -> list[str]:
    """Names one file goes by, uncompressed first (it loads faster): train-images-idx3-ubyte, ...gz,
    train-images.idx3-ubyte (MNIST copies outside torchvision), ...gz."""
    return [f"{stem}{sep}{idx}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]


def _bad_file(path: Path, what: str) -> ConfigError:
    system = [package for package, folder in SYSTEM_DIRS.values() if path.parent == folder]
    fix = (f"reinstall it with `apt-get install --reinstall {system[0]}`" if system else
           "replace it with an intact copy of the original file (or remove it and use --download)")
    return ConfigError(f"'{path}' {what}; {fix}")


def _read_bytes(path: Path) -> bytes:
    """The file's contents, gunzipped when they start with gzip's magic bytes."""
    try:
        raw = path.read_bytes()
    except OSError as exc:  # unreadable: permissions, a broken disk
        raise ConfigError(f"'{path}' cannot be read ({exc.strerror}); make it readable or use another copy") from None
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # bad header or CRC, cut stream, corrupt deflate data
        raise _bad_file(path, f"is a broken gzip stream ({exc})") from None


def read_idx(path: Path, magic: int, tail: tuple[int, ...]) -> np.ndarray:
    """An idx file of unsigned bytes whose dimensions after the count must be `tail`."""
    data = _read_bytes(path)
    ndim = 1 + len(tail)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _bad_file(path, f"is {len(data)} bytes long, too short for an idx header")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        raise _bad_file(path, f"has magic number 0x{found:08x} where an idx "
                              f"{'image' if magic == IMAGES_MAGIC else 'label'} file has 0x{magic:08x}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if dims[1:] != tail:
        raise _bad_file(path, f"holds images of {'x'.join(map(str, dims[1:]))} pixels, not {SIDE}x{SIDE}")
    expected = math.prod(dims)
    if len(data) - header != expected:
        raise _bad_file(path, f"holds {len(data) - header:,} bytes after its header, which promises "
                              f"{' x '.join(map(str, dims))} = {expected:,} (the file is cut or padded)")
    # A copy: frombuffer's view of `bytes` is read-only, which torch warns about.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=4)
def _read_split(images_stamp: tuple, labels_stamp: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached by path, size and mtime: train and eval read a split more than once, a new file never hits."""
    images_path, labels_path = Path(images_stamp[0]), Path(labels_stamp[0])
    images = read_idx(images_path, IMAGES_MAGIC, (SIDE, SIDE))
    labels = read_idx(labels_path, LABELS_MAGIC, ())
    if len(images) != len(labels):
        raise ConfigError(f"'{images_path}' holds {len(images):,} images but '{labels_path}' holds "
                          f"{len(labels):,} labels; the two files are from different sets, "
                          f"replace them with a matching pair")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise _bad_file(labels_path, f"holds label {labels.max()}, outside 0..{NUM_CLASSES - 1}")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def search_folders(name: str, data_dir: Optional[str]) -> list[Path]:
    """Where a dataset's files are looked for, in order."""
    root = data_root(data_dir)
    folders = [root / TORCHVISION_NAMES[name] / "raw", root]
    if data_dir is None and name in SYSTEM_DIRS:
        folders.append(SYSTEM_DIRS[name][1])
    return folders


def _find(folder: Path, stem: str, idx: str) -> Optional[Path]:
    return next((folder / n for n in file_names(stem, idx) if (folder / n).is_file()), None)


def locate(name: str, split: str, data_dir: Optional[str]) -> tuple[Path, Path]:
    """The images and labels files of a split: the first folder holding either must hold both."""
    images_stem, labels_stem = STEMS[split]
    folders = search_folders(name, data_dir)
    for folder in folders:
        images, labels = _find(folder, images_stem, "idx3"), _find(folder, labels_stem, "idx1")
        if images and labels:
            return images, labels
        if images or labels:
            lacking = f"{labels_stem}-idx1-ubyte" if images else f"{images_stem}-idx3-ubyte"
            raise ConfigError(f"'{folder}' holds '{(images or labels).name}' but no {lacking}[.gz] beside it; "
                              f"add the missing file or remove the other")
    raise missing_error(name, split, folders)


def missing_error(name: str, split: str, folders: list[Path]) -> ConfigError:
    images_stem, labels_stem = STEMS[split]
    where = ", ".join(f"'{f}'" for f in folders[:-1]) + f" or '{folders[-1]}'"
    ways = [f"--data-dir DIR holding the four idx files in DIR/{TORCHVISION_NAMES[name]}/raw/ (torchvision's layout) "
            f"or in DIR itself"]
    if name in SYSTEM_DIRS:
        package, folder = SYSTEM_DIRS[name]
        ways.append(f"`apt-get install {package}` (Debian; read from {folder} when no --data-dir is given)")
    ways.append("--download (fetches them through torchvision into --data-dir, ./data by default)")
    return ConfigError(f"dataset '{name}' has no {split} files ({images_stem}-idx3-ubyte and {labels_stem}-idx1-ubyte, "
                       f".gz or not) in {where}; get them one of these ways: " + "; or ".join(ways))


def _loader(name: str):
    def load(split: str, data_dir, augment: bool) -> TensorSplit:
        images, labels = locate(name, split, data_dir)
        inputs, targets = _read_split(_stamp(images), _stamp(labels))
        return TensorSplit(inputs, targets, scale=1.0 / 255.0)

    return load


def _topmost_new(folders: list[Path]) -> Optional[Path]:
    """The outermost of nested `folders` that does not exist yet (what a download would create)."""
    return next((f for f in folders if not f.exists()), None)


def _downloader(name: str):
    def download(data_dir) -> None:
        import torchvision.datasets

        root = data_root(data_dir)
        created = _topmost_new([root, root / TORCHVISION_NAMES[name], root / TORCHVISION_NAMES[name] / "raw"])
        try:
            # One instance fetches all four files; torchvision skips files already there and intact.
            getattr(torchvision.datasets, TORCHVISION_NAMES[name])(root=str(root), train=True, download=True)
        except (OSError, RuntimeError) as exc:
            if created is not None and created.exists():
                shutil.rmtree(created, ignore_errors=True)  # only what this download made: no empty or partial folder
            reason = " ".join(str(exc).split())  # torchvision's message spans lines; ours is one
            raise RunError(f"downloading {name} into '{root}' failed ({reason}); place its four idx files under "
                           f"--data-dir by hand and run without --download") from None

    return download


def _register(name: str, mean: float, std: float, description: str) -> DatasetSpec:
    return register_dataset(DatasetSpec(
        name=name, num_classes=NUM_CLASSES, input_shape=(1, SIDE, SIDE), mean=(mean,), std=(std,),
        default_model="small-cnn", loader=_loader(name), pixel_levels=255, download=_downloader(name),
        description=description,
    ))


# Mean and std of the training images' pixels in [0, 1]. Fashion-MNIST's are computed from the
# Debian files (checked by tests/test_mnist.py's slow test); MNIST's are torchvision's example
# values, KMNIST's those of its authors' repository (rois-codh/kmnist), both widely used.
MNIST = _register("mnist", 0.1307, 0.3081, "MNIST handwritten digits, 28x28 grey, 60k/10k, idx files")
FASHION_MNIST = _register("fashion-mnist", 0.2860, 0.3530,
                          "Fashion-MNIST clothing, 28x28 grey, 60k/10k, idx files")
KMNIST = _register("kmnist", 0.1918, 0.3483, "Kuzushiji-MNIST characters, 28x28 grey, 60k/10k, idx files")
