"""The in-between analysis, calibration and the boundary picture: on hand-built models and by the CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mixup_cli.analysis import between, expected_calibration_error


class OneHotIdentity(nn.Module):
    """Logits = input: on one-hot inputs, a model that is linear everywhere, mixing included."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.scale * x


class ThirdClassInBetween(OneHotIdentity):
    """Not linear: the last class wins wherever the input is no longer one-hot."""

    def forward(self, x):
        extra = 4 * (1 - x.max(dim=1).values)
        return torch.cat([x[:, :-1], (x[:, -1] + extra)[:, None]], dim=1)


def one_hot_pairs(classes=5, pairs=50, seed=0):
    rng = np.random.default_rng(seed)
    ya = torch.as_tensor(rng.integers(classes - 1, size=pairs))
    yb = (ya + torch.as_tensor(rng.integers(1, classes - 1, size=pairs))) % (classes - 1)
    eye = torch.eye(classes)
    return eye[ya], ya, eye[yb], yb


def test_a_linear_model_has_no_misses_in_between():
    xa, ya, xb, yb = one_hot_pairs()
    result = between(OneHotIdentity(), xa, ya, xb, yb, [0.5, 0.7, 1.0])
    assert result["miss_percent"] == [0.0, 0.0, 0.0]
    assert all(g > 0 for g in result["grad_norm"])


def test_a_model_predicting_a_third_class_in_between_misses():
    xa, ya, xb, yb = one_hot_pairs()
    result = between(ThirdClassInBetween(), xa, ya, xb, yb, [0.5, 1.0], batch_size=7)
    assert result["miss_percent"] == [100.0, 0.0]


def test_gradient_norm_matches_autograd_per_example():
    xa, ya, xb, yb = one_hot_pairs(pairs=3)
    model = OneHotIdentity()
    result = between(model, xa, ya, xb, yb, [0.6])
    norms = []
    for k in range(3):
        x = (0.6 * xa[k:k + 1] + 0.4 * xb[k:k + 1]).requires_grad_(True)
        logits = model(x)
        loss = 0.6 * nn.functional.cross_entropy(logits, ya[k:k + 1]) + 0.4 * nn.functional.cross_entropy(logits, yb[k:k + 1])
        norms.append(float(torch.autograd.grad(loss, x)[0].norm()))
    assert result["grad_norm"][0] == pytest.approx(np.mean(norms), rel=1e-5)


def test_ece_matches_a_hand_computation():
    confidence = np.array([0.95, 0.95, 0.65, 0.62, 0.30, 1.0])
    correct = np.array([1, 0, 1, 1, 0, 1])
    # 15 bins of width 1/15: 0.95 and 1.0 fall in (14/15, 1]; 0.62 and 0.65 in (9/15, 10/15]; 0.30 in (4/15, 5/15].
    top = abs(2 / 3 - (0.95 + 0.95 + 1.0) / 3) * 3 / 6
    middle = abs(1.0 - (0.65 + 0.62) / 2) * 2 / 6
    low = abs(0.0 - 0.30) * 1 / 6
    result = expected_calibration_error(confidence, correct, bins=15)
    assert result["ece"] == pytest.approx(top + middle + low)
    assert [r["count"] for r in result["bins"] if r["count"]] == [1, 2, 3]
    assert expected_calibration_error(np.array([0.5, 0.5]), np.array([1, 0]), bins=15)["ece"] == pytest.approx(0.0)


def test_eval_between_and_calibration_end_to_end(cli, digits_runs, tmp_path):
    result = cli("eval", "--between", "--ckpt", digits_runs["erm"], "--ckpt", digits_runs["mixup"], "--pairs", "40",
                 "--lambdas", "0.5,1", "--plot", tmp_path / "between.png", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["lambda"] == [0.5, 1.0] and [m["method"] for m in data["models"]] == ["erm", "mixup"]
    assert all(0 <= v <= 100 for m in data["models"] for v in m["miss_percent"])
    assert (tmp_path / "between.png").stat().st_size > 1000 and "miss %" in result.stderr

    result = cli("eval", "--calibration", "--ckpt", digits_runs["mixup"], "--plot", tmp_path / "rel.png", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert data["bins"] == 15 and 0 <= data["ece_percent"] <= 100 and data["n"] == 360
    assert sum(r["count"] for r in data["reliability"]) == 360 and (tmp_path / "rel.png").is_file()

    again = cli("eval", "--calibration", "--ckpt", digits_runs["mixup"], "--plot", tmp_path / "rel.png")
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_eval_boundary_end_to_end(cli, tmp_path):
    result = cli("eval", "--boundary", "--boundary-steps", "30", "--boundary-samples", "40", "--plot",
                 tmp_path / "b.png", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json()
    assert [m["method"] for m in data["models"]] == ["erm", "mixup"] and (tmp_path / "b.png").stat().st_size > 1000


@pytest.mark.parametrize("args, words", [
    (["--boundary"], "--plot"),
    (["--between"], "needs at least one --ckpt"),
    (["--between", "--calibration", "--ckpt", "x"], "one analysis per call"),
    ([], "missing option --ckpt"),
])
def test_eval_analysis_usage_errors(cli, args, words):
    result = cli("eval", *args)
    assert result.exit_code == 2 and words in result.stderr
