"""The configs of `mixup fewshot train` and `mixup fewshot eval` (S2M2, Mangla et al. 2020)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..env import DATA_DIR_ENV, RUNS_DIR_ENV
from ..errors import ConfigError
from .options import option

FEWSHOT_METHODS = ["baseline", "manifold", "rotation", "s2m2"]
FEWSHOT_CLASSIFIERS = ["logreg", "cosine"]
DEFAULT_BACKBONE = "conv4"
DEFAULT_WAYS = 5  # the paper's 5-way episodes


@dataclasses.dataclass
class FewShotConfig:
    """One few-shot backbone training run; saved in its run directory and every checkpoint."""

    # Keys a resumed run may change; any other difference from the run's saved config is refused.
    RESUMABLE = ("device", "out", "threads", "eval_batch_size", "data_dir", "deterministic")

    dataset: str = option("digits", "Dataset whose classes are split (`mixup list datasets`); cifar100 with "
                          "split cifar-fs is CIFAR-FS.", panel="Common")
    split: list[str] = option([], "Class split: cifar-fs (CIFAR-100's 64/16/20 classes, Bertinetto et al.), or "
                              "base/val/novel class indices, e.g. base:0-5,val:6-7,novel:8-9.", panel="Common",
                              shown_default="cifar-fs for cifar100, else base:0-4,val:5-6,novel:7-9 (10 classes)")
    data_dir: Optional[str] = option(None, "Folder holding the dataset's files (not needed for embedded datasets).",
                                     panel="Data", path="dir", env=DATA_DIR_ENV,
                                     must_exist="pass the folder that holds the dataset's files")
    per_class: Optional[int] = option(None, "Use at most this many images of each class (a fixed seeded choice, "
                                      "the same in every run), for CPU-scale runs.", min=2, panel="Data",
                                      shown_default="all")
    model: str = option(DEFAULT_BACKBONE, "Backbone from the model registry; the paper's CIFAR-FS table uses "
                        "wrn28-10 and preact-resnet18, conv4 is the CPU one.", panel="Common")
    method: str = option("s2m2", "baseline: cross-entropy; manifold: manifold mixup; rotation: L_class + L_rot "
                         "on rotated images; s2m2: rotation, then fine-tuning with L_mm + 0.5(L_class + L_rot) "
                         "while validation accuracy improves (Algorithm 1).", choices=FEWSHOT_METHODS,
                         panel="Common")
    alpha: float = option(2.0, "Manifold mixup strength: lambda ~ Beta(alpha, alpha) (the official code's 2).",
                          min=0.0, min_exclusive=True, panel="Model")
    cosine_scale: float = option(2.0, "Scale s of the cosine classifier's logits s * g_c * cos(f, w_c) (the "
                                 "official code's 2; g_c is learned per class).", min=0.0, min_exclusive=True,
                                 panel="Model")
    epochs: int = option(10, "Epochs of the first stage: the only one for baseline, manifold and rotation, "
                         "L_class + L_rot for s2m2 (the paper's 400).", min=1, panel="Common")
    finetune_epochs: int = option(10, "s2m2's second stage: at most this many epochs of L_mm + 0.5(L_class + "
                                  "L_rot), fewer when validation accuracy stops improving.", min=1,
                                  panel="Optimization")
    patience: int = option(1, "Stage 2 stops after this many epochs without a new best validation accuracy "
                           "(Algorithm 1's 'while val_acc > val_acc_prev': 1).", min=1, panel="Optimization")
    batch_size: int = option(64, "Training batch size (before the 4 rotations of rotation and s2m2).", min=2,
                             panel="Common")
    lr: float = option(1e-3, "Adam's learning rate (the official code's Adam defaults).", min=0.0,
                       min_exclusive=True, panel="Common")
    weight_decay: float = option(0.0, "Adam's weight decay.", min=0.0, panel="Optimization")
    val_ways: Optional[int] = option(None, "Classes per validation episode.", min=2, panel="Optimization",
                                     shown_default="5, at most the val classes")
    val_shots: int = option(5, "Support images per class in validation episodes.", min=1, panel="Optimization")
    val_episodes: int = option(100, "Validation episodes after every epoch (the same episodes each time); the "
                               "best epoch's checkpoint is best.pt.", min=1, panel="Optimization")
    queries: int = option(15, "Query images per class in every episode (the paper's 15).", min=1,
                          panel="Optimization")
    classifier: str = option("logreg", "Classifier fitted on the support features of an episode: logreg "
                             "(logistic regression) or cosine (class-mean cosine classifier).",
                             choices=FEWSHOT_CLASSIFIERS, panel="Optimization")
    seed: int = option(0, "Random seed: initialization, data order, augmentation, rotations' mixing draws.",
                       min=0, panel="Common")
    device: str = option("auto", "auto | cpu | cuda | cuda:N (auto = CUDA when present).", panel="Common")
    threads: Optional[int] = option(None, "CPU threads for torch; default 1 on the CPU.", min=1, panel="Speed",
                                    shown_default="auto")
    eval_batch_size: int = option(256, "Batch size of feature extraction.", min=1, panel="Speed")
    deterministic: bool = option(False, "Repeatable GPU runs (deterministic kernels, slower).", panel="Run")
    out: Optional[str] = option(None, "Run directory; by default a new folder under $MIXUP_RUNS_DIR when set, "
                                "else under runs/.", panel="Common", path="dir", env_root=RUNS_DIR_ENV,
                                shown_default="runs/fewshot-<dataset>-<model>-<method>-<time>")

    def fill_defaults(self) -> None:
        """The split a dataset gets when none is given, and validation ways the split can fill."""
        from ..data import get_dataset
        from ..fewshot.splits import default_split, parse_split

        spec = get_dataset(self.dataset)
        if not _square_images(spec):
            return  # check() refuses it: a split, given or not, would not help
        if not self.split:
            self.split = default_split(spec.name, spec.num_classes) or []
            if not self.split:
                raise ConfigError(f"dataset '{spec.name}' has {spec.num_classes} classes, too few for a default "
                                  f"split; declare one with --split base:...,val:...,novel:...")
        if self.val_ways is None:
            self.val_ways = min(DEFAULT_WAYS, len(parse_split(self.split, spec.name, spec.num_classes).val))

    def check(self) -> None:
        from ..data import get_dataset
        from ..devices import check_device_name
        from ..fewshot.splits import parse_split
        from ..models import MODELS

        MODELS.get(self.model)
        spec = get_dataset(self.dataset)
        if not _square_images(spec):
            raise ConfigError(f"dataset '{spec.name}' is not of square images; few-shot runs rotate images, so "
                              f"they need square ones (cifar100, fashion-mnist, digits)")
        split = parse_split(self.split, spec.name, spec.num_classes)
        if self.val_ways > len(split.val):
            raise ConfigError(f"config key 'val_ways' ({self.val_ways}) is more than the {len(split.val)} val "
                              f"classes of the split; lower it or give the split more val classes")
        check_device_name(self.device)


def _square_images(spec) -> bool:
    shape = spec.input_shape
    return len(shape) == 3 and shape[1] == shape[2]


@dataclasses.dataclass
class FewShotEvalConfig:
    """Episodic evaluation of few-shot checkpoints on their run's novel classes."""

    ways: int = option(DEFAULT_WAYS, "Classes per episode (N-way).", min=2, panel="Common")
    shots: list[int] = option([1, 5], "Support images per class (K-shot), one result for each.", min=1,
                              panel="Common")
    episodes: int = option(600, "Episodes per shot count (the paper's 600).", min=1, panel="Common")
    queries: int = option(15, "Query images per class (the paper's 15).", min=1, panel="Common")
    classifier: str = option("logreg", "Classifier fitted on each episode's support features: logreg "
                             "(logistic regression) or cosine (class-mean cosine classifier).",
                             choices=FEWSHOT_CLASSIFIERS, panel="Common")
    episode_seed: int = option(0, "Seed of the episodes: the same seed gives every checkpoint the same episodes.",
                               min=0, panel="Common")
    data_dir: Optional[str] = option(None, "Dataset folder, if not the one the run used.", panel="Data",
                                     path="dir", env=DATA_DIR_ENV, must_exist="pass the folder that holds the "
                                                                              "dataset's files")
    device: str = option("auto", "auto | cpu | cuda | cuda:N (auto = CUDA when present).", panel="Common")
    threads: Optional[int] = option(None, "CPU threads for torch; default 1 on the CPU.", min=1, panel="Speed",
                                    shown_default="auto")
    eval_batch_size: int = option(256, "Batch size of feature extraction.", min=1, panel="Speed")

    def check(self) -> None:
        from ..devices import check_device_name

        if not self.shots:
            raise ConfigError("config key 'shots' is empty; pass e.g. --shots 1,5")
        check_device_name(self.device)
