"""ImageNet-2012 (Russakovsky et al., 2015) from the usual class-folder layout, for §3.1.

    DATA_DIR/train/<wnid>/*.JPEG     DATA_DIR/val/<wnid>/*.JPEG

Training images get the augmentation of Goyal et al. (2017) that §3.1 follows (random resized
crop to 224, horizontal flip); evaluation uses the 224 center crop of the 256 resize. Images are
decoded per sample in DataLoader workers (`--workers`); the class index comes from the sorted
train/ folder names, and val/ must use the same names.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from . import DatasetSpec, register_dataset
from .files import data_root, missing_files_error

FOLDERS = {"train": "train", "test": "val"}
NUM_CLASSES = 1000


def _class_names(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _transform(train: bool):
    from torchvision import transforms

    if train:
        return transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor()])
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])


def _load(split: str, data_dir, augment: bool):
    from torchvision.datasets import ImageFolder

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

    class SameClasses(ImageFolder):
        # Index val/ by train/'s class list, so a class missing from val/ cannot shift the labels.
        def find_classes(self, directory):
            return classes, {name: index for index, name in enumerate(classes)}

    try:
        dataset = SameClasses(str(folder), transform=_transform(train=augment and split == "train"),
                              allow_empty=True)
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
