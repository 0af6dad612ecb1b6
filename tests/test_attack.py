"""`mixup attack` and mixup_cli.attacks on small trained digits checkpoints (§3.5, Table 3)."""
from __future__ import annotations

import hashlib
import re

import pytest
import torch

from mixup_cli.attacks import ATTACKS, PIXEL_SCALE, attack
from mixup_cli.checkpoint import load_checkpoint, load_model, save_checkpoint
from mixup_cli.data import get_dataset

from conftest import run_inprocess

LIMIT = "120"  # test examples per attack: enough to see differences, small enough for 2 CPU cores


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A second ERM model (another seed): the black-box source, as the paper attacks with a separate ERM model."""
    out = tmp_path_factory.mktemp("attack-source") / "erm-seed1"
    result = run_inprocess("train", "--epochs", "3", "--alpha", "0", "--seed", "1", "--out", out)
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def test_batch():
    split = get_dataset("digits").load("test")
    inputs, labels = split.to_raw(split.inputs[:96]), split.labels[:96]
    return inputs, labels


def run_json(*args):
    result = run_inprocess("attack", *map(str, args), "--device", "cpu", "--json")
    assert result.exit_code == 0, result.stderr
    return result, result.json()["results"]


def cell(results, method, epsilon, ckpt=None):
    (row,) = [r for r in results if r["method"] == method and r["epsilon"] == epsilon
              and (ckpt is None or r["ckpt"].startswith(str(ckpt)))]
    return row


def test_epsilon_zero_gives_the_clean_error_exactly(cli, digits_runs):
    from mixup_cli.evaluate_checkpoint import evaluate_checkpoint

    _, results = run_json("--method", "fgsm,ifgsm", "--epsilon", "0", "--steps", "2", "--ckpt", digits_runs["erm"])
    clean = evaluate_checkpoint(str(digits_runs["erm"]), "cpu")
    assert clean["test_error"] > 0  # a 3-epoch model errs on some examples, so equality means something
    for row in results:
        assert row["n"] == clean["n"]
        assert row["top1_error"] == row["clean_top1_error"] == clean["test_error"]
        assert row["top5_error"] == row["clean_top5_error"] == clean["test_top5_error"]
        assert row["flip_rate"] == 0.0


@pytest.mark.parametrize("method", ATTACKS.names())
def test_examples_stay_in_the_epsilon_ball_and_in_the_image_range(method, digits_runs, test_batch):
    model = load_model(digits_runs["erm"])
    inputs, labels = test_batch
    for epsilon in (1, 8, 64):
        eps = epsilon / PIXEL_SCALE
        # A step larger than ε makes the projection do the work.
        for step_size in (None, 3 * eps):
            adversarial = attack(method, model, inputs, labels, eps, steps=3, step_size=step_size)
            assert adversarial.shape == inputs.shape
            assert (adversarial - inputs).abs().max().item() <= eps + 1e-6
            assert adversarial.min().item() >= 0.0 and adversarial.max().item() <= 1.0
            assert (adversarial != inputs).any()  # it did move


def test_fgsm_matches_its_definition(digits_runs, test_batch):
    """Goodfellow et al. (2015): x + ε·sign(∇ₓ CE), clipped to [0, 1]; computed here independently."""
    model = load_model(digits_runs["mixup"])
    inputs, labels = test_batch
    eps = 8 / PIXEL_SCALE
    x = inputs.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(x), labels).backward()
    expected = (inputs + eps * x.grad.sign()).clamp(0, 1)
    assert torch.equal(attack("fgsm", model, inputs, labels, eps), expected)
    # One I-FGSM step of size ε is FGSM.
    assert torch.equal(attack("ifgsm", model, inputs, labels, eps, steps=1), expected)


def test_attack_leaves_the_model_untouched(digits_runs, test_batch):
    model = load_model(digits_runs["erm"])
    model.train()  # the attack must freeze BatchNorm itself and give the mode back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs, labels = test_batch
    for method in ATTACKS.names():
        attack(method, model, inputs, labels, 8 / PIXEL_SCALE, steps=3)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running BatchNorm statistics included


def test_checkpoint_file_unchanged_by_the_cli(digits_runs):
    path = digits_runs["mixup"] / "best.pt"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    run_json("--method", "ifgsm", "--epsilon", "8", "--steps", "2", "--limit", "32", "--ckpt", path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_fgsm_error_grows_with_epsilon_and_ifgsm_is_stronger(digits_runs):
    epsilons = [0, 8, 32, 96]
    _, results = run_json("--method", "fgsm,ifgsm", "--epsilon", ",".join(map(str, epsilons)), "--steps", "5",
                          "--limit", LIMIT, "--ckpt", digits_runs["erm"], "--ckpt", digits_runs["mixup"])
    for run in ("erm", "mixup"):
        fgsm = [cell(results, "fgsm", float(e), digits_runs[run])["top1_error"] for e in epsilons]
        ifgsm = [cell(results, "ifgsm", float(e), digits_runs[run])["top1_error"] for e in epsilons]
        assert fgsm == sorted(fgsm) and fgsm[-1] > fgsm[0], (run, fgsm)
        assert ifgsm[0] == fgsm[0]  # ε = 0: both are the clean error
        # Where the attacks bite (ε of 32 and 96 levels here), iterating beats the single step. At a few
        # levels, I-FGSM's steps of ε/steps can end inside the ball where FGSM sits on its corner, and
        # either may win by an example or two, so no order is asserted there.
        assert ifgsm[2] >= fgsm[2] and ifgsm[3] >= fgsm[3], (run, fgsm, ifgsm)
        assert ifgsm[2] > fgsm[2] or ifgsm[2] == 100.0, (run, fgsm, ifgsm)


def test_black_box_is_weaker_than_white_box_and_shared_across_targets(digits_runs, source_run):
    args = ("--method", "ifgsm", "--epsilon", "32", "--limit", LIMIT)
    _, white = run_json(*args, "--ckpt", digits_runs["erm"], "--ckpt", source_run)
    _, black = run_json(*args, "--source-ckpt", source_run, "--ckpt", digits_runs["erm"], "--ckpt", source_run)
    target_white = cell(white, "ifgsm", 32.0, digits_runs["erm"])
    target_black = cell(black, "ifgsm", 32.0, digits_runs["erm"])
    assert target_black["source_ckpt"].startswith(str(source_run)) and target_white["source_ckpt"] is None
    assert target_black["top1_error"] < target_white["top1_error"]
    # The source attacked with its own examples is the white-box attack on it: same examples, same numbers.
    source_black = cell(black, "ifgsm", 32.0, source_run)
    source_white = cell(white, "ifgsm", 32.0, source_run)
    assert source_black["top1_error"] == source_white["top1_error"]


def test_save_examples_writes_bounded_inputs_and_refuses_to_overwrite(digits_runs, source_run, tmp_path):
    out = tmp_path / "adv.pt"
    args = ("--method", "fgsm,ifgsm", "--epsilon", "4,16", "--steps", "3", "--limit", "40",
            "--source-ckpt", source_run, "--ckpt", digits_runs["erm"], "--save-examples", out)
    run_json(*args)
    saved = torch.load(out, weights_only=True)
    assert saved["labels"].shape == (40,) and saved["clean"].shape == (40, 1, 8, 8)
    assert sorted((e["method"], e["epsilon"]) for e in saved["examples"]) == [
        ("fgsm", 4.0), ("fgsm", 16.0), ("ifgsm", 4.0), ("ifgsm", 16.0)]
    for entry in saved["examples"]:
        delta = (entry["inputs"] - saved["clean"]).abs().max().item()
        assert 0 < delta <= entry["epsilon"] / PIXEL_SCALE + 1e-6
        assert entry["inputs"].min() >= 0 and entry["inputs"].max() <= 1
    again = run_inprocess("attack", *map(str, args), "--device", "cpu")
    assert again.exit_code == 2 and "already exists" in again.stderr


def _table_rows(stderr: str) -> list[list[str]]:
    rows = []
    for line in stderr.splitlines():
        if line.startswith("│"):
            rows.append([c.strip() for c in line.strip("│").split("│")])
    return rows


def test_json_parses_and_matches_the_table(digits_runs):
    result, results = run_json("--method", "fgsm,ifgsm", "--epsilon", "4,16", "--steps", "3", "--limit", "60",
                               "--ckpt", digits_runs["erm"], "--ckpt", digits_runs["mixup"])
    assert len(results) == 2 * 2 * 2
    keys = {"ckpt", "source_ckpt", "method", "epsilon", "steps", "step_size", "n", "clean_top1_error",
            "clean_top5_error", "top1_error", "top5_error", "flip_rate"}
    assert all(keys <= set(r) for r in results)
    assert {(r["method"], r["steps"], r["step_size"]) for r in results if r["epsilon"] == 16.0} == {
        ("fgsm", 1, 16.0), ("ifgsm", 3, 16.0 / 3)}
    header = next(line for line in result.stderr.splitlines() if "clean" in line)
    assert re.findall(r"(FGSM|I-FGSM) ε=(\d+)", header) == [("FGSM", "4"), ("FGSM", "16"),
                                                          ("I-FGSM", "4"), ("I-FGSM", "16")]
    rows = _table_rows(result.stderr)
    metric_keys = {"top-1 err": ("clean_top1_error", "top1_error"), "top-5 err": ("clean_top5_error", "top5_error"),
                   "flip": (None, "flip_rate")}
    metric = None
    seen = 0
    for row in rows:
        metric = row[0] or metric
        clean_key, key = metric_keys[metric]
        ckpt = row[2]
        cells = [r for r in results if r["ckpt"] == ckpt]
        expected = [f"{cells[0][clean_key]:.1f}" if clean_key else "-"]
        expected += [f"{cell(cells, m, e)[key]:.1f}" for m in ("fgsm", "ifgsm") for e in (4.0, 16.0)]
        assert row[3:] == expected, (row, expected)
        seen += 1
    assert seen == 3 * 2  # three metrics, two models


def _one_line_error(result, *needles):
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""


def test_bad_input_is_one_line_and_exit_2(cli, digits_runs, source_run, tmp_path):
    ckpt = str(digits_runs["erm"])
    _one_line_error(cli("attack", "--method", "fgsn", "--ckpt", ckpt), "fgsn", "did you mean 'fgsm'")
    _one_line_error(cli("attack", "--epsilon", "4,-1", "--ckpt", ckpt), "epsilon", "at least 0")
    _one_line_error(cli("attack", "--method", "ifgsm", "--steps", "0", "--ckpt", ckpt), "steps", "at least 1")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    _one_line_error(cli("attack", "--ckpt", garbage), "garbage.pt")
    _one_line_error(cli("attack", "--ckpt", tmp_path / "missing.pt"), "does not exist")
    _one_line_error(cli("attack", "--ckpt", ckpt, "--source-ckpt", garbage), "garbage.pt")

    # A black-box pair whose models predict different label sets (a 5-class model of another dataset).
    payload = load_checkpoint(source_run / "best.pt")
    payload.pop("path")
    payload["dataset"] = {"name": "other-digits", "num_classes": 5, "pixel_levels": 255}
    payload["model"] = dict(payload["model"], num_classes=5)
    other = tmp_path / "other.pt"
    save_checkpoint(payload, other)
    _one_line_error(cli("attack", "--ckpt", ckpt, "--source-ckpt", other), "different datasets")
    _one_line_error(cli("attack", "--ckpt", ckpt, "--source-ckpt", other, "--dataset", "digits"),
                    "black-box source", "5 classes")


def test_non_image_dataset_is_refused(cli, digits_runs):
    """Tables have no pixel scale: ε in pixel levels and clipping to [0, 1] would mean nothing there."""
    from dataclasses import replace

    from mixup_cli.data import DATASETS, register_dataset

    if "digits-as-features" not in DATASETS:
        register_dataset(replace(get_dataset("digits"), name="digits-as-features", pixel_levels=None))
    result = cli("attack", "--ckpt", digits_runs["erm"], "--dataset", "digits-as-features")
    _one_line_error(result, "not images")
