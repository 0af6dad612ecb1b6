"""The pieces of `mixup fewshot`: the rotation loss, the cosine classifier, the episode sampler, the
confidence interval, class splits, and the Conv-4 backbone."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixup_cli.errors import ConfigError
from mixup_cli.fewshot.episodes import (check_episode_shape, confidence_interval, episode_accuracies,
                                        evaluate_episodes, indices_by_class, sample_episodes)
from mixup_cli.fewshot.network import CosineClassifier, FewShotNet, rotate_batch, rotation_losses
from mixup_cli.fewshot.splits import CIFAR100_CLASSES, cifar_fs, default_split, parse_split
from mixup_cli.models import MODELS, build_model, count_parameters


# --- rotation -------------------------------------------------------------------------------------

def test_rotate_batch_turns_each_image_a_quarter_at_a_time_with_its_labels():
    image = torch.zeros(1, 1, 4, 4)
    image[0, 0, 0, 0] = 1.0  # the top-left corner
    turned, classes, angles = rotate_batch(torch.cat([image, 2 * image]), torch.tensor([3, 7]))
    assert turned.shape == (8, 1, 4, 4)
    assert classes.tolist() == [3, 7] * 4 and angles.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    # counter-clockwise quarter turns carry the top-left corner to bottom-left, bottom-right, top-right
    corners = [tuple(torch.nonzero(turned[i, 0]).flatten().tolist()) for i in (0, 2, 4, 6)]
    assert corners == [(0, 0), (3, 0), (3, 3), (0, 3)]
    assert torch.equal(torch.rot90(turned[6], 1, dims=(-2, -1)), image[0])  # four turns: the image again


def test_rotation_losses_are_cross_entropies_of_the_rotated_batch_through_both_heads():
    torch.manual_seed(0)
    net = FewShotNet("conv4", 5, (1, 8, 8), [0.5], [0.25], scale=2.0).eval()
    inputs, labels = torch.rand(3, 1, 8, 8), torch.tensor([0, 4, 2])
    class_loss, rotation_loss = rotation_losses(net, inputs, labels)
    turned, classes, angles = rotate_batch(inputs, labels)
    features = net.features(turned)
    assert torch.allclose(class_loss, F.cross_entropy(net.classifier(features), classes))
    assert torch.allclose(rotation_loss, F.cross_entropy(net.rotation(features), angles))
    assert math.isclose(rotation_loss.item(), math.log(4), rel_tol=0.5)  # untrained: near chance of 4


def test_rotation_head_learns_to_tell_rotations_apart():
    torch.manual_seed(0)
    net = FewShotNet("conv4", 2, (1, 8, 8), [0.5], [0.25], scale=2.0)
    inputs = torch.rand(16, 1, 8, 8)
    inputs[:, :, :2, :2] = 1.0  # a bright corner makes the rotation visible
    labels = torch.zeros(16, dtype=torch.long)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        _, rotation_loss = rotation_losses(net, inputs, labels)
        first = rotation_loss.item() if first is None else first
        optimizer.zero_grad()
        rotation_loss.backward()
        optimizer.step()
    assert rotation_loss.item() < 0.3 * first


# --- cosine classifier ----------------------------------------------------------------------------

def test_cosine_classifier_is_scale_times_class_norm_times_cosine():
    torch.manual_seed(0)
    head = CosineClassifier(6, 3, scale=2.0)
    with torch.no_grad():
        head.norm.copy_(torch.tensor([1.0, 2.0, 0.5]))
    features = torch.randn(4, 6)
    expected = 2.0 * head.norm * F.cosine_similarity(features[:, None], head.direction[None], dim=-1)
    assert torch.allclose(head(features), expected, atol=1e-5)
    assert torch.allclose(head(10 * features), head(features), atol=1e-5)  # the features' length does not count
    assert head(features).abs().max() <= 2.0 * 2.0 + 1e-5


def test_backbone_logits_go_through_the_cosine_classifier_and_mix_at_every_point():
    torch.manual_seed(0)
    net = FewShotNet("conv4", 5, (1, 8, 8), [0.5], [0.25], scale=2.0).eval()
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(net(x), net.classifier(net.features(x)))
    assert net.mixing_points == [0, 1, 2, 3, 4]
    for k in net.mixing_points:
        assert torch.allclose(net(x, mix_at=k, mixer=lambda h: h), net(x), atol=1e-6)


# --- episodes -------------------------------------------------------------------------------------

def _classes(sizes):
    return [np.arange(sum(sizes[:c]), sum(sizes[:c + 1])) for c in range(len(sizes))]


def test_episode_sampler_draws_the_same_episodes_for_the_same_seed_and_never_repeats_an_image():
    classes = _classes([20] * 6)
    first = sample_episodes(classes, 5, 2, 3, 50, seed=7)
    again = sample_episodes(classes, 5, 2, 3, 50, seed=7)
    other = sample_episodes(classes, 5, 2, 3, 50, seed=8)
    assert all(np.array_equal(a.support, b.support) and np.array_equal(a.query, b.query) for a, b in zip(first, again))
    assert any(not np.array_equal(a.support, b.support) for a, b in zip(first, other))
    for e in first:
        assert e.support.shape == (5, 2) and e.query.shape == (5, 3)
        images = np.concatenate([e.support, e.query], axis=1)
        assert len(set(images.ravel())) == 25  # no image twice in an episode
        rows = [{int(i) // 20 for i in row} for row in images]
        assert all(len(r) == 1 for r in rows) and len({r.pop() for r in rows}) == 5  # one class per row, 5 classes
    # an episode depends on its own index only: the first 10 of 50 are the 10 of a shorter run
    shorter = sample_episodes(classes, 5, 2, 3, 10, seed=7)
    assert all(np.array_equal(a.query, b.query) for a, b in zip(first, shorter))


def test_episode_shapes_the_classes_cannot_fill_are_refused():
    with pytest.raises(ConfigError, match="--ways 6 is more than the 5 novel classes"):
        check_episode_shape(6, 1, 15, [600] * 5)
    with pytest.raises(ConfigError, match=r"5 shots \+ 15 queries = 20 images per class, but a novel class holds "
                                          r"only 19"):
        check_episode_shape(5, 5, 15, [600, 19, 600, 600, 600])


def test_confidence_interval_is_196_std_over_root_n():
    values = [40.0, 60.0, 50.0, 70.0, 30.0]
    result = confidence_interval(values)
    std = math.sqrt(sum((v - 50.0) ** 2 for v in values) / 5)  # numpy's std, as the official test.py
    assert result["mean"] == 50.0 and result["episodes"] == 5
    assert math.isclose(result["ci95"], 1.96 * std / math.sqrt(5))
    assert confidence_interval([80.0] * 600)["ci95"] == 0.0


@pytest.mark.parametrize("classifier", ["logreg", "cosine"])
def test_classifiers_fitted_on_support_features_separate_separable_classes(classifier):
    torch.manual_seed(0)
    labels = torch.arange(4).repeat_interleave(30)
    features = torch.eye(4, 16)[labels] * 3 + 0.3 * torch.randn(120, 16)
    result = evaluate_episodes(features, labels, 4, 1, 10, 40, seed=0, classifier=classifier)
    assert result["mean"] > 95 and result["episodes"] == 40 and result["shots"] == 1
    noise = torch.randn(120, 16)  # features that carry no class: about chance (25 %)
    chance = evaluate_episodes(noise, labels, 4, 5, 10, 40, seed=0, classifier=classifier)
    assert 10 < chance["mean"] < 45


def test_episode_accuracy_counts_queries_per_episode():
    labels = torch.arange(2).repeat_interleave(10)
    features = torch.eye(2, 3)[labels]
    features[19] = torch.tensor([1.0, 0.0, 0.0])  # the last image of class 1 looks like class 0
    episodes = sample_episodes(indices_by_class(labels), 2, 1, 4, 20, seed=0)
    accuracies = episode_accuracies(features, episodes, "cosine")
    in_query = np.array([19 in e.query for e in episodes])
    absent = np.array([19 not in e.query and 19 not in e.support for e in episodes])
    assert in_query.any() and absent.any()
    assert np.allclose(accuracies[in_query], 87.5) and np.allclose(accuracies[absent], 100.0)  # 7 of 8 queries


# --- splits ---------------------------------------------------------------------------------------

def test_cifar_fs_is_bertinettos_64_16_20_split_of_cifar100():
    split = cifar_fs()
    assert (len(split.base), len(split.val), len(split.novel)) == (64, 16, 20)
    assert sorted(split.base + split.val + split.novel) == list(range(100))
    names = {role: {CIFAR100_CLASSES[i] for i in split.of(role)} for role in ("base", "val", "novel")}
    assert {"baby", "bed", "bicycle", "rocket", "whale", "worm"} <= names["novel"]
    assert {"beaver", "otter", "sea", "tractor", "motorcycle"} <= names["val"]
    assert {"apple", "dolphin", "tank", "wolf"} <= names["base"]
    assert CIFAR100_CLASSES == sorted(CIFAR100_CLASSES) and len(set(CIFAR100_CLASSES)) == 100


def test_declared_splits_take_ranges_and_items_that_continue_a_role():
    assert parse_split(["base:0-5", "val:6-7", "novel:8-9"], "digits", 10).to_dict() == {
        "base": [0, 1, 2, 3, 4, 5], "val": [6, 7], "novel": [8, 9]}
    split = parse_split(["base:0-2", "7", "val:3-4", "novel:5-6", "8-9"], "digits", 10)
    assert split.base == (0, 1, 2, 7) and split.novel == (5, 6, 8, 9)
    assert default_split("fashion-mnist", 10) == ["base:0-4", "val:5-6", "novel:7-9"]
    assert default_split("cifar100", 100) == ["cifar-fs"]


@pytest.mark.parametrize("items, message", [
    (["base:0-5", "val:5-7", "novel:8-9"], "puts class 5 in base and val"),
    (["base:0-5", "val:6-7", "novel:8-10"], "names class 10, but the dataset's classes are 0..9"),
    (["base:0-5", "val:6-7"], "gives no novel classes"),
    (["train:0-5", "val:6-7", "novel:8-9"], "names role 'train'"),
    (["0-5", "val:6-7", "novel:8-9"], "has no role"),
    (["base:5-0", "val:6-7", "novel:8-9"], "is an empty range"),
    (["base:a-b", "val:6-7", "novel:8-9"], "is not a class index or a range"),
    (["cifar-fs"], "is a split of cifar100's classes, not of digits's"),
    (["base:0", "val:6-7", "novel:8-9"], r"gives one base class \(0\); every role needs at least 2 classes"),
    (["base:0-5", "val:6", "novel:8-9"], "gives one val class"),
    (["base:0-5", "val:6-7", "novel:9"], "gives one novel class"),
])
def test_bad_splits_are_refused_with_the_fix(items, message):
    with pytest.raises(ConfigError, match=message):
        parse_split(items, "digits", 10)


def test_default_splits_give_every_role_two_classes_or_none():
    assert default_split("x", 5) is None
    for classes in range(6, 30):
        split = parse_split(default_split("x", classes), "x", classes)
        assert min(len(split.base), len(split.val), len(split.novel)) >= 2
        assert len(split.base + split.val + split.novel) == classes


def test_episode_shape_refusals_name_the_flags_of_the_episodes_checked():
    with pytest.raises(ConfigError, match=r"--val-ways 3 is more than the 2 val classes.*--val-ways 2 or fewer"):
        check_episode_shape(3, 1, 15, [100, 100], "val", ("--val-ways", "--val-shots"))
    with pytest.raises(ConfigError, match="a val class holds only 10; lower --val-shots or --queries"):
        check_episode_shape(2, 5, 15, [10, 100], "val", ("--val-ways", "--val-shots"))


def test_unpaired_shots_are_those_whose_episodes_differ_between_reports():
    from mixup_cli.fewshot.evaluation import unpaired_shots

    def report(*digests):
        return {"results": [{"shots": s, "episodes_digest": d} for s, d in zip((1, 5), digests)]}

    assert unpaired_shots([report("a", "b"), report("a", "b")]) == []
    assert unpaired_shots([report("a", "b"), report("a", "c")]) == [5]
    assert unpaired_shots([report("a", "b")]) == []


# --- Conv-4 ---------------------------------------------------------------------------------------

def test_conv4_is_registered_with_four_blocks_and_the_arithmetic_parameter_count():
    assert "conv4" in MODELS
    model = build_model("conv4", 64, (3, 32, 32))
    # conv 3*64*9+64, BN 128, three times conv 64*64*9+64 and BN 128, linear (64*2*2)*64+64
    expected = (1_728 + 64 + 128) + 3 * (36_864 + 64 + 128) + (256 * 64 + 64)
    assert count_parameters(model) == expected and len(model.stages) == 4
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 64)
