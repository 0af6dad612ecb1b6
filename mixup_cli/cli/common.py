"""What every subcommand shares: the stderr console, one-line errors, JSON on stdout, and the
Typer options generated from a config dataclass (so the dataclass stays the one source of
defaults and help text)."""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import signal
import sys
import traceback
import typing
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from ..config import field_type
from ..errors import MixupError

# soft_wrap: paths and commands in messages stay whole on one line, whatever the terminal width.
console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typing.NoReturn:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


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

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.progress.stop()


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _cli_annotation(annotation: Any) -> Any:
    base = annotation
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", ())):
        base = [a for a in typing.get_args(annotation) if a is not type(None)][0]
    if typing.get_origin(base) is list:
        return Optional[str]  # comma-separated on the command line
    return Optional[base]


def config_parameters(cls: type) -> list[inspect.Parameter]:
    """One Typer option per config field; default None means 'not given' (YAML or default wins)."""
    params = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        annotation = _cli_annotation(field_type(cls, f.name))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        if isinstance(choices, list):
            help_text += f" Choices: {', '.join(map(str, choices))}."
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        if annotation is Optional[bool]:
            decl = typer.Option(None, f"{_flag_name(f.name)}/--no-{f.name.replace('_', '-')}", help=help_text,
                                show_default=str(shown))
        else:
            decl = typer.Option(None, _flag_name(f.name), help=help_text,
                                show_default=str(shown) if shown not in (None, "") else False)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=decl, annotation=annotation))
    return params


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

        wrapper.__signature__ = inspect.Signature(own + config_parameters(cls))
        wrapper.__annotations__ = {}
        return wrapper

    return decorate


CONFIG_OPTION = typer.Option(None, "--config", "-c", help="YAML file of config keys; flags override it.")
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object on stdout (everything else goes to stderr).")
DEBUG_OPTION = typer.Option(False, "--debug", help="Show the traceback of an unexpected error.")
