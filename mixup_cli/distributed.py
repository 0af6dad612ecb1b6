"""Data-parallel training under PyTorch's own launcher (`torchrun`), read from its environment.

`torchrun --nproc_per_node=N -m mixup_cli train ...` sets RANK, WORLD_SIZE and LOCAL_RANK; without
them everything here is a no-op and training is single-process. Each rank trains on its shard of every
epoch, mixes within its local batch (with --accumulate, the step's whole local batch, whose micro-batches'
gradients are all-reduced once, on the last: the trainer runs the others in DDP's no_sync), evaluates
its shard of the test split (sums reduced across ranks), and only rank 0 prints and writes files.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import torch

from .errors import ConfigError, MixupError


@dataclasses.dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine (they share its cores)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            torch.distributed.all_reduce(tensor)
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on some rank (for stop requests)."""
        if not self.enabled:
            return flag
        return bool(self.all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics): each rank updated its own copy on
        its shard since the last forward, and the checkpoint holds rank 0's, so evaluation must too."""
        if self.enabled:
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def on_main(self, action: Callable[[], Any]) -> Any:
        """Run `action` on rank 0 and hand its result (or its error) to every rank."""
        if not self.enabled:
            return action()
        box: list = [None, None]
        failure = None
        if self.is_main:
            try:
                box[0] = action()
            except Exception as exc:  # any failure: the other ranks would otherwise wait here forever
                failure = exc
                box[1] = (type(exc).__name__ if isinstance(exc, MixupError) else "MixupError", str(exc))
        torch.distributed.broadcast_object_list(box, src=0)
        if failure is not None:
            raise failure
        if box[1] is not None:
            raise ConfigError(box[1][1]) if box[1][0] == "ConfigError" else MixupError(box[1][1])
        return box[0]


def from_environment(device_name: str) -> Dist:
    """The process group torchrun describes, initialized once (NCCL for CUDA, gloo for the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    dist = torch.distributed
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
        if use_cuda:
            # Before the first collective: NCCL binds each rank to the current device, and without
            # this every rank would sit on GPU 0.
            gpu = torch.device("cuda", local_rank)
            torch.cuda.set_device(gpu)
            dist.init_process_group("nccl", device_id=gpu)
        else:
            dist.init_process_group("gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def rank_device(device: torch.device, dist: Dist) -> torch.device:
    """Under torchrun each rank takes the GPU of its LOCAL_RANK."""
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    return device


def finish() -> None:
    """End a torchrun process group cleanly: every rank waits for the others, then the group is
    destroyed. Exiting with gloo's connections still open lets a rank whose peer has already gone
    abort (SIGABRT) after a successful run."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
