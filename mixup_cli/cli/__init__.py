"""The `mixup` command line: a thin Typer layer over the library, one module per subcommand.

Importing this module must stay cheap (no torch) so that `mixup --help` answers at once; each
subcommand imports the library when it runs.
"""
from __future__ import annotations

import typer

from . import eval as eval_command
from . import gan as gan_command
from . import attack, corrupt_labels, listing, train

app = typer.Typer(
    name="mixup",
    help="Reproduce 'mixup: Beyond Empirical Risk Minimization' (Zhang et al., ICLR 2018): "
         "train with mixup or ERM, evaluate, and compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.command("train", help=train.HELP)(train.train)
app.command("eval", help=eval_command.HELP)(eval_command.eval_checkpoints)
app.command("list", help=listing.HELP)(listing.list_registered)
app.command("attack", help=attack.HELP)(attack.attack)
app.command("corrupt-labels", help=corrupt_labels.HELP)(corrupt_labels.corrupt_labels)
app.command("gan", help=gan_command.HELP)(gan_command.gan)


def main() -> None:
    """Entry point: usage errors become one line on stderr and exit code 2, like config errors."""
    import sys

    try:  # typer >= 0.25 vendors click
        from typer._click import exceptions as click_errors
    except ImportError:
        from click import exceptions as click_errors

    from .common import console

    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        console.print(exc.ctx.get_help())
        sys.exit(0)
    except click_errors.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "mixup"
        console.print(f"[bold red]error:[/] {exc.format_message()}; see '{command} --help'", soft_wrap=True)
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        console.print(f"[bold red]error:[/] {exc.format_message()}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
