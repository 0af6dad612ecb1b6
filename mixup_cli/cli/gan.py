"""`mixup gan`: train standard and mixup GANs on toy 2-D data (§3.7, Figure 5), draw and score them."""
from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Optional

import typer

from ..config import GanConfig
from .common import (CONFIG_OPTION, DEBUG_OPTION, JSON_OPTION, console, echo_config, explicit_keys, ProgressView,
                     print_json, refuse_resume_and_force, run_dir_options, run_guarded, run_interruptible,
                     with_config_options)

RESUME_OPTION, FORCE_OPTION = run_dir_options(
    "experiment", "Continue the experiment in --out: finished sub-runs are kept, an unfinished one continues "
    "from its checkpoint.")
HELP = ("Train a standard GAN and a mixup GAN (alpha 0.2) on toy 2-D data (ring: 8 modes, grid: 25 modes) as in "
        "§3.7 / Figure 5; writes the figure, the samples of every snapshot as CSV, and scores modes covered. "
        "Lists for --seeds, --z-dim and --lr run a grid and report the mean and spread.")


def _resolve(config_path: Optional[Path], overrides: dict, resume: bool) -> GanConfig:
    from ..config import resolve_config
    from ..runs import GAN_EXPERIMENT, resolve_for

    resolve = functools.partial(resolve_config, GanConfig)
    return resolve_for(GAN_EXPERIMENT, resolve, config_path, overrides, explicit_keys(config_path, overrides), resume)


@with_config_options(GanConfig)
def gan(
    config_path: Optional[Path] = CONFIG_OPTION,
    resume: bool = RESUME_OPTION,
    force: bool = FORCE_OPTION,
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
    overrides: dict = None,
) -> None:
    def body():
        refuse_resume_and_force(resume, force, "experiment")
        config = _resolve(config_path, overrides, resume)
        from ..gan.training import prepare_out_dir, run_experiment  # torch: after the config's cheap checks
        from ..runs import DirLock

        with DirLock() as lock:  # one writer per output directory, until the experiment ends
            out = prepare_out_dir(config.out, config, resume, force, lock)
            progress = GanProgress(config)
            summary = run_interruptible(
                lambda stop: run_experiment(config, out, resume=resume, callbacks=progress, should_stop=stop),
                progress, f"mixup gan --resume --out {out}")
        render_summary(summary)
        if json_output:
            print_json(summary)

    run_guarded(debug, body)


class GanProgress(ProgressView):
    """Rich progress on stderr: sub-runs done, and the current sub-run's iterations; a few seconds
    in, an estimate of the whole experiment's time."""

    def __init__(self, config: GanConfig):
        super().__init__()
        self.config = config
        self.total = self.current = None
        self.timing = None  # (sub-runs left, first iteration, start time) until the estimate is printed
        self.estimated = False

    def on_subrun_start(self, sub, index, total, start_iteration):
        if self.total is None:
            self.total = self.progress.add_task("sub-runs", total=total, completed=index, info="")
        if self.current is not None:
            self.progress.remove_task(self.current)
        resumed = f" (resumed at {start_iteration:,})" if start_iteration else ""
        self.progress.console.print(f"training {sub.key} on {self.config.dataset}{resumed}")
        self.current = self.progress.add_task(sub.key, total=self.config.iterations, completed=start_iteration, info="")
        if not self.estimated:
            self.timing = (total - index, start_iteration, time.perf_counter())

    def on_progress(self, sub, iteration):
        self.progress.update(self.current, completed=iteration)
        if self.timing is not None:
            self._estimate(iteration)

    def _estimate(self, iteration: int) -> None:
        """From the speed of the first steps: the defaults take hours on a CPU, which a user should
        hear at once, with the flags that shorten it."""
        left, first, started = self.timing
        elapsed = time.perf_counter() - started
        if elapsed < ESTIMATE_AFTER_S and iteration < self.config.iterations:
            return
        self.timing, self.estimated = None, True
        rate = (iteration - first) / max(elapsed, 1e-9)
        remaining = left * self.config.iterations - iteration
        self.progress.console.print(
            f"estimate: {_duration(remaining / rate)} more for {remaining:,} iterations ({left} sub-run(s) of "
            f"{self.config.iterations:,}) at {rate:,.1f} iterations/s")
        if remaining / rate > SHORTEN_HINT_S:
            self.progress.console.print(SHORTEN_HINT)

    def on_snapshot(self, sub, record):
        self.progress.update(self.current, info=f"{record['modes_covered']}/{record['num_modes']} modes")
        self.progress.console.print(
            f"  {sub.key} @ {record['iteration']:>6,}: {record['modes_covered']:>2}/{record['num_modes']} modes, "
            f"{100 * record['high_quality']:5.1f}% hq, {record['modes_reached']} near, "
            f"d {record['d_loss']:.3f}, g {record['g_loss']:.3f}")

    def on_subrun_end(self, sub, result, skipped):
        if skipped:
            self.progress.console.print(f"skipping {sub.key}: finished earlier")
        elif result.get("iterations_per_second"):
            self.progress.console.print(f"  {sub.key} done: {result['iterations_per_second']:.1f} iterations/s")
        if self.total is not None:
            self.progress.advance(self.total)


ESTIMATE_AFTER_S = 3.0  # measuring this long gives a steady rate (the first steps warm up)
SHORTEN_HINT_S = 300.0
SHORTEN_HINT = ("shorter: fewer --iterations (e.g. 2000; Figure 5's snapshots go to 20,000), fewer values in "
                "--seeds, --z-dim and --lr, or --no-compare (mixup only); Ctrl-C stops, --resume continues")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def render_summary(summary: dict) -> None:
    from rich.table import Table

    runs = summary["runs"]
    first = runs[0]
    pair = [r for r in runs if (r["z_dim"], r["lr"], r["seed"]) == (first["z_dim"], first["lr"], first["seed"])]
    table = Table(title=f"mixup gan on {summary['dataset']}: z-dim {first['z_dim']}, lr {first['lr']:g}, "
                        f"seed {first['seed']}", header_style="bold")
    for name, justify in (("method", "left"), ("iteration", "right"), ("modes (3σ)", "right"),
                          ("high-quality", "right"), ("modes (10σ)", "right"), ("d loss", "right"),
                          ("g loss", "right")):
        table.add_column(name, justify=justify)
    for r in pair:
        for s in r["snapshots"]:
            table.add_row(r["method"], f"{s['iteration']:,}", f"{s['modes_covered']}/{s['num_modes']}",
                          f"{100 * s['high_quality']:.1f}%", f"{s.get('modes_reached', '-')}/{s['num_modes']}",
                          f"{s['d_loss']:.4f}", f"{s['g_loss']:.4f}")
    console.print(table)
    grid = Table(title=f"final modes covered over {len(summary['seeds'])} seed(s), "
                       f"z-dim {','.join(map(str, summary['z_dim']))}, lr {','.join(f'{v:g}' for v in summary['lr'])}",
                 header_style="bold")
    for name, justify in (("cell", "left"), ("method", "left"), ("runs", "right"), ("modes (3σ) mean ± std", "right"),
                          ("min-max", "right"), ("all modes", "right"), ("high-quality", "right"),
                          ("modes (10σ)", "right")):
        grid.add_column(name, justify=justify)
    for row in summary["grid"]:
        grid.add_row(row["group"], row["method"], str(row["runs"]),
                     f"{row['modes_mean']:.2f} ± {row['modes_std']:.2f} / {row['num_modes']}",
                     f"{row['modes_min']}-{row['modes_max']}", f"{100 * row['all_modes_share']:.0f}%",
                     f"{100 * row['high_quality_mean']:.1f} ± {100 * row['high_quality_std']:.1f}%",
                     f"{row['reached_mean']:.2f} ± {row['reached_std']:.2f}")
    console.print(grid)
    speed = summary.get("iterations_per_second")
    speed_text = f", {speed:.1f} iterations/s ({summary['threads']} thread(s), {summary['device']})" if speed else ""
    console.print(f"wrote {summary['figure']}{speed_text}; samples and checkpoints in {summary['out']}")
