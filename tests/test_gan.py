"""`mixup gan` (§3.7, Figure 5): the losses against hand computations, the mode metrics on point
sets with known answers, and the real CLI end to end (outputs, resume, bad input)."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

from mixup_cli.config import GanConfig
from mixup_cli.gan.losses import (LAMBDA_SCHEMES, mixup_discriminator_loss, non_saturating_generator_loss,
                                  standard_discriminator_loss)
from mixup_cli.gan.toy2d import get_toy, mode_metrics

# A tiny but complete experiment: every code path of the paper's setting, in a second or two.
TINY = ["--hidden", "16", "--iterations", "24", "--d-steps", "2", "--batch-size", "16", "--num-samples", "200",
        "--snapshots", "10", "--checkpoint-every", "5", "--threads", "1"]


def sigmoid(s: float) -> float:
    return 1 / (1 + math.exp(-s))


def test_mixup_discriminator_loss_matches_hand_computation():
    # d is linear: d(p) = w . p + c, so every logit can be written out by hand.
    d = torch.nn.Linear(2, 1)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[0.5, -1.0]]))
        d.bias.fill_(0.25)
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]])
    fake = torch.tensor([[0.2, 0.2], [0.4, -0.6], [0.0, 0.0]])
    lam = torch.tensor([[0.9], [0.3], [0.5]])
    expected = 0.0
    for (xr, yr), (xf, yf), (l,) in zip(real.tolist(), fake.tolist(), lam.tolist()):
        mx, my = l * xr + (1 - l) * xf, l * yr + (1 - l) * yf
        s = 0.5 * mx - 1.0 * my + 0.25
        expected += -(l * math.log(sigmoid(s)) + (1 - l) * math.log(1 - sigmoid(s)))
    expected /= 3
    scheme = LAMBDA_SCHEMES.get("beta")
    assert scheme.loss(d, real, fake, lam, None).item() == pytest.approx(expected, rel=1e-6)
    logits = d(lam * real + (1 - lam) * fake)
    assert mixup_discriminator_loss(logits, lam).item() == pytest.approx(expected, rel=1e-6)


def test_alpha_zero_is_the_standard_gan_loss():
    real_logits = torch.tensor([[2.0], [-0.5], [0.3]])
    fake_logits = torch.tensor([[-1.0], [0.7], [1.5]])
    by_hand = 0.5 * (sum(-math.log(sigmoid(s)) for s in (2.0, -0.5, 0.3)) / 3
                     + sum(-math.log(1 - sigmoid(s)) for s in (-1.0, 0.7, 1.5)) / 3)
    assert standard_discriminator_loss(real_logits, fake_logits).item() == pytest.approx(by_hand, rel=1e-6)
    # Beta(a, a) tends to lambda in {0, 1} as a -> 0: the mixup loss with lambda = 1 on the reals and
    # 0 on the fakes is exactly the standard loss.
    lam = torch.tensor([[1.0]] * 3 + [[0.0]] * 3)
    mixed = mixup_discriminator_loss(torch.cat([real_logits, fake_logits]), lam)
    assert mixed.item() == pytest.approx(by_hand, rel=1e-6)
    # Small alpha draws lambda near 0 or 1 almost always.
    import numpy as np

    draws = LAMBDA_SCHEMES.get("beta").draw(1e-3, (10000,), np.random.default_rng(0))
    assert ((draws < 1e-3) | (draws > 1 - 1e-3)).mean() > 0.99
    assert GanConfig(alpha=0.0).methods == [("erm", 0.0)]
    # Generator: non-saturating, log(1 + exp(-s)).
    assert non_saturating_generator_loss(fake_logits).item() == pytest.approx(
        sum(math.log(1 + math.exp(-s)) for s in (-1.0, 0.7, 1.5)) / 3, rel=1e-6)


def test_uniform_lambdas_stay_in_zero_alpha():
    import numpy as np

    draws = LAMBDA_SCHEMES.get("uniform").draw(0.2, (5000,), np.random.default_rng(0))
    assert draws.min() >= 0 and draws.max() <= 0.2 and draws.mean() == pytest.approx(0.1, abs=0.01)


def test_toy_datasets_have_the_documented_modes():
    ring, grid = get_toy("ring"), get_toy("grid")
    assert ring.num_modes == 8 and grid.num_modes == 25
    centres = ring.centres_tensor()
    assert torch.allclose(centres.norm(dim=1), torch.ones(8), atol=1e-6)
    assert sorted({round(x, 6) for x, _ in grid.centres}) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    points = ring.sample(4000, generator=torch.Generator().manual_seed(0))
    assert mode_metrics(points, ring, 0.01)["modes_covered"] == 8
    assert mode_metrics(points, ring, 0.01)["high_quality"] > 0.97  # 3 std in 2-D holds ~98.9%


def test_mode_metrics_on_known_point_sets():
    ring = get_toy("ring")
    centres = ring.centres_tensor()
    jitter = torch.tensor([[0.01, 0.0], [0.0, -0.02], [0.0, 0.0], [-0.015, 0.015]])  # all within 3 std = 0.03
    everywhere = (centres[:, None, :] + jitter[None]).reshape(-1, 2)
    m = mode_metrics(everywhere, ring, 0.01)
    assert (m["modes_covered"], m["num_modes"], m["high_quality"]) == (8, 8, 1.0)
    one = centres[3] + jitter.repeat(10, 1)
    m = mode_metrics(one, ring, 0.01)
    assert (m["modes_covered"], m["high_quality"]) == (1, 1.0)
    # Scattered noise: 0.05 or more from every centre (more than 3 std), so nothing counts.
    angles = torch.linspace(0, 2 * math.pi, 400)
    noise = torch.cat([0.5 * torch.stack([angles.cos(), angles.sin()], 1),
                       1.2 * torch.stack([angles.cos(), angles.sin()], 1)])
    m = mode_metrics(noise, ring, 0.01)
    assert (m["modes_covered"], m["high_quality"]) == (0, 0.0)
    # A mode with fewer than cover_share of the samples is not covered, though its samples are good.
    mostly_one = torch.cat([centres[0].repeat(95, 1), centres[1].repeat(5, 1)])
    assert mode_metrics(mostly_one, ring, 0.10)["modes_covered"] == 1
    assert mode_metrics(mostly_one, ring, 0.05)["modes_covered"] == 2


def test_cli_end_to_end_writes_figure_csvs_and_json(cli, tmp_path):
    out = tmp_path / "gan"
    result = cli("gan", *TINY, "--dataset", "grid", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["dataset"] == "grid" and [r["method"] for r in summary["runs"]] == ["erm", "mixup"]
    png = out / "gan-grid.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for method in ("erm", "mixup"):
        for iteration in (10, 24):
            lines = (out / f"samples-{method}-{iteration}.csv").read_text().splitlines()
            assert lines[0] == "x,y" and len(lines) == 201
            x, y = map(float, lines[1].split(","))
            assert math.isfinite(x) and math.isfinite(y)
        run = summary["runs"][0 if method == "erm" else 1]
        assert [s["iteration"] for s in run["snapshots"]] == [10, 24]
        final = run["final"]
        assert final["num_modes"] == 25 and 0 <= final["modes_covered"] <= 25 and 0 <= final["high_quality"] <= 1
        assert math.isfinite(final["d_loss"]) and math.isfinite(final["g_loss"])
        assert final["modes_covered"] <= final["modes_reached"] <= 25  # 10 std is looser than 3 std
        assert (out / "runs" / run["key"] / "final.pt").is_file()
    assert {row["method"] for row in summary["grid"]} == {"erm", "mixup"}
    assert (out / "config.yaml").is_file() and json.loads((out / "summary.json").read_text())["runs"]
    assert "modes" in result.stderr  # the Rich table


def test_same_seed_gives_erm_and_mixup_the_same_start(tmp_path):
    from mixup_cli.gan.training import SubRun, build_networks

    config = GanConfig(hidden=8)
    g1, d1 = build_networks(config, SubRun("erm", 0.0, 2, 1e-3, 4))
    g2, d2 = build_networks(config, SubRun("mixup", 0.2, 2, 1e-3, 4))
    assert all(torch.equal(a, b) for a, b in zip(d1.state_dict().values(), d2.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(g1.state_dict().values(), g2.state_dict().values()))


def test_resume_skips_finished_subruns_and_continues_exactly(cli, tmp_path):
    from mixup_cli.config import resolve_config
    from mixup_cli.gan.training import Interrupted, run_experiment

    full = tmp_path / "full"
    assert cli("gan", *TINY, "--out", full).exit_code == 0

    # Interrupt the second sub-run (mixup) at iteration 7, after its checkpoint at 5.
    out = tmp_path / "cut"
    config = resolve_config(GanConfig, overrides={"hidden": 16, "iterations": 24, "d_steps": 2, "batch_size": 16,
                                                  "num_samples": 200, "snapshots": [10], "checkpoint_every": 5,
                                                  "threads": 1, "out": str(out)})
    calls = iter(range(10**6))
    with pytest.raises(Interrupted):
        run_experiment(config, out, should_stop=lambda: next(calls) == 24 + 7)
    erm_result = out / "runs" / "erm-z2-lr0.001-seed0" / "result.json"
    stamp = erm_result.stat().st_mtime_ns
    assert (out / "runs" / "mixup-z2-lr0.001-seed0" / "last.pt").is_file()

    refused = cli("gan", *TINY, "--out", out)
    assert refused.exit_code == 2 and "--resume" in refused.stderr

    resumed = cli("gan", "--resume", "--out", out, "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert "skipping erm-z2-lr0.001-seed0" in resumed.stderr and "resumed at 7" in resumed.stderr
    assert erm_result.stat().st_mtime_ns == stamp
    for name in ("samples-erm-24.csv", "samples-mixup-10.csv", "samples-mixup-24.csv"):
        assert (out / name).read_text() == (full / name).read_text(), name
    assert not (out / "runs" / "mixup-z2-lr0.001-seed0" / "last.pt").exists()

    contradiction = cli("gan", "--resume", "--out", out, "--alpha", "0.5")
    assert contradiction.exit_code == 2 and "alpha" in contradiction.stderr

    # Growing the seed grid on resume trains only the new seed.
    grown = cli("gan", "--resume", "--out", out, "--seeds", "0,1", "--json")
    assert grown.exit_code == 0, grown.stderr
    assert "skipping mixup-z2-lr0.001-seed0" in grown.stderr and "training erm-z2-lr0.001-seed1" in grown.stderr
    assert erm_result.stat().st_mtime_ns == stamp
    assert [r["seed"] for r in grown.json()["runs"]] == [0, 0, 1, 1] and grown.json()["grid"][0]["runs"] == 2


@pytest.mark.parametrize("args, message", [
    (["--dataset", "rng"], "did you mean 'ring'"),
    (["--alpha", "-0.1"], "alpha"),
    (["--iterations", "0"], "iterations"),
    (["--lam-dist", "gamma"], "--lam-dist"),
    (["--seeds", "0,0"], "seeds"),
])
def test_bad_input_exits_2(cli, tmp_path, args, message):
    out = tmp_path / "bad"
    result = cli("gan", *TINY, *args, "--out", out)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_unwritable_output_exits_2(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = cli("gan", *TINY, "--out", blocker / "sub")
    assert result.exit_code == 2 and "not writable" in result.stderr and "Traceback" not in result.stderr
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = cli("gan", *TINY, "--out", locked / "sub")
        assert result.exit_code == 2 and "not writable" in result.stderr


def test_released_variant_and_no_compare(cli, tmp_path):
    out = tmp_path / "uniform"
    result = cli("gan", *TINY, "--lam-dist", "uniform", "--no-compare", "--alpha", "0.5", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert [(r["method"], r["alpha"]) for r in summary["runs"]] == [("mixup", 0.5)]
    assert summary["lam_dist"] == "uniform" and (out / "samples-mixup-24.csv").is_file()
    assert not (out / "samples-erm-24.csv").exists()


def test_pooled_batch_mixes_targets_with_the_inputs():
    """The released script's batch: each row's target is lam*t1 + (1-lam)*t2 of the rows it mixes."""
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return 3 * x[:, :1]

    # Reals are the point (1, 1) with target 1, fakes (-1, -1) with target 0: since mixing is
    # linear, a mixed row x must carry the target (x + 1) / 2.
    real, fake = torch.full((4, 2), 1.0), torch.full((4, 2), -1.0)
    lam = torch.tensor([[0.1], [0.2], [0.0], [0.15]])
    loss = LAMBDA_SCHEMES.get("uniform").loss(Probe(), real, fake, lam, torch.Generator().manual_seed(0))
    xs = seen["x"][:, 0].tolist()
    assert len(xs) == 4 and len(set(round(x, 6) for x in xs)) > 1  # pairs differ: real-fake, real-real, ...
    by_hand = sum(-((x + 1) / 2 * math.log(sigmoid(3 * x)) + (1 - (x + 1) / 2) * math.log(1 - sigmoid(3 * x)))
                  for x in xs) / 4
    assert loss.item() == pytest.approx(by_hand, rel=1e-5)
