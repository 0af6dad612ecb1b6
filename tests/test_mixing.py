"""Each mixing option changes what is mixed the way it says; bad combinations exit 2 with one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.data import TensorSplit
from mixup_cli.mixing import MixedBatch, build_mixer, mixed_cross_entropy, mixup
from mixup_cli.mixing.combine import cutmix
from mixup_cli.mixing.pairing import NeighbourPairs, nearest_neighbours, within_class_permutation
from mixup_cli.models import StagedNet


def config(**values) -> TrainConfig:
    return resolve_config(TrainConfig, overrides=values)


def draw(mixer, inputs, labels, alpha=1.0, seed=0, index=None) -> MixedBatch:
    generator = torch.Generator().manual_seed(seed)
    return mixer(inputs, labels, alpha, np.random.default_rng(seed), generator, index)


def batch(n=32, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(classes, (n,), generator=g)


def test_default_mixer_is_the_papers_mixup():
    x, y = batch()
    got = draw(build_mixer(config()), x, y)
    want = mixup(x, y, 1.0, rng=np.random.default_rng(0), generator=torch.Generator().manual_seed(0))
    assert got.lam == want.lam and torch.equal(got.perm, want.perm) and torch.equal(got.inputs, want.inputs)


def test_same_class_never_pairs_different_classes():
    x, y = batch(n=64, classes=3)
    for seed in range(5):
        b = draw(build_mixer(config(mix_classes="sc")), x, y, seed=seed)
        assert torch.equal(torch.sort(b.perm).values, torch.arange(64))  # a permutation
        assert torch.equal(y[b.perm], y) and torch.equal(b.targets_b, y)
    assert not torch.equal(within_class_permutation(y, torch.Generator().manual_seed(1)), torch.arange(64))


def test_nearest_neighbours_match_brute_force_and_classes():
    g = torch.Generator().manual_seed(0)
    points, labels = torch.rand(40, 3, generator=g), torch.randint(2, (40,), generator=g)
    dist = torch.cdist(points, points).fill_diagonal_(float("inf"))
    got = nearest_neighbours(points, labels, 5, same_class=False, chunk=7)
    assert torch.equal(torch.sort(got, 1).values, torch.sort(dist.topk(5, largest=False).indices, 1).values)
    same = nearest_neighbours(points, labels, 5, same_class=True, chunk=7)
    assert (labels[same] == labels[:, None]).all()


def test_knn_pairs_only_among_precomputed_neighbours():
    g = torch.Generator().manual_seed(0)
    split = TensorSplit((torch.rand(60, 1, 4, 4, generator=g) * 255).to(torch.uint8), torch.arange(60) % 3, 1 / 255)
    pairing = NeighbourPairs(same_class=True, train_set=split, k=6)
    mixer = build_mixer(config(mix_pairs="knn", mix_classes="sc", knn_k=6), train_set=split)
    assert mixer.needs_index
    index = torch.randperm(60, generator=g)[:20]
    for seed in range(3):
        b = draw(mixer, split.to_raw(split.inputs[index]), split.labels[index], seed=seed, index=index)
        for row, partner in zip(index.tolist(), b.partner_index.tolist()):
            assert partner in pairing.neighbours[row].tolist()
        assert torch.equal(b.targets_b, split.labels[b.partner_index]) and torch.equal(b.targets_b, b.targets_a)
        want = b.lam * split.to_raw(split.inputs[index]) + (1 - b.lam) * split.to_raw(split.inputs[b.partner_index])
        assert torch.allclose(b.inputs, want)


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = None

    def forward(self, x):
        self.seen = x
        return x


def test_latent_mixes_at_the_declared_layer_and_leaves_the_input():
    net = StagedNet([nn.Flatten(), nn.Linear(64, 16), nn.Linear(16, 8)], nn.Linear(8, 4))
    first_seen, third_seen = Recorder(), Recorder()
    net.stages[0] = nn.Sequential(first_seen, net.stages[0])
    net.stages[2] = nn.Sequential(third_seen, net.stages[2])
    x, y = batch()
    b = draw(build_mixer(config(mix_where="latent", mix_layer=2), model=net), x, y)
    assert torch.equal(b.inputs, x) and b.mix_at == 2 and b.is_mixed
    with torch.no_grad():
        h = net.stages[1](net.stages[0](x))  # the output of stage 2: mixing point 2
        logits = b.forward(net)
        mixed = b.lam * h + (1 - b.lam) * h[b.perm]
        assert torch.equal(first_seen.seen, x)  # the input reaches the network unmixed
        assert torch.allclose(third_seen.seen, mixed, atol=1e-6)  # stage 3 gets the mixed stage-2 output
        assert torch.allclose(logits, net.head(net.stages[2](mixed)), atol=1e-6)


def test_manifold_draws_every_mixing_point_and_alpha_two():
    assert config(mix_where="manifold").alpha == 2.0 and config().alpha == 1.0
    net = StagedNet([nn.Flatten(), nn.Linear(64, 16)], nn.Linear(16, 4))
    mixer = build_mixer(config(mix_where="manifold"), model=net)
    x, y = batch()
    places = set()
    for seed in range(40):
        b = draw(mixer, x, y, seed=seed)
        places.add(b.mix_at if b.mix_at is not None else 0)
        if b.mix_at is None:  # point 0: mixed on the input
            assert torch.allclose(b.inputs, b.lam * x + (1 - b.lam) * x[b.perm])
    assert places == {0, 1, 2}


@pytest.mark.parametrize("per_example", [False, True])
def test_cutmix_lambda_is_the_kept_area(per_example):
    x, partners = torch.zeros(16, 3, 10, 12), torch.ones(16, 3, 10, 12)
    rng = np.random.default_rng(0)
    lam = rng.beta(1, 1, size=16) if per_example else 0.3
    mixed, kept = cutmix(x, partners, lam, rng)
    kept_area = (mixed[:, 0] == 0).float().mean(dim=(1, 2))
    assert torch.allclose(kept_area, torch.as_tensor(kept, dtype=torch.float32).expand(16))
    assert ((mixed == 0) | (mixed == 1)).all() and (mixed[:, 0] == mixed[:, 2]).all()  # boxes, same on channels
    assert (kept_area < 1).any()


def test_per_example_lambda_mixes_each_row_with_its_own_weight():
    x, y = batch()
    b = draw(build_mixer(config(lam_per_example=True)), x, y)
    assert isinstance(b.lam, torch.Tensor) and b.lam.shape == (32,) and b.lam.unique().numel() > 1
    assert torch.allclose(b.inputs, b.lam[:, None, None, None] * x + (1 - b.lam[:, None, None, None]) * x[b.perm])


def test_inputs_only_takes_the_label_of_the_larger_weight():
    x, y = batch()
    for seed in range(6):
        b = draw(build_mixer(config(mix_targets="inputs-only", lam_per_example=True)), x, y, seed=seed)
        want = torch.where(b.lam >= 0.5, y, y[b.perm])
        assert torch.equal(b.targets_a, want) and torch.equal(b.targets_b, want)
        assert not torch.equal(b.inputs, x)  # the inputs are still mixed


def test_label_smoothing_scores_smoothed_targets():
    x, y = batch(classes=4)
    b = draw(build_mixer(config(alpha=0, label_smoothing=0.2)), x, y, alpha=0)
    assert torch.equal(b.inputs, x) and not b.is_mixed
    logits = torch.randn(32, 4, generator=torch.Generator().manual_seed(3))
    target = torch.full((32, 4), 0.2 / 4).scatter_(1, y[:, None], 1 - 0.2 + 0.2 / 4)
    assert torch.allclose(b.loss(logits), -(target * logits.log_softmax(1)).sum(1).mean(), atol=1e-6)
    mixed = draw(build_mixer(config(alpha=1, label_smoothing=0.2)), x, y)
    assert mixed.is_mixed and mixed.label_smoothing == 0.2


def test_gaussian_noise_adds_noise_of_the_given_std_only():
    x, y = torch.zeros(64, 1, 8, 8), torch.zeros(64, dtype=torch.long)
    b = draw(build_mixer(config(alpha=0, input_noise=0.1)), x, y, alpha=0)
    assert abs(float(b.inputs.std()) - 0.1) < 0.01 and torch.equal(b.targets_a, y) and not b.is_mixed


def test_mix_probability_zero_is_erm():
    x, y = batch()
    b = draw(build_mixer(config(mix_prob=0.0)), x, y)
    assert torch.equal(b.inputs, x) and not b.is_mixed
    assert torch.equal(b.loss(torch.eye(4)[y] * 3), mixed_cross_entropy(torch.eye(4)[y] * 3, y, y, 1.0))
    some = [draw(build_mixer(config(mix_prob=0.5)), x, y, seed=s).is_mixed for s in range(20)]
    assert 0 < sum(some) < 20


@pytest.mark.parametrize("flags, words", [
    (["--mix-where", "latent"], "--mix-where latent needs config key 'mix_layer'"),
    (["--mix-layer", "1"], "--mix-layer only applies when config key 'mix_where' is latent"),
    (["--mix-where", "latent", "--mix-layer", "9"], "no mixing point 9; choose --mix-layer from"),
    (["--mix-where", "manifold", "--mix-pairs", "knn"], "knn"),
    (["--mix-where", "latent", "--mix-layer", "1", "--mix-op", "cutmix"], "cutmix"),
    (["--alpha", "0", "--mix-classes", "sc"], "alpha 0 is plain ERM"),
    (["--mix-prob", "1.5"], "at most 1"),
])
def test_bad_combinations_exit_2_with_one_line(cli, tmp_path, flags, words):
    result = cli("train", "--epochs", "1", *flags, "--out", tmp_path / "run")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_runs_knn_same_class_and_latent_end_to_end(cli, tmp_path):
    for name, flags in (("knn", ["--mix-pairs", "knn", "--mix-classes", "sc", "--mix-targets", "inputs-only"]),
                        ("latent", ["--mix-where", "latent", "--mix-layer", "2", "--lam-per-example"])):
        result = cli("train", "--epochs", "1", "--batch-size", "256", *flags, "--out", tmp_path / name, "--json")
        assert result.exit_code == 0, result.stderr
        summary = result.json()
        assert summary["epochs"] == 1 and summary["test_error"] < 90
        saved = (tmp_path / name / "config.yaml").read_text()
        assert all(flag.lstrip("-").replace("-", "_") in saved for flag in flags if flag.startswith("--"))


RECIPES = sorted((Path(__file__).resolve().parents[1] / "examples" / "table5").glob("*.yaml"))


def test_table5_has_both_weight_decays_for_every_row():
    names = {p.name.rsplit("-wd", 1)[0] for p in RECIPES}
    assert len(RECIPES) == 2 * len(names) >= 40
    assert all(p.read_text().startswith("# Table 5") and "mixup train --config" in p.read_text() for p in RECIPES)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_table5_recipes_resolve(recipe):
    from mixup_cli.data import DATASETS
    from mixup_cli.models import MODELS

    if "cifar10" not in DATASETS or "preact-resnet18" not in MODELS:
        pytest.skip("cifar10 / preact-resnet18 are not registered in this checkout")
    config = resolve_config(TrainConfig, recipe)
    assert config.model == "preact-resnet18" and config.weight_decay in (1e-4, 5e-4)
