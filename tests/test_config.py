"""One typed config: defaults < YAML < flags, and every bad value refused before work starts."""
import pytest
import yaml

from mixup_cli.config import TrainConfig, resolve_config, to_dict
from mixup_cli.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_precedence_defaults_then_yaml_then_flags(tmp_path):
    path = write(tmp_path, "alpha: 0.5\nepochs: 7\nmilestones: [2, 4]\n")
    config = resolve_config(TrainConfig, path, {"epochs": 3, "lr": None})
    assert config.alpha == 0.5  # from YAML
    assert config.epochs == 3  # the flag wins over YAML
    assert config.lr == TrainConfig().lr  # a flag not given (None) leaves the default
    assert config.milestones == [2, 4]
    assert config.model == "small-cnn"  # the dataset's default model is filled in


def test_lists_from_flags_are_comma_separated():
    assert resolve_config(TrainConfig, None, {"milestones": "100,150"}).milestones == [100, 150]


@pytest.mark.parametrize("text, needle", [
    ("alpah: 1\n", "unknown config key 'alpah' in config file"),
    ("alpha: -0.1\n", "config key 'alpha' in c.yaml must be at least 0"),
    ("epochs: 0\n", "config key 'epochs' in c.yaml must be at least 1"),
    ("batch_size: 0\n", "config key 'batch_size' in c.yaml must be at least 1"),
    ("lr: 0\n", "config key 'lr' in c.yaml must be greater than 0"),
    ("epochs: two\n", "config key 'epochs' in c.yaml must be an integer"),
    ("alpha: true\n", "config key 'alpha' in c.yaml must be a number"),
    ("optimizer: sdg\n", "did you mean 'sgd'"),
    ("schedule: cosin\n", "did you mean 'cosine'"),
    ("model: smal-cnn\n", "did you mean 'small-cnn'"),
    ("dataset: digts\n", "did you mean 'digits'"),
    ("milestones: [150, 100]\n", "config key 'milestones' in c.yaml must be increasing"),
    ("device: gpu\n", "device 'gpu'"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("alpha: [1\n", "not valid YAML at line"),
    ("alpha: .nan\n", "finite"),
])
def test_bad_values_are_refused_naming_the_key(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=None) as info:
        resolve_config(TrainConfig, path)
    assert needle in str(info.value).replace(str(path), "c.yaml")  # the key, and the file it is in


def test_unknown_key_lists_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as info:
        resolve_config(TrainConfig, write(tmp_path, "alpah: 1\n"))
    assert "did you mean 'alpha'" in str(info.value) and "valid keys:" in str(info.value)


def test_yaml_is_parsed_safely(tmp_path):
    with pytest.raises(ConfigError):
        resolve_config(TrainConfig, write(tmp_path, "alpha: !!python/object/apply:os.system ['echo hacked']\n"))


def test_print_config_round_trips_through_yaml(cli, tmp_path):
    result = cli("train", "--alpha", "0.3", "--epochs", "5", "--print-config")
    assert result.exit_code == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    again = resolve_config(TrainConfig, write(tmp_path, result.stdout))
    assert printed == to_dict(again) and again.alpha == 0.3 and again.epochs == 5


def test_help_text_comes_from_the_config(cli):
    result = cli("train", "--help")
    assert result.exit_code == 0
    assert "Beta(alpha, alpha)" in result.stdout and "--erm-warmup-epochs" in result.stdout


def test_the_config_package_imports_no_torch():
    import subprocess
    import sys

    from pathlib import Path

    code = "import sys, mixup_cli.config; assert 'torch' not in sys.modules, 'torch was imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr


def test_derived_defaults_are_filled_in_one_step_and_checks_change_nothing():
    import copy
    import dataclasses

    from mixup_cli.config import fill_defaults

    config = TrainConfig(mix_where="manifold")
    fill_defaults(config)
    assert config.alpha == 2.0 and config.model == "small-cnn"  # alpha by mix_where, the dataset's own model
    before = copy.deepcopy(config)
    config.check()
    assert dataclasses.asdict(config) == dataclasses.asdict(before)


def test_every_resumable_config_declares_the_keys_a_resume_may_change():
    import dataclasses

    from mixup_cli.config import CorruptLabelsConfig, GanConfig

    for cls in (TrainConfig, CorruptLabelsConfig, GanConfig):
        names = {f.name for f in dataclasses.fields(cls)}
        assert cls.RESUMABLE and set(cls.RESUMABLE) <= names, cls.__name__
