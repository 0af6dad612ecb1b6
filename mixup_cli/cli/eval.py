"""`mixup eval`: test error of one or more checkpoints, side by side."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..env import DATA_DIR_ENV
from .common import DEBUG_OPTION, JSON_OPTION, console, print_json, run_guarded
from .eval_analysis import with_analysis_options

HELP = ("Evaluate checkpoints (files or run directories) on their dataset's test split (or --split validation, "
        "where the dataset has one): top-1/top-5 error and loss, in percent. Several --ckpt give one table (a list "
        "under --json); --wide adds each run's dataset, model, test-set size and best-epoch, last-epoch and "
        "median-of-last-10 errors on that split from its metrics.jsonl.")

# (header, cell) of the table; the compact set fits 80 columns, --wide shows all.
COMPACT = ("ckpt", "method", "alpha", "epoch", "top-1 err %", "top-5 err %", "loss")
WIDE = ("ckpt", "dataset", "model", "method", "alpha", "epoch", "n", "top-1 err %", "top-5 err %", "loss",
        "best % (epoch)", "last %", "median last 10 %")
LEFT = ("ckpt", "dataset", "model", "method")
HEADERS = {"top-1 err %": "top-1\nerr %", "top-5 err %": "top-5\nerr %", "best % (epoch)": "best %\n(epoch)",
           "median last 10 %": "median\nlast 10 %"}


@with_analysis_options  # --between, --calibration, --boundary (cli/eval_analysis.py)
def eval_checkpoints(
    ckpt: List[Path] = typer.Option(..., "--ckpt", help="Checkpoint file or run directory (repeat for several)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", metavar="DIR", envvar=DATA_DIR_ENV, show_envvar=True,
                                           help="Dataset folder, if not the one the run used."),
    batch_size: int = typer.Option(512, "--batch-size", min=1, help="Evaluation batch size."),
    split: str = typer.Option("test", "--split", help="test, or validation where the dataset has one "
                                                      "(Speech Commands, Table 4)."),
    wide: bool = typer.Option(False, "--wide", help="All columns: also dataset, model, n and the run's best, "
                                                    "last and median-of-last-10 errors (wider than 80 columns)."),
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    def body():
        from ..evaluate_checkpoint import evaluate_checkpoint

        results = [evaluate_checkpoint(str(p), device, data_dir, batch_size, split=split) for p in ckpt]
        table = _table(results, split, WIDE if wide else COMPACT)
        (_wide_console(table) if wide else console).print(table)
        if json_output:
            print_json(results[0] if len(results) == 1 else results)

    run_guarded(debug, body)


def _wide_console(table):
    """--wide asks for every column: drawn at its full width (lines longer than the terminal's, as
    `ps aux` or `kubectl -o wide` draw them) rather than squeezed into unreadable slivers."""
    from rich.console import Console
    from rich.measure import Measurement

    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    return Console(stderr=True, highlight=False, width=max(console.width, natural))


def _table(results: list[dict], split: str, columns: tuple):
    from rich import box
    from rich.table import Table

    # No vertical rules and two-line headers: seven columns and a run directory's path fit 80 columns
    # (a long path folds within its column).
    table = Table(title="mixup eval" + ("" if split == "test" else f" ({split} split)"), header_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(HEADERS.get(column, column), justify="left" if column in LEFT else "right",
                         overflow="fold", no_wrap=column != "ckpt")
    for r in results:
        cells = _cells(r, split)
        table.add_row(*(cells[c] for c in columns))
    return table


def _cells(r: dict, split: str) -> dict:
    def pct(value):
        return "-" if value is None else f"{value:.2f}"

    error = f"{split}_error"
    best_epoch = "best_epoch" if split == "test" else f"best_{split}_epoch"
    best = "-" if r.get(f"best_{error}") is None else f"{r[f'best_{error}']:.2f} ({r[best_epoch]})"
    return {"ckpt": r["ckpt"], "dataset": r["dataset"], "model": r["model"], "method": r["method"],
            "alpha": f"{r['alpha']:g}", "epoch": str(r["epoch"]), "n": str(r["n"]), "top-1 err %": pct(r[error]),
            "top-5 err %": pct(r[f"{split}_top5_error"]), "loss": f"{r[f'{split}_loss']:.4f}",
            "best % (epoch)": best, "last %": pct(r.get(f"last_{error}")),
            "median last 10 %": pct(r.get(f"median_last10_{error}"))}
