"""Table 5 (§3.8): the recipes load and carry their sources, the ablation rows hold the epsilon and sigma
values their headers name, "mix inputs + label smoothing" scores the smoothed label of the example weighing
more, and Gaussian noise is N(0, sigma^2) after normalization, where the authors' pipeline adds it."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.mixing import build_mixer
from mixup_cli.models import Normalized

TABLE5 = Path(__file__).resolve().parents[1] / "examples" / "table5"
RECIPES = sorted(TABLE5.glob("*.yaml"))
# Table 5's epsilon / sigma blocks, top to bottom (the recipes' headers say these values were chosen).
BLOCKS = {"label-smoothing": [0.05, 0.1, 0.2], "mix-inputs-label-smoothing": [0.05, 0.1, 0.2, 0.4],
          "gaussian-noise": [0.05, 0.1, 0.2]}


def config(**values) -> TrainConfig:
    return resolve_config(TrainConfig, overrides=values)


def recipes_of(block: str) -> list[Path]:
    return [p for p in RECIPES if re.fullmatch(rf"{block}-[0-9.]+-wd[0-9e-]+", p.stem)]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_and_its_header_gives_the_command_section_and_sources(path):
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# Table 5 (§3.8), row '")
    assert lines[1] == f"#   mixup train --config examples/table5/{path.name} --out runs/table5/{path.stem}"
    assert "# Source of every number:" in lines
    c = resolve_config(TrainConfig, path)
    assert (c.dataset, c.model, c.epochs, c.batch_size, c.lr, c.milestones) == (
        "cifar10", "preact-resnet18", 200, 128, 0.1, [100, 150])
    assert c.weight_decay == {"1e-4": 1e-4, "5e-4": 5e-4}[path.stem.rsplit("-wd", 1)[1]]


@pytest.mark.parametrize("block", BLOCKS)
def test_epsilon_and_sigma_rows_hold_the_values_they_are_named_by(block):
    paths = recipes_of(block)
    values = sorted({float(p.stem.split("-wd")[0].rsplit("-", 1)[1]) for p in paths})
    assert values == BLOCKS[block] and len(paths) == 2 * len(values)
    for path in paths:
        c, value = resolve_config(TrainConfig, path), float(path.stem.split("-wd")[0].rsplit("-", 1)[1])
        assert "is CHOSEN" in path.read_text()  # no reachable copy of the paper kept these values
        if block == "gaussian-noise":
            assert (c.alpha, c.input_noise, c.label_smoothing) == (0.0, value, 0.0)
        elif block == "label-smoothing":
            assert (c.alpha, c.label_smoothing, c.input_noise) == (0.0, value, 0.0)
        else:  # mixup's inputs, the smoothed label of the example weighing more: labels are not mixed
            assert (c.alpha, c.mix_targets, c.label_smoothing) == (1.0, "inputs-only", value)


def test_paper_scale_runs_the_recipes_in_the_papers_row_order():
    from mixup_cli.reproduce.tables import table5_rows

    rows = [name for name, _ in table5_rows("paper")]
    assert len(rows) == len(RECIPES) == 44
    blocks = [name.rsplit("-wd", 1)[0] for name in rows if name.endswith("-wd1e-4")]
    assert blocks[-10:] == [*(f"label-smoothing-{e}" for e in ("0.05", "0.1", "0.2")),
                            *(f"mix-inputs-label-smoothing-{e}" for e in ("0.05", "0.1", "0.2", "0.4")),
                            *(f"gaussian-noise-{s}" for s in ("0.05", "0.1", "0.2"))]


def smoothed(labels: torch.Tensor, eps: float, classes: int = 10) -> torch.Tensor:
    """§3.8's rule for K = 10: eps/10 on each wrong class, 1 - 9 eps/10 on the label."""
    return torch.full((len(labels), classes), eps / 10).scatter_(1, labels[:, None], 1 - 9 * eps / 10)


def test_mix_inputs_plus_label_smoothing_scores_the_smoothed_label_of_the_closer_example():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 3, 4, 4, generator=g), torch.randint(10, (64,), generator=g)
    logits = torch.randn(64, 10, generator=g)
    for seed in range(6):  # lambdas on both sides of 1/2
        batch = build_mixer(config(alpha=1.0, mix_targets="inputs-only", label_smoothing=0.2))(
            x, y, 1.0, np.random.default_rng(seed), torch.Generator().manual_seed(seed))
        assert batch.is_mixed and not torch.equal(batch.inputs, x)
        closer = y if batch.lam >= 0.5 else y[batch.perm]
        want = -(smoothed(closer, 0.2) * F.log_softmax(logits, 1)).sum(1).mean()
        assert batch.loss(logits).item() == pytest.approx(want.item(), rel=1e-6)


def test_mixup_with_label_smoothing_mixes_the_smoothed_labels():
    """Label smoothing on mixed targets: lam * smooth(y_a) + (1 - lam) * smooth(y_b), one smoothing of each label."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(64, 3, 4, 4, generator=g), torch.randint(10, (64,), generator=g)
    logits = torch.randn(64, 10, generator=g)
    batch = build_mixer(config(alpha=1.0, label_smoothing=0.1))(
        x, y, 1.0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    target = batch.lam * smoothed(y, 0.1) + (1 - batch.lam) * smoothed(y[batch.perm], 0.1)
    want = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    assert batch.loss(logits).item() == pytest.approx(want.item(), rel=1e-6)


def test_gaussian_noise_is_sigma_in_normalized_units():
    """With CIFAR-10's normalization, the noise the network sees (after normalizing) has std sigma in every
    channel; noise of sigma in [0, 1] pixels (the old behaviour) would be sigma / std, about 0.5 here."""
    from mixup_cli.data import get_dataset

    spec = get_dataset("cifar10")
    model = Normalized(torch.nn.Identity(), list(spec.mean), list(spec.std), 3)
    x, y = torch.rand(256, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.zeros(256, dtype=torch.long)
    batch = build_mixer(config(alpha=0, input_noise=0.1), model=model)(
        x, y, 0.0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    seen = model.normalize(batch.inputs) - model.normalize(x)
    per_channel = seen.transpose(0, 1).reshape(3, -1).std(dim=1)
    assert torch.allclose(per_channel, torch.full((3,), 0.1), rtol=0.03)
    assert torch.equal(batch.targets_a, y) and not batch.is_mixed
    # No normalization known (a bare config, as analysis.py builds): sigma in the batch's own units.
    bare = build_mixer(config(alpha=0, input_noise=0.1))(x, y, 0.0, np.random.default_rng(0),
                                                         torch.Generator().manual_seed(0))
    assert abs(float((bare.inputs - x).std()) - 0.1) < 0.005


def test_the_papers_erm_and_mixup_rows_print_beside_ours_at_paper_scale():
    """The authors' README keeps Table 5's ERM and mixup (AC + RP) medians; they name recipes that exist."""
    from mixup_cli.reproduce import paper
    from mixup_cli.reproduce.markdown import RENDERERS

    assert set(paper.TABLE5) <= {p.stem for p in RECIPES}
    assert paper.TABLE5["mixup-ac-rp-wd1e-4"] < paper.TABLE5["erm-wd1e-4"]
    stat = {"mean": 4.3, "std": 0.1, "n": 3}
    lines = RENDERERS["table5"]({"rows": [{"row": "mixup-ac-rp-wd1e-4", "median_last10_test_error": stat,
                                           "test_error": stat, "paper": paper.TABLE5["mixup-ac-rp-wd1e-4"]}]})
    assert lines[0].endswith("| paper |") and lines[-1].endswith("| 4.24 |")
    quick = {"rows": [{"row": "erm-wd1e-4", "median_last10_test_error": stat, "test_error": stat, "paper": None}]}
    assert RENDERERS["table5"](quick)[0].endswith("| last epoch |")  # quick scale: no column of dashes
