"""The `mixup` command line: a thin Typer layer over the library, one module per subcommand.

Importing this module must stay cheap (no torch) so that `mixup --help` answers at once; each
subcommand imports the library when it runs.
"""
from __future__ import annotations

import typer

from . import eval as eval_command
from . import gan as gan_command
from . import fewshot as fewshot_command
from . import attack, corrupt_labels, export, listing, plot, reproduce, train
from .helpscreen import MixupCommand, MixupGroup

app = typer.Typer(
    name="mixup",
    help="Reproduce 'mixup: Beyond Empirical Risk Minimization' (Zhang et al., ICLR 2018): "
         "train with mixup or ERM, evaluate, and compare.",
    cls=MixupGroup,
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"mixup {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    # No docstring: it would replace the app's help text.
    pass


for _name, _module, _function in (("train", train, "train"), ("eval", eval_command, "eval_checkpoints"),
                                   ("list", listing, "list_registered"), ("attack", attack, "attack"),
                                   ("corrupt-labels", corrupt_labels, "corrupt_labels"),
                                   ("gan", gan_command, "gan"), ("reproduce", reproduce, "reproduce"),
                                   ("export", export, "export"), ("plot", plot, "plot")):
    app.command(_name, help=_module.HELP, cls=MixupCommand)(getattr(_module, _function))
app.add_typer(fewshot_command.app, name="fewshot", help=fewshot_command.HELP)  # a group: train, eval


def main() -> None:
    """Entry point: usage errors become one line on stderr and exit code 2, like config errors."""
    import sys

    try:  # typer >= 0.25 vendors click
        from typer._click import exceptions as click_errors
    except ImportError:
        from click import exceptions as click_errors

    from .common import console

    try:
        # prog_name: the same usage lines and completion variable under `python -m mixup_cli`
        code = app(prog_name="mixup", standalone_mode=False)
    except getattr(click_errors, "NoArgsIsHelpError", ()) as exc:  # click < 8.2 prints the help itself
        typer.echo(exc.ctx.get_help())
        sys.exit(0)
    except click_errors.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else _command_path(sys.argv[1:])
        message = exc.format_message().rstrip(". ")  # click's end in '.', and a ';' follows
        console.print(f"[bold red]error:[/] {_escape(message)}; see '{command} --help'", soft_wrap=True)
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        console.print(f"[bold red]error:[/] {_escape(exc.format_message())}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _command_path(args: list[str]) -> str:
    """'mixup train' for an error the parser raised without its context (a flag missing its value)."""
    names = {command.name for command in app.registered_commands}
    return f"mixup {args[0]}" if args and args[0] in names else "mixup"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
