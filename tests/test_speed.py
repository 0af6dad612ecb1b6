"""Speed settings (issue 8): device defaults, channels_last, torch.compile, bf16, threads, lr scaling."""
import copy
import json

import pytest
import torch

from mixup_cli.checkpoint import load_checkpoint
from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.optim import learning_rate, peak_learning_rate
from mixup_cli.speed import resolve_speed, to_layout


def config(**overrides) -> TrainConfig:
    return resolve_config(TrainConfig, None, overrides)


def test_cpu_defaults_are_fp32_default_layout_and_no_loader_workers():
    settings = resolve_speed(config(), torch.device("cpu"), (1, 8, 8))
    assert settings.autocast_dtype is None and not settings.channels_last
    assert settings.compile_mode is None and settings.workers == 0


def test_cuda_defaults_are_channels_last_and_loader_workers(monkeypatch):
    """The CUDA branch of the defaults, checked without a GPU (bf16 support is the GPU's to say)."""
    capability = {0: (8, 0), 1: (7, 0)}  # an A100 and a V100: only the first computes bf16 natively
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: capability[device.index])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation: not asked
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    settings = resolve_speed(config(), torch.device("cuda", 0), (3, 32, 32))
    assert settings.autocast_dtype is torch.bfloat16 and settings.channels_last and settings.workers == 8
    assert resolve_speed(config(), torch.device("cuda", 1), (3, 32, 32)).autocast_dtype is None
    # tables have no image layout; explicit values win over the device's defaults
    assert not resolve_speed(config(), torch.device("cuda", 0), (4,)).channels_last
    explicit = resolve_speed(config(bf16=False, channels_last=False, workers=2), torch.device("cuda", 0), (3, 32, 32))
    assert explicit.autocast_dtype is None and not explicit.channels_last and explicit.workers == 2


def test_to_layout_makes_image_batches_channels_last_only_when_asked():
    x = torch.randn(4, 3, 8, 8)
    on = resolve_speed(config(channels_last=True), torch.device("cpu"), (3, 8, 8))
    assert to_layout(x, on).is_contiguous(memory_format=torch.channels_last)
    off = resolve_speed(config(), torch.device("cpu"), (3, 8, 8))
    assert to_layout(x, off) is x


def test_linear_scaling_rule_uses_the_global_batch_and_warms_up_from_the_unscaled_lr():
    goyal = config(lr=0.1, batch_size=128, lr_scale_batch=256, warmup_epochs=5, schedule="step", milestones=[30])
    assert peak_learning_rate(goyal, world_size=8) == pytest.approx(0.4)  # 0.1 * 1024 / 256
    assert learning_rate(0.0, goyal, world_size=8) == pytest.approx(0.1)
    assert learning_rate(2.5, goyal, world_size=8) == pytest.approx(0.25)
    assert learning_rate(5.0, goyal, world_size=8) == pytest.approx(0.4)
    assert learning_rate(30.0, goyal, world_size=8) == pytest.approx(0.04)
    plain = config(lr=0.1, warmup_epochs=5)  # no scaling: warm-up from lr/10, as before
    assert peak_learning_rate(plain, world_size=8) == 0.1 and learning_rate(0.0, plain) == pytest.approx(0.01)


def test_lr_scale_batch_sets_the_recorded_learning_rate(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--epochs", "1", "--schedule", "constant", "--lr", "0.05", "--batch-size", "32",
                 "--lr-scale-batch", "64", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["lr"] == pytest.approx(0.025)
    assert "peak lr 0.025" in result.stderr


def test_channels_last_changes_one_step_only_by_float_rounding():
    """channels_last is a memory layout: one forward and backward agree with the default layout up to
    fp32 rounding (convolutions sum in another order). Only one step is compared: trained runs drift
    apart by amounts that depend on the CPU's kernels."""
    from mixup_cli.models import build_model

    torch.manual_seed(0)
    plain = build_model("small-cnn", 10, (1, 8, 8))
    layout = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    x, y = torch.rand(32, 1, 8, 8), torch.arange(32) % 10
    outputs = []
    for model, inputs in ((plain, x), (layout, x.contiguous(memory_format=torch.channels_last))):
        logits = model(inputs)
        torch.nn.functional.cross_entropy(logits, y).backward()
        outputs.append([logits.detach()] + [p.grad for p in model.parameters()])
    tolerance = 1000 * torch.finfo(torch.float32).eps  # ~1e-4 relative: far above one step's rounding
    for a, b in zip(*outputs):
        assert torch.allclose(a, b, rtol=tolerance, atol=tolerance * a.abs().max().item())


def test_channels_last_runs_through_the_cli(cli, tmp_path):
    summary = cli("train", "--epochs", "1", "--channels-last", "--out", tmp_path / "cl", "--json").json()
    assert summary["channels_last"] is True
    assert summary["train_loss"] < 2.3  # below chance (ln 10) after one epoch


def test_compile_wraps_the_training_step_and_saves_plain_weights(cli, tmp_path, monkeypatch):
    """--compile runs the step through torch.compile. Dynamo traces the real model here; its 'eager'
    backend stands in for inductor, whose C++ build takes a minute on 2 cores (the slow test below)."""
    modes = []
    real_compile = torch.compile

    def traced_eagerly(module, mode=None, **kwargs):
        modes.append(mode)
        return real_compile(module, backend="eager")

    monkeypatch.setattr(torch, "compile", traced_eagerly)
    plain = cli("train", "--epochs", "1", "--out", tmp_path / "plain", "--json").json()
    compiled = cli("train", "--epochs", "1", "--compile", "max-autotune", "--out", tmp_path / "c", "--json").json()
    assert modes == ["max-autotune"] and compiled["compile"] == "max-autotune"
    # The eager backend calls the same kernels; one epoch keeps any rounding from growing.
    assert compiled["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-4)
    state = load_checkpoint(tmp_path / "c" / "last.pt")["state_dict"]
    assert not any("_orig_mod" in key for key in state)  # loads into an uncompiled model
    evaluated = cli("eval", "--ckpt", tmp_path / "c" / "last.pt", "--json").json()
    assert evaluated["test_error"] == pytest.approx(compiled["test_error"])


def test_latent_mixing_compiles(cli, tmp_path, monkeypatch):
    """Mixing inside the model (a mixer callable passed into forward) must survive dynamo's tracing."""
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, mode=None: real_compile(module, backend="eager"))
    result = cli("train", "--epochs", "1", "--mix-where", "manifold", "--compile", "default",
                 "--out", tmp_path / "m", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["train_loss"] < 2.3  # below chance (ln 10) after one epoch


@pytest.mark.slow
def test_compile_with_inductor(cli, tmp_path):
    """The real thing: inductor builds C++ kernels for the CPU (about a minute here)."""
    plain = cli("train", "--epochs", "1", "--out", tmp_path / "plain", "--json").json()
    compiled = cli("train", "--epochs", "1", "--compile", "default", "--out", tmp_path / "c", "--json").json()
    assert compiled["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-3)


def test_bf16_on_the_cpu_when_asked(cli, tmp_path):
    result = cli("train", "--epochs", "1", "--bf16", "--out", tmp_path / "bf16", "--json").json()
    assert result["precision"] == "bf16 autocast" and result["test_error"] < 50


def test_threads_option_sets_torch_threads(cli, tmp_path):
    try:
        result = cli("train", "--epochs", "1", "--threads", "2", "--out", tmp_path / "t", "--json").json()
        assert result["threads"] == 2
    finally:
        torch.set_num_threads(1)  # the suite runs single-threaded (conftest)


def test_cpu_runs_use_one_thread_unless_told(cli, tmp_path, monkeypatch):
    """The default run's numbers must not depend on the machine's core count (issue 14)."""
    from mixup_cli.speed import cpu_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    try:
        assert cpu_threads(None, torch.device("cpu")) == 1 and cpu_threads(3, torch.device("cpu")) == 3
        assert cli("train", "--epochs", "1", "--out", tmp_path / "t", "--json").json()["threads"] == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # an explicit environment wins, as under torchrun
        torch.set_num_threads(2)
        assert cpu_threads(None, torch.device("cpu")) == 2
    finally:
        torch.set_num_threads(1)  # the suite runs single-threaded (conftest)


def test_device_seeding_matches_torch_manual_seed():
    """seed_device_generators replaced torch.manual_seed in the step for speed: same CPU draws."""
    from mixup_cli.seeding import seed_device_generators

    torch.manual_seed(123)
    expected = torch.rand(5)
    seed_device_generators(123, torch.device("cpu"))
    assert torch.equal(torch.rand(5), expected)


def test_data_kept_in_host_memory_trains_the_same(cli, tmp_path):
    on = cli("train", "--epochs", "1", "--out", tmp_path / "on", "--json").json()
    off = cli("train", "--epochs", "1", "--no-data-on-device", "--out", tmp_path / "off", "--json").json()
    assert off["data_on_device"] is False and on["data_on_device"] is True
    assert off["train_loss"] == on["train_loss"] and off["test_loss"] == on["test_loss"]


def test_cuda_kernel_choices_autotune_by_default_and_are_repeatable_when_asked(monkeypatch):
    """configure_torch's CUDA branch, checked without a GPU (it only sets process-wide flags)."""
    from mixup_cli.speed import configure_torch

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    precision = torch.get_float32_matmul_precision()
    try:
        configure_torch(config(), torch.device("cuda", 0))
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        assert torch.get_float32_matmul_precision() == "high"
        configure_torch(config(deterministic=True), torch.device("cuda", 0))
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled() and torch.get_float32_matmul_precision() == "highest"
        assert not torch.backends.cudnn.allow_tf32  # no TF32 convolutions either
        import os
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        configure_torch(config(), torch.device("cuda", 0))  # a later run in the same process switches back
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.allow_tf32
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision(precision)
    # the CPU leaves every flag alone
    configure_torch(config(deterministic=True), torch.device("cpu"))
    assert not torch.are_deterministic_algorithms_enabled()


def test_loader_workers_default_per_device_everywhere(monkeypatch):
    """make_batches (eval, attack, corrupt-labels) and the trainer share one default for loader workers."""
    from mixup_cli.data.batches import make_batches
    from mixup_cli.speed import default_workers

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_workers(torch.device("cpu")) == 0
    assert default_workers(torch.device("cuda", 0)) == 8 and default_workers(torch.device("cuda", 0), 4) == 4
    per_sample = torch.utils.data.TensorDataset(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    assert make_batches(per_sample, 2, torch.device("cpu"), shuffle=False).loader.num_workers == 0


def test_corrupt_labels_speed_options_mean_what_trains_do(tmp_path):
    from mixup_cli.config import CorruptLabelsConfig
    from mixup_cli.corrupt_labels import train_config

    experiment = resolve_config(CorruptLabelsConfig, None, {"dataset": "digits", "model": "small-cnn"})
    assert experiment.bf16 is None and experiment.workers is None  # "pick for the device", as in train
    labels = tmp_path / "labels.pt"
    labels.touch()
    sub = train_config(experiment, 0.2, "erm", tmp_path / "run", labels)
    assert sub.bf16 is None and sub.workers is None


@pytest.mark.parametrize("flag, value, message", [
    ("--compile", "fast", "choose one of: off, default, reduce-overhead, max-autotune"),
    ("--lr-scale-batch", "0", "--lr-scale-batch must be at least 1"),
    ("--threads", "0", "--threads must be at least 1"),
    ("--workers", "-1", "--workers must be at least 0"),
])
def test_speed_options_refuse_bad_values_in_one_line(cli, tmp_path, flag, value, message):
    result = cli("train", flag, value, "--out", tmp_path / "run")
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
