"""The config of `mixup train`: every setting of one training run, with its defaults and checks."""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..errors import ConfigError
from ..env import DATA_DIR_ENV, RUNS_DIR_ENV
from .options import option


def _optimizer_names() -> list[str]:
    from ..optim import OPTIMIZERS

    return OPTIMIZERS.names()


def _schedule_names() -> list[str]:
    from ..optim import SCHEDULES

    return SCHEDULES.names()


# torch.compile modes offered by --compile ("off" runs the model eagerly).
COMPILE_MODES = ["off", "default", "reduce-overhead", "max-autotune"]

# alpha when none is given, by mix_where: Verma et al. (2019) train Manifold Mixup on CIFAR with
# alpha = 2; input mixup's default is 1.
DEFAULT_ALPHA = {"input": 1.0, "latent": 1.0, "manifold": 2.0}


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; saved in the run directory and in every checkpoint."""

    # Keys a resumed run may change; any other difference from the run's saved config is refused.
    RESUMABLE = ("epochs", "device", "out", "workers", "eval_batch_size", "threads", "compile",
                 "data_on_device", "on_nonfinite", "save_every", "log")

    dataset: str = option("digits", "Dataset name from the registry (`mixup list datasets`), or csv:PATH.",
                          panel="Common")
    data_dir: Optional[str] = option(None, "Folder holding the dataset's files (not needed for embedded datasets).",
                                     panel="Data", path="dir", env=DATA_DIR_ENV,
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
    switch_prob: Optional[float] = option(None, "mixup and CutMix in one run: each mixed batch (each example with "
                                          "lam_per_example) is CutMix with this probability, else mixup (timm's "
                                          "switch_prob); needs mix_op interpolate.",
                                          min=0.0, max=1.0, panel="Mixing", shown_default="off")
    cutmix_alpha: Optional[float] = option(None, "CutMix's own strength: its lambda ~ Beta(cutmix_alpha, "
                                           "cutmix_alpha) (timm's cutmix_alpha); alpha stays mixup's.", min=0.0,
                                           min_exclusive=True, panel="Mixing", shown_default="alpha")
    cutmix_minmax: list[float] = option([], "CutMix box sides as a ratio of the image's, drawn uniformly in "
                                        "[min, max), e.g. 0.2,0.8, instead of from lambda (timm's cutmix_minmax; "
                                        "lambda is then the area kept, and cutmix_alpha is 1).", min=0.0, max=1.0,
                                        panel="Mixing")
    correct_lam: bool = option(True, "CutMix: lambda is the area actually kept once the box is clipped at the "
                               "border; off keeps the drawn lambda (timm's correct_lam).", panel="Mixing")
    mixup_off_epoch: Optional[int] = option(None, "No mixing from this epoch on (0-based, as timm's "
                                            "mixup_off_epoch: N trains epochs N+1.. as ERM).", min=1,
                                            panel="Mixing", shown_default="off")
    loss: str = option("ce", "Training loss: ce (cross-entropy) or bce (binary cross-entropy of each class's logit "
                       "against the mixed, smoothed target; timm's BinaryCrossEntropy).", choices=["ce", "bce"],
                       panel="Mixing")
    lam_per_example: bool = option(False, "Draw lambda for every example rather than once per batch (timm's mode "
                                   "elem): mix_prob and switch_prob then decide for each example on its own.",
                                   panel="Mixing")
    mix_prob: float = option(1.0, "Probability that a batch (an example, with lam_per_example) is mixed at all; "
                             "the others train as ERM.", min=0.0,
                             max=1.0, panel="Mixing")
    label_smoothing: float = option(0.0, "Label smoothing epsilon (Szegedy et al. 2016): target 1-eps+eps/K for the "
                                    "label, eps/K for the others (§3.8's baseline).", min=0.0, max=1.0,
                                    panel="Mixing")
    input_noise: float = option(0.0, "Std of Gaussian noise added to training inputs in normalized units (after the "
                                "dataset's per-channel mean/std, where the authors' pipeline adds it; §3.8's baseline).",
                                min=0.0, panel="Mixing")
    epochs: int = option(30, "Number of training epochs.", min=1, panel="Common")
    batch_size: int = option(64, "Training batch size of each process and micro-batch (global batch: this x "
                             "accumulate x processes).", min=1, panel="Common")
    accumulate: int = option(1, "Gradient accumulation: each optimizer step sums the gradients of this many "
                             "micro-batches of batch_size, exactly the update of one batch this many times larger "
                             "(mixed as one batch; BatchNorm sees each micro-batch alone), e.g. 4 to reach §3.1's "
                             "1,024 on 8 GPUs x 32.", min=1, panel="Optimization")
    eval_batch_size: int = option(512, "Evaluation batch size.", min=1, panel="Speed")
    optimizer: str = option("sgd", "Optimizer.", choices=_optimizer_names, choice_names=["sgd", "adam"],
                            panel="Optimization")
    lr: float = option(0.05, "Peak learning rate (for the reference batch when lr_scale_batch is set).", min=0.0,
                       min_exclusive=True, panel="Common")
    lr_scale_batch: Optional[int] = option(None, "Linear scaling rule (Goyal et al. 2017): the peak lr becomes "
                                           "lr * global batch / this (e.g. 256); global batch = batch_size * "
                                           "accumulate * processes.", min=1, panel="Optimization", shown_default="off")
    momentum: float = option(0.9, "SGD momentum.", min=0.0, max=1.0, panel="Optimization")
    nesterov: bool = option(False, "Nesterov momentum for SGD.", panel="Optimization")
    weight_decay: float = option(1e-4, "Weight decay (L2), the paper's default 1e-4.", min=0.0, panel="Optimization")
    weight_decay_exclude: str = option("none", "Parameters weight decay skips: none, or bn-bias (BatchNorm's "
                                       "gamma and beta and every bias, as §3.1's ImageNet recipe after Goyal et "
                                       "al. 2017).", choices=["none", "bn-bias"], panel="Optimization")
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
    out: Optional[str] = option(None, "Run directory; by default a new folder under $MIXUP_RUNS_DIR when set, "
                                "else under runs/.", panel="Common", path="dir", env_root=RUNS_DIR_ENV,
                                shown_default="runs/<dataset>-<model>-<method>[-a<alpha>]-<date>-<time>")
    log: list[str] = option([], "Experiment tracking beside metrics.jsonl, e.g. csv,tensorboard: csv (timm's "
                            "summary.csv in the run directory), tensorboard (event files under <run>/tensorboard/), "
                            "wandb (when installed).", choices=["csv", "tensorboard", "wandb"], panel="Run")
    labels: Optional[str] = option(None, "Train on the labels of this file (`mixup corrupt-labels --save-labels`, "
                                         "§3.4) instead of the dataset's own.", panel="Data", path="file",
                                   must_exist="write one with mixup corrupt-labels --save-labels")

    def fill_defaults(self) -> None:
        """The defaults that depend on other keys: the dataset's own model, alpha by mix_where."""
        from ..data import get_dataset

        if self.model is None:
            self.model = get_dataset(self.dataset).default_model
        if self.alpha is None:
            self.alpha = DEFAULT_ALPHA[self.mix_where]

    def check(self) -> None:
        from ..data import get_dataset
        from ..devices import check_device_name
        from ..logging_sinks import check_sinks
        from ..mixing.checks import check_mixing
        from ..models import MODELS

        spec = get_dataset(self.dataset)
        if self.download and spec.download is None:
            raise ConfigError(f"dataset '{spec.name}' has no download; drop --download and place its files "
                              f"under --data-dir")
        MODELS.get(self.model)
        check_device_name(self.device)
        check_sinks(self.log)
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
