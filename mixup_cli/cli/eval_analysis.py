"""`mixup eval --between | --calibration | --boundary`: the analyses of analysis.py on the command line.

They join `mixup eval` through one decorator (`with_analysis_options`) that adds their options to
the command and runs an analysis instead of the test-error table when one is asked for.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import typing
from pathlib import Path
from typing import Callable, List, Optional

from ..config import AnalysisConfig, resolve_config
from ..config.analysis import MODES
from .common import config_parameters, console, fail, print_json, refuse_missing_inputs, run_guarded

def _mode(config: AnalysisConfig, ckpt) -> str:
    from ..errors import ConfigError

    chosen = [m for m in MODES if getattr(config, m)]
    if len(chosen) > 1:
        raise ConfigError(f"choose one analysis per call, got --{' and --'.join(chosen)}")
    mode = chosen[0]
    if mode == "boundary" and ckpt:
        raise ConfigError("--boundary trains its own toy models and takes no --ckpt; drop --ckpt")
    if mode == "boundary" and not config.plot:
        raise ConfigError("--boundary draws a picture: pass --plot FILE.png")
    if mode != "boundary" and not ckpt:
        raise ConfigError(f"--{mode} needs at least one --ckpt (a checkpoint file or run directory)")
    return mode


def run_analysis(values: dict, ckpt, device: str, data_dir, batch_size: int, json_output: bool) -> None:
    from ..analysis_plots import check_new_file

    config = resolve_config(AnalysisConfig, overrides=values)
    mode = _mode(config, ckpt)
    refuse_missing_inputs(ckpt, data_dir)
    if config.plot:
        check_new_file(config.plot)  # before the minutes an analysis may take
    paths = [str(p) for p in ckpt or []]
    if mode == "between":
        result = _between(config, paths, device, data_dir, batch_size)
    elif mode == "calibration":
        result = _calibration(config, paths, device, data_dir, batch_size)
    else:
        result = _boundary(config)
    if json_output:
        print_json(result)


def _wrote(path: str) -> str:
    console.print(f"wrote {path}")
    return path


def _between(config: AnalysisConfig, paths: list, device: str, data_dir, batch_size: int) -> dict:
    from rich.table import Table

    from .. import analysis
    from ..analysis_plots import plot_between

    result = analysis.between_checkpoints(paths, device, data_dir, config.pairs,
                                          analysis.parse_lambdas(config.lambdas), config.seed, min(batch_size, 1024))
    table = Table(title=f"mixup eval --between: {result['pairs']} random training pairs of {result['dataset']}, "
                        f"x = λ·x_i + (1−λ)·x_j", header_style="bold")
    table.add_column("λ", justify="right")
    for m in result["models"]:
        table.add_column(f"miss % {m['name']} ({m['method']})", justify="right")
    for m in result["models"]:
        table.add_column(f"‖∇x‖ {m['name']} ({m['method']})", justify="right")
    for k, lam in enumerate(result["lambda"]):
        table.add_row(f"{lam:g}", *[f"{m['miss_percent'][k]:.2f}" for m in result["models"]],
                      *[f"{m['grad_norm'][k]:.4f}" for m in result["models"]])
    console.print(table)
    if config.plot:
        result["plot"] = _wrote(plot_between(result, config.plot))
    return result


def _calibration(config: AnalysisConfig, paths: list, device: str, data_dir, batch_size: int):
    from rich.table import Table

    from .. import analysis
    from ..analysis_plots import plot_reliability

    results = [analysis.calibration_checkpoint(p, device, data_dir, config.bins, batch_size) for p in paths]
    table = Table(title=f"mixup eval --calibration: test split, {config.bins} equal-width confidence bins",
                  header_style="bold")
    for column in ("ckpt", "method", "alpha", "n", "error %", "mean confidence %", "ECE %", "NLL"):
        table.add_column(column, justify="left" if column in ("ckpt", "method") else "right")
    for r in results:
        table.add_row(r["name"], r["method"], f"{r['alpha']:g}", str(r["n"]), f"{100 - r['accuracy_percent']:.2f}",
                      f"{r['mean_confidence_percent']:.2f}", f"{r['ece_percent']:.2f}", f"{r['nll']:.4f}")
    console.print(table)
    if config.plot:
        drawn = _wrote(plot_reliability(results, config.plot))
        for r in results:
            r["plot"] = drawn
    return results[0] if len(results) == 1 else results


def _boundary(config: AnalysisConfig) -> dict:
    from rich.table import Table

    from .. import analysis
    from ..analysis_plots import plot_boundary

    drawn = analysis.boundary((0.0, config.boundary_alpha), config.boundary_samples, steps=config.boundary_steps,
                              seed=config.seed)
    plot = plot_boundary(drawn, config.plot)
    table = Table(title=f"mixup eval --boundary: two moons, {drawn['samples']} points, {drawn['steps']} steps",
                  header_style="bold")
    for column in ("model", "alpha", "train error %"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for m in drawn["models"]:
        table.add_row(m["method"], f"{m['alpha']:g}", f"{m['train_error_percent']:.2f}")
    console.print(table)
    _wrote(plot)
    return {"plot": plot, "samples": drawn["samples"], "noise": drawn["noise"], "steps": drawn["steps"],
            "seed": drawn["seed"], "models": [{k: v for k, v in m.items() if k != "p1"} for m in drawn["models"]]}


def with_analysis_options(command: Callable) -> Callable:
    """Add AnalysisConfig's options to `mixup eval`; with one of --between/--calibration/--boundary
    the analysis runs instead of the command. --ckpt becomes optional (the boundary needs none)."""
    names = [f.name for f in dataclasses.fields(AnalysisConfig)]
    hints = typing.get_type_hints(command)
    own = []
    for p in inspect.signature(command).parameters.values():
        p = p.replace(annotation=hints.get(p.name, p.annotation))
        if p.name == "ckpt":
            optional = copy.copy(p.default)
            optional.default = None
            p = p.replace(default=optional, annotation=Optional[List[Path]])
        own.append(p)

    @functools.wraps(command)
    def wrapper(**kwargs):
        values = {k: kwargs.pop(k) for k in names if k in kwargs}
        if any(values.get(m) for m in MODES):
            return run_guarded(kwargs.get("debug", False), lambda: run_analysis(
                values, kwargs.get("ckpt"), kwargs.get("device", "auto"), kwargs.get("data_dir"),
                kwargs.get("batch_size", 512), kwargs.get("json_output", False)))
        stray = [k for k in names if k not in MODES and values.get(k) is not None]
        if stray:  # e.g. --plot alone would do nothing and exit 0
            flag = "--" + stray[0].replace("_", "-")
            fail(f"{flag} only applies to an analysis: add --between, --calibration or --boundary, or drop {flag}")
        if not kwargs.get("ckpt"):
            fail("missing option --ckpt: pass a checkpoint file or run directory (or an analysis such as --boundary)")
        refuse_missing_inputs(kwargs["ckpt"], kwargs.get("data_dir"))
        return command(**kwargs)

    wrapper.__signature__ = inspect.Signature(own + config_parameters(AnalysisConfig))
    wrapper.__annotations__ = {}
    return wrapper
