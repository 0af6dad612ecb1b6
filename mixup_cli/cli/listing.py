"""`mixup list`: what the registries hold. The tables are the command's output, so they go to stdout."""
from __future__ import annotations

from typing import Optional

import typer

from .common import print_json, run_guarded, stdout_console

HELP = ("List registered models (with parameter counts) and datasets, or only one of them. "
        "Example: mixup list models 'wrn*'")
KINDS = ("models", "datasets")


def list_registered(
    what: Optional[str] = typer.Argument(None, help="models or datasets; both when left out."),
    pattern: str = typer.Argument("*", help="Shell-style name filter, e.g. 'resnet*'."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout, "
                                     "{\"models\": [...], \"datasets\": [...]}, instead of the tables."),
) -> None:
    def body():
        from ..errors import ConfigError
        from ..registry import suggest

        if what is not None and what not in KINDS:
            raise ConfigError(f"cannot list '{what}'{suggest(what, list(KINDS))}; choose models or datasets")
        listed = {kind: _rows(kind, pattern) for kind in KINDS if what in (None, kind)}
        if json_output:
            print_json({kind: rows for kind, (rows, _) in listed.items()})
            return
        for kind, (rows, columns) in listed.items():
            _print_table(kind, rows, columns)

    run_guarded(False, body)


def _rows(kind: str, pattern: str) -> tuple[list[dict], tuple]:
    if kind == "models":
        from ..models import MODELS, REFERENCE_SHAPES, reference_parameter_count

        rows = [{"name": n, "parameters": reference_parameter_count(n),
                 "num_classes": REFERENCE_SHAPES[n][0], "input_shape": list(REFERENCE_SHAPES[n][1])}
                for n in MODELS.names(pattern)]
        return rows, ("name", "parameters", "num_classes", "input_shape")
    from ..data import DATASETS

    specs = [DATASETS.get(n) for n in DATASETS.names(pattern)]
    rows = [{"name": s.name, "num_classes": s.num_classes, "input_shape": list(s.input_shape),
             "default_model": s.default_model, "description": s.description} for s in specs]
    return rows, ("name", "num_classes", "input_shape", "default_model", "description")


def _print_table(kind: str, rows: list[dict], columns: tuple) -> None:
    from rich.table import Table

    table = Table(title=f"registered {kind}")
    for column in columns:
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for row in rows:
        table.add_row(*(f"{row[c]:,}" if c == "parameters" else str(row[c]) for c in columns))
    stdout_console.print(table)
