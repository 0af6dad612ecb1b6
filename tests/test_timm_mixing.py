"""The mixing options timm users reach for, matching timm's meaning (timm/data/mixup.py, train.py):
switch_prob with cutmix_alpha, cutmix_minmax, correct_lam, mixup_off_epoch and the BCE loss."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.mixing import build_mixer
from mixup_cli.mixing.combine import cut_boxes_minmax, cutmix
from mixup_cli.mixing.core import mixed_binary_cross_entropy, mixed_target


def config(**values) -> TrainConfig:
    return resolve_config(TrainConfig, overrides=values)


def images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(4, (n,), generator=g)


def is_box_paste(batch, x) -> bool:
    """Every pixel is the example's own or its partner's (CutMix), not a blend."""
    partner = x[batch.perm]
    return bool(((batch.inputs == x) | (batch.inputs == partner)).all())


def test_switch_draws_the_coin_then_lambda_with_each_ops_alpha():
    mixer = build_mixer(config(switch_prob=0.5, cutmix_alpha=0.3, alpha=2.0))
    x, y = images()
    kinds = []
    for seed in range(40):
        batch = mixer(x, y, 2.0, np.random.default_rng(seed), torch.Generator().manual_seed(seed))
        rng = np.random.default_rng(seed)  # timm's order: switch coin, then Beta with that op's alpha
        use_cutmix = rng.random() < 0.5
        lam = rng.beta(0.3, 0.3) if use_cutmix else rng.beta(2.0, 2.0)
        assert is_box_paste(batch, x) == use_cutmix or batch.lam in (0.0, 1.0)
        if not use_cutmix:
            assert batch.lam == lam
        kinds.append(use_cutmix)
    assert 0 < sum(kinds) < len(kinds)  # both ops occur


@pytest.mark.parametrize("probability,cut", [(0.0, False), (1.0, True)])
def test_switch_probability_zero_and_one_are_one_op(probability, cut):
    mixer = build_mixer(config(switch_prob=probability))
    x, y = images()
    for seed in range(5):
        batch = mixer(x, y, 1.0, np.random.default_rng(seed), torch.Generator().manual_seed(seed))
        assert is_box_paste(batch, x) == cut


def test_minmax_boxes_have_sides_in_the_range_and_stay_inside():
    boxes = cut_boxes_minmax(500, 32, 20, (0.25, 0.75), np.random.default_rng(0))
    heights, widths = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    assert heights.min() == 8 and heights.max() == 23  # int(32*.25) <= h < int(32*.75), as randint draws
    assert widths.min() == 5 and widths.max() == 14
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] <= 32).all() and (boxes[:, 3] <= 20).all()


@pytest.mark.parametrize("correct_lam", [True, False])
def test_minmax_lambda_is_always_the_area_kept(correct_lam):
    x, _ = images()
    partner = x.flip(0)
    mixed, lam = cutmix(x, partner, 0.9, np.random.default_rng(1), minmax=(0.3, 0.7), correct_lam=correct_lam)
    kept = (mixed == x).float().mean().item()  # random pixels: equal only where not pasted
    assert lam == pytest.approx(kept) and lam != 0.9


def test_correct_lam_off_keeps_the_drawn_lambda_of_a_clipped_box():
    x, _ = images()
    partner = x.flip(0)
    clipped = None
    for seed in range(50):
        _, corrected = cutmix(x, partner, 0.4, np.random.default_rng(seed))
        mixed, drawn = cutmix(x, partner, 0.4, np.random.default_rng(seed), correct_lam=False)
        assert drawn == 0.4 and corrected == pytest.approx((mixed == x).float().mean().item())
        clipped = clipped or corrected != 0.4
    assert clipped  # some box was clipped, so the two differ


def test_bce_scores_the_mixed_smoothed_target():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    a, b = torch.tensor([0]), torch.tensor([2])
    target = mixed_target(3, a, b, 0.75, label_smoothing=0.3)  # off 0.1, on 0.8
    assert torch.allclose(target, torch.tensor([[0.75 * 0.8 + 0.25 * 0.1, 0.1, 0.75 * 0.1 + 0.25 * 0.8]]))
    p = torch.sigmoid(logits)
    by_hand = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    assert mixed_binary_cross_entropy(logits, a, b, 0.75, 0.3).item() == pytest.approx(by_hand.item(), rel=1e-6)
    per_example = mixed_binary_cross_entropy(logits, a, b, torch.tensor([0.75]), 0.3)
    assert per_example.item() == pytest.approx(by_hand.item(), rel=1e-6)


def test_bce_loss_reaches_the_batch():
    x, y = images()
    batch = build_mixer(config(loss="bce"))(x, y, 1.0, np.random.default_rng(0), torch.Generator().manual_seed(0))
    logits = torch.zeros(len(y), 4)
    assert batch.loss(logits).item() == pytest.approx(np.log(2), rel=1e-6)  # CE would be log(4)


@pytest.mark.parametrize("flags,words", [
    (["--cutmix-alpha", "0.5"], "only acts on CutMix"),
    (["--no-correct-lam"], "only acts on CutMix"),
    (["--switch-prob", "0.5", "--mix-op", "cutmix"], "needs --mix-op interpolate"),
    (["--mix-op", "cutmix", "--cutmix-minmax", "0.8,0.2"], "min < max"),
    (["--mixup-off-epoch", "2", "--erm-warmup-epochs", "2"], "leaves no mixup epoch"),
    (["--alpha", "0", "--mixup-off-epoch", "2"], "only acts on mixed batches"),
])
def test_bad_combinations_exit_2(cli, flags, words):
    result = cli("train", "--print-config", *flags)
    assert result.exit_code == 2 and words in result.stderr, result.stderr


def test_mixup_off_epoch_trains_the_last_epochs_as_erm(cli, tmp_path):
    result = cli("train", "--epochs", "3", "--mixup-off-epoch", "2", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["alpha"] for r in rows] == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("flags,saved", [
    (["--switch-prob", "0.5", "--cutmix-alpha", "0.5"], {"switch_prob": 0.5, "cutmix_alpha": 0.5}),
    (["--mix-op", "cutmix", "--cutmix-minmax", "0.2,0.8"], {"cutmix_minmax": [0.2, 0.8]}),
    (["--mix-op", "cutmix", "--no-correct-lam"], {"correct_lam": False}),
    (["--loss", "bce", "--label-smoothing", "0.1"], {"loss": "bce"}),
])
def test_each_option_trains_through_the_cli(cli, tmp_path, flags, saved):
    import yaml

    result = cli("train", "--epochs", "1", "--out", tmp_path / "run", "--json", *flags)
    assert result.exit_code == 0, result.stderr
    config_yaml = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert {k: config_yaml[k] for k in saved} == saved
    assert 0 <= result.json()["test_error"] < 100
