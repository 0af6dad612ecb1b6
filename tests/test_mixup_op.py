"""The mixup operation itself (mixing.py): the paper's §2 definition, exactly."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixup_cli.mixing import mixed_cross_entropy, mixup, sample_lambda


def batch(n=16, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 4, 4, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_alpha_zero_is_the_identity_and_plain_cross_entropy():
    x, y = batch()
    mixed = mixup(x, y, alpha=0.0, rng=np.random.default_rng(0))
    assert mixed.inputs is x and mixed.targets_a is y and mixed.lam == 1.0 and not mixed.is_mixed
    logits = torch.randn(16, 5)
    assert torch.equal(mixed.loss(logits), F.cross_entropy(logits, y))


@pytest.mark.parametrize("alpha", [0.2, 1.0, 32.0])
def test_outputs_are_convex_combinations_of_pairs_from_the_same_batch(alpha):
    x, y = batch()
    mixed = mixup(x, y, alpha, rng=np.random.default_rng(1), generator=torch.Generator().manual_seed(1))
    lam, perm = mixed.lam, mixed.perm
    assert 0.0 <= lam <= 1.0
    assert sorted(perm.tolist()) == list(range(16))  # a permutation of the batch
    torch.testing.assert_close(mixed.inputs, lam * x + (1 - lam) * x[perm])
    # the permutation pairs inputs and labels consistently
    assert torch.equal(mixed.targets_a, y) and torch.equal(mixed.targets_b, y[perm])
    # every pixel lies between the two pixels it mixes
    low, high = torch.minimum(x, x[perm]), torch.maximum(x, x[perm])
    assert bool(((mixed.inputs >= low - 1e-6) & (mixed.inputs <= high + 1e-6)).all())


def test_loss_equals_cross_entropy_against_the_mixed_soft_labels():
    """lam*CE(y_a) + (1-lam)*CE(y_b) = CE against y~ = lam*onehot(y_a) + (1-lam)*onehot(y_b); weights sum to 1."""
    x, y = batch()
    mixed = mixup(x, y, 1.0, rng=np.random.default_rng(3), generator=torch.Generator().manual_seed(3))
    logits = torch.randn(16, 5)
    soft = mixed.lam * F.one_hot(mixed.targets_a, 5).float() + (1 - mixed.lam) * F.one_hot(mixed.targets_b, 5).float()
    torch.testing.assert_close(soft.sum(1), torch.ones(16))
    expected = -(soft * F.log_softmax(logits, 1)).sum(1).mean()
    torch.testing.assert_close(mixed.loss(logits), expected)


def test_lambda_follows_beta_alpha_alpha():
    rng = np.random.default_rng(0)
    draws = np.array([sample_lambda(0.5, rng) for _ in range(20000)])
    # Beta(0.5, 0.5): mean 1/2, variance 1/8
    assert abs(draws.mean() - 0.5) < 0.01 and abs(draws.var() - 0.125) < 0.005
    with pytest.raises(ValueError):
        sample_lambda(-1.0, rng)


def test_same_seed_same_draws():
    x, y = batch()
    a = mixup(x, y, 1.0, rng=np.random.default_rng(7), generator=torch.Generator().manual_seed(7))
    b = mixup(x, y, 1.0, rng=np.random.default_rng(7), generator=torch.Generator().manual_seed(7))
    assert a.lam == b.lam and torch.equal(a.perm, b.perm)


def test_per_example_weights_in_the_loss():
    logits, ya, yb = torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2])
    lam = torch.tensor([1.0, 0.0, 0.5, 0.25])
    expected = (lam * F.cross_entropy(logits, ya, reduction="none")
                + (1 - lam) * F.cross_entropy(logits, yb, reduction="none")).mean()
    torch.testing.assert_close(mixed_cross_entropy(logits, ya, yb, lam), expected)
