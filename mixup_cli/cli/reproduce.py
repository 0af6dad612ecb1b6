"""`mixup reproduce`: run a table or figure of the paper over seeds and print ours beside the paper's."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..env import DATA_DIR_ENV
from .common import DEBUG_OPTION, JSON_OPTION, console, print_json, run_guarded

HELP = ("Reproduce a table or figure of the paper (table1, table3, figure2, ...) over several seeds, resumably, "
        "and print our numbers beside the paper's. --scale quick runs on a CPU; --scale paper is the paper's "
        "setting (a GPU and the datasets).")


def reproduce(
    tables: List[str] = typer.Argument(..., help="Tables or figures to reproduce (`all` for every one), e.g. table1 table3."),
    scale: str = typer.Option("quick", "--scale", help="quick (a CPU, minutes to an hour each) or paper (the paper's "
                              "datasets, models and epochs; a GPU)."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Seeds; every run is repeated once per seed."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder of the runs and reports; default runs/reproduce-<scale> "
                                       "($MIXUP_RUNS_DIR instead of runs/ when set). Running the same command again "
                                       "continues where it stopped. [env var: MIXUP_RUNS_DIR]"),
    parallel: int = typer.Option(2, "--parallel", min=1, help="Runs side by side, one CPU thread each."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and their estimated time; run nothing."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Folder of the datasets' files, where needed.",
                                           envvar=DATA_DIR_ENV, show_envvar=True),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Train every run this many epochs instead "
                                         "of the recipe's (a short check of the whole pipeline)."),
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
) -> None:
    def body():
        from .. import reproduce as library
        from ..env import runs_root
        from ..seeds import parse_seeds

        names = list(library.PAPER_ORDER) if tables == ["all"] else tables
        plan = library.make_plan(names, scale, parse_seeds(seeds), out or runs_root() / f"reproduce-{scale}", data_dir, device, epochs)
        _print_plan(plan, parallel)
        if dry_run:
            return
        _run(plan, parallel)
        reports = library.make_reports(plan)
        _print_reports(reports, plan.root)
        if json_output:
            print_json({"root": str(plan.root), "reports": reports})

    run_guarded(debug, body)


def _print_plan(plan, parallel: int) -> None:
    from rich.table import Table

    from ..reproduce import estimate

    table = Table(title=f"mixup reproduce {' '.join(plan.tables)} --scale {plan.scale}: {len(plan.jobs)} runs in "
                        f"{plan.root}", header_style="bold")
    for column in ("run", "status", "estimate", "command"):
        table.add_column(column, overflow="fold")
    for job in plan.jobs:
        status = "done" if job.done(plan.root) else "to run"
        table.add_row(job.key, status, _duration(job.estimate_s), "mixup " + " ".join(job.args))
    console.print(table)
    cpu, wall = estimate(plan.jobs, plan.root, parallel)
    console.print(f"remaining: about {_duration(cpu)} of CPU time, {_duration(wall)} of wall time with "
                  f"--parallel {parallel} on idle cores (estimates measured on a 2-core CPU)")


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _run(plan, parallel: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..reproduce import run_plan

    todo = sum(not job.done(plan.root) for job in plan.jobs)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("runs", total=todo)

        def done(job, seconds):
            progress.console.print(f"finished {job.key} in {_duration(seconds)}")
            progress.advance(task)

        run_plan(plan, parallel, done)


def _print_reports(reports: dict, root: Path) -> None:
    from rich.markdown import Markdown

    from ..reproduce import markdown

    for name, report in reports.items():
        console.print(Markdown(markdown(report)))
        console.print(f"wrote {root / (name + '.md')} and {root / (name + '.json')}")
