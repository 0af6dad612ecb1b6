"""`mixup fewshot train | eval`: S2M2 and its baselines (Mangla et al. 2020), parsed into the typed
configs of config/fewshot.py, run by the library (fewshot/), drawn here."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import List, Optional

import typer

from ..config import resolve_config
from ..config.fewshot import FewShotConfig, FewShotEvalConfig
from .common import (CONFIG_OPTION, DEBUG_OPTION, JSON_OPTION, ProgressView, console, echo_config, explicit_keys,
                     print_json, refuse_missing_inputs, refuse_resume_and_force, run_dir_options, run_guarded,
                     run_interruptible, with_config_options)
from .helpscreen import MixupCommand, MixupGroup

HELP = ("Few-shot learning: train a backbone on a dataset's base classes (S2M2: rotation, then manifold "
        "mixup; or a baseline) and evaluate it on N-way K-shot episodes of its novel classes.")
TRAIN_HELP = ("Train a few-shot backbone with --method baseline | manifold | rotation | s2m2 on the base classes "
              "of --split, keeping the epoch with the best validation-episode accuracy. With no flags: S2M2 with "
              "a Conv-4 on the embedded digits (base 0-4, val 5-6, novel 7-9), on the CPU in seconds.")
EVAL_HELP = ("N-way K-shot accuracy of few-shot checkpoints (files or run directories: their best.pt) on their "
             "split's novel classes: mean ± 95 % confidence interval over seeded episodes, the same episodes "
             "for every checkpoint.")
RESUME_OPTION, FORCE_OPTION = run_dir_options("run", "Continue the run in --out from its last.pt (either stage).")

app = typer.Typer(name="fewshot", help=HELP, cls=MixupGroup, no_args_is_help=True)


@with_config_options(FewShotConfig)
def train(
    config_path: Optional[Path] = CONFIG_OPTION,
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    resume: bool = RESUME_OPTION,
    force: bool = FORCE_OPTION,
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
    overrides: dict = None,
) -> None:
    def body():
        from ..fewshot.training import FEWSHOT_RUN, train_fewshot
        from ..runs import check_out, resolve_for, resolve_out

        refuse_resume_and_force(resume, force, "run")
        resolve = functools.partial(resolve_config, FewShotConfig)
        config = resolve_for(FEWSHOT_RUN, resolve, config_path, overrides, explicit_keys(config_path, overrides),
                             resume)
        if print_config:
            return echo_config(config)
        run_dir = resolve_out(FEWSHOT_RUN, config.out, config)
        check_out(FEWSHOT_RUN, run_dir, resume, force)  # refused before the progress display starts
        progress = FewShotProgress(config)
        summary = run_interruptible(
            lambda stop: train_fewshot(config, run_dir, resume=resume, force=force, callbacks=progress,
                                       should_stop=stop),
            progress, f"mixup fewshot train --resume --out {run_dir}")
        render_summary(summary)
        if json_output:
            print_json(summary)

    run_guarded(debug, body)


@with_config_options(FewShotEvalConfig)
def evaluate(
    ckpt: List[Path] = typer.Option(..., "--ckpt", help="Few-shot checkpoint or run directory (its best.pt); "
                                                        "repeat for several."),
    config_path: Optional[Path] = CONFIG_OPTION,
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
    overrides: dict = None,
) -> None:
    def body():
        from ..fewshot.evaluation import evaluate_fewshot

        refuse_missing_inputs(ckpt, writer="mixup fewshot train")
        options = resolve_config(FewShotEvalConfig, config_path, overrides)
        reports = []
        for path in ckpt:
            with console.status(f"evaluating {path}"):
                reports.append(evaluate_fewshot(str(path), options))
        render_reports(reports, options)
        if json_output:
            print_json(reports[0] if len(reports) == 1 else reports)

    run_guarded(debug, body)


app.command("train", help=TRAIN_HELP, cls=MixupCommand)(train)
app.command("eval", help=EVAL_HELP, cls=MixupCommand)(evaluate)


class FewShotProgress(ProgressView):
    """Rich progress on stderr: an epoch bar per stage and a batch bar with the running loss."""

    def __init__(self, config: FewShotConfig):
        super().__init__()
        self.config = config
        self.epochs = self.batches = None

    def _stage_total(self, stage: int) -> int:
        return self.config.epochs if stage == 1 else self.config.finetune_epochs

    def on_start(self, info: dict) -> None:
        config = self.config
        console.print(f"few-shot [bold]{config.method}[/] with [bold]{config.model}[/] ({info['parameters']:,} "
                      f"parameters) on [bold]{config.dataset}[/] split {','.join(config.split)} ({info['split']}: "
                      f"{info['base_images']:,} base / {info['val_images']:,} val images), device {info['device']}, "
                      f"run {info['run_dir']}")
        self.epochs = self.progress.add_task(f"stage {info['stage']}", total=self._stage_total(info["stage"]),
                                             completed=info["start_epoch"], info="")
        self.batches = self.progress.add_task("batches", total=info["steps_per_epoch"], completed=info["start_step"],
                                              info="")

    def on_step(self, stage: int, epoch: int, step: int, steps: int, loss: float) -> None:
        self.progress.update(self.batches, completed=step, description=f"epoch {epoch + 1}", info=f"loss {loss:.4f}")

    def on_epoch(self, record: dict) -> None:
        stage = record["stage"]
        self.progress.update(self.epochs, description=f"stage {stage}", total=self._stage_total(stage),
                             completed=record["stage_epoch"], info=f"val {record['val_accuracy']:.2f}%")
        last_of_stage = record["stage_epoch"] == self._stage_total(stage) or record.get("early_stop")
        if last_of_stage and stage == 1 and self.config.method == "s2m2":
            self.progress.reset(self.epochs, total=self.config.finetune_epochs, description="stage 2")
        elif last_of_stage:
            self.progress.remove_task(self.batches)  # the run is over: no empty batch bar left behind
        if not last_of_stage or stage == 1 and self.config.method == "s2m2":
            self.progress.reset(self.batches)  # keeps its total; tasks[...] indexes by position, not id
        stop = "  (no improvement: stage 2 ends)" if record.get("early_stop") else ""
        self.progress.console.print(
            f"stage {stage} epoch {record['stage_epoch']:>3}  train loss {record['train_loss']:.4f}  val "
            f"{self.config.val_ways}-way {self.config.val_shots}-shot {record['val_accuracy']:.2f} ± "
            f"{record['val_ci95']:.2f}%{stop}")


def render_summary(summary: dict) -> None:
    ran = summary["finetune_epochs_run"]
    stage2 = f", stage 2 ran {ran} epoch{'' if ran == 1 else 's'}" + \
        (" (stopped early)" if summary["stopped_early"] else "") if summary["method"] == "s2m2" else ""
    console.print(f"[bold]mixup fewshot train[/]: {summary['method']} {summary['model']} on {summary['dataset']}, "
                  f"best validation {summary['val_ways']}-way {summary['val_shots']}-shot accuracy "
                  f"{summary['best_val_accuracy']:.2f} ± {summary['best_val_ci95']:.2f}% at epoch "
                  f"{summary['best_epoch']} (stage {summary['best_stage']}){stage2}; {summary['seconds']:.1f} s of "
                  f"training; run in {summary['run_dir']} (best.pt, last.pt, metrics.jsonl, summary.json)")


def render_reports(reports: list[dict], options: FewShotEvalConfig) -> None:
    from rich import box
    from rich.table import Table

    from ..fewshot.episodes import format_accuracy
    from ..fewshot.evaluation import accuracy_of, unpaired_shots

    table = Table(title=f"mixup fewshot eval: {options.ways}-way, {options.queries} queries, {options.episodes} "
                        f"episodes (seed {options.episode_seed}), {options.classifier} on frozen features, "
                        f"accuracy % ± 95 % CI", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("ckpt", "method", "seed", "epoch"):
        table.add_column(column, justify="left" if column in ("ckpt", "method") else "right", overflow="fold")
    for shots in options.shots:
        table.add_column(f"{shots}-shot", justify="right", no_wrap=True)
    for r in reports:
        table.add_row(r["ckpt"], r["method"], str(r["seed"]), str(r["epoch"]),
                      *[format_accuracy(accuracy_of(r, s)) for s in options.shots])
    console.print(table)
    unpaired = unpaired_shots(reports)
    if unpaired:
        console.print(f"note: the checkpoints saw different {', '.join(f'{s}-shot' for s in unpaired)} episodes "
                      f"(their novel images differ: dataset, split or --per-class), so these columns are not "
                      f"paired comparisons")
