"""`mixup gan --g-loss minimax|non-saturating` (§3.7): the generator loss the real CLI trains with is the one
asked for, checked by its value at a discriminator output recomputed here; minimax is the default."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixup_cli.checkpoint import load_checkpoint
from mixup_cli.config import GanConfig
from mixup_cli.gan.losses import GENERATOR_LOSSES
from mixup_cli.gan.toy2d import get_toy
from mixup_cli.gan.training import DATA, SubRun, build_networks
from mixup_cli.seeding import derive_seed

# One iteration: the snapshot's g loss is that of the very first generator step, which uses the
# generator's initial weights and the discriminator as final.pt keeps it (the generator step leaves d alone).
HIDDEN, D_STEPS, BATCH, Z = 16, 2, 16, 2
ONE_ITERATION = ["--hidden", str(HIDDEN), "--iterations", "1", "--d-steps", str(D_STEPS), "--batch-size", str(BATCH),
                 "--num-samples", "50", "--snapshots", "1", "--threads", "1", "--device", "cpu", "--json"]
BY_HAND = {"minimax": lambda s: -F.softplus(s).mean(), "non-saturating": lambda s: F.softplus(-s).mean()}


def first_generator_logits(out, run: dict) -> torch.Tensor:
    """d(g(z)) of the first generator step of an ERM sub-run, its random draws replayed: the d-steps'
    reals and noise, then the generator's noise, all from the (seed, iteration 0) stream."""
    sub = SubRun(run["method"], run["alpha"], run["z_dim"], run["lr"], run["seed"])
    assert sub.alpha == 0  # ERM: its discriminator steps draw nothing else from the stream
    generator, discriminator = build_networks(GanConfig(hidden=HIDDEN), sub)
    discriminator.load_state_dict(load_checkpoint(out / "runs" / sub.key / "final.pt")["discriminator"])
    toy = get_toy("ring")
    draws = torch.Generator().manual_seed(derive_seed(sub.seed, 0, DATA))
    toy.sample(D_STEPS * BATCH, generator=draws, centres=toy.centres_tensor())
    torch.randn(D_STEPS * BATCH, Z, generator=draws)
    noise = torch.randn(BATCH, Z, generator=draws)
    with torch.no_grad():
        return discriminator(generator(noise))


@pytest.mark.parametrize("g_loss", ["minimax", "non-saturating"])
def test_the_generator_trains_with_the_loss_asked_for(cli, tmp_path, g_loss):
    out = tmp_path / g_loss
    result = cli("gan", *ONE_ITERATION, "--alpha", "0", "--g-loss", g_loss, "--out", out)
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["g_loss"] == g_loss
    run = summary["runs"][0]
    logged = run["snapshots"][0]["g_loss"]
    logits = first_generator_logits(out, run)
    assert logged == pytest.approx(BY_HAND[g_loss](logits).item(), rel=1e-5)
    other = "non-saturating" if g_loss == "minimax" else "minimax"
    assert abs(logged - BY_HAND[other](logits).item()) > 1e-2  # the check tells the two apart
    assert GENERATOR_LOSSES.get(g_loss)(logits).item() == pytest.approx(logged, rel=1e-5)


def test_minimax_is_the_default_and_the_demos_lambda_scheme_stays_selectable(cli, tmp_path):
    """The paper's objective by default, with mixup in the discriminator: ERM and mixup sub-runs, the
    authors' U[0, alpha] pooled scheme included."""
    out = tmp_path / "default"
    result = cli("gan", *ONE_ITERATION, "--alpha", "0.2", "--lam-dist", "uniform", "--out", out)
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert (summary["g_loss"], summary["lam_dist"]) == ("minimax", "uniform")
    assert GanConfig().g_loss == "minimax"
    erm, mixup = summary["runs"]
    assert (erm["method"], mixup["method"]) == ("erm", "mixup")
    logits = first_generator_logits(out, erm)
    assert erm["snapshots"][0]["g_loss"] == pytest.approx(BY_HAND["minimax"](logits).item(), rel=1e-5)
    assert mixup["snapshots"][0]["g_loss"] < 0  # -softplus(.) is negative; the non-saturating loss never is


def test_an_unknown_generator_loss_is_one_line_naming_the_choices(cli, tmp_path):
    result = cli("gan", *ONE_ITERATION, "--g-loss", "wasserstein", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert "minimax" in result.stderr and "non-saturating" in result.stderr
    assert not (tmp_path / "x").exists()


def test_an_experiment_saved_before_g_loss_resumes_with_the_non_saturating_loss_it_ran_with(cli, tmp_path):
    """Its config.yaml has no g_loss: its sub-runs trained with the non-saturating loss (the only one then).
    A resume (here growing the seed grid) trains the new sub-run with that loss too, not today's minimax
    default, and refuses --g-loss minimax as a contradiction, as for any key the experiment set."""
    out = tmp_path / "old"
    first = cli("gan", *ONE_ITERATION, "--alpha", "0", "--g-loss", "non-saturating", "--out", out)
    assert first.exit_code == 0, first.stderr
    saved = out / "config.yaml"
    lines = saved.read_text().splitlines(keepends=True)
    assert any(line.startswith("g_loss:") for line in lines)
    saved.write_text("".join(line for line in lines if not line.startswith("g_loss:")))  # as written before the key

    refused = cli("gan", "--resume", "--out", out, "--g-loss", "minimax", "--json")
    assert refused.exit_code == 2 and "g_loss" in refused.stderr

    grown = cli("gan", "--resume", "--out", out, "--seeds", "0,1", "--json")
    assert grown.exit_code == 0, grown.stderr
    summary = grown.json()
    assert summary["g_loss"] == "non-saturating"
    new = next(r for r in summary["runs"] if r["seed"] == 1)
    assert new["snapshots"][0]["g_loss"] == pytest.approx(BY_HAND["non-saturating"](first_generator_logits(out, new)).item(),
                                                          rel=1e-5)
