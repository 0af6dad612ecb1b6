"""The `mixup` command line: a thin Typer layer over the library, one module per subcommand.

Importing this module must stay cheap (no torch) so that `mixup --help` answers at once; each
subcommand imports the library when it runs.
"""
from __future__ import annotations

import typer

from . import eval as eval_command
from . import gan as gan_command
from . import listing, train

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
app.command("gan", help=gan_command.HELP)(gan_command.gan)


def main() -> None:
    app()
