"""`mixup plot`: training curves of runs (Figure 3b), seeds of one setting drawn as a band."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import DEBUG_OPTION, JSON_OPTION, console, fail, print_json, run_guarded

HELP = ("Draw training curves from run directories' metrics.jsonl (the paper's Figure 3b: test error over epochs "
        "for ERM and mixup): one panel per metric, one line per setting. Runs whose configs differ only in the "
        "seed (e.g. the seed-N folders of a --seeds run) become one line, their mean, with a ± std band. "
        "Writes PNG, SVG or PDF by the --out suffix; never overwrites a file.")
FORMATS = (".png", ".svg", ".pdf")


def plot(
    runs: List[Path] = typer.Argument(..., metavar="RUN_DIR...", show_default=False,
                                      help="Run directories, or folders of seed-N runs."),
    out: List[Path] = typer.Option([Path("curves.png")], "--out", "-o", metavar="FILE",
                                   help="Figure to write: .png, .svg or .pdf (repeat for several formats)."),
    metric: str = typer.Option("test_error,train_loss,lr", "--metric", metavar="NAMES",
                               help="Comma-separated metrics.jsonl fields, one panel each."),
    label: Optional[List[str]] = typer.Option(None, "--label", metavar="TEXT",
                                              help="Legend text of each line, in order (repeat once per line)."),
    title: str = typer.Option("", "--title", help="Figure title."),
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    metrics = [m.strip() for m in metric.split(",") if m.strip()]
    if not metrics:
        fail("--metric names no metric; e.g. --metric test_error,train_loss")
    for path in out:
        if path.suffix.lower() not in FORMATS:
            fail(f"--out '{path}' must end in {', '.join(FORMATS)} (the suffix picks the format)")
        if path.exists():
            fail(f"--out '{path}' already exists; choose another file or remove it")

    def body():
        from ..curves import build_curves, plot_curves

        curves = build_curves(runs, metrics, label or [])
        written = plot_curves(curves, metrics, out, title)
        for curve in curves:
            last = {m: curve.stats[m][-1]["mean"] if curve.epochs else None for m in metrics}
            shown = ", ".join(f"{m} {v:.4g}" for m, v in last.items() if v is not None)
            console.print(f"{curve.label}: {len(curve.runs)} run(s), {len(curve.epochs)} epochs"
                          f"{'; last epoch ' + shown if shown else ''}", highlight=False, soft_wrap=True)
        console.print(f"wrote {', '.join(written)}", highlight=False, soft_wrap=True)
        if json_output:
            print_json({"figures": written, "curves": [c.as_dict() for c in curves]})

    run_guarded(debug, body)
