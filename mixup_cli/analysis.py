"""How a model behaves between and around its training examples: the paper's Figures 1b and 2, and
calibration.

- `between` (Figure 2): at x = lam*x_i + (1-lam)*x_j for random training pairs, the share of
  predictions that are neither y_i nor y_j ("misses") and the norm of the input gradient of the
  loss there. mixup claims fewer misses and smaller gradients than ERM in-between.
- `calibration`: expected calibration error over equal-width confidence bins and the reliability
  curve (later work, e.g. Thulasidasan et al. 2019, found mixup calibrates better).
- `boundary` (Figure 1b): ERM and mixup trained on two moons, p(y=1|x) on a grid.

Results are plain dicts; analysis_plots.py draws them.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import method_of, open_checkpoint
from .errors import ConfigError

ECE_BINS = 15  # the usual choice since Guo et al. (2017)


def gather(dataset, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw-scale inputs and labels of `index` from a TensorSplit or any (input, label) Dataset."""
    from .data import TensorSplit

    if isinstance(dataset, TensorSplit):
        where = torch.as_tensor(index)
        return dataset.to_raw(dataset.inputs[where]), dataset.labels[where]
    items = [dataset[int(k)] for k in index]
    return torch.stack([torch.as_tensor(x).float() for x, _ in items]), torch.as_tensor([int(y) for _, y in items])


def random_pairs(n: int, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`pairs` index pairs (i, j), i != j, uniformly at random; the same for every model given the seed."""
    if n < 2:
        raise ConfigError("the between-analysis needs at least two training examples")
    rng = np.random.default_rng(seed)
    first = rng.integers(n, size=pairs)
    second = (first + rng.integers(1, n, size=pairs)) % n
    return first, second


def between(model: torch.nn.Module, inputs_a: torch.Tensor, labels_a: torch.Tensor, inputs_b: torch.Tensor,
            labels_b: torch.Tensor, lambdas: Sequence[float], batch_size: int = 256) -> dict:
    """Figure 2 for one model over the given pairs, at each lambda of `lambdas`.

    miss_percent: predictions at the mixed input in neither label of the pair, in percent.
    grad_norm: mean L2 norm (raw input scale) of the gradient with respect to the mixed input of
    the mixup loss lam*CE(f(x), y_i) + (1-lam)*CE(f(x), y_j).
    """
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    n = inputs_a.shape[0]
    misses, norms = [], []
    for lam in lambdas:
        miss_sum = torch.zeros((), device=device)
        norm_sum = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            xa, xb = inputs_a[start:start + batch_size].to(device), inputs_b[start:start + batch_size].to(device)
            ya, yb = labels_a[start:start + batch_size].to(device), labels_b[start:start + batch_size].to(device)
            x = (lam * xa + (1 - lam) * xb).requires_grad_(True)
            logits = model(x).float()
            # Summed, not averaged: in eval mode each example's gradient is its own loss's gradient.
            loss = (lam * F.cross_entropy(logits, ya, reduction="sum")
                    + (1 - lam) * F.cross_entropy(logits, yb, reduction="sum"))
            (grad,) = torch.autograd.grad(loss, x)
            prediction = logits.detach().argmax(1)
            miss_sum += ((prediction != ya) & (prediction != yb)).sum()
            norm_sum += grad.flatten(1).norm(dim=1).sum()
        misses.append(miss_sum)
        norms.append(norm_sum)
    misses_host = torch.stack(misses).tolist()  # the one host sync
    norms_host = torch.stack(norms).tolist()
    return {"lambda": [float(v) for v in lambdas], "miss_percent": [100.0 * m / n for m in misses_host],
            "grad_norm": [g / n for g in norms_host]}


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """ECE = sum over equal-width bins (lo, hi] of |accuracy - mean confidence| * share of examples.

    Returns {"ece": fraction, "bins": [{lower, upper, count, confidence, accuracy}]} (empty bins have
    count 0 and None for the means).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        raise ValueError("calibration needs at least one prediction")
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total, ece, table = confidence.size, 0.0, []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        row = {"lower": b / bins, "upper": (b + 1) / bins, "count": count, "confidence": None, "accuracy": None}
        if count:
            row["confidence"] = float(confidence[inside].mean())
            row["accuracy"] = float(correct[inside].mean())
            ece += count / total * abs(row["accuracy"] - row["confidence"])
        table.append(row)
    return {"ece": ece, "bins": table}


@torch.no_grad()
def calibration(model: torch.nn.Module, batches, bins: int = ECE_BINS) -> dict:
    """Calibration of `model` over `batches` of (inputs, labels): ECE (percent), reliability bins,
    accuracy, mean confidence and negative log-likelihood."""
    model.eval()
    confidences, corrects, nll, n = [], [], 0.0, 0
    for inputs, labels in batches:
        logits = model(inputs).float()
        probs = logits.softmax(1)
        top, prediction = probs.max(1)
        confidences.append(top)
        corrects.append(prediction == labels)
        nll += F.cross_entropy(logits, labels, reduction="sum")
        n += len(labels)
    confidence = torch.cat(confidences).cpu().numpy()
    correct = torch.cat(corrects).cpu().numpy()
    result = expected_calibration_error(confidence, correct, bins)
    return {"ece_percent": 100.0 * result["ece"], "bins": bins, "reliability": result["bins"], "n": n,
            "accuracy_percent": 100.0 * float(correct.mean()), "mean_confidence_percent": 100.0 * float(confidence.mean()),
            "nll": float(nll) / n}


# ---------------------------------------------------------------------------------------------
# Figure 1b: decision boundaries of ERM and mixup on a two-dimensional toy problem.

def two_moons(samples: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import make_moons

    points, labels = make_moons(n_samples=samples, noise=noise, random_state=seed)
    return torch.as_tensor(points, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long)


def toy_network(hidden: int = 64) -> torch.nn.Module:
    """A fully connected net with three hidden ReLU layers, as in the paper's toy experiments."""
    from torch import nn

    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def train_toy(points: torch.Tensor, labels: torch.Tensor, alpha: float, steps: int, seed: int,
              batch_size: int = 64, lr: float = 0.01) -> torch.nn.Module:
    """Train the toy net with Adam through the same mixing interface as `mixup train` (build_mixer)."""
    from .config import TrainConfig
    from .mixing import build_mixer
    from .seeding import MIX, MODEL, ORDER, derive_seed

    torch.manual_seed(derive_seed(seed, 0, 0, MODEL))
    model = toy_network()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    mixer = build_mixer(TrainConfig())  # the default transform: input mixup with random pairs
    generator = torch.Generator()
    for step in range(steps):
        generator.manual_seed(derive_seed(seed, 0, step, ORDER))
        index = torch.randint(len(labels), (batch_size,), generator=generator)
        generator.manual_seed(derive_seed(seed, 0, step, MIX))
        batch = mixer(points[index], labels[index], alpha, np.random.default_rng(derive_seed(seed, 0, step, MIX)),
                      generator)
        loss = batch.loss(batch.forward(model))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def boundary(alphas: Sequence[float] = (0.0, 1.0), samples: int = 200, noise: float = 0.15, steps: int = 2000,
             seed: int = 0, resolution: int = 150) -> dict:
    """Train one toy net per alpha on the same two moons; p(y=1|x) of each on a grid around the data."""
    points, labels = two_moons(samples, noise, seed)
    low, high = points.min(0).values - 0.5, points.max(0).values + 0.5
    xs = torch.linspace(float(low[0]), float(high[0]), resolution)
    ys = torch.linspace(float(low[1]), float(high[1]), resolution)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).reshape(-1, 2)
    models = []
    for alpha in alphas:
        with torch.enable_grad():
            net = train_toy(points, labels, alpha, steps, seed)
        p1 = net(grid).softmax(1)[:, 1].reshape(resolution, resolution)
        train_error = 100.0 * float((net(points).argmax(1) != labels).float().mean())
        models.append({"alpha": float(alpha), "method": method_of({"alpha": alpha}), "p1": p1.numpy(),
                       "train_error_percent": train_error})
    return {"points": points.numpy(), "labels": labels.numpy(), "extent": [float(low[0]), float(high[0]),
            float(low[1]), float(high[1])], "models": models, "samples": samples, "noise": noise,
            "steps": steps, "seed": seed}


def parse_lambdas(text: Optional[str]) -> list[float]:
    values = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"--lambdas must be numbers in [0, 1] separated by commas, got {part!r}") from None
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"--lambdas values must lie in [0, 1], got {value}")
        values.append(value)
    if not values:
        raise ConfigError("--lambdas needs at least one value in [0, 1], e.g. 0.5,0.75,1")
    return values


# ---------------------------------------------------------------------------------------------
# The same analyses on saved checkpoints (what `mixup eval --between/--calibration` runs).

def between_checkpoints(paths: Sequence[str], device: str = "auto", data_dir: Optional[str] = None,
                        pairs: int = 1000, lambdas: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                        seed: int = 0, batch_size: int = 256) -> dict:
    """Figure 2 for several checkpoints of one dataset, all on the same random training pairs."""
    from .devices import resolve_device

    torch_device = resolve_device(device)
    loaded = [open_checkpoint(str(p), torch_device) for p in paths]
    datasets = sorted({opened.spec.name for opened in loaded})
    if len(datasets) > 1:
        raise ConfigError(f"--between compares checkpoints of one dataset, got {', '.join(datasets)}")
    spec, config = loaded[0].spec, loaded[0].config
    train_set = spec.load("train", data_dir or config.get("data_dir"))
    first, second = random_pairs(len(train_set), pairs, seed)
    xa, ya = gather(train_set, first)
    xb, yb = gather(train_set, second)
    models = []
    for opened in loaded:
        models.append({**opened.info, **between(opened.model, xa, ya, xb, yb, lambdas, batch_size)})
    return {"dataset": spec.name, "pairs": pairs, "seed": seed, "lambda": [float(v) for v in lambdas],
            "models": models}


def calibration_checkpoint(path: str, device: str = "auto", data_dir: Optional[str] = None,
                           bins: int = ECE_BINS, batch_size: int = 512) -> dict:
    """Calibration of a checkpoint on its dataset's test split."""
    from .data.batches import make_batches

    opened = open_checkpoint(str(path), device)
    test_set = opened.spec.load("test", data_dir or opened.config.get("data_dir"))
    batches = make_batches(test_set, batch_size, opened.device, shuffle=False)
    return {**opened.info, **calibration(opened.model, batches, bins)}
