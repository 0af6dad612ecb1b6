"""The conventions people expect of a command line, through the real CLI: --version, -h, shell
completion, help that fits 80 columns, errors that name the flag typed, results on stdout, and
missing files refused before torch is imported."""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading

import pytest
from typer.testing import CliRunner

from conftest import SRC, THREADS_ENV

import mixup_cli
from mixup_cli.config import TrainConfig, choices_of
from mixup_cli.config import GanConfig

def _command_names() -> list[str]:
    from mixup_cli.cli import app

    return [command.name for command in app.registered_commands]


COMMANDS = _command_names()
# The options most runs set: the first panel of `mixup train --help`.
COMMON = ["--dataset", "--model", "--alpha", "--epochs", "--batch-size", "--lr", "--seed", "--device", "--out",
          "--config"]


def run_entry_point(*args, env_extra=None, cwd=None) -> subprocess.CompletedProcess:
    """`python -m mixup_cli ARGS` with the terminal width of a default terminal window."""
    env = dict(os.environ, PYTHONPATH=str(SRC), COLUMNS="80", **THREADS_ENV, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "mixup_cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def run_at_80_columns(*args):
    from mixup_cli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80"})


def without_torch(*args, cwd=None) -> tuple[int, bool, str]:
    """Run the entry point in a fresh interpreter; (exit code, whether torch got imported, stderr)."""
    script = ("import sys\nfrom mixup_cli.cli import main\nsys.argv = ['mixup', *sys.argv[1:]]\n"
              "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
              "print('torch' in sys.modules, code)\n")
    env = dict(os.environ, PYTHONPATH=str(SRC), **THREADS_ENV)
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)
    imported, code = proc.stdout.strip().splitlines()[-1].split()  # after the command's own output
    return int(code), imported == "True", proc.stderr


# --- --version, -h, completion -------------------------------------------------------------------

def test_version_help_alias_and_completion_work_through_the_entry_point(tmp_path):
    version = run_entry_point("--version")
    assert version.returncode == 0 and version.stdout == f"mixup {mixup_cli.__version__}\n"
    for args in (["-h"], ["train", "-h"]):
        result = run_entry_point(*args)
        assert result.returncode == 0 and f"Usage: mixup {' '.join(args[:-1])}".strip() in result.stdout
    # The shell named explicitly: the test must not depend on the shell that started pytest.
    explicit = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1", "HOME": str(tmp_path)}
    shown = run_entry_point("--show-completion", "bash", env_extra=explicit)
    assert shown.returncode == 0 and "_MIXUP_COMPLETE" in shown.stdout
    installed = run_entry_point("--install-completion", "bash", env_extra=explicit)
    assert installed.returncode == 0, installed.stderr
    assert "mixup" in (tmp_path / ".bashrc").read_text()
    completed = run_entry_point(env_extra={"_MIXUP_COMPLETE": "complete_bash", "COMP_WORDS": "mixup train --mix-w",
                                           "COMP_CWORD": "2"})
    assert completed.returncode == 0 and completed.stdout.split() == ["--mix-where"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_dash_h(cli, command):
    result = cli(command, "-h")
    assert result.exit_code == 0 and f"Usage: mixup {command}" in result.stdout and "-h, --help" in result.stdout


def test_bare_mixup_prints_the_help_once():
    result = run_entry_point()
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.count("Usage: mixup") == 1 and result.stdout.count("Commands") == 1


# --- mixup train --help ---------------------------------------------------------------------------

def cli_fields(cls) -> list:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def flags_of(field) -> list[str]:
    flag = "--" + field.name.replace("_", "-")
    switch = field.type in ("bool", "Optional[bool]")
    return [flag, "--no-" + flag[2:]] if switch else [flag]


def test_train_help_fits_80_columns_in_panels_with_the_common_options_first():
    result = run_at_80_columns("train", "--help")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in result.stdout
    titles = [m.group(1) for m in re.finditer(r"╭─ (\w+) ─", result.stdout)]
    assert titles == ["Common", "Data", "Model", "Mixing", "Optimization", "Speed", "Run"]
    common = result.stdout.split("─ Data ─")[0]
    assert all(re.search(rf"(^|[ ,]){flag}\b", common, re.M) for flag in COMMON), common
    assert common.count("\n") <= 32  # the usage, the description and the ten common options: one screen
    for field in cli_fields(TrainConfig):
        for flag in flags_of(field):  # every name whole (no "…"), where a long one breaks after '/'
            assert re.search(rf"(^|[ /]){flag}(/|\s|$)", result.stdout, re.M), flag
    assert "<bool>" not in result.stdout and "(None)" not in result.stdout and "[default: None" not in result.stdout


def help_rows(text: str) -> dict[str, str]:
    """{first flag: its row's text} of a help screen."""
    rows, current, broken = {}, None, False
    for line in text.splitlines():
        cell = line.strip("│ ")
        match = re.match(r"(-\w, )?(--[\w-]+)", cell)
        if match and line.startswith("│ -") and not broken:  # not the '--no-x' line of a switch broken at '/'
            current = match.group(2)
            rows[current] = ""
        if current:
            rows[current] += " " + cell
        broken = bool(cell) and cell.split()[0].endswith("/")
    return {flag: " ".join(row.split()) for flag, row in rows.items()}


def test_train_help_shows_real_defaults_switches_and_choices(cli):
    rows = help_rows(cli("train", "--help").stdout)
    assert "[default: 30]" in rows["--epochs"] and "--epochs INT" in rows["--epochs"]
    assert rows["--bf16"].startswith("--bf16/--no-bf16 ") and rows["--bf16"].endswith("[default: auto]")
    assert rows["--threads"].endswith("[default: auto]") and rows["--nesterov"].endswith("[default: off]")
    assert "[default: on]" in rows["--data-on-device"] and "--milestones INT,..." in rows["--milestones"]
    for field in cli_fields(TrainConfig):
        listed = choices_of(field.metadata)
        if listed:
            shown = re.search(r"Choices: (.*?)\.( \[|$)", rows[flags_of(field)[0]])
            assert shown and set(shown.group(1).split(", ")) == set(map(str, listed)), field.name
    assert "--mix-where latent" in rows["--mix-layer"]  # other options named by their flags, not config keys


@pytest.mark.parametrize("cls", [TrainConfig, GanConfig])
def test_names_listed_in_the_help_are_the_registered_ones(cls):
    """--help lists registry-backed choices without importing the registries (torch); they must agree."""
    for field in dataclasses.fields(cls):
        if callable(field.metadata.get("choices")):
            assert field.metadata["choice_names"], field.name
            assert sorted(field.metadata["choice_names"]) == sorted(field.metadata["choices"]()), field.name


@pytest.mark.parametrize("command, panels", [("gan", ["Common", "Model", "Mixing", "Optimization", "Speed", "Run"]),
                                             ("corrupt-labels", ["Options", "Speed", "Run"]),
                                             ("eval", ["Options", "Analysis"])])
def test_other_config_commands_share_the_help_layout(command, panels):
    result = run_at_80_columns(command, "--help")
    assert result.exit_code == 0 and max(map(len, result.stdout.splitlines())) <= 80
    assert [m.group(1) for m in re.finditer(r"╭─ (\w+) ─", result.stdout)] == panels
    assert "…" not in result.stdout and "<bool>" not in result.stdout


# --- errors name what the user typed ---------------------------------------------------------------

def test_errors_name_the_flag_or_the_yaml_key_as_given(cli, tmp_path):
    flag = cli("train", "--mix-where", "latnt", "--out", tmp_path / "run")
    assert flag.exit_code == 2 and "--mix-where has no choice 'latnt'" in flag.stderr
    assert "mix_where" not in flag.stderr
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("mix_where: latnt\n")
    key = cli("train", "--config", recipe, "--out", tmp_path / "run")
    assert key.exit_code == 2 and f"config key 'mix_where' in {recipe} has no choice 'latnt'" in key.stderr
    both = cli("train", "--config", recipe, "--mix-where", "input", "--batch-size", "0")
    assert both.exit_code == 2 and "--batch-size must be at least 1" in both.stderr


@pytest.mark.parametrize("args", [["train", "--epochs"], ["train", "--epochs", "x"], ["list", "models", "a", "b"],
                                  ["nope"]])
def test_usage_errors_are_one_line_without_doubled_punctuation(args):
    result = run_entry_point(*args)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help'" in lines[0]
    assert not re.search(r"\.\.?;", lines[0]), lines[0]


# --- mixup list --------------------------------------------------------------------------------------

def test_list_writes_its_tables_to_stdout_and_json_is_an_object(cli):
    result = cli("list", "datasets")
    assert result.exit_code == 0 and "registered datasets" in result.stdout and "digits" in result.stdout
    assert result.stderr == ""
    both = cli("list", "--json").json()
    assert set(both) == {"models", "datasets"}
    assert "small-cnn" in {r["name"] for r in both["models"]} and "digits" in {r["name"] for r in both["datasets"]}
    assert set(cli("list", "datasets", "dig*", "--json").json()) == {"datasets"}


# --- mixup eval's table --------------------------------------------------------------------------------

def test_eval_of_several_runs_fits_80_columns_and_wide_shows_all(digits_runs):
    args = ["eval", "--ckpt", digits_runs["erm"], "--ckpt", digits_runs["mixup"], "--device", "cpu"]
    compact = run_at_80_columns(*args)
    assert compact.exit_code == 0, compact.stderr
    assert max(map(len, compact.stderr.splitlines())) <= 80
    assert "top-1" in compact.stderr and "dataset" not in compact.stderr and "median" not in compact.stderr
    assert re.search(r"\berm\b", compact.stderr) and re.search(r"\bmixup\s+1\b", compact.stderr)
    wide = run_at_80_columns(*args, "--wide")
    assert wide.exit_code == 0 and "median" in wide.stderr and "dataset" in wide.stderr
    assert "small-cnn" in wide.stderr  # whole cells: the wide table is not squeezed into 80 columns


# --- plots ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--plot", "p.png"], ["--plot", "p.png", "--ckpt", "run"], ["--bins", "10"]])
def test_analysis_options_without_an_analysis_are_refused(cli, args):
    result = cli("eval", *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"{args[0]} only applies to an analysis: add --between, --calibration or --boundary" in result.stderr


def test_every_plot_says_where_it_was_written(cli, digits_runs, tmp_path):
    boundary = cli("eval", "--boundary", "--boundary-steps", "20", "--boundary-samples", "20", "--plot",
                   tmp_path / "b.png", "--json")
    assert boundary.exit_code == 0 and f"wrote {tmp_path / 'b.png'}" in boundary.stderr
    assert boundary.json()["plot"] == str(tmp_path / "b.png")
    between = cli("eval", "--between", "--ckpt", digits_runs["mixup"], "--pairs", "10", "--lambdas", "0.5",
                  "--plot", tmp_path / "between.png", "--json")
    assert between.exit_code == 0 and f"wrote {tmp_path / 'between.png'}" in between.stderr
    assert between.json()["plot"] == str(tmp_path / "between.png")
    calibration = cli("eval", "--calibration", "--ckpt", digits_runs["mixup"], "--plot", tmp_path / "r.png",
                      "--json")
    assert calibration.exit_code == 0 and f"wrote {tmp_path / 'r.png'}" in calibration.stderr
    assert calibration.json()["plot"] == str(tmp_path / "r.png")


# --- mixup gan -----------------------------------------------------------------------------------------

TINY_GAN = ["--hidden", "16", "--iterations", "40", "--d-steps", "1", "--batch-size", "16", "--num-samples", "100",
            "--snapshots", "20", "--threads", "1"]


def test_gan_estimates_its_time_and_says_where_the_figure_went(cli, tmp_path):
    result = cli("gan", *TINY_GAN, "--out", tmp_path / "gan", "--json")
    assert result.exit_code == 0, result.stderr
    assert re.search(r"estimate: about \d+ s more for \d[\d,]* iterations", result.stderr), result.stderr
    figure = result.json()["figure"]
    assert f"wrote {figure}" in result.stderr and os.path.isfile(figure)


def test_gan_with_the_defaults_warns_of_hours_and_names_the_flags_that_shorten_it(tmp_path):
    """The paper's 2 x 20,000 iterations: the estimate comes within seconds; then Ctrl-C stops it."""
    env = dict(os.environ, PYTHONPATH=str(SRC), **THREADS_ENV)
    proc = subprocess.Popen([sys.executable, "-m", "mixup_cli", "gan", "--threads", "1", "--out", tmp_path / "g"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    seen = []
    watchdog = threading.Timer(120, proc.send_signal, [signal.SIGINT])  # no estimate: stop waiting for one
    watchdog.start()
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("shorter:"):
                break
    finally:
        watchdog.cancel()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    text = "".join(seen)
    assert re.search(r"estimate: about [\d.]+ (min|h) more for 39,\d{3} iterations \(2 sub-run", text), text
    assert "--iterations" in seen[-1] and "--no-compare" in seen[-1] and "--seeds" in seen[-1]


@pytest.mark.parametrize("seeds", ["0,,1", "0,1,", ",0", "0;1", "0, ,1"])
def test_malformed_seed_lists_are_refused_in_one_line(cli, tmp_path, seeds):
    result = cli("gan", *TINY_GAN, "--seeds", seeds, "--out", tmp_path / "g")
    assert result.exit_code == 2 and "--seeds" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "g").exists()


# --- missing files, before torch -------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["eval", "--ckpt", "missing.pt"], "checkpoint 'missing.pt' does not exist"),
    (["eval", "--calibration", "--ckpt", "missing.pt"], "checkpoint 'missing.pt' does not exist"),
    (["attack", "--ckpt", "missing.pt"], "checkpoint 'missing.pt' does not exist"),
    (["train", "--config", "missing.yaml"], "config file 'missing.yaml' does not exist"),
    (["gan", "--config", "missing.yaml"], "config file 'missing.yaml' does not exist"),
    (["train", "--labels", "missing.pt"], "--labels: file 'missing.pt' does not exist"),
    (["train", "--dataset", "cifar10", "--data-dir", "missing"], "--data-dir: folder 'missing' does not exist"),
])
def test_missing_files_are_refused_before_torch_is_imported(tmp_path, args, needle):
    code, imported_torch, stderr = without_torch(*args, cwd=tmp_path)
    assert code == 2 and needle in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not imported_torch


def test_the_path_check_sees_torch_when_it_is_imported(tmp_path):
    """The helper above can fail: a command that does load the library is seen importing torch."""
    code, imported_torch, _ = without_torch("list", "datasets", cwd=tmp_path)
    assert code == 0 and imported_torch
