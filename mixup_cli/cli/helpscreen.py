"""`--help` screens that read well at 80 columns: usage, description, then the options in titled
panels, one row per option: its names and value type, then its help with default and choices.

Typer's own layout gives each option six columns (long, short, negative, negative short, type,
help); at 80 columns that leaves the help a sliver and cuts long flag names. The commands here
render their help themselves, into click's formatter, so `ctx.get_help()` returns the text and
prints nothing (Typer's printed it as a side effect, which showed bare `mixup`'s help twice).
"""
from __future__ import annotations

import inspect
import io
import re
import sys

from typer.core import TyperCommand, TyperGroup

from ..config import PANELS

MAX_WIDTH = 100  # longer lines are hard to read on a wide terminal
NAME_WIDTH = 24  # option names longer than this break after '/' or before their value type
ARGUMENTS, OPTIONS, COMMANDS = "Arguments", "Options", "Commands"
STYLES = {"name": "bold cyan", "negative": "bold magenta", "metavar": "yellow", "extra": "dim",
          "required": "red", "border": "dim"}
# Value types Typer and click report, as shown after the option name.
TYPE_NAMES = {"int": "INT", "integer": "INT", "float": "FLOAT", "str": "TEXT", "text": "TEXT", "path": "PATH",
              "bool": "", "boolean": ""}


class MixupCommand(TyperCommand):
    def format_help(self, ctx, formatter) -> None:
        formatter.write(render_help(self, ctx))


class MixupGroup(TyperGroup):
    def format_help(self, ctx, formatter) -> None:
        formatter.write(render_help(self, ctx))


def render_help(command, ctx) -> str:
    from rich.console import Console
    from rich.padding import Padding
    from rich.text import Text

    width = min(Console().width, MAX_WIDTH)  # the terminal's, or COLUMNS
    out = Console(file=io.StringIO(), width=width, force_terminal=sys.stdout.isatty(), highlight=False)
    usage = " ".join(command.collect_usage_pieces(ctx))
    out.print(Padding(Text.assemble(("Usage: ", "bold"), f"{ctx.command_path} {usage}"), (1, 1)))
    for paragraph in inspect.cleandoc(command.help or "").split("\n\n"):
        if paragraph:
            out.print(Padding(Text(" ".join(paragraph.split())), (0, 1, 1, 1)))
    rows = _option_rows(command, ctx)
    if isinstance(command, TyperGroup):
        rows[COMMANDS] = _command_rows(command, ctx)
    name_width = max((len(line) for panel in rows.values() for names, _ in panel for line in names.plain.split("\n")),
                     default=0)
    for title, panel in rows.items():
        out.print(_panel(title, panel, name_width))
    return "\n".join(line.rstrip() for line in out.file.getvalue().splitlines())  # Rich pads lines to the width


def _panel(title: str, rows: list, name_width: int):
    from rich.panel import Panel
    from rich.table import Table

    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(width=name_width, no_wrap=True)
    table.add_column(ratio=1, overflow="fold")
    for names, text in rows:
        table.add_row(names, text)
    return Panel(table, title=title, title_align="left", border_style=STYLES["border"])


def _option_rows(command, ctx) -> dict:
    """{panel title: [(names, help)]}: arguments first, then panels PANELS does not name (in order
    of appearance), then those it names, in its order."""
    grouped: dict = {}
    help_row = None
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        row = (_names(param, ctx), _help(param, ctx))
        if param.param_type_name == "option" and set(param.opts) & set(ctx.help_option_names):
            help_row = row
            continue
        title = ARGUMENTS if param.param_type_name == "argument" else getattr(param, "rich_help_panel", None) or OPTIONS
        grouped.setdefault(title, []).append(row)
    order = sorted(grouped, key=lambda t: -2 if t == ARGUMENTS else (PANELS.index(t) if t in PANELS else -1))
    panels = {title: grouped[title] for title in order}
    if help_row is not None:  # with the command's own options: under Run, else under Options
        title = next((t for t in ("Run", OPTIONS) if t in panels), None)
        panels.setdefault(title or OPTIONS, []).append(help_row)
    return panels


def _command_rows(group, ctx) -> list:
    from rich.text import Text

    rows = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            rows.append((Text(name, style=STYLES["name"]), Text(_first_sentence(command.help or ""))))
    return rows


def _first_sentence(text: str) -> str:
    text = " ".join(inspect.cleandoc(text).split("\n\n")[0].split())
    match = re.match(r"(.+?\.)(\s|$)", text)
    return match.group(1) if match else text


def _names(param, ctx):
    """'--epochs INT', '-c, --config PATH', '--bf16/--no-bf16'; broken into lines at '/' or before
    the value type where longer than NAME_WIDTH, so no name is ever cut."""
    from rich.text import Text

    if param.param_type_name == "argument":  # as the usage line writes it
        return Text(" ".join(param.get_usage_pieces(ctx)), style=STYLES["metavar"])
    pieces = [(", ".join(sorted(param.opts, key=len)), STYLES["name"])]
    if param.secondary_opts:
        pieces[0] = (pieces[0][0] + "/", pieces[0][1])
        pieces.append(("/".join(param.secondary_opts), STYLES["negative"]))
    metavar = _metavar(param, ctx)
    if metavar:
        pieces.append((metavar, STYLES["metavar"]))
    lines = [[pieces[0]]]
    for piece in pieces[1:]:
        line = lines[-1]
        joined = "".join(p[0] for p in line)
        glue = "" if joined.endswith("/") else " "
        if len(joined) + len(glue) + len(piece[0]) <= NAME_WIDTH:
            line.append((glue + piece[0], piece[1]))
        else:
            lines.append([piece])
    text = Text()
    for i, line in enumerate(lines):
        text.append("\n" if i else "")
        for chunk, style in line:
            text.append(chunk, style=style)
    return text


def _metavar(param, ctx) -> str:
    if param.metavar:
        return param.metavar
    if getattr(param, "is_flag", False):
        return ""
    kind = getattr(getattr(param, "type", None), "name", None)  # click's parameter types
    if kind is None and hasattr(param, "display_type"):  # Typer >= 0.20: '<int range>', '<list[Path]>'
        kind = param.display_type(ctx).strip("<>")
    kind = re.sub(r"^list\[(.*)\]$", r"\1", (kind or "").split(" ")[0]).lower()
    return TYPE_NAMES.get(kind, kind.upper())


def _help(param, ctx):
    from rich.text import Text

    text = Text(" ".join((getattr(param, "help", None) or "").split()))
    envvar = getattr(param, "envvar", None)
    if envvar and getattr(param, "show_envvar", False):
        text.append(f" [env var: {envvar}]")
    default = _default(param)
    if default is not None:
        text.append(f" [default: {default}]", style=STYLES["extra"])
    if param.required:
        text.append(" [required]", style=STYLES["required"])
    return text


def _default(param):
    """What --help shows as the default: the option's own text, or its value; nothing for a plain
    flag (off unless given) or a value that is None (not given)."""
    shown = getattr(param, "show_default", None)
    if isinstance(shown, str):
        return shown or None
    if not shown or param.required or (getattr(param, "is_flag", False) and not param.secondary_opts):
        return None
    value = param.default
    if value is None or callable(value):
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or None
    return str(value)
