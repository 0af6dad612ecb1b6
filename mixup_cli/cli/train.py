"""`mixup train`: parse flags and YAML into a TrainConfig, run the trainer, draw its progress."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import typer

from ..config import TrainConfig, resolve_config
from .common import (CONFIG_OPTION, DEBUG_OPTION, JSON_OPTION, console, echo_config, explicit_keys, ProgressView,
                     print_json, refuse_resume_and_force, run_dir_options, run_guarded, run_interruptible,
                     with_config_options)

RESUME_OPTION, FORCE_OPTION = run_dir_options("run", "Continue the run in --out from its last.pt.")
HELP = ("Train a model with mixup (alpha > 0) or ERM (alpha = 0). With no flags: mixup (alpha=1) on the "
        "embedded handwritten digits with a small CNN, on the CPU in seconds.")


def _resolve(config_path: Optional[Path], overrides: dict, resume: bool) -> tuple[TrainConfig, set]:
    """The run's config; on --resume its config.yaml < YAML < flags (the trainer checks the epochs
    against last.pt, which it opens once)."""
    from ..runs import TRAIN_RUN, resolve_for

    explicit = explicit_keys(config_path, overrides)
    resolve = functools.partial(resolve_config, TrainConfig)
    return resolve_for(TRAIN_RUN, resolve, config_path, overrides, explicit, resume), explicit


@with_config_options(TrainConfig)
def train(
    config_path: Optional[Path] = CONFIG_OPTION,
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    resume: bool = RESUME_OPTION,
    force: bool = FORCE_OPTION,
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Train once per seed, e.g. 0,1,2: one run in "
                                        "--out/seed-N each, and their mean ± std in --out/summary.json. With "
                                        "--resume, finished seeds are kept and stopped ones continued."),
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
    overrides: dict = None,
) -> None:
    def body():
        refuse_resume_and_force(resume, force, "run")
        if seeds is not None:
            if print_config:
                from ..errors import ConfigError

                raise ConfigError("--print-config shows one run's config; drop --seeds (each seed's run differs "
                                  "only in its seed)")
            return _train_seeds(config_path, overrides, seeds, resume, force, json_output)
        config, _ = _resolve(config_path, overrides, resume)
        if print_config:
            return echo_config(config)
        summary = _train_one(config, resume, force)
        if summary is not None:  # only rank 0 reports
            render_summary(summary)
            if json_output:
                print_json(summary)

    def body_then_finish():
        import sys

        body()
        if "torch.distributed" in sys.modules:  # a process group can exist only once a run has loaded torch
            from ..distributed import finish

            finish()  # under torchrun: every rank leaves together

    run_guarded(debug, body_then_finish)


def _train_one(config: TrainConfig, resume: bool, force: bool, resume_command: Optional[str] = None) -> Optional[dict]:
    """One run with its progress display; its summary, or None on ranks other than 0."""
    from ..devices import resolve_device
    from ..distributed import from_environment
    from ..runs import check_run_dir, run_path
    from ..trainer import train as run_training

    resolve_device(config.device)  # a missing GPU is refused first, with one line
    dist = from_environment(config.device)
    run_dir = dist.on_main(lambda: run_path(config.out, config))  # one name for every rank: it holds the time
    check_run_dir(run_dir, resume, force)  # an occupied --out is refused before the progress display starts
    progress = TrainProgress(config)
    summary = run_interruptible(
        lambda stop: run_training(config, run_dir, resume=resume, force=force, callbacks=progress, should_stop=stop),
        progress, resume_command or f"mixup train --resume --out {run_dir}")
    return summary if dist.is_main else None


def _train_seeds(config_path: Optional[Path], overrides: dict, seeds_text: str, resume: bool, force: bool,
                 json_output: bool) -> None:
    """--seeds: one run per seed under --out/seed-N, then their aggregate beside them."""
    import json

    from ..errors import ConfigError
    from ..runs import LAST, SUMMARY, run_path
    from ..seeds import aggregate_runs, seed_dir, seeds_for, write_aggregate

    seeds = seeds_for(seeds_text, overrides)
    if resume and not overrides.get("out"):
        raise ConfigError("--resume --seeds needs --out DIR, the folder holding the seed runs")
    from ..distributed import from_environment

    dist = from_environment(overrides.get("device") or "auto")  # under torchrun: one root, named by rank 0
    root = Path(overrides.get("out") or dist.on_main(
        lambda: run_path(None, resolve_config(TrainConfig, config_path, overrides))))
    again = f"mixup train --resume --seeds {seeds_text} --out {root}"
    summaries = []
    for seed in seeds:
        out = seed_dir(root, seed)
        done = json.loads((out / SUMMARY).read_text()) if (out / SUMMARY).is_file() else None
        if resume and done is not None and overrides.get("epochs") in (None, done["epochs"]):
            console.print(f"seed {seed}: finished already ({out})")
            summaries.append(done)
            continue
        again_this = resume and (out / LAST).is_file()
        config, _ = _resolve(config_path, dict(overrides, seed=seed, out=str(out)), again_this)
        summaries.append(_train_one(config, again_this, force, again))
    if not dist.is_main:
        return  # rank 0 alone aggregates, writes and reports
    payload = {"root": str(root), **aggregate_runs(summaries)}
    payload["summary_json"] = str(write_aggregate(root, payload))
    render_seeds(payload)
    if json_output:
        print_json(payload)


def render_seeds(payload: dict) -> None:
    from rich.table import Table

    from ..seeds import format_mean_std

    table = Table(title=f"mixup train: {len(payload['seeds'])} seeds in {payload['root']}", header_style="bold")
    for column in ("seed", "last epoch %", "best %", "best epoch", "median last 10 %", "top-5 %"):
        table.add_column(column, justify="right")
    for run in payload["runs"]:
        table.add_row(str(run["seed"]), *[_pct(run[k]) for k in ("test_error", "best_test_error")],
                      str(run["best_epoch"]), _pct(run["median_last10_test_error"]), _pct(run["test_top5_error"]))
    table.add_row("mean ± std", *[format_mean_std(payload[k]) for k in ("test_error", "best_test_error")], "",
                  format_mean_std(payload["median_last10_test_error"]), format_mean_std(payload["test_top5_error"]), style="bold")
    console.print(table)
    console.print(f"wrote {payload['summary_json']}")


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2f}"


class TrainProgress(ProgressView):
    """Rich progress on stderr: an epoch bar and a batch bar with loss, samples/s and ETA."""

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config = config
        self.epochs = self.batches = None

    def on_start(self, info: dict) -> None:
        console.print(f"training [bold]{self.config.model}[/] ({info['parameters']:,} parameters) on "
                      f"[bold]{self.config.dataset}[/] ({info['train_size']:,} train / {info['test_size']:,} test), "
                      f"{self.config.method} alpha={self.config.alpha:g}, device {info['device']}, "
                      f"run {info['run_dir']}")
        processes = f" x {info['world_size']} processes" if info["world_size"] > 1 else ""
        if info.get("accumulate", 1) > 1:  # micro-batches per step: the global batch they add up to
            processes = f" x {info['accumulate']} accumulated{processes} = {info['global_batch']:,}"
        console.print(f"batch {self.config.batch_size}{processes}, peak lr {info['peak_lr']:.4g}, "
                      f"{info['precision']}, channels_last {'on' if info['channels_last'] else 'off'}, "
                      f"compile {info['compile']}, {info['threads']} CPU thread{'' if info['threads'] == 1 else 's'}")
        self.epochs = self.progress.add_task("epochs", total=self.config.epochs, completed=info["start_epoch"], info="")
        self.batches = self.progress.add_task("batches", total=info["steps_per_epoch"], completed=info["start_step"], info="")

    def on_step(self, epoch: int, step: int, steps: int, loss: float, samples_per_second: float) -> None:
        self.progress.update(self.batches, completed=step, description=f"epoch {epoch + 1}",
                             info=f"loss {loss:.4f}  {samples_per_second:,.0f} samples/s")

    def on_epoch(self, record: dict) -> None:
        self.progress.update(self.epochs, completed=record["epoch"],
                             info=f"test error {record['test_error']:.2f}%")
        if record["epoch"] < self.config.epochs:
            self.progress.reset(self.batches)  # keeps its total (tasks[] is by position: knn's task came and went)
        top5 = f"  top-5 {record['test_top5_error']:.2f}%" if record["test_top5_error"] is not None else ""
        if record.get("validation_error") is not None:
            top5 += f"  validation error {record['validation_error']:.2f}%"
        self.progress.console.print(
            f"epoch {record['epoch']:>3}/{self.config.epochs}  lr {record['lr']:.4g}  train loss "
            f"{record['train_loss']:.4f}  test loss {record['test_loss']:.4f}  test error "
            f"{record['test_error']:.2f}%{top5}  {record['samples_per_second']:,.0f} samples/s")


# The summary table shows the results; the settings a run used go on one line under it, and the
# full summary (every key) is in --json and summary.json.
SUMMARY_ROWS = ("test_error", "best_test_error", "best_epoch", "median_last10_test_error", "test_top5_error",
                "validation_error", "test_loss", "train_loss", "seconds", "wall_seconds", "samples_per_second",
                "peak_memory_mb")


def render_summary(summary: dict) -> None:
    from rich.table import Table

    table = Table(title=f"mixup train: {summary['method']} alpha={summary['alpha']:g}, {summary['model']} on "
                        f"{summary['dataset']}, {summary['epochs']} epochs, seed {summary['seed']}",
                  header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_ROWS:
        value = summary.get(key)
        if key not in summary or (value is None and key == "validation_error"):
            continue
        if key in ("samples_per_second", "peak_memory_mb") and value is not None:
            value = f"{value:,.0f}"
        elif isinstance(value, float):
            value = f"{value:.2f}" if key.endswith("error") or key.endswith("seconds") else f"{value:.4g}"
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)
    console.print(f"{summary['parameters']:,} parameters, {summary['device']}, {summary['precision']}, "
                  f"{summary['threads']} CPU thread{'' if summary['threads'] == 1 else 's'}; run in {summary['run_dir']} (config.yaml, metrics.jsonl, "
                  f"last.pt, best.pt, summary.json)")