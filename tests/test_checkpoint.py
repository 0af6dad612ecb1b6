"""Checkpoints: complete, atomic, and never a way to run code."""
import os
import pickle

import pytest
import torch

import mixup_cli
from mixup_cli.checkpoint import load_checkpoint, save_checkpoint
from mixup_cli.errors import ConfigError


def test_round_trip_rebuilds_the_model_from_the_file_alone(digits_runs):
    payload = load_checkpoint(digits_runs["mixup"] / "best.pt")
    assert payload["model"]["name"] == "small-cnn" and payload["dataset"]["name"] == "digits"
    assert payload["config"]["alpha"] == 1.0 and payload["epoch"] >= 1
    model = mixup_cli.load_model(digits_runs["mixup"] / "best.pt")
    assert not model.training
    test = mixup_cli.load_dataset("digits", "test")
    x, y = test[0]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0  # raw-scale inputs, the model normalizes
    logits = model(x[None])
    assert logits.shape == (1, 10)
    # same weights as a model built by hand and loaded from the state dict
    net = mixup_cli.build_model("small-cnn", 10, (1, 8, 8))
    from mixup_cli.models import Normalized

    manual = Normalized(net, payload["model"]["mean"], payload["model"]["std"], 3)
    manual.load_state_dict(payload["state_dict"])
    manual.eval()
    torch.testing.assert_close(manual(x[None]), logits)


def test_a_run_directory_loads_its_best_checkpoint(digits_runs):
    assert load_checkpoint(digits_runs["erm"])["path"].endswith("best.pt")


def test_open_checkpoint_is_the_one_way_to_evaluate_a_run(digits_runs):
    from mixup_cli.checkpoint import method_of, open_checkpoint

    for method in ("erm", "mixup"):
        opened = open_checkpoint(digits_runs[method], "cpu")  # a run directory means its best.pt
        assert opened.path.endswith("best.pt") and not opened.model.training
        assert opened.spec.name == "digits" and opened.device == torch.device("cpu")
        assert opened.payload["method"] == method  # written by the trainer
        assert opened.info == {"ckpt": opened.path, "name": digits_runs[method].name, "dataset": "digits",
                               "model": "small-cnn", "method": method, "alpha": opened.config["alpha"],
                               "epoch": opened.payload["epoch"]}
        # Checkpoints written before the method was saved: the same name from alpha.
        older = {key: value for key, value in opened.payload.items() if key != "method"}
        assert method_of(older) == method_of(older["config"]) == method
    assert method_of({"alpha": 0.0}) == "erm" and method_of({"alpha": 0.2}) == "mixup"


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + os.environ["EVIL_MARKER"],))


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path, cli, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    evil = tmp_path / "evil.pt"
    torch.save({"format": "mixup-cli-checkpoint", "version": 1, "payload": Evil()}, evil)
    assert not marker.exists()
    with pytest.raises(ConfigError, match="not loaded for safety"):
        load_checkpoint(evil)
    result = cli("eval", "--ckpt", evil)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    with pytest.raises(ConfigError):
        mixup_cli.load_model(evil)
    assert not marker.exists()
    # a plain pickle (not a torch archive) is refused before anything is unpickled
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ConfigError, match="not a mixup checkpoint"):
        load_checkpoint(raw)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign"])
def test_damaged_files_give_one_clear_error(tmp_path, digits_runs, cli, damage):
    path = tmp_path / "bad.pt"
    data = (digits_runs["erm"] / "last.pt").read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(3)}, path)  # a torch file, but not ours
    result = cli("eval", "--ckpt", path)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "bad.pt" in lines[0]


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, path)
    before = path.read_bytes()

    def broken_save(obj, handle, *a, **k):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    from mixup_cli.errors import RunError

    with pytest.raises(RunError, match="No space left"):
        save_checkpoint({"epoch": 2}, path)
    assert path.read_bytes() == before  # the previous checkpoint survives
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_public_api():
    import numpy as np

    assert {"load_model", "load_dataset", "build_model", "mixup"} <= set(mixup_cli.__all__)
    train = mixup_cli.load_dataset("digits", "train")
    assert len(train) == 1437 and len(mixup_cli.load_dataset("digits", "test")) == 360
    x = torch.stack([train[i][0] for i in range(8)])
    y = torch.tensor([int(train[i][1]) for i in range(8)])
    batch = mixup_cli.mixup(x, y, alpha=1.0, rng=np.random.default_rng(0))
    assert batch.inputs.shape == x.shape


def test_digits_normalization_matches_its_training_split():
    train = mixup_cli.load_dataset("digits", "train")
    x = train.to_raw(train.inputs)
    spec = mixup_cli.get_dataset("digits")
    assert abs(float(x.mean()) - spec.mean[0]) < 1e-3 and abs(float(x.std()) - spec.std[0]) < 1e-3
