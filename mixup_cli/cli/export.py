"""`mixup export`: a checkpoint's model as TorchScript or safetensors, loadable without this package."""
from __future__ import annotations

from pathlib import Path

import typer

from .common import DEBUG_OPTION, JSON_OPTION, console, print_json, run_guarded

HELP = ("Export a checkpoint's model for others: torchscript (torch.jit.load it; it takes raw-scale inputs, "
        "images in [0, 1], and normalizes them itself) or safetensors (the weights). FILE.json beside it holds "
        "the model, dataset, input shape, normalization and config. Never overwrites a file.")


def export(
    ckpt: Path = typer.Option(..., "--ckpt", help="Checkpoint file or run directory (its best.pt, else last.pt)."),
    fmt: str = typer.Option(..., "--format", help="torchscript | safetensors"),
    out: Path = typer.Option(..., "--out", metavar="FILE", help="File to write (and FILE.json beside it)."),
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    def body():
        from ..export import export_checkpoint

        result = export_checkpoint(ckpt, fmt, out)
        console.print(f"exported {result['model']} ({result['dataset']}, epoch {result['epoch']}) from "
                      f"{result['ckpt']} as {result['format']}: {result['out']} ({result['bytes']:,} bytes), "
                      f"{result['metadata']}", soft_wrap=True, highlight=False)
        if json_output:
            print_json(result)

    run_guarded(debug, body)
