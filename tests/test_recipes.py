"""Every YAML recipe in examples/ names the command that runs it and resolves to a valid config;
the paper's recipes carry the paper's hyper-parameters; the CPU-sized ones train for an epoch."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.optim import learning_rate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RECIPES = sorted(EXAMPLES.glob("*.yaml"))
# Subcommand -> the config dataclass its --config file lands in. A new subcommand that ships
# recipes adds its class here.
CONFIG_CLASSES = {"train": TrainConfig}
COMMAND = re.compile(r"^# mixup (\S+) .*--config (examples/\S+\.yaml)")


def header_command(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    match = COMMAND.match(first)
    assert match, f"{path.name}: the first line must be '# mixup <command> ... --config examples/{path.name}'"
    assert match.group(2) == f"examples/{path.name}", f"{path.name}: its command names {match.group(2)}"
    return match.group(1)


def resolve(path: Path):
    command = header_command(path)
    assert command in CONFIG_CLASSES, f"{path.name}: add the config class of 'mixup {command}' to CONFIG_CLASSES"
    return resolve_config(CONFIG_CLASSES[command], path)


def test_there_are_recipes():
    assert len(RECIPES) >= 40


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_resolves(path):
    resolve(path)


def train_recipes(pattern: str) -> list[Path]:
    return [p for p in RECIPES if p.match(pattern) and header_command(p) == "train"]


@pytest.mark.parametrize("path", train_recipes("cifar*.yaml"), ids=lambda p: p.stem)
def test_cifar_recipes_follow_section_3_2(path):
    c = resolve(path)
    assert (c.epochs, c.batch_size, c.lr, c.weight_decay, c.schedule, c.gamma) == (200, 128, 0.1, 1e-4, "step", 0.1)
    assert c.milestones == ([60, 120, 180] if c.model.startswith("wrn") else [100, 150])
    assert c.alpha in (0.0, 1.0) and c.model in ("preact-resnet18", "wrn28-10", "densenet-bc-190")


@pytest.mark.parametrize("path", train_recipes("imagenet*.yaml"), ids=lambda p: p.stem)
def test_imagenet_recipes_follow_section_3_1(path):
    c = resolve(path)
    # Goyal et al.'s recipe: 0.1 per 256 examples, warmed up over 5 epochs from 0.1; 8 x 128 = the paper's 1024
    assert (c.batch_size, c.lr, c.lr_scale_batch, c.warmup_epochs, c.optimizer) == (128, 0.1, 256, 5, "sgd")
    assert learning_rate(0, c, world_size=8) == pytest.approx(0.1)
    assert learning_rate(5, c, world_size=8) == pytest.approx(0.4)
    assert c.milestones == {90: [30, 60, 80], 200: [60, 120, 180]}[c.epochs]
    assert c.alpha in (0.0, 0.4 if c.model.startswith("resnext") else 0.2)


@pytest.mark.parametrize("path", train_recipes("speechcommands*.yaml"), ids=lambda p: p.stem)
def test_speech_recipes_follow_section_3_3(path):
    c = resolve(path)
    assert (c.optimizer, c.lr, c.epochs, c.batch_size, c.milestones) == ("adam", 3e-3, 30, 100, [10, 20])
    assert c.alpha in (0.0, 0.1, 0.2) and c.erm_warmup_epochs == (5 if c.alpha else 0)


CHEAP = [p for p in RECIPES if p.name.startswith(("iris", "wine", "breast-cancer", "digits"))]


@pytest.mark.parametrize("path", CHEAP, ids=lambda p: p.stem)
def test_cheap_recipe_trains_one_epoch(cli, tmp_path, path):
    result = cli("train", "--config", path, "--epochs", "1", "--device", "cpu", "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["epochs"] == 1 and summary["dataset"] == resolve(path).dataset
