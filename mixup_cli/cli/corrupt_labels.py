"""`mixup corrupt-labels`: the memorization experiment of §3.4 (Table 2), and label files for `train --labels`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import (CONFIG_OPTION, DEBUG_OPTION, JSON_OPTION, console, echo_config, explicit_keys, ProgressView,
                     print_json, refuse_resume_and_force, run_dir_options, run_guarded, run_interruptible,
                     with_config_options)
from ..config import CorruptLabelsConfig

RESUME_OPTION, FORCE_OPTION = run_dir_options(
    "experiment", "Continue the experiment in --out; finished runs are kept (and extended when --epochs is raised).")
HELP = ("Table 2 (§3.4): train ERM, dropout, mixup and mixup + dropout on randomly corrupted labels, and "
        "report test error and training error on the kept and the corrupted examples. Paper defaults "
        "(CIFAR-10, PreAct ResNet-18, 200 epochs); on a CPU: --dataset digits --model small-cnn --epochs 100 "
        "--milestones 50,75. --save-labels FILE writes labels for `mixup train --labels FILE`.")


def _resolve(config_path: Optional[Path], overrides: dict, resume: bool) -> tuple[CorruptLabelsConfig, set]:
    from ..config import resolve_experiment_config
    from ..runs import CORRUPT_LABELS_EXPERIMENT, resolve_for

    explicit = explicit_keys(config_path, overrides)
    config = resolve_for(CORRUPT_LABELS_EXPERIMENT, resolve_experiment_config, config_path, overrides, explicit,
                         resume)
    return config, explicit


def _save_labels(config: CorruptLabelsConfig, path: Path) -> dict:
    from ..data.labels import make_corrupted_labels, save_label_file
    from ..errors import ConfigError

    if len(config.fraction) != 1:
        raise ConfigError(f"--save-labels writes one file, for one fraction; give a single --fraction (got "
                          f"{','.join(f'{f:g}' for f in config.fraction)}); an experiment keeps every fraction's "
                          f"labels in OUT/fraction-P/labels.pt")
    corrupted = make_corrupted_labels(config.dataset, config.fraction[0], config.corruption_seed, config.exact,
                                      config.exclude_true, config.data_dir)
    save_label_file(corrupted, path)
    info = {"labels_file": str(path), **corrupted.settings(), "n": len(corrupted.labels),
            "n_chosen": int(corrupted.mask.sum()), "realized_noise": corrupted.realized_noise}
    console.print(f"wrote {path}: {info['n_chosen']:,} of {info['n']:,} '{corrupted.dataset}' training labels chosen "
                  f"(fraction {corrupted.fraction:g}), {100 * info['realized_noise']:.2f}% now differ from the "
                  f"truth; train on them with: mixup train --dataset {corrupted.dataset} --labels {path}")
    return info


@with_config_options(CorruptLabelsConfig)
def corrupt_labels(
    config_path: Optional[Path] = CONFIG_OPTION,
    resume: bool = RESUME_OPTION,
    force: bool = FORCE_OPTION,
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Run the experiment once per seed, e.g. 0,1,2 (the "
                                        "training seed, and the corruption's unless --label-seed): one in "
                                        "--out/seed-N each, mean ± std in --out/summary.json."),
    save_labels: Optional[Path] = typer.Option(None, "--save-labels", help="Also write the corrupted labels (one "
                                               "--fraction) to this file, for `mixup train --labels FILE`."),
    labels_only: bool = typer.Option(False, "--labels-only", help="Only write --save-labels; train nothing."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as YAML and exit."),
    json_output: bool = JSON_OPTION,
    debug: bool = DEBUG_OPTION,
    overrides: dict = None,
) -> None:
    def body():
        from ..errors import ConfigError

        refuse_resume_and_force(resume, force, "experiment")
        if seeds is not None:
            if print_config or save_labels is not None or labels_only:
                raise ConfigError("--print-config, --save-labels and --labels-only work on one experiment; "
                                  "drop --seeds, or give --seed N for the one you want")
            return _run_seeds(config_path, overrides, seeds, resume, force, json_output)
        config, explicit = _resolve(config_path, overrides, resume)
        if print_config:
            return echo_config(config)
        if labels_only and save_labels is None:
            raise ConfigError("--labels-only needs --save-labels FILE, the file to write")
        saved = _save_labels(config, save_labels) if save_labels is not None else None
        if labels_only:
            if json_output:
                print_json(saved)
            return
        result = _run_one(config, resume, explicit, force)
        if saved is not None:
            result["labels_file"] = saved["labels_file"]
        render_table(result)
        if json_output:
            print_json(result)

    run_guarded(debug, body)


def _run_one(config: CorruptLabelsConfig, resume: bool, explicit: set, force: bool,
             resume_command: Optional[str] = None) -> dict:
    from ..corrupt_labels import experiment, run_experiment

    with experiment(config, resume, explicit, force) as root:
        progress = ExperimentProgress(config)
        return run_interruptible(lambda stop: run_experiment(config, root, callbacks=progress, should_stop=stop),
                                 progress, resume_command or f"mixup corrupt-labels --resume --out {root}")


def _run_seeds(config_path: Optional[Path], overrides: dict, seeds_text: str, resume: bool, force: bool,
               json_output: bool) -> None:
    """--seeds: the experiment once per seed under --out/seed-N, then Table 2's rows over the seeds."""
    from ..corrupt_labels import EXPERIMENT, aggregate_seeds
    from ..errors import ConfigError
    from ..seeds import seed_dir, seeds_for, write_aggregate

    seeds = seeds_for(seeds_text, overrides)
    if not overrides.get("out"):
        raise ConfigError("--seeds needs --out DIR, the folder that holds one experiment per seed")
    root = Path(overrides["out"])
    again = f"mixup corrupt-labels --resume --seeds {seeds_text} --out {root}"
    results = []
    for seed in seeds:
        out = seed_dir(root, seed)
        continuing = resume and (out / EXPERIMENT).is_file()
        config, explicit = _resolve(config_path, dict(overrides, seed=seed, out=str(out)), continuing)
        results.append(_run_one(config, continuing, explicit, force, again))
    payload = {"root": str(root), "seeds": seeds, "dataset": results[0]["dataset"], "model": results[0]["model"],
               "epochs": results[0]["epochs"], "rows": aggregate_seeds(results),
               "experiments": [str(seed_dir(root, s)) for s in seeds]}
    payload["summary_json"] = str(write_aggregate(root, payload))
    render_seeds_table(payload)
    if json_output:
        print_json(payload)


def render_seeds_table(payload: dict) -> None:
    from rich.table import Table

    from ..seeds import format_mean_std

    table = Table(title=f"Table 2 (§3.4) over seeds {', '.join(map(str, payload['seeds']))}: errors in %, mean ± std; "
                        f"{payload['dataset']}, {payload['model']}, {payload['epochs']} epochs", header_style="bold")
    for column in ("corruption", "method", "test best", "test last", "train real", "train corrupted"):
        table.add_column(column, justify="left" if column in ("corruption", "method") else "right")
    for r in payload["rows"]:
        table.add_row(f"{100 * r['fraction']:g}%", r["method"],
                      *[format_mean_std(r[k]) for k in ("best_test_error", "last_test_error", "train_error_real",
                                                  "train_error_corrupted")])
    console.print(table)
    console.print(f"wrote {payload['summary_json']}")


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


class ExperimentProgress(ProgressView):
    """A line per sub-run on stderr, with an epoch bar while it trains."""

    def __init__(self, config: CorruptLabelsConfig):
        super().__init__()
        self.total = len(config.fraction) * len(config.methods)
        self.done = 0
        self.task = None
        self.current = ""

    def on_run_start(self, info: dict) -> None:
        self.done += 1
        self.current = f"{100 * info['fraction']:g}% {info['label']}"
        verb = {"new": "training", "resume": "resuming", "done": "finished already"}[info["state"]]
        self.progress.console.print(f"[{self.done}/{self.total}] {self.current}: {verb} ({info['run_dir']})")
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        if info["state"] != "done":
            self.task = self.progress.add_task(self.current, total=info["epochs"], info="")

    def on_start(self, info: dict) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=info["start_epoch"])

    def on_step(self, epoch: int, step: int, steps: int, loss: float, samples_per_second: float) -> None:
        self.progress.update(self.task, info=f"epoch {epoch + 1} step {step}/{steps} loss {loss:.3f}")

    def on_epoch(self, record: dict) -> None:
        self.progress.update(self.task, completed=record["epoch"],
                             info=f"test error {record['test_error']:.2f}%  train loss {record['train_loss']:.3f}")

    def on_run_end(self, row: dict) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        self.progress.console.print(
            f"      test error best {row['best_test_error']:.2f}% last {row['last_test_error']:.2f}%; "
            f"training error real {_percent(row['train_error_real'])}% corrupted "
            f"{_percent(row['train_error_corrupted'])}%")


def render_table(result: dict) -> None:
    """Table 2's layout: corruption, method, test error (best, last), training error (real, corrupted)."""
    from rich.table import Table

    from ..corrupt_labels import METHODS

    rows = result["rows"]
    paper = any(r["paper"] for r in rows)
    table = Table(title=f"Table 2 (§3.4): errors in % with corrupted labels; {result['dataset']}, {result['model']}, "
                        f"{result['epochs']} epochs", header_style="bold")
    table.add_column("corruption (realized)")
    table.add_column("method")
    for column in ("test best", "test last", "train real", "train corrupted"):
        table.add_column(column, justify="right")
    if paper:
        for column in ("paper best", "paper last", "paper real", "paper corrupted"):
            table.add_column(column, justify="right", style="dim")
    previous = None
    for r in rows:
        first = r["fraction"] != previous
        if first and previous is not None:
            table.add_section()
        previous = r["fraction"]
        cells = [f"{100 * r['fraction']:g}% ({100 * r['realized_noise']:.1f}%)" if first else "",
                 METHODS.get(r["method"]).label(r["alpha"], r["dropout"]),
                 _percent(r["best_test_error"]), _percent(r["last_test_error"]),
                 _percent(r["train_error_real"]), _percent(r["train_error_corrupted"])]
        if paper:
            p = r["paper"] or {}
            cells += [_percent(p.get(k)) for k in ("best_test_error", "last_test_error", "train_error_real",
                                                   "train_error_corrupted")]
        table.add_row(*cells)
    console.print(table)
    console.print(f"runs in {result['out']} (each a run directory: mixup eval --ckpt DIR)")
