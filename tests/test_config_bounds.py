"""Bounded config files (issue 21, items 2 and 7): alias bombs, huge files, deep nesting and duplicate
keys are refused quickly with one line and exit 2; error text is built only on error."""
import time

import pytest

from conftest import run_inprocess
from mixup_cli.config import TrainConfig, load_yaml, resolve_config
from mixup_cli.config.options import MAX_YAML_BYTES, MAX_YAML_DEPTH, _coerce
from mixup_cli.errors import ConfigError


def refused(tmp_path, text, *says):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    start = time.perf_counter()
    result = run_inprocess("train", "--config", path, "--print-config")
    assert time.perf_counter() - start < 10
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "c.yaml" in lines[0] and all(s in lines[0] for s in says), result.stderr
    return lines[0]


def alias_bomb(levels=9):
    lines = ["model_options:", "  width: 16", '  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"  # 9^9 strings once expanded


def test_an_alias_bomb_inside_a_valid_key_is_refused_quickly(tmp_path):
    refused(tmp_path, alias_bomb(), "expands to more than", "aliases")


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path):
    text = "model_options:\n  note: '" + "x" * (50 * 1024 * 1024) + "'\n"  # 50 MB
    refused(tmp_path, text, f"{MAX_YAML_BYTES:,}", "bytes")


def test_deep_nesting_is_refused_written_out_or_built_by_aliases(tmp_path):
    depth = MAX_YAML_DEPTH + 5
    refused(tmp_path, "model_options: " + "[" * depth + "]" * depth + "\n", "deeper than")
    chain = ["model_options:", "  l0: &l0 [1]"] + [f"  l{i}: &l{i} [*l{i - 1}]" for i in range(1, depth)]
    refused(tmp_path, "\n".join(chain) + "\n", "deeper than", "aliases")
    refused(tmp_path, "model_options: &a {x: *a}\n", "recursive")


def test_duplicate_keys_are_refused_naming_the_key_and_line(tmp_path):
    refused(tmp_path, "epochs: 3\nalpha: 1\nepochs: 5\n", "'epochs' twice", "line 3")
    refused(tmp_path, "model_options:\n  width: 8\n  width: 16\n", "'width' twice", "line 3")


def test_ordinary_files_with_anchors_still_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: &n 3\nmodel_options: {width: 16}\nmilestones: [*n]\n")
    assert load_yaml(path) == {"epochs": 3, "model_options": {"width": 16}, "milestones": [3]}
    assert resolve_config(TrainConfig, path, {}).epochs == 3


class Unprintable(dict):
    def __repr__(self):
        raise AssertionError("repr was built for a valid value")


def test_type_error_text_is_built_only_on_error_and_kept_short():
    value = Unprintable(width=16)
    assert _coerce("model_options", value, dict) == {"width": 16}
    with pytest.raises(ConfigError) as raised:
        _coerce("dataset", list(range(10 ** 6)), str)
    assert "config key 'dataset' must be" in str(raised.value) and len(str(raised.value)) < 400
