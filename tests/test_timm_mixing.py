"""The mixing options timm users reach for, matching timm's meaning (timm/data/mixup.py, train.py):
switch_prob with cutmix_alpha, cutmix_minmax, correct_lam, mixup_off_epoch and the BCE loss; with
lam_per_example, timm's mode 'elem' (switch, lambda, its correction and mix_prob per example)."""
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


def mix(mixer, x, y, seed, alpha=1.0):
    return mixer(x, y, alpha, np.random.default_rng(seed), torch.Generator().manual_seed(seed))


def row_kinds(batch, x) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per example: left as it was; every pixel its own or its partner's (a box pasted); the share of
    its pixels kept (random pixels are equal only where kept); partnered with another row (a row
    that drew itself looks unmixed whatever was done to it)."""
    partner = x[batch.perm]
    same = (batch.inputs == x).flatten(1).all(1).numpy()
    pasted = ((batch.inputs == x) | (batch.inputs == partner)).flatten(1).all(1).numpy()
    kept = (batch.inputs == x).flatten(1).float().mean(1).numpy()
    return same, pasted, kept, batch.perm.numpy() != np.arange(len(x))


def test_per_example_switch_draws_each_examples_op_then_its_lambda_as_timm_elem():
    """timm's _params_per_elem: n coins for CutMix, then Beta(cutmix_alpha) and Beta(mixup_alpha) for
    every example (CutMix's first), each example keeping its own op's; CutMix rows take a box of their
    partner with lambda corrected to the area each keeps, the others are blended with theirs."""
    mixer = build_mixer(config(switch_prob=0.5, cutmix_alpha=0.3, alpha=2.0, lam_per_example=True))
    x, y = images(32)
    batch = mix(mixer, x, y, seed=3, alpha=2.0)
    rng = np.random.default_rng(3)
    use_cutmix = rng.random(32) < 0.5
    drawn = np.where(use_cutmix, rng.beta(0.3, 0.3, size=32), rng.beta(2.0, 2.0, size=32))
    assert 0 < use_cutmix.sum() < 32  # both ops in one batch
    lam, partner = batch.lam.numpy(), x[batch.perm]
    for i in np.flatnonzero(~use_cutmix):  # mixup rows: their own lambda, x*lam + x'*(1-lam)
        assert lam[i] == pytest.approx(drawn[i], abs=1e-6)
        assert torch.allclose(batch.inputs[i], drawn[i] * x[i] + (1 - drawn[i]) * partner[i], atol=1e-6)
    _, pasted, kept, other = row_kinds(batch, x)
    cut = use_cutmix & other
    assert pasted[use_cutmix].all() and not pasted[~use_cutmix & other].any()
    assert np.allclose(lam[cut], kept[cut], atol=1e-6)  # the area each row kept


def test_per_example_mix_prob_leaves_each_failed_example_unmixed_with_lambda_one():
    """timm's elem mode tosses mix_prob per example after drawing lambdas: lam = where(coin, lam, 1)."""
    mixer = build_mixer(config(mix_prob=0.5, lam_per_example=True, alpha=1.0))
    x, y = images(32)
    batch = mix(mixer, x, y, seed=5)
    rng = np.random.default_rng(5)
    drawn = rng.beta(1.0, 1.0, size=32)
    mixed = rng.random(32) < 0.5
    assert 0 < mixed.sum() < 32  # one batch holds both
    expected = np.where(mixed, drawn, 1.0)
    assert np.allclose(batch.lam.numpy(), expected, atol=1e-6)
    same, _, _, other = row_kinds(batch, x)
    assert same[~mixed].all() and not same[mixed & other].any()
    logits = torch.randn(32, 4)  # an unmixed row scores its own label alone
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    ce_b = torch.nn.functional.cross_entropy(logits, batch.targets_b, reduction="none")
    by_hand = torch.tensor(expected, dtype=torch.float32) * ce + torch.tensor(1 - expected, dtype=torch.float32) * ce_b
    assert batch.loss(logits).item() == pytest.approx(by_hand.mean().item(), rel=1e-6)


def test_per_example_cutmix_boxes_only_the_mixed_examples_even_with_minmax():
    """timm pastes nothing where an example's lambda is 1 (`if lam != 1`), though minmax boxes ignore
    lambda; the others' lambda is the area each kept, whatever correct_lam says."""
    mixer = build_mixer(config(mix_op="cutmix", cutmix_minmax=[0.3, 0.7], correct_lam=False, mix_prob=0.5,
                               lam_per_example=True))
    x, y = images(32)
    batch = mix(mixer, x, y, seed=2)
    lam = batch.lam.numpy()
    same, pasted, kept, other = row_kinds(batch, x)
    unmixed = lam == 1.0
    assert 0 < unmixed.sum() < 32
    assert same[unmixed].all() and pasted.all() and not same[~unmixed & other].any()
    assert np.allclose(lam[other], kept[other], atol=1e-6)


def test_per_example_switch_with_probability_one_is_cutmix_for_every_example():
    mixer = build_mixer(config(switch_prob=1.0, lam_per_example=True))
    x, y = images()
    batch = mix(mixer, x, y, seed=0)
    _, pasted, kept, other = row_kinds(batch, x)
    assert pasted.all() and np.allclose(batch.lam.numpy()[other], kept[other], atol=1e-6)


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
    (["--lam-per-example", "--switch-prob", "0.5", "--mix-prob", "0.8"],
     {"lam_per_example": True, "switch_prob": 0.5, "mix_prob": 0.8}),
])
def test_each_option_trains_through_the_cli(cli, tmp_path, flags, saved):
    import yaml

    result = cli("train", "--epochs", "1", "--out", tmp_path / "run", "--json", *flags)
    assert result.exit_code == 0, result.stderr
    config_yaml = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert {k: config_yaml[k] for k in saved} == saved
    assert 0 <= result.json()["test_error"] < 100


class LegacyRandom:
    """numpy's global stream behind the Generator methods the mixer calls: the draws timm makes."""

    def random(self, size=None):
        return np.random.rand(size) if size is not None else np.random.rand()

    def beta(self, a, b, size=None):
        return np.random.beta(a, b, size=size)

    def integers(self, low, high=None, size=None):
        return np.random.randint(low, high, size=size)


@pytest.mark.slow
@pytest.mark.parametrize("ours,theirs", [
    ({"alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.5, "mix_prob": 0.7, "label_smoothing": 0.1},
     {"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.5, "prob": 0.7, "label_smoothing": 0.1}),
    ({"alpha": 0.4, "switch_prob": 0.3, "cutmix_minmax": [0.2, 0.8], "mix_prob": 0.6, "correct_lam": False},
     {"mixup_alpha": 0.4, "cutmix_alpha": 1.0, "cutmix_minmax": [0.2, 0.8], "switch_prob": 0.3, "prob": 0.6,
      "correct_lam": False}),
    ({"alpha": 1.0, "mix_prob": 0.5}, {"mixup_alpha": 1.0, "cutmix_alpha": 0.0, "prob": 0.5}),
    ({"alpha": 0.7, "mix_op": "cutmix", "correct_lam": False, "mix_prob": 0.8},
     {"mixup_alpha": 0.0, "cutmix_alpha": 0.7, "prob": 0.8, "correct_lam": False}),
])
def test_per_example_mixing_equals_timms_elem_mode(monkeypatch, ours, theirs):
    """Against timm itself (a test-only install): both draw their per-example parameters in the same
    order from numpy's global stream, so seeded alike they agree on every switch, lambda and coin; timm
    is handed the boxes ours drew (their placement draws come in another order) and pairs as ours is
    made to here (the mirrored row). The mixed images and the mixed, smoothed targets must agree."""
    timm_mixup = pytest.importorskip("timm.data.mixup")
    from mixup_cli.mixing import combine
    from mixup_cli.mixing.pairing import Partners

    n, classes = 16, 4
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 3, 16, 16, generator=g), torch.randint(classes, (n,), generator=g)
    drawn = {}
    for name in ("cut_boxes", "cut_boxes_minmax"):  # record our boxes, by row
        original = getattr(combine, name)
        monkeypatch.setattr(combine, name, lambda *a, _f=original, **k: drawn.setdefault("boxes", _f(*a, **k)))
    mixer = build_mixer(config(lam_per_example=True, **ours))
    flip = torch.arange(n - 1, -1, -1)
    mixer.pairing = lambda inputs, labels, index, generator: Partners(inputs[flip], labels[flip], perm=flip)
    np.random.seed(7)
    batch = mixer(x.clone(), y, ours["alpha"], LegacyRandom(), torch.Generator())
    target = mixed_target(classes, batch.targets_a, batch.targets_b, batch.lam, ours.get("label_smoothing", 0.0))

    params = timm_mixup.Mixup._params_per_elem
    rows = {}

    def recording(self, size):
        lam, use_cutmix = params(self, size)
        rows["cut"] = iter([i for i in range(size) if use_cutmix[i] and lam[i] != 1.0])
        return lam, use_cutmix

    def our_box(*_, **__):
        return tuple(int(v) for v in drawn["boxes"][next(rows["cut"])])

    monkeypatch.setattr(timm_mixup.Mixup, "_params_per_elem", recording)
    monkeypatch.setattr(timm_mixup, "rand_bbox", our_box)
    monkeypatch.setattr(timm_mixup, "rand_bbox_minmax", our_box)
    np.random.seed(7)
    theirs = {"label_smoothing": 0.0, **theirs}  # timm's Mixup smooths by 0.1 unless told not to
    timm_x, timm_target = timm_mixup.Mixup(mode="elem", num_classes=classes, **theirs)(x.clone(), y)
    assert torch.allclose(batch.inputs, timm_x, atol=1e-6)
    assert torch.allclose(target, timm_target, atol=1e-6)
    assert 0 < (batch.lam == 1).sum() < n  # some examples were left unmixed by their coin
