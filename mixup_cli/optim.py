"""Optimizers and learning-rate schedules, by name.

The learning rate is a pure function of training progress (fractional epochs), set before every
step. A resumed run therefore needs no scheduler state: the epoch and step say it all.

Weight decay may skip BatchNorm's and every bias parameter (`weight_decay_exclude bn-bias`), as the
paper's ImageNet recipe does (§3.1, after Goyal et al. 2017, §5.1: no decay on BN's gamma and beta;
Caffe2, in which §3.1 trained, decays weights only: its add_weight_decay skips biases). The optimizer
then holds two parameter groups, [decayed, not decayed], always in that order, so a checkpoint's
optimizer state loads into the same layout on resume; `none` keeps the single group of old runs.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .registry import Registry

OPTIMIZERS: Registry[Callable] = Registry("optimizer")
SCHEDULES: Registry[Callable] = Registry("schedule")


@OPTIMIZERS.register("sgd")
def sgd(params, config) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                           weight_decay=config.weight_decay)


@OPTIMIZERS.register("adam")
def adam(params, config) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


@SCHEDULES.register("constant")
def constant(progress: float, config) -> float:
    return 1.0


@SCHEDULES.register("step")
def step(progress: float, config) -> float:
    """Multiply by gamma at each milestone epoch (the paper's CIFAR and ImageNet schedules)."""
    passed = sum(1 for m in config.milestones if progress >= m)
    return config.gamma ** passed


@SCHEDULES.register("cosine")
def cosine(progress: float, config) -> float:
    start = config.warmup_epochs
    span = max(config.epochs - start, 1e-8)
    t = min(max((progress - start) / span, 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * t))


def global_batch(config, world_size: int = 1) -> int:
    """Examples per optimizer step over every process: batch_size x accumulate x world_size."""
    return config.batch_size * getattr(config, "accumulate", 1) * world_size


def peak_learning_rate(config, world_size: int = 1) -> float:
    """config.lr, scaled by the linear scaling rule when lr_scale_batch is set (Goyal et al. 2017);
    the batch it scales with is the global batch of one optimizer step, accumulation included."""
    if config.lr_scale_batch is None:
        return config.lr
    return config.lr * global_batch(config, world_size) / config.lr_scale_batch


def learning_rate(progress: float, config, world_size: int = 1) -> float:
    """The lr at `progress` epochs: linear warm-up from warmup_start_lr, then the schedule."""
    peak = peak_learning_rate(config, world_size)
    if progress < config.warmup_epochs:
        start = config.warmup_start_lr
        if start is None:  # Goyal et al. warm up from the unscaled lr to the scaled one
            start = min(config.lr, peak) if config.lr_scale_batch is not None else peak / 10
        return start + (peak - start) * progress / config.warmup_epochs
    return peak * SCHEDULES.get(config.schedule)(progress, config)


# Layers whose parameters (BatchNorm's gamma and beta, their kin) are scales and shifts, not weights.
NORM_LAYERS = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)


def split_decay(model: torch.nn.Module) -> tuple[list, list]:
    """(parameters to decay, parameters not to): normalization layers' parameters and every
    parameter named `bias` are not decayed; all others (conv and linear weights) are."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad and id(param) not in seen:  # a tied parameter joins one group only
                seen.add(id(param))
                (no_decay if isinstance(module, NORM_LAYERS) or name == "bias" else decay).append(param)
    return decay, no_decay


def parameter_groups(model: torch.nn.Module, config) -> list:
    """The optimizer's parameters: one group (`weight_decay_exclude none`), or the decayed and the
    not-decayed groups, in that order (`bn-bias`)."""
    if getattr(config, "weight_decay_exclude", "none") == "none":
        return list(model.parameters())
    decay, no_decay = split_decay(model)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(config.optimizer)(parameter_groups(model, config), config)
