"""`mixup attack`: FGSM / I-FGSM error of checkpoints, white box or black box, laid out like Table 3."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import (CONFIG_OPTION, DEBUG_OPTION, JSON_OPTION, console, print_json, refuse_missing_inputs,
                     run_guarded, with_config_options)
from ..config import AttackConfig

HELP = ("Attack checkpoints with FGSM / I-FGSM on their test split and report top-1/top-5 error under attack "
        "beside the clean error, like the paper's Table 3 (§3.5). White box by default; --source-ckpt makes "
        "the examples on another model (black box). Example: mixup attack --method fgsm,ifgsm --ckpt run/best.pt")


@with_config_options(AttackConfig)
def attack(
    ckpt: List[Path] = typer.Option(..., "--ckpt", help="Checkpoint file, run directory or multi-seed directory "
                                    "(mixup train --seeds) to attack (repeat for several)."),
    config_path: Optional[Path] = CONFIG_OPTION,
    save_examples: Optional[Path] = typer.Option(None, "--save-examples",
                                                 help="Write the clean and adversarial inputs and labels to this .pt file."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Of each multi-seed --ckpt directory (mixup train "
                                        "--seeds ... --out DIR), attack only these seeds, e.g. 0,2; default: all. "
                                        "Such a directory's seeds are reported as mean ± std."),
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
    overrides: dict = None,
) -> None:
    def body():
        from ..attacks import aggregate_seeds, run_attack, seed_targets
        from ..config import resolve_config
        from ..seeds import parse_seeds

        config = resolve_config(AttackConfig, config_path, overrides)
        # run_attack imports torch (seconds): missing files and seeds are refused before it.
        refuse_missing_inputs(list(ckpt) + ([config.source_ckpt] if config.source_ckpt else []), config.data_dir)
        chosen = parse_seeds(seeds) if seeds is not None else None
        seed_targets([str(p) for p in ckpt], chosen)
        with _Progress() as progress:
            results = run_attack(config, [str(p) for p in ckpt], save_examples=str(save_examples) if save_examples
                                 else None, progress=progress, seeds=chosen)
        aggregate = aggregate_seeds(results)
        render_table(results)
        if aggregate:
            render_aggregate(aggregate)
        if save_examples:
            console.print(f"adversarial examples written to {save_examples}")
        if json_output:
            print_json({"results": results, **({"aggregate": aggregate} if aggregate else {})})

    run_guarded(debug, body)


class _Progress:
    """A transient batch bar on stderr."""

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("attacking"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 console=console, transient=True)
        self.progress.start()
        self.task = None
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("attack", total=total)
        self.progress.update(self.task, completed=done)

    def __exit__(self, *exc):
        self.progress.stop()


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def table_columns(results: list[dict]) -> list[tuple[str, float]]:
    """(method, ε) in the order they were run."""
    return list(dict.fromkeys((r["method"], r["epsilon"]) for r in results))


def _title_caption(results: list[dict], what: str = "") -> tuple[str, str]:
    first = results[0]
    if first["source_ckpt"]:
        title = f"mixup attack: black box{what} (examples made on {first['source_ckpt']})"
    else:
        title = f"mixup attack: white box{what} (examples made on each model itself)"
    caption = f"{first['dataset']} test split, n={first['n']}; errors in %; ε in pixel levels of 255"
    iterative = [r for r in results if r["method"] != "fgsm"]
    if iterative:
        steps = iterative[0]["steps"]
        sizes = {r["step_size"] for r in iterative}
        default = all(abs(r["step_size"] - r["epsilon"] / steps) < 1e-9 for r in iterative)
        caption += f"; I-FGSM {steps} steps of " + ("ε/" + str(steps) if default else "/".join(f"{s:g}" for s in sizes))
    caption += "; flip = % of correct clean predictions turned wrong"
    return title, caption


def render_table(results: list[dict]) -> None:
    """Table 3's layout: rows are metric × model, columns the clean error then each method at each ε."""
    from rich.table import Table

    from ..attacks import TITLES

    first = results[0]
    title, caption = _title_caption(results)
    table = Table(title=title, caption=caption, header_style="bold")
    table.add_column("metric")
    table.add_column("model")
    table.add_column("ckpt", overflow="fold")
    table.add_column("clean", justify="right")
    columns = table_columns(results)
    for method, eps in columns:
        table.add_column(f"{TITLES.get(method, method)} ε={eps:g}", justify="right")
    by_ckpt = {}
    for r in results:
        by_ckpt.setdefault(r["ckpt"], {})[(r["method"], r["epsilon"])] = r
    metrics = [("top-1 err", "clean_top1_error", "top1_error"), ("top-5 err", "clean_top5_error", "top5_error"),
               ("flip", None, "flip_rate")]
    for index, (label, clean_key, key) in enumerate(metrics):
        if key == "top5_error" and first["top5_error"] is None:
            continue  # fewer than 5 classes
        for row, (ckpt, cells) in enumerate(by_ckpt.items()):
            any_cell = next(iter(cells.values()))
            model = f"{any_cell['train_method']} α={any_cell['alpha']:g}"
            clean = _percent(any_cell[clean_key]) if clean_key else "-"
            table.add_row(label if row == 0 else "", model, ckpt, clean,
                          *(_percent(cells[c][key]) for c in columns),
                          end_section=row == len(by_ckpt) - 1 and index < len(metrics) - 1)
    console.print(table)


def _mean_std(stat: dict) -> str:
    from ..seeds import format_mean_std

    return format_mean_std(stat, 1)


def render_aggregate(aggregate: list[dict]) -> None:
    """Per multi-seed --ckpt group: mean ± std over its seeds, in render_table's layout."""
    from rich.table import Table

    from ..attacks import TITLES

    title, caption = _title_caption(aggregate, ", mean ± std over seeds")
    table = Table(title=title, caption=caption + "; std: sample standard deviation", header_style="bold")
    for name in ("metric", "model", "group", "seeds"):
        table.add_column(name, overflow="fold")
    table.add_column("clean", justify="right")
    columns = table_columns(aggregate)
    for method, eps in columns:
        table.add_column(f"{TITLES.get(method, method)} ε={eps:g}", justify="right")
    by_group = {}
    for r in aggregate:
        by_group.setdefault(r["group"], {})[(r["method"], r["epsilon"])] = r
    metrics = [("top-1 err", "clean_top1_error", "top1_error"), ("top-5 err", "clean_top5_error", "top5_error"),
               ("flip", None, "flip_rate")]
    for index, (label, clean_key, key) in enumerate(metrics):
        if key == "top5_error" and aggregate[0]["top5_error"]["mean"] is None:
            continue  # fewer than 5 classes
        for row, (group, cells) in enumerate(by_group.items()):
            any_cell = next(iter(cells.values()))
            model = f"{any_cell['train_method']} α={any_cell['alpha']:g}"
            seeds = ",".join(str(s) for s in any_cell["seeds"])
            clean = _mean_std(any_cell[clean_key]) if clean_key else "-"
            table.add_row(label if row == 0 else "", model, group, seeds, clean,
                          *(_mean_std(cells[c][key]) if c in cells else "-" for c in columns),
                          end_section=row == len(by_group) - 1 and index < len(metrics) - 1)
    console.print(table)
