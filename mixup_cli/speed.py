"""How a run uses its device: precision, memory layout, compilation, threads, where the data lives.

bf16, channels_last and workers default to None, "pick for this device": the GPU gets bf16
autocast, channels_last and DataLoader workers; the CPU keeps fp32, the default layout and no
workers (the on-device TensorSplit path needs none). An explicit value always wins, on either device.
compile, threads, data_on_device and deterministic mean the same everywhere.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import torch

# Loader workers per CUDA process by default: enough to decode JPEGs for one GPU, never more than
# the process's share of the cores.
CUDA_WORKERS = 8


@dataclasses.dataclass(frozen=True)
class SpeedSettings:
    autocast_dtype: Optional[torch.dtype]
    channels_last: bool
    compile_mode: Optional[str]
    workers: int
    threads: int
    data_on_device: bool = True
    deterministic: bool = False

    def describe(self) -> dict:
        return {"precision": "bf16 autocast" if self.autocast_dtype is not None else "fp32",
                "channels_last": self.channels_last, "compile": self.compile_mode or "off",
                "workers": self.workers, "threads": self.threads, "data_on_device": self.data_on_device,
                "deterministic": self.deterministic}


def default_workers(device: torch.device, local_processes: int = 1) -> int:
    """DataLoader workers when none are asked for: none on the CPU (they would compete with the
    model for the cores), else CUDA_WORKERS, at most this process's share of the cores."""
    if device.type != "cuda":
        return 0
    return min(CUDA_WORKERS, max((os.cpu_count() or 1) // local_processes, 1))


def cpu_threads(asked: Optional[int], device: torch.device) -> int:
    """torch's CPU threads for a run: `asked`, else one on the CPU unless OMP_NUM_THREADS says otherwise.

    One thread is the CPU default because a second one pays only on an idle machine: the default run
    took 4.2 s with one thread and 3.0-3.5 s with two on an idle 2-core machine, while two ran 2.7-8.6x
    slower than one where another process used the other core (issue 14). It also makes the default
    run's numbers the same whatever the core count (float sums split differently across threads).
    """
    if asked is not None:
        return asked
    if device.type == "cuda" or os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    return 1


def _bf16_default(device: torch.device) -> bool:
    """bf16 autocast where the run's GPU computes bf16 natively (compute capability 8.0, Ampere, and
    later). torch.cuda.is_bf16_supported() also counts emulated bf16 (V100, T4), which is slower than
    fp32, and asks about the current device rather than the run's."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def configure_torch(config, device: torch.device) -> None:
    """torch's process-wide settings for a run: CPU threads, and on CUDA the kernel choices.

    On CUDA, cuDNN autotunes its convolution algorithms for the fixed input shapes (cudnn.benchmark)
    and fp32 matmuls may use TF32, unless `deterministic` asks for repeatable kernels instead.
    """
    torch.set_num_threads(cpu_threads(config.threads, device))
    if device.type != "cuda":
        return  # CPU kernels are deterministic for a fixed thread count already
    set_cuda_determinism(config.deterministic)


def set_cuda_determinism(deterministic: bool) -> None:
    """Repeatable CUDA kernels, or the fastest ones; every switch is set both ways, so a second run in
    the same process (tests, the Python API) gets what it asks for rather than the first run's setting."""
    if deterministic:
        # cuBLAS reads this when it makes its first handle, at the first matmul: set before any
        # (a process that has already multiplied on the GPU keeps its workspace; the CLI has not).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic  # TF32 convolutions
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.set_float32_matmul_precision("highest" if deterministic else "high")  # "high" allows TF32 matmuls


def resolve_speed(config, device: torch.device, input_shape: tuple, local_processes: int = 1) -> SpeedSettings:
    """The settings `config` asks for on `device`.

    `local_processes` training processes share this machine's cores (torchrun's LOCAL_WORLD_SIZE).
    """
    bf16 = config.bf16 if config.bf16 is not None else _bf16_default(device)
    images = len(input_shape) == 3  # channels_last is a layout of 4-D (N, C, H, W) batches
    channels_last = images and (config.channels_last if config.channels_last is not None else device.type == "cuda")
    workers = config.workers if config.workers is not None else default_workers(device, local_processes)
    return SpeedSettings(autocast_dtype=torch.bfloat16 if bf16 else None, channels_last=channels_last,
                         compile_mode=None if config.compile == "off" else config.compile,
                         workers=workers, threads=torch.get_num_threads(), data_on_device=config.data_on_device,
                         deterministic=config.deterministic)


def to_layout(inputs: torch.Tensor, settings: SpeedSettings) -> torch.Tensor:
    """A batch in the layout the model was put in: channels_last when asked, else plain contiguous
    (the batched augmentation hands over channels_last memory; a batch already in place is returned)."""
    if settings.channels_last and inputs.dim() == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs.contiguous()


def set_layout(model: torch.nn.Module, settings: SpeedSettings) -> None:
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)


def compile_model(module: torch.nn.Module, settings: SpeedSettings) -> torch.nn.Module:
    """What the training step should call: `module`, compiled when asked.

    The compiled module shares `module`'s parameters, so the trainer keeps saving and evaluating the
    plain model (its state_dict keys stay free of torch.compile's prefix).
    """
    if settings.compile_mode is None:
        return module
    return torch.compile(module, mode=None if settings.compile_mode == "default" else settings.compile_mode)
