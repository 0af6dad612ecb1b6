"""`mixup list`: what the registries hold."""
from __future__ import annotations

import typer

from .common import JSON_OPTION, console, print_json, run_guarded

HELP = "List registered models (with parameter counts) or datasets. Example: mixup list models 'wrn*'"


def list_registered(
    what: str = typer.Argument(..., help="models or datasets"),
    pattern: str = typer.Argument("*", help="Shell-style name filter, e.g. 'resnet*'."),
    json_output: bool = JSON_OPTION,
) -> None:
    def body():
        from rich.table import Table

        from ..errors import ConfigError
        from ..registry import suggest

        if what == "models":
            from ..models import MODELS, REFERENCE_SHAPES, reference_parameter_count

            rows = [{"name": n, "parameters": reference_parameter_count(n),
                     "num_classes": REFERENCE_SHAPES[n][0], "input_shape": list(REFERENCE_SHAPES[n][1])}
                    for n in MODELS.names(pattern)]
            columns = ("name", "parameters", "num_classes", "input_shape")
        elif what == "datasets":
            from ..data import DATASETS

            specs = [DATASETS.get(n) for n in DATASETS.names(pattern)]
            rows = [{"name": s.name, "num_classes": s.num_classes, "input_shape": list(s.input_shape),
                     "default_model": s.default_model, "description": s.description} for s in specs]
            columns = ("name", "num_classes", "input_shape", "default_model", "description")
        else:
            raise ConfigError(f"cannot list '{what}'{suggest(what, ['models', 'datasets'])}; choose models or datasets")
        if json_output:
            print_json(rows)
            return
        table = Table(title=f"registered {what}")
        for column in columns:
            table.add_column(column, justify="right" if column == "parameters" else "left")
        for row in rows:
            table.add_row(*(f"{row[c]:,}" if c == "parameters" else str(row[c]) for c in columns))
        console.print(table)

    run_guarded(False, body)
