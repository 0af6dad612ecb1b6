"""Optimizers and learning-rate schedules, by name.

The learning rate is a pure function of training progress (fractional epochs), set before every
step. A resumed run therefore needs no scheduler state: the epoch and step say it all.
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


def peak_learning_rate(config, world_size: int = 1) -> float:
    """config.lr, scaled by the linear scaling rule when lr_scale_batch is set (Goyal et al. 2017)."""
    if config.lr_scale_batch is None:
        return config.lr
    return config.lr * config.batch_size * world_size / config.lr_scale_batch


def learning_rate(progress: float, config, world_size: int = 1) -> float:
    """The lr at `progress` epochs: linear warm-up from warmup_start_lr, then the schedule."""
    peak = peak_learning_rate(config, world_size)
    if progress < config.warmup_epochs:
        start = config.warmup_start_lr
        if start is None:  # Goyal et al. warm up from the unscaled lr to the scaled one
            start = min(config.lr, peak) if config.lr_scale_batch is not None else peak / 10
        return start + (peak - start) * progress / config.warmup_epochs
    return peak * SCHEDULES.get(config.schedule)(progress, config)


def build_optimizer(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(config.optimizer)(model.parameters(), config)
