"""MIXUP_DATA_DIR and MIXUP_RUNS_DIR (mixup_cli/env.py): a lab's paths set once, through the real CLI.
Order: defaults < YAML < environment < flags, for new configs; a saved config keeps its own."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.config.gan import GanConfig
from mixup_cli.runs import GAN_EXPERIMENT, resolve_out


@pytest.fixture
def lab(tmp_path, monkeypatch):
    data, runs = tmp_path / "lab-data", tmp_path / "lab-runs"
    data.mkdir()
    monkeypatch.setenv("MIXUP_DATA_DIR", str(data))
    monkeypatch.setenv("MIXUP_RUNS_DIR", str(runs))
    return data, runs


def _printed(cli, *args):
    result = cli("train", "--print-config", *args)
    assert result.exit_code == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_data_dir_defaults_to_the_variable_between_yaml_and_flags(cli, lab, tmp_path):
    data, _ = lab
    assert _printed(cli)["data_dir"] == str(data)
    other = tmp_path / "yaml-data"
    other.mkdir()
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"data_dir: {other}\n")
    assert _printed(cli, "--config", config_file)["data_dir"] == str(data)  # YAML < environment
    assert _printed(cli, "--config", config_file, "--data-dir", other)["data_dir"] == str(other)  # < flags


def test_unset_or_empty_variable_leaves_the_default(cli, monkeypatch):
    monkeypatch.setenv("MIXUP_DATA_DIR", "")
    assert _printed(cli)["data_dir"] is None
    monkeypatch.delenv("MIXUP_DATA_DIR")
    assert _printed(cli)["data_dir"] is None


def test_a_missing_folder_is_named_by_its_variable(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("MIXUP_DATA_DIR", str(tmp_path / "nowhere"))
    result = cli("train", "--print-config")
    assert result.exit_code == 2
    assert "environment variable MIXUP_DATA_DIR" in result.stderr and "nowhere" in result.stderr


def test_a_saved_config_keeps_its_own_data_dir(lab, tmp_path):
    """A resume or a checkpoint's config (a `base`) is not rewritten by the environment."""
    assert resolve_config(TrainConfig, base={"data_dir": None}).data_dir is None
    assert resolve_config(TrainConfig).data_dir == str(lab[0])


def test_train_writes_its_default_run_under_the_runs_variable(cli, lab):
    _, runs = lab
    result = cli("train", "--epochs", "1", "--json")
    assert result.exit_code == 0, result.stderr
    run_dir = Path(result.json()["run_dir"])
    assert run_dir.parent == runs and (run_dir / "summary.json").is_file()


def test_gan_and_reproduce_default_under_the_runs_variable(cli, lab):
    _, runs = lab
    assert resolve_out(GAN_EXPERIMENT, None, GanConfig()).parent == runs
    assert resolve_out(GAN_EXPERIMENT, "here", GanConfig()) == Path("here")
    result = cli("reproduce", "table1", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert str(runs / "reproduce-quick") in result.stderr


def test_eval_reads_the_variable(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("MIXUP_DATA_DIR", str(tmp_path / "nowhere"))
    result = cli("eval", "--ckpt", tmp_path)  # refused on the folder before the (missing) checkpoint is read
    assert result.exit_code == 2 and "nowhere" in result.stderr


@pytest.mark.parametrize("command,variable", [("train", "MIXUP_DATA_DIR"), ("train", "MIXUP_RUNS_DIR"),
                                              ("corrupt-labels", "MIXUP_DATA_DIR"),
                                              ("corrupt-labels", "MIXUP_RUNS_DIR"), ("gan", "MIXUP_RUNS_DIR"),
                                              ("attack", "MIXUP_DATA_DIR"), ("eval", "MIXUP_DATA_DIR"),
                                              ("reproduce", "MIXUP_DATA_DIR"), ("reproduce", "MIXUP_RUNS_DIR")])
def test_help_names_the_variables(cli, command, variable):
    result = cli(command, "--help")
    assert result.exit_code == 0
    words = " ".join(result.stdout.replace("│", " ").split())  # the panel's borders split wrapped lines
    assert f"[env var: {variable}]" in words
