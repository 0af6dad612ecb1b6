"""The shape every registered model has: a stack of stages, then a head.

Splitting a network into stages gives each model a declared list of mixing points (the input,
and the output of each stage) for latent-layer and manifold mixup (§3.8, Verma et al. 2019),
without a second forward function per architecture.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

Mixer = Callable[[torch.Tensor], torch.Tensor]


def run_stages(stages: Sequence[Callable], head: Callable, x: torch.Tensor, mix_at: Optional[int] = None,
               mixer: Optional[Mixer] = None) -> torch.Tensor:
    """The staged forward: `stages` in order, `mixer` applied at mixing point `mix_at`, then `head`."""
    if mix_at == 0:
        x = mixer(x)
    for index, stage in enumerate(stages, start=1):
        x = stage(x)
        if mix_at == index:
            x = mixer(x)
    return head(x)


class StagedNet(nn.Module):
    """`stages` run in order, then `head`. Mixing point 0 is the input; point k follows stage k."""

    def __init__(self, stages: list[nn.Module], head: nn.Module):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.head = head

    @property
    def mixing_points(self) -> list[int]:
        return list(range(len(self.stages) + 1))

    def forward(self, x: torch.Tensor, mix_at: Optional[int] = None, mixer: Optional[Mixer] = None):
        return run_stages(self.stages, self.head, x, mix_at, mixer)


class Normalized(nn.Module):
    """Takes inputs in the dataset's raw scale (images in [0, 1]) and normalizes them itself.

    Checkpointed models carry their normalization, so attacks perturb raw pixels and outside
    tools need no knowledge of the training pipeline.
    """

    def __init__(self, net: nn.Module, mean: list[float], std: list[float], input_ndim: int):
        super().__init__()
        self.net = net
        # One value per channel (images: C,1,1) or per feature (tables: F); broadcast over the rest.
        shape = (-1,) + (1,) * (input_ndim - 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(shape))

    @property
    def mixing_points(self) -> list[int]:
        return self.net.mixing_points

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor, mix_at: Optional[int] = None, mixer: Optional[Mixer] = None):
        x = self.normalize(x)
        if mix_at is None:
            return self.net(x)
        return self.net(x, mix_at=mix_at, mixer=mixer)


def _with_own_code(module: nn.Module, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function calling `module`, with a code object of its own named `name`.

    torch.compile keeps its graph cache, its recompile limit (8) and its record of input sizes per
    code object. Modules compiled one by one all run through nn.Module's one call function, so a
    model's stages would count as recompiles of a single function (PreAct-18's six regions take 6
    of the 8) and their differing widths would make dynamo mark the channel dimension dynamic.
    """
    def call(x: torch.Tensor) -> torch.Tensor:
        return module(x)

    call.__code__ = call.__code__.replace(co_name=name, co_qualname=name)
    return call


class CompiledStages(nn.Module):
    """`model` (a Normalized StagedNet) with each stage and the head compiled apart and the mixing
    between them run eagerly, so manifold mixing compiles one graph per stage, whatever the point.

    Compiled whole, the mixing point (a Python int taking part in control flow) specializes the graph:
    one per point, and past dynamo's recompile limit the model silently runs eagerly. The compiled
    functions share `model`'s parameters; `model` stays what is evaluated and saved.
    """

    def __init__(self, model: Normalized, compile_fn: Callable[[Callable], Callable]):
        super().__init__()
        self.model = model
        net = model.net
        # A plain list, not a ModuleList: the compiled wrappers must not register the parameters twice.
        self._stages = [compile_fn(_with_own_code(stage, f"stage_{i}")) for i, stage in enumerate(net.stages, 1)]
        self._head = compile_fn(_with_own_code(net.head, "head"))

    @property
    def regions(self) -> int:
        """How many separately compiled functions a step runs through."""
        return len(self._stages) + 1

    @property
    def mixing_points(self) -> list[int]:
        return self.model.mixing_points

    def forward(self, x: torch.Tensor, mix_at: Optional[int] = None, mixer: Optional[Mixer] = None):
        return run_stages(self._stages, self._head, self.model.normalize(x), mix_at, mixer)
