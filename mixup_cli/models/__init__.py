"""The model registry: `@register_model(name)` on a factory, `build_model(name, ...)` to make one.

A factory takes `num_classes` and `input_shape` (C, H, W or F) and keyword options; options
left as None are dropped so they never override the factory's own defaults (timm's rule).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .base import Normalized, StagedNet

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
# The input each model was published for, used to report its parameter count.
REFERENCE_SHAPES: dict[str, tuple[int, tuple[int, ...]]] = {}


def register_model(name: str, *, num_classes: int = 10, input_shape: tuple[int, ...] = (3, 32, 32)):
    """Decorator: add a factory under `name`; (num_classes, input_shape) is its reference setting."""
    REFERENCE_SHAPES[name] = (num_classes, tuple(input_shape))
    return MODELS.register(name)


def reference_parameter_count(name: str) -> int:
    """Parameters of `name` at its reference setting, built on the meta device (no memory, fast)."""
    import torch

    num_classes, input_shape = REFERENCE_SHAPES[name]
    with torch.device("meta"):
        return count_parameters(build_model(name, num_classes, input_shape))


def model_options(name: str) -> list[str]:
    """The keyword options a registered model accepts besides num_classes and input_shape."""
    params = inspect.signature(MODELS.get(name)).parameters
    return [p for p in params if p not in ("num_classes", "input_shape")]


def build_model(name: str, num_classes: int, input_shape: tuple[int, ...] = (3, 32, 32), **options: Any) -> nn.Module:
    factory = MODELS.get(name)
    options = {k: v for k, v in options.items() if v is not None}
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"model '{name}' has no option {', '.join(repr(u) for u in unknown)}; "
            f"its options are: {', '.join(accepted) or 'none'}"
        )
    return factory(num_classes=num_classes, input_shape=tuple(input_shape), **options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Importing the architecture modules fills the registry.
from . import conv4, densenet, imagenet_resnets, mlp, preact_resnet, small_cnn, speech, wide_resnet  # noqa: E402,F401

__all__ = ["MODELS", "REFERENCE_SHAPES", "reference_parameter_count", "register_model", "build_model", "count_parameters", "model_options", "Normalized", "StagedNet"]
