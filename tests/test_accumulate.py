"""Gradient accumulation (`--accumulate N`) and the ImageNet recipe's optimizer (§3.1, Goyal et al. 2017).

N micro-batches of B make the update one batch of N*B makes: the same examples, augmentation, lambda
and partners (mixed over the whole batch), the gradients summed to its mean-loss gradient, the lr of
its global batch. The MLP has no BatchNorm (whose statistics would see each micro-batch alone), so
the weights after a few steps agree to float rounding. `weight_decay_exclude bn-bias` leaves
BatchNorm's and every bias parameter undecayed, in a second parameter group that resumes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_inprocess
from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.optim import build_optimizer, peak_learning_rate, split_decay
from mixup_cli.trainer import Interrupted, TrainCallbacks, train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Iris: 120 training rows, an MLP without BatchNorm or dropout; one epoch of a few steps.
IRIS = ["--dataset", "iris", "--model", "mlp", "--epochs", "1", "--schedule", "constant", "--lr", "0.1",
        "--momentum", "0.9", "--weight-decay", "1e-3", "--save-every", "1"]


def weights(out) -> dict:
    return torch.load(out / "last.pt", weights_only=True)["state_dict"]


def momentum(out) -> list:
    state = torch.load(out / "last.pt", weights_only=True)["optimizer"]["state"]
    return [state[k]["momentum_buffer"] for k in sorted(state)]


def assert_same_update(large, accumulated):
    a, b = weights(large), weights(accumulated)
    assert a.keys() == b.keys()
    for key in a:  # float summation order differs: a few ulps after 3 steps
        assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), key
    for x, y in zip(momentum(large), momentum(accumulated), strict=True):
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-6)
    rows = [json.loads((out / "metrics.jsonl").read_text().splitlines()[0]) for out in (large, accumulated)]
    assert rows[0]["train_loss"] == pytest.approx(rows[1]["train_loss"], rel=1e-5)
    assert rows[0]["lr"] == rows[1]["lr"]


@pytest.mark.parametrize("mixing", [
    ["--alpha", "0"],  # ERM
    ["--alpha", "1"],  # mixup: one lambda, partners drawn over all 40 rows
    ["--alpha", "1", "--lam-per-example", "--mix-prob", "0.5", "--label-smoothing", "0.1"],
    ["--alpha", "0.4", "--mix-targets", "inputs-only", "--loss", "bce"],
    ["--alpha", "1", "--mix-pairs", "knn", "--knn-k", "5", "--input-noise", "0.05"],
])
def test_four_micro_batches_of_10_make_the_update_of_one_batch_of_40(tmp_path, mixing):
    """3 optimizer steps (120 rows / 40) with momentum and weight decay, compared on the weights and
    the momentum buffers: the accumulated run is the large-batch run."""
    large = run_inprocess("train", *IRIS, *mixing, "--batch-size", "40", "--out", tmp_path / "large", "--json")
    assert large.exit_code == 0, large.stderr
    accumulated = run_inprocess("train", *IRIS, *mixing, "--batch-size", "10", "--accumulate", "4",
                                "--out", tmp_path / "accumulated", "--json")
    assert accumulated.exit_code == 0, accumulated.stderr
    assert_same_update(tmp_path / "large", tmp_path / "accumulated")


def test_a_batch_smaller_than_the_group_is_cut_into_near_equal_micro_batches(tmp_path):
    """7 x 20 = 140 > 120 rows: the epoch is one batch of 120 (as with --batch-size 140), cut 18, 17, ..., 17,
    each micro-batch's loss weighted by its share of the rows."""
    large = run_inprocess("train", *IRIS, "--alpha", "1", "--batch-size", "140", "--out", tmp_path / "large")
    assert large.exit_code == 0, large.stderr
    accumulated = run_inprocess("train", *IRIS, "--alpha", "1", "--batch-size", "20", "--accumulate", "7",
                                "--out", tmp_path / "accumulated")
    assert accumulated.exit_code == 0, accumulated.stderr
    assert_same_update(tmp_path / "large", tmp_path / "accumulated")


def test_the_last_partial_group_is_dropped_as_the_large_batch_drops_it(tmp_path):
    """3 x 16 = 48: two steps of 48 use 96 rows; the last 24 rows (under one large batch) are dropped,
    never trained as a short group, as --batch-size 48 drops them."""
    accumulated = run_inprocess("train", *IRIS, "--batch-size", "16", "--accumulate", "3", "--out", tmp_path / "a")
    assert accumulated.exit_code == 0, accumulated.stderr
    large = run_inprocess("train", *IRIS, "--batch-size", "48", "--out", tmp_path / "b")
    assert large.exit_code == 0, large.stderr
    assert_same_update(tmp_path / "b", tmp_path / "a")

    class Steps(TrainCallbacks):
        def on_start(self, info):
            self.info = info

    seen = Steps()
    train(config(tmp_path / "c", epochs=1, batch_size=16, accumulate=3), tmp_path / "c", callbacks=seen)
    assert (seen.info["steps_per_epoch"], seen.info["global_batch"]) == (2, 48)


def test_the_lr_scales_with_the_accumulated_global_batch():
    config = resolve_config(TrainConfig, overrides={"lr": 0.1, "lr_scale_batch": 256, "batch_size": 32,
                                                    "accumulate": 4})
    assert peak_learning_rate(config, world_size=8) == pytest.approx(0.4)  # 0.1 * 32 * 4 * 8 / 256


def config(out, **overrides):
    values = {"dataset": "iris", "model": "mlp", "epochs": 2, "alpha": 1.0, "batch_size": 10, "accumulate": 2,
              "schedule": "cosine", "warmup_epochs": 0.5, "save_every": 1, "out": str(out), **overrides}
    return resolve_config(TrainConfig, None, values)


def test_an_interruption_counts_optimizer_steps_and_resumes_exactly(tmp_path):
    """6 steps of 2 x 10 per epoch: a stop after the 2nd step saves step 2 (not micro-batch 4), and the
    resumed run ends on the weights of the uninterrupted one (the lr schedule runs on steps too)."""
    whole = tmp_path / "whole"
    train(config(whole), whole)
    calls = []

    def stop_after_two_steps():
        calls.append(1)
        return len(calls) == 2

    cut = tmp_path / "cut"
    with pytest.raises(Interrupted) as stopped:
        train(config(cut), cut, should_stop=stop_after_two_steps)
    assert (stopped.value.epoch, stopped.value.step) == (0, 2)
    assert torch.load(cut / "last.pt", weights_only=True)["state"]["step"] == 2
    train(config(cut), cut, resume=True)
    for key, value in weights(whole).items():
        assert torch.equal(value, weights(cut)[key]), key


def test_accumulate_refuses_mixing_hidden_layers(cli):
    for where in (["--mix-where", "manifold"], ["--mix-where", "latent", "--mix-layer", "1"]):
        result = cli("train", "--print-config", "--accumulate", "2", *where)
        assert result.exit_code == 2 and "--accumulate splits each batch" in result.stderr, result.stderr
    # Mixing point 0 is the input: nothing inside the model to pair, so it accumulates like input mixing.
    result = cli("train", "--print-config", "--accumulate", "2", "--mix-where", "latent", "--mix-layer", "0")
    assert result.exit_code == 0, result.stderr


def test_bn_bias_leaves_batchnorm_and_biases_undecayed():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(2, 3), torch.nn.Linear(3, 3, bias=False))
    conv, bn, _, fc, last = model
    decay, no_decay = split_decay(model)
    assert [id(p) for p in decay] == [id(conv.weight), id(fc.weight), id(last.weight)]
    assert [id(p) for p in no_decay] == [id(conv.bias), id(bn.weight), id(bn.bias), id(fc.bias)]
    values = resolve_config(TrainConfig, overrides={"weight_decay": 0.1, "lr": 0.5, "momentum": 0.0,
                                                    "weight_decay_exclude": "bn-bias"})
    optimizer = build_optimizer(model, values)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no loss: only weight decay moves a parameter
    optimizer.step()
    decayed = {id(p) for p in decay}
    for p, old in zip(model.parameters(), before):
        assert torch.allclose(p, old * (1 - 0.5 * 0.1) if id(p) in decayed else old)


def test_bn_bias_trains_and_resumes_with_its_two_parameter_groups(tmp_path):
    out = tmp_path / "run"
    flags = ["--epochs", "1", "--weight-decay-exclude", "bn-bias", "--nesterov", "--batch-size", "32",
             "--accumulate", "2", "--out", out]
    assert run_inprocess("train", *flags).exit_code == 0
    groups = torch.load(out / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0] and all(g["nesterov"] for g in groups)
    resumed = run_inprocess("train", "--resume", "--out", out, "--epochs", "2", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["epochs"] == 2


def test_two_ranks_accumulating_equal_one_process_with_the_global_batch(tmp_path):
    """torchrun, 2 ranks x 2 micro-batches of 4 (no_sync on the first): ERM sees the 16 examples one
    process with batch 16 sees, and the lr scaling rule the same global batch of 16."""
    from test_distributed import torchrun

    erm = [*IRIS, "--alpha", "0", "--lr-scale-batch", "32"]
    proc = torchrun(*erm, "--batch-size", "4", "--accumulate", "2", "--out", tmp_path / "ddp", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["world_size"] == 2
    single = run_inprocess("train", *erm, "--batch-size", "16", "--out", tmp_path / "one")
    assert single.exit_code == 0, single.stderr
    assert_same_update(tmp_path / "one", tmp_path / "ddp")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("imagenet-*.yaml")), ids=lambda p: p.stem)
def test_imagenet_recipes_take_goyal_et_al_s_optimizer_and_reach_1024_by_accumulating(path):
    from mixup_cli.optim import global_batch, learning_rate

    recipe = resolve_config(TrainConfig, path)
    assert (recipe.nesterov, recipe.weight_decay_exclude, recipe.momentum, recipe.weight_decay) == (
        True, "bn-bias", 0.9, 1e-4)
    assert global_batch(recipe, world_size=8) == 1024
    header = path.read_text().split("\ndataset:")[0]
    assert "--batch-size 32 --accumulate 4" in header and "--accumulate 8" in header
    for batch_size, accumulate, world in ((32, 4, 8), (128, 8, 1)):  # the header's other ways to 1,024
        other = resolve_config(TrainConfig, path, {"batch_size": batch_size, "accumulate": accumulate})
        assert global_batch(other, world) == 1024
        for epoch in (0, 2.5, 5, 31):
            assert learning_rate(epoch, other, world) == learning_rate(epoch, recipe, 8)
