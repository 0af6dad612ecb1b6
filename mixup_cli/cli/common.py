"""What every subcommand shares: the stderr console, one-line errors, JSON on stdout, and the
Typer options generated from a config dataclass (so the dataclass stays the one source of
defaults and help text)."""
from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import json
import re
import signal
import sys
import traceback
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from ..config import field_type
from ..errors import MixupError

# soft_wrap: paths and commands in messages stay whole on one line, whatever the terminal width.
console = Console(stderr=True, highlight=False, soft_wrap=True)
# Where a command's result is a table (`mixup list`), the table goes to stdout when not --json.
stdout_console = Console(highlight=False)


def fail(message: str, code: int = 2) -> typing.NoReturn:
    from rich.markup import escape  # a message may hold [brackets] of its own

    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def refuse_missing_inputs(checkpoints=(), data_dir: Optional[str] = None, writer: str = "mixup train") -> None:
    """Missing inputs are refused before the library loads: importing torch takes seconds. (The
    library checks them again, for callers of the Python API.)"""
    for path in checkpoints or ():
        if not Path(path).exists():
            fail(f"checkpoint '{path}' does not exist; pass a .pt file written by {writer}, or its run directory")
    if data_dir is not None and not Path(data_dir).is_dir():
        fail(f"--data-dir: folder '{data_dir}' does not exist; pass the folder that holds the dataset's files")


def print_json(payload: Any) -> None:
    """The only thing a command with --json writes to stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    sys.stdout.flush()


def run_guarded(debug: bool, action: Callable[[], Any]) -> Any:
    """Run a command body; library errors become one line and an exit code, never a traceback."""
    try:
        return action()
    except typer.Exit:
        raise
    except MixupError as exc:
        if debug:
            traceback.print_exc()
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        raise typer.Exit(130)
    except Exception as exc:  # an unexpected failure: one line unless --debug
        if debug:
            traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        fail(f"{type(exc).__name__}: {first} (run again with --debug for the traceback)", 1)


def explicit_keys(config_path, overrides: dict) -> set[str]:
    """The config keys a user gave, by flag or in the YAML file (a resume refuses contradicting ones)."""
    from ..config import load_yaml

    explicit = {k for k, v in overrides.items() if v is not None}
    if config_path is not None:
        explicit |= {k.replace("-", "_") for k in load_yaml(config_path)}
    return explicit


class StopFlag:
    """SIGINT/SIGTERM ask the running work to stop at its next safe point and save its checkpoint."""

    def __init__(self):
        self.signal: Optional[int] = None
        self._previous = {}

    def __call__(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum
        console.print("[yellow]stopping after this step; saving a checkpoint (press Ctrl-C again to abort)[/]")

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_interruptible(work: Callable[[StopFlag], Any], progress, resume_command: str) -> Any:
    """Run `work(should_stop)` under `progress`; a stop request ends with the resume command and
    exit code 130 (SIGINT) or 143 (SIGTERM)."""
    from ..errors import Interrupted

    with StopFlag() as stop, progress:
        try:
            return work(stop)
        except Interrupted as exc:
            progress.stop()
            console.print(f"[yellow]{exc}[/]\nresume with: {resume_command}")
            raise typer.Exit(143 if stop.signal == signal.SIGTERM else 130)


class ProgressView:
    """Base of the long commands' progress displays: Rich bars on stderr, one per task, each with a
    description, a count, an `info` text and an ETA. Subclasses add the library's callbacks."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console)
        self._prepare: dict = {}  # on_prepare's work: what -> [task, start time, estimate printed]

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.progress.task_ids:
            self.progress.stop()
        else:  # nothing was drawn (an early error): Progress.stop would add a blank line on a non-terminal
            self.progress.live.stop()

    def on_prepare(self, what: str, done: int, total: int) -> None:
        """A bar for slow set-up work (knn's neighbour lists), and once its first block is done, an estimate."""
        import time

        tasks = self._prepare
        if what not in tasks:
            tasks[what] = [self.progress.add_task(what, total=total, info=""), time.perf_counter(), False]
        task, started, told = tasks[what]
        self.progress.update(task, completed=done)
        if 0 < done < total and not told:
            left = (time.perf_counter() - started) * (total - done) / done
            self.progress.console.print(f"{what}: {total:,} examples, about {_duration(left)} left")
            tasks[what][2] = True
        if done >= total:
            self.progress.remove_task(task)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)][0]
    return annotation


def _cli_annotation(annotation: Any) -> Any:
    base = _without_none(annotation)
    if typing.get_origin(base) is list:
        return Optional[str]  # comma-separated on the command line
    return Optional[base]


METAVARS = {int: "INT", float: "FLOAT", str: "TEXT"}


def _metavar(annotation: Any, meta: dict) -> Optional[str]:
    """The value type --help shows after the flag: FILE/DIR for paths, 'INT,...' for lists."""
    if meta.get("path"):
        return meta["path"].upper()
    base = _without_none(annotation)
    if typing.get_origin(base) is list:
        return METAVARS.get(typing.get_args(base)[0], "TEXT") + ",..."
    return METAVARS.get(base)  # None for a switch, which takes no value


def _shown_default(f: dataclasses.Field) -> Optional[str]:
    """The default --help shows: the field's `shown_default` where None means 'decided at run time',
    else the value itself (on/off for switches); nothing for a None that means 'not set'."""
    if f.metadata.get("shown_default"):
        return f.metadata["shown_default"]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, list):
        return ",".join(map(str, default)) or None
    return None if default in (None, "") else str(default)


def _name_flags(cls: type, f: dataclasses.Field, text: str) -> str:
    """Text for --help names the other fields by their flags: mix_where -> --mix-where."""
    # One-word names (alpha, epochs) are also plain words; a field's own name may mean the concept.
    names = [g.name for g in dataclasses.fields(cls)
             if "_" in g.name and g.name != f.name and g.metadata.get("cli", True)]
    if not names:
        return text
    return re.sub(r"\b(" + "|".join(names) + r")\b", lambda m: _flag_name(m.group(1)), text)


def _option_help(cls: type, f: dataclasses.Field) -> str:
    """The field's help with its choices."""
    text = _name_flags(cls, f, f.metadata.get("help", ""))
    choices = f.metadata.get("choices")
    listed = choices if isinstance(choices, list) else f.metadata.get("choice_names")
    if listed:
        text += f" Choices: {', '.join(map(str, listed))}."
    env = f.metadata.get("env") or f.metadata.get("env_root")
    if env:
        text += f" [env var: {env}]"
    return text


def config_parameters(cls: type) -> list[inspect.Parameter]:
    """One Typer option per config field; default None means 'not given' (YAML or default wins)."""
    params = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        annotation = _cli_annotation(field_type(cls, f.name))
        decls = [_flag_name(f.name)]
        if annotation is Optional[bool]:
            decls = [f"{_flag_name(f.name)}/--no-{f.name.replace('_', '-')}"]
        shown = _name_flags(cls, f, _shown_default(f) or "")
        decl = typer.Option(None, *decls, help=_option_help(cls, f), show_default=shown if shown else False,
                            metavar=_metavar(field_type(cls, f.name), f.metadata),
                            rich_help_panel=f.metadata.get("panel"))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=decl, annotation=annotation))
    return params


def _own_panels(cls: type, own: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """A command's own options join the config's panels where it has them: --config among the most
    used ('Common'), the rest ('--resume', '--json', ...) under 'Run'."""
    panels = {f.metadata.get("panel") for f in dataclasses.fields(cls)}
    placed = []
    for p in own:
        info = p.default
        panel = "Common" if p.name == "config_path" else "Run"
        if panel in panels and hasattr(info, "rich_help_panel") and not info.rich_help_panel:
            info = copy.copy(info)  # the OptionInfo objects in this module are shared by every command
            info.rich_help_panel = panel
        placed.append(p.replace(default=info))
    return placed


def with_config_options(cls: type):
    """Decorator: add `cls`'s fields as options; the command receives them as a dict `overrides`."""
    names = [f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]

    def decorate(command: Callable) -> Callable:
        hints = typing.get_type_hints(command)  # resolve the string annotations of `from __future__`
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(command).parameters.values() if p.name != "overrides"]

        @functools.wraps(command)
        def wrapper(**kwargs):
            overrides = {k: kwargs.pop(k) for k in names if k in kwargs}
            return command(overrides=overrides, **kwargs)

        # Config options first: within a --help panel the fields keep the dataclass's order, the
        # command's own options (--config, --resume, --json) follow them.
        own = _own_panels(cls, own)
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        wrapper.__signature__ = inspect.Signature(config_parameters(cls) + keyword)
        wrapper.__annotations__ = {}
        return wrapper

    return decorate


CONFIG_OPTION = typer.Option(None, "--config", "-c", metavar="FILE",
                             help="YAML file of config keys; flags override it.")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object on stdout (everything else goes to stderr).")
DEBUG_OPTION = typer.Option(False, "--debug", help="Show the traceback of an unexpected error.")


def run_dir_options(what: str, resume_help: str):
    """The --resume and --force options of a command that writes a run (train) or an experiment."""
    return (typer.Option(False, "--resume", help=resume_help),
            typer.Option(False, "--force", help=f"Replace the {what} already in --out."))


def refuse_resume_and_force(resume: bool, force: bool, what: str) -> None:
    if resume and force:
        from ..errors import ConfigError

        raise ConfigError(f"--resume continues the {what} in --out and --force replaces it; pass one of them")


def echo_config(config) -> None:
    """--print-config: the resolved config as YAML on stdout."""
    import yaml

    from ..config import to_dict

    typer.echo(yaml.safe_dump(to_dict(config), sort_keys=False), nl=False)
