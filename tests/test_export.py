"""`mixup export`: the files load with plain torch / safetensors in a process that never imports mixup_cli,
and give the outputs of the model `mixup eval` evaluates."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import THREADS_ENV
from mixup_cli.checkpoint import open_checkpoint
from mixup_cli.data import get_dataset
from mixup_cli.models import Normalized, build_model

PLAIN = {
    "torchscript": "model = torch.jit.load(sys.argv[1]); out = model(inputs)",
    "safetensors": "from safetensors.torch import load_file\n"
                   "weights = load_file(sys.argv[1]); out = {k: v for k, v in weights.items()}",
}


def plain_load(fmt, path, batch_path, result_path):
    """Load the export in a fresh interpreter with torch only (no mixup_cli on the path or imported)."""
    code = "\n".join(["import sys, torch", "inputs = torch.load(sys.argv[2])", PLAIN[fmt],
                      'assert not any(m.startswith("mixup_cli") for m in sys.modules), "mixup_cli was imported"',
                      "torch.save(out, sys.argv[3])"])
    env = {"PATH": "/usr/bin:/bin", **THREADS_ENV}
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(path), str(batch_path), str(result_path)],
                          capture_output=True, text=True, env=env, cwd=path.parent, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return torch.load(result_path)


@pytest.fixture
def batch(tmp_path):
    test = get_dataset("digits").load("test", None)
    inputs = test.to_raw(test.inputs[:64])
    path = tmp_path / "batch.pt"
    torch.save(inputs, path)
    return inputs, path


def test_torchscript_export_gives_the_eval_models_outputs_with_plain_torch(cli, digits_runs, tmp_path, batch):
    out = tmp_path / "model.pt"
    result = cli("export", "--ckpt", digits_runs["mixup"], "--format", "torchscript", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    inputs, batch_path = batch
    got = plain_load("torchscript", out, batch_path, tmp_path / "logits.pt")
    with torch.no_grad():
        expected = open_checkpoint(digits_runs["mixup"]).model(inputs)  # what `mixup eval` evaluates
    assert got.shape == (64, 10)
    torch.testing.assert_close(got, expected)
    meta = json.loads((tmp_path / "model.pt.json").read_text())
    assert meta["input_shape"] == [1, 8, 8] and meta["config"]["alpha"] == 1.0
    assert len(meta["normalization"]["mean"]) == 1


def test_safetensors_export_holds_the_weights_and_normalization(cli, digits_runs, tmp_path, batch):
    out = tmp_path / "model.safetensors"
    result = cli("export", "--ckpt", digits_runs["erm"], "--format", "safetensors", "--out", out)
    assert result.exit_code == 0, result.stderr
    weights = plain_load("safetensors", out, batch[1], tmp_path / "weights.pt")
    opened = open_checkpoint(digits_runs["erm"])
    state = opened.model.state_dict()
    assert set(weights) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(weights[key], value)
    meta = json.loads((tmp_path / "model.safetensors.json").read_text())
    assert meta["normalization"]["mean"] == pytest.approx(weights["mean"].flatten().tolist())
    # the weights, loaded into a fresh model of the architecture FILE.json names, give the eval model's outputs
    spec = meta["model"]
    net = build_model(spec["name"], spec["num_classes"], tuple(meta["input_shape"]), **spec["options"])
    rebuilt = Normalized(net, meta["normalization"]["mean"], meta["normalization"]["std"], len(meta["input_shape"]))
    rebuilt.load_state_dict(weights)
    rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch[0]), opened.model(batch[0]))


def test_export_never_overwrites_and_refuses_unknown_formats(cli, digits_runs, tmp_path):
    out = tmp_path / "model.pt"
    out.write_text("keep me")
    result = cli("export", "--ckpt", digits_runs["erm"], "--format", "torchscript", "--out", out)
    assert result.exit_code == 2 and "never overwrites" in result.stderr
    assert out.read_text() == "keep me" and not (tmp_path / "model.pt.json").exists()
    result = cli("export", "--ckpt", digits_runs["erm"], "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert result.exit_code == 2 and "torchscript, safetensors" in result.stderr
