"""Device names: auto | cpu | cuda | cuda:N, checked before any work starts."""
from __future__ import annotations

import re

from .errors import ConfigError

_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(name: str) -> None:
    if not _PATTERN.match(name):
        raise ConfigError(f"device '{name}' is not one of auto, cpu, cuda, cuda:N; pick one of those")


def resolve_device(name: str):
    """The torch.device for `name`, refusing CUDA devices this machine does not have."""
    import torch

    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' asked for, but CUDA is not available here; use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(
                f"device '{name}' asked for, but only {count} CUDA device(s) are visible (cuda:0..cuda:{count - 1})"
            )
        return torch.device("cuda", index)
    return torch.device("cpu")
