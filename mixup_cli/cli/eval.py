"""`mixup eval`: test error of one or more checkpoints, side by side."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import DEBUG_OPTION, JSON_OPTION, console, print_json, run_guarded
from .eval_analysis import with_analysis_options

HELP = ("Evaluate checkpoints (files or run directories) on their dataset's test split (or --split validation, "
        "where the dataset has one): top-1/top-5 error and loss, in percent. Several --ckpt give one table (a list "
        "under --json), with each run's best-epoch, last-epoch and median-of-last-10 errors on that split from its "
        "metrics.jsonl.")


@with_analysis_options  # --between, --calibration, --boundary (cli/eval_analysis.py)
def eval_checkpoints(
    ckpt: List[Path] = typer.Option(..., "--ckpt", help="Checkpoint file or run directory (repeat for several)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Dataset folder, if not the one the run used."),
    batch_size: int = typer.Option(512, "--batch-size", min=1, help="Evaluation batch size."),
    split: str = typer.Option("test", "--split", help="test, or validation where the dataset has one "
                                                      "(Speech Commands, Table 4)."),
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    def body():
        from rich.table import Table

        from ..evaluate_checkpoint import evaluate_checkpoint

        results = [evaluate_checkpoint(str(p), device, data_dir, batch_size, split=split) for p in ckpt]
        table = Table(title="mixup eval" + ("" if split == "test" else f" ({split} split)"), header_style="bold")
        for column in ("ckpt", "dataset", "model", "method", "alpha", "epoch", "n", "top-1 err %", "top-5 err %", "loss",
                       "best % (epoch)", "last %", "median last 10 %"):
            table.add_column(column, justify="left" if column in ("ckpt", "dataset", "model", "method") else "right")

        def pct(value):
            return "-" if value is None else f"{value:.2f}"

        error, best_epoch = f"{split}_error", "best_epoch" if split == "test" else f"best_{split}_epoch"
        for r in results:
            best = "-" if r.get(f"best_{error}") is None else f"{r[f'best_{error}']:.2f} ({r[best_epoch]})"
            table.add_row(r["ckpt"], r["dataset"], r["model"], r["method"], f"{r['alpha']:g}", str(r["epoch"]),
                          str(r["n"]), pct(r[error]), pct(r[f"{split}_top5_error"]), f"{r[f'{split}_loss']:.4f}",
                          best, pct(r.get(f"last_{error}")), pct(r.get(f"median_last10_{error}")))
        console.print(table)
        if json_output:
            print_json(results[0] if len(results) == 1 else results)

    run_guarded(debug, body)
