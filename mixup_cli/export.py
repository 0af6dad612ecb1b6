"""`mixup export`: a checkpoint's model in a format others load without this package.

    torchscript  FILE: a traced TorchScript module (torch.jit.load); it normalizes its own raw-scale input
    safetensors  FILE: the model's weights (safetensors.torch.load_file), the normalization as the
                 tensors `mean` and `std` among them

Either way FILE.json, beside it, holds the model's name and options, the dataset, the input shape, the
normalization (mean, std of raw-scale inputs: images in [0, 1]), the epoch and the run's config. Neither
file is ever overwritten.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Union

import torch

from .errors import ConfigError

FORMATS = ["torchscript", "safetensors"]


def _refuse_existing(paths: list[Path]) -> None:
    for path in paths:
        if path.exists():
            raise ConfigError(f"'{path}' exists; mixup export never overwrites a file: remove it or pass another --out")


def describe(opened) -> dict:
    """What FILE.json holds: enough to rebuild the input pipeline and know what the model is."""
    spec, payload = opened.spec, opened.payload
    return {"format_version": 1, "model": payload["model"], "dataset": payload["dataset"],
            "input_shape": list(spec.input_shape), "input_scale": "raw (images in [0, 1]); the model normalizes",
            "normalization": {"mean": list(payload["model"].get("mean", spec.mean)),
                              "std": list(payload["model"].get("std", spec.std))}, "epoch": payload["epoch"],
            "method": opened.info["method"], "config": opened.config}


def _write_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    traced.save(str(path))


def _write_safetensors(model: torch.nn.Module, path: Path, metadata: dict) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"mixup": json.dumps(metadata)})


def export_checkpoint(ckpt: Union[str, Path], fmt: str, out: Union[str, Path]) -> dict:
    """Write the model of `ckpt` (a checkpoint file or run directory) to `out` in `fmt`, and `out`.json;
    what was written."""
    from .checkpoint import open_checkpoint

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    out = Path(out)
    sidecar = out.with_name(out.name + ".json")
    _refuse_existing([out, sidecar])
    if not out.parent.is_dir():
        raise ConfigError(f"folder '{out.parent}' does not exist; create it or pass another --out")
    opened = open_checkpoint(ckpt, "cpu")
    meta = describe(opened)
    tmp = out.with_name(f".{out.name}.tmp")
    if fmt == "torchscript":
        _write_torchscript(opened.model, torch.rand(2, *opened.spec.input_shape), tmp)
    else:
        _write_safetensors(opened.model, tmp, {k: meta[k] for k in ("model", "normalization", "input_shape")})
    os.replace(tmp, out)
    sidecar.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return {"ckpt": opened.path, "format": fmt, "out": str(out), "metadata": str(sidecar),
            "bytes": out.stat().st_size, "model": meta["model"]["name"], "dataset": meta["dataset"]["name"],
            "epoch": meta["epoch"]}
