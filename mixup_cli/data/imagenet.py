"""ImageNet-2012 (Russakovsky et al., 2015) from the usual class-folder layout, for §3.1.

    DATA_DIR/train/<wnid>/*.JPEG     DATA_DIR/val/<wnid>/*.JPEG

Training images get the augmentation of Goyal et al. (2017) that §3.1 follows (random resized
crop to 224, horizontal flip); evaluation uses the 224 center crop of the 256 resize. Images are
decoded per sample in DataLoader workers (`--workers`) and leave them as uint8; the batch is scaled
to [0, 1] on the training device (data/batches.py: LoaderBatches). The class index comes from the
sorted train/ folder names, and val/ must use the same names.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from . import DatasetSpec, register_dataset
from .files import data_root, missing_files_error

FOLDERS = {"train": "train", "test": "val"}
NUM_CLASSES = 1000
SIZE, RESIZE = 224, 256  # training crop and evaluation center crop; the evaluation resize
SCALE, RATIO = (0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0)  # torchvision's RandomResizedCrop defaults


def _class_names(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def crop_params(width: int, height: int, generator: Optional[torch.Generator] = None) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params, drawing from `generator` (None: torch's global one):
    the same draws in the same order, so the crops are torchvision's, but a worker can seed them per
    example rather than through the process-wide generator."""
    area = height * width
    log_ratio = torch.log(torch.tensor(RATIO))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(SCALE[0], SCALE[1], generator=generator).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator)).item()
        w, h = int(round(math.sqrt(target_area * aspect))), int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,), generator=generator).item()
            j = torch.randint(0, width - w + 1, size=(1,), generator=generator).item()
            return i, j, h, w
    in_ratio = width / height  # ten misses: the largest central crop within the ratio range
    w, h = width, height
    if in_ratio < min(RATIO):
        h = int(round(w / min(RATIO)))
    elif in_ratio > max(RATIO):
        w = int(round(h * max(RATIO)))
    return (height - h) // 2, (width - w) // 2, h, w


def crop_image(image, augment: bool, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A PIL image as a uint8 (3, 224, 224) tensor: random resized crop and flip when `augment`, else
    the center crop of the 256 resize (torchvision's functions, so the pixels are theirs)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    if augment:
        i, j, h, w = crop_params(*image.size, generator)
        image = F.resized_crop(image, i, j, h, w, [SIZE, SIZE], InterpolationMode.BILINEAR, antialias=True)
        if torch.rand(1, generator=generator) < 0.5:
            image = F.hflip(image)
    else:
        image = F.center_crop(F.resize(image, RESIZE), SIZE)
    return F.pil_to_tensor(image)


class ImageNetFolder(Dataset):
    """The images of `folder`'s class folders, labelled by train/'s class list (so a class missing from
    val/ cannot shift the labels), with torchvision ImageFolder's `samples`, `targets` and `classes`.

    dataset[i] is a [0, 1] float image, as torchvision's ToTensor gave it; LoaderBatches takes
    compact_sample(i, generator) instead, the same pixels as uint8. A module-level class, so that
    worker processes can be started by pickling it (spawn, forkserver) as well as by fork.
    """

    pixel_levels = 255

    def __init__(self, folder: Path, classes: list[str], augment: bool):
        from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

        self.classes, self.class_to_idx = classes, {name: index for index, name in enumerate(classes)}
        self.samples = make_dataset(str(folder), self.class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
        self.targets = [label for _, label in self.samples]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.samples)

    def compact_sample(self, index: int, generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, int]:
        from torchvision.datasets.folder import default_loader

        path, label = self.samples[index]
        return crop_image(default_loader(path), self.augment, generator), label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.compact_sample(index)  # crops drawn from torch's global generator, as before
        return image.float().div(self.pixel_levels), label


def _load(split: str, data_dir, augment: bool):
    root = data_root(data_dir)
    train_dir, folder = root / "train", root / FOLDERS[split]
    if not train_dir.is_dir() or not folder.is_dir():
        raise missing_files_error("imagenet", root, ["train/<class>/*.JPEG", "val/<class>/*.JPEG"])
    classes = _class_names(train_dir)
    if not classes or len(classes) > NUM_CLASSES:
        raise ConfigError(f"imagenet: '{train_dir}' must hold 1 to {NUM_CLASSES} class folders, found {len(classes)}")
    if folder != train_dir:
        extra = sorted(set(_class_names(folder)) - set(classes))
        if extra:
            raise ConfigError(f"imagenet: '{folder}' has class folders not in train/ ({', '.join(extra[:3])}); "
                              f"val/ must be sorted into the same class folders as train/")

    try:
        dataset = ImageNetFolder(folder, classes, augment=augment and split == "train")
    except (FileNotFoundError, OSError) as exc:
        raise ConfigError(f"imagenet: cannot read '{folder}': {exc}") from None
    if len(dataset) == 0:
        raise ConfigError(f"imagenet: no images (.jpg, .jpeg, .png, ...) in the class folders of '{folder}'")
    return dataset


IMAGENET = register_dataset(DatasetSpec(
    name="imagenet", num_classes=NUM_CLASSES, input_shape=(3, 224, 224),
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    default_model="resnet50", loader=_load, pixel_levels=255,
    description="ImageNet-2012, train/ and val/ class folders",
))
