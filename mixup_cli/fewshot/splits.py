"""Class splits: a few-shot dataset is a dataset whose classes are split into base (training),
validation (early stopping) and novel (evaluation) classes, never sharing a class.

    cifar-fs                     CIFAR-100's 64 / 16 / 20 classes of Bertinetto et al. (2019), "Meta-learning
                                 with differentiable closed-form solvers" (their splits/bertinetto/*.txt,
                                 which S2M2's official code reads; the same lists ship with torchmeta)
    base:0-4,val:5-6,novel:7-9   any dataset: class indices by role, ranges with '-'; an item without
                                 a role continues the one before it (base:0-2,7,val:3-4,novel:5-6,8-9)

A split is given as a list of such items (a YAML list, or comma-separated after --split).
CIFAR-FS, as Bertinetto et al. built it, uses all 600 images of each class: CIFAR-100's training
and test files together. `pooled_images` does that for every dataset.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

import torch

from ..errors import ConfigError

ROLES = ("base", "val", "novel")

# CIFAR-100's fine label names, in label order (the 'fine_label_names' of its meta file: alphabetical).
CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm").split()

# Bertinetto et al.'s validation (16) and test (20) classes; the other 64 are the training (base) classes.
CIFAR_FS_VAL = ("beaver otter flatfish shark lamp television beetle butterfly sea camel cattle crab crocodile "
                "maple_tree motorcycle tractor").split()
CIFAR_FS_NOVEL = ("whale poppy rose sweet_pepper telephone bed table wardrobe leopard plain chimpanzee fox snail "
                  "worm baby man woman bicycle pickup_truck rocket").split()

# Named splits: name -> the dataset whose classes it splits.
NAMED = {"cifar-fs": "cifar100"}


@dataclasses.dataclass(frozen=True)
class ClassSplit:
    """The dataset's class indices of each role, in increasing order."""

    base: tuple[int, ...]
    val: tuple[int, ...]
    novel: tuple[int, ...]

    def of(self, role: str) -> tuple[int, ...]:
        return getattr(self, role)

    def describe(self) -> str:
        return f"{len(self.base)} base / {len(self.val)} val / {len(self.novel)} novel classes"

    def to_dict(self) -> dict:
        return {role: list(self.of(role)) for role in ROLES}


def cifar_fs() -> ClassSplit:
    index = {name: i for i, name in enumerate(CIFAR100_CLASSES)}
    val, novel = sorted(index[n] for n in CIFAR_FS_VAL), sorted(index[n] for n in CIFAR_FS_NOVEL)
    base = sorted(set(range(100)) - set(val) - set(novel))
    return ClassSplit(tuple(base), tuple(val), tuple(novel))


def default_split(dataset: str, num_classes: int) -> Optional[list[str]]:
    """The split a dataset gets when none is given: CIFAR-FS for CIFAR-100, half / a fifth / the rest
    of the classes in order, at least 2 in each role, for datasets of 6 classes or more
    (base:0-4,val:5-6,novel:7-9 for 10)."""
    for name, owner in NAMED.items():
        if dataset == owner:
            return [name]
    if num_classes < 6:
        return None
    val = max(num_classes // 5, 2)
    base = min(num_classes // 2, num_classes - val - 2)
    return [f"base:0-{base - 1}", f"val:{base}-{base + val - 1}", f"novel:{base + val}-{num_classes - 1}"]


_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _indices(text: str, item: str) -> list[int]:
    match = _RANGE.match(text.strip())
    if not match:
        raise ConfigError(f"split item '{item}' is not a class index or a range like 0-5; write e.g. "
                          f"base:0-5,val:6-7,novel:8-9")
    low, high = int(match.group(1)), int(match.group(2) or match.group(1))
    if high < low:
        raise ConfigError(f"split item '{item}' is an empty range ({low} > {high}); write the smaller index first")
    return list(range(low, high + 1))


def parse_split(items: list[str], dataset: str, num_classes: int) -> ClassSplit:
    """A ClassSplit from the config's `split` items; every error is one line naming the fix."""
    if len(items) == 1 and items[0] in NAMED:
        owner = NAMED[items[0]]
        if dataset != owner:
            raise ConfigError(f"split '{items[0]}' is a split of {owner}'s classes, not of {dataset}'s; use "
                              f"--dataset {owner}, or declare one like --split base:0-5,val:6-7,novel:8-9")
        return cifar_fs()
    roles: dict[str, list[int]] = {role: [] for role in ROLES}
    role = None
    for item in items:
        head, sep, rest = item.partition(":")
        if sep:
            role = head.strip()
            if role not in ROLES:
                raise ConfigError(f"split item '{item}' names role '{role}'; the roles are base, val and novel "
                                  f"(e.g. base:0-5,val:6-7,novel:8-9), or name a split: {', '.join(NAMED)}")
        elif role is None:
            known = f"; the named splits are: {', '.join(NAMED)}" if not _RANGE.match(item) else ""
            raise ConfigError(f"split item '{item}' has no role; start with base:, val: or novel: "
                              f"(e.g. base:0-5,val:6-7,novel:8-9){known}")
        roles[role] += _indices(rest if sep else item, item)
    return _checked(roles, num_classes)


def _checked(roles: dict[str, list[int]], num_classes: int) -> ClassSplit:
    seen: dict[int, str] = {}
    for role, classes in roles.items():
        if not classes:
            raise ConfigError(f"the split gives no {role} classes; every split needs base, val and novel classes")
        if len(set(classes)) < 2:  # an episode, like a classifier over base classes, needs two classes
            raise ConfigError(f"the split gives one {role} class ({classes[0]}); every role needs at least 2 classes "
                              f"(e.g. base:0-5,val:6-7,novel:8-9)")
        for c in classes:
            if c >= num_classes:
                raise ConfigError(f"the split names class {c}, but the dataset's classes are 0..{num_classes - 1}")
            if c in seen:
                raise ConfigError(f"the split puts class {c} in {seen[c]} and {role}; each class belongs to one role")
            seen[c] = role
    return ClassSplit(*(tuple(sorted(roles[r])) for r in ROLES))


def pooled_images(spec, data_dir: Optional[str]):
    """Every image of the dataset with its label: its training and test splits together (CIFAR-FS
    takes all 600 images of each CIFAR-100 class). A TensorSplit of compact storage."""
    from ..data import TensorSplit

    parts = [spec.load(name, data_dir) for name in ("train", "test") if name in spec.splits]
    if not all(isinstance(p, TensorSplit) for p in parts):
        raise ConfigError(f"dataset '{spec.name}' is not held in memory (a TensorSplit); few-shot runs need one "
                          f"such as cifar100, fashion-mnist or digits")
    return TensorSplit(torch.cat([p.inputs for p in parts]), torch.cat([p.labels for p in parts]), parts[0].scale)


def role_images(pool, classes: tuple[int, ...], per_class: Optional[int] = None, seed: int = 0):
    """The images of `classes`, labels renumbered 0..len(classes)-1 in class order; with `per_class`, at
    most that many of each, a choice fixed by `seed` alone (so every run of a split sees the same images)."""
    from ..data import TensorSplit

    generator = torch.Generator().manual_seed(seed)
    keep, labels = [], []
    for new, c in enumerate(classes):
        where = torch.nonzero(pool.labels == c).flatten()
        if per_class is not None and len(where) > per_class:
            where = where[torch.randperm(len(where), generator=generator)[:per_class]].sort().values
        keep.append(where)
        labels.append(torch.full((len(where),), new, dtype=torch.long))
    index = torch.cat(keep)
    return TensorSplit(pool.inputs[index], torch.cat(labels), pool.scale)
