"""Every registered model: forward/backward at a small size, its mixing points, and its parameter
count against the published figure (built on the meta device: no memory, no time)."""
from __future__ import annotations

import pytest
import torch

from mixup_cli.models import MODELS, REFERENCE_SHAPES, build_model, count_parameters, reference_parameter_count

# (parameters, relative tolerance): the figure the architecture's paper publishes, to its precision.
PUBLISHED = {
    "preact-resnet18": (11.17e6, 0.001),  # Liu (2017), 10 classes
    "wrn16-4": (2.7e6, 0.02),  # Zagoruyko & Komodakis (2016), Table 1-3
    "wrn16-8": (11.0e6, 0.01),
    "wrn22-10": (26.8e6, 0.01),
    "wrn28-10": (36.5e6, 0.002),
    "wrn28-12": (52.5e6, 0.002),
    "wrn40-4": (8.9e6, 0.01),
    "densenet-bc-100": (0.8e6, 0.05),  # Huang et al. (2017), Table 2 (k=12)
    "densenet-bc-190": (25.6e6, 0.002),  # (k=40)
    "resnet50": (25.56e6, 0.001),  # torchvision's model card / He et al. (2016)
    "resnet101": (44.55e6, 0.001),
    "resnext101-32x4d": (44.18e6, 0.001),  # Xie et al. (2017)
    "resnext101-64x4d": (83.46e6, 0.001),
    # No published count; the reference architecture's arithmetic, layer by layer:
    # conv 1*20*25+20, conv 20*20*25+20, fc 20*37*22*1000+1000, fc 1000*30+30
    "lenet": (520 + 10_020 + 16_281_000 + 30_030, 0),
    # eight conv3x3 (+bias) 9,219,328, their BN 5,504, fc 512*5*3*512+512, fc 512*30+30
    "vgg11": (9_219_328 + 5_504 + 3_932_672 + 15_390, 0),
    # two hidden layers of 128 on Iris: 4*128+128, 128*128+128, 128*3+3
    "mlp": (640 + 16_512 + 387, 0),
}


# A real CPU forward for every model under 20 M parameters and one of each heavy family; the
# others run forward and backward on the meta device (shapes and wiring, no arithmetic).
REAL_HEAVY = {"resnet50"}


def runs_for_real(name: str) -> bool:
    return name in REAL_HEAVY or reference_parameter_count(name) < 20e6



def small_shape(name: str) -> tuple[int, ...]:
    """A small input of the model's kind: 8x8 for CIFAR nets, 32x32 for ImageNet and spectrogram nets."""
    shape = REFERENCE_SHAPES[name][1]
    if len(shape) != 3:
        return shape
    c, h, w = shape
    side = 32 if h > 64 else min(h, 8)
    return (c, side, side)


def small_model(name: str, device: str = "cpu", **options):
    torch.manual_seed(0)
    num_classes = min(REFERENCE_SHAPES[name][0], 10)
    with torch.device(device):
        return build_model(name, num_classes, small_shape(name), **options), num_classes


@pytest.mark.parametrize("name", MODELS.names())
def test_forward_backward(name):
    device = "cpu" if runs_for_real(name) else "meta"
    model, num_classes = small_model(name, device)
    x = torch.randn(2, *small_shape(name), device=device)
    logits = model(x)
    assert logits.shape == (2, num_classes)
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.shape == p.shape for g, p in zip(grads, model.parameters()))
    if device == "cpu":
        assert all(torch.isfinite(g).all() for g in grads)


IMAGE_MODELS = [name for name in MODELS.names() if len(REFERENCE_SHAPES[name][1]) == 3]


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_takes_28x28_grey_images(name):
    """MNIST-family inputs (1x28x28) through every image model: 28 is not a power of two, so five
    halvings reach a side of 0 unless the model guards against it (vgg11 did not)."""
    device = "cpu" if runs_for_real(name) else "meta"
    torch.manual_seed(0)
    with torch.device(device):
        model = build_model(name, 10, (1, 28, 28))
    for k in model.mixing_points:  # every mixing point sees a well-formed tensor
        logits = model(torch.randn(2, 1, 28, 28, device=device), mix_at=k, mixer=lambda h: h.flip(0))
        assert logits.shape == (2, 10), f"point {k}"
    logits.sum().backward()


@pytest.mark.parametrize("name", MODELS.names())
def test_mixing_points(name):
    """An identity mixer at any point changes nothing; a real one changes the output; each point is
    reached exactly once per forward (on the meta device for the heavy models: wiring only)."""
    real = runs_for_real(name)
    model, _ = small_model(name, "cpu" if real else "meta")
    model.eval()
    x = torch.randn(3, *small_shape(name), device="cpu" if real else "meta")
    points = model.mixing_points
    assert points[0] == 0 and len(points) >= 2
    if not real:
        for k in points:
            calls = []
            model(x, mix_at=k, mixer=lambda h: calls.append(h.shape[0]) or h)
            assert calls == [3], f"point {k}"
        return
    with torch.no_grad():
        plain = model(x)
        for k in points:
            calls = []

            def identity(h, calls=calls):
                calls.append(h.shape[0])
                return h

            assert torch.allclose(model(x, mix_at=k, mixer=identity), plain, atol=1e-5), f"point {k}"
            assert calls == [3]
            flipped = model(x, mix_at=k, mixer=lambda h: 0.5 * h + 0.5 * h.flip(0))
            assert not torch.allclose(flipped, plain, atol=1e-6), f"mixing at point {k} had no effect"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_published(name):
    expected, tolerance = PUBLISHED[name]
    count = reference_parameter_count(name)
    assert abs(count - expected) <= tolerance * expected, f"{name}: {count:,} parameters, published {expected:,.0f}"


def test_reference_counts_use_the_reference_setting():
    assert REFERENCE_SHAPES["wrn28-10"] == (10, (3, 32, 32))
    assert REFERENCE_SHAPES["resnet50"] == (1000, (3, 224, 224))
    assert REFERENCE_SHAPES["lenet"] == (30, (1, 160, 101))
    # 100 classes add 90 * 513 parameters to the PreAct ResNet-18 head.
    with torch.device("meta"):
        assert count_parameters(build_model("preact-resnet18", 100)) - reference_parameter_count("preact-resnet18") == 90 * 513


@pytest.mark.parametrize("name, blocks", [("preact-resnet18", 8), ("wrn16-4", 6)])
def test_dropout_option_adds_one_dropout_per_block(name, blocks):
    """§3.4: one dropout layer in each block, after the ReLU between the two convolutions."""
    model, _ = small_model(name, dropout=0.3)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == blocks and all(d.p == 0.3 for d in dropouts)
    plain, _ = small_model(name)
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    # The dropout acts between the convolutions: train-mode outputs differ from draw to draw.
    model.train()
    x = torch.randn(4, *small_shape(name))
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x))


def test_unknown_option_is_refused():
    from mixup_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="no option 'depth'"):
        build_model("wrn28-10", 10, depth=40)
