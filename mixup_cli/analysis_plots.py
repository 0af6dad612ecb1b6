"""Figures of analysis.py's results (matplotlib with the Agg backend, imported only when drawing)."""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_new_file(path) -> None:
    """Plots never replace a file silently."""
    if Path(path).exists():
        raise ConfigError(f"plot file '{path}' already exists; choose another --plot or remove it")


def _save(fig, path) -> str:
    path = Path(path)
    check_new_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return str(path)


def plot_between(result: dict, path) -> str:
    """Figure 2: misses and gradient norms against lambda, one line per checkpoint."""
    plt = _pyplot()
    fig, (miss_ax, grad_ax) = plt.subplots(1, 2, figsize=(8, 3.2))
    for model in result["models"]:
        label = f"{model['name']} ({model['method']})"
        miss_ax.plot(result["lambda"], model["miss_percent"], marker="o", label=label)
        grad_ax.plot(result["lambda"], model["grad_norm"], marker="o", label=label)
    miss_ax.set(xlabel="λ", ylabel="% miss (prediction ∉ {y_i, y_j})", title="prediction errors in-between")
    grad_ax.set(xlabel="λ", ylabel="‖∇x loss‖", title="gradient norm in-between")
    miss_ax.legend(fontsize=8)
    fig.suptitle(f"{result['dataset']}: {result['pairs']} random training pairs, x = λ·x_i + (1−λ)·x_j", fontsize=9, y=1.02)
    return _save(fig, path)


def plot_reliability(results: list[dict], path) -> str:
    """Reliability diagrams side by side: accuracy per confidence bin against the diagonal."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(3.4 * len(results), 3.4), squeeze=False)
    for ax, result in zip(axes[0], results):
        rows = [r for r in result["reliability"] if r["count"]]
        width = 1.0 / result["bins"]
        ax.bar([r["lower"] for r in rows], [r["accuracy"] for r in rows], width=width, align="edge",
               edgecolor="black", color="tab:blue", label="accuracy")
        # The gap spans accuracy to mean confidence: above the bar when over-confident, inside it when under.
        ax.bar([r["lower"] for r in rows], [abs(r["confidence"] - r["accuracy"]) for r in rows],
               bottom=[min(r["confidence"], r["accuracy"]) for r in rows], width=width, align="edge",
               facecolor="none", edgecolor="tab:red", hatch="//", linewidth=0.8, label="gap to confidence")
        ax.plot([0, 1], [0, 1], "k--", linewidth=1)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
               title=f"{result['name']} ({result['method']})\nECE {result['ece_percent']:.2f}% ({result['bins']} bins)")
        ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def plot_boundary(result: dict, path) -> str:
    """Figure 1b: p(y=1|x) shading and the 0.5 contour of each model, data on top."""
    plt = _pyplot()
    models = result["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.3), squeeze=False)
    points, labels = result["points"], result["labels"]
    for ax, model in zip(axes[0], models):
        image = ax.imshow(model["p1"], origin="lower", extent=result["extent"], cmap="Blues", vmin=0, vmax=1,
                          aspect="auto")
        ax.contour(model["p1"], levels=[0.5], extent=result["extent"], colors="k", linewidths=1)
        ax.scatter(points[labels == 0, 0], points[labels == 0, 1], s=8, c="tab:green", label="class 0")
        ax.scatter(points[labels == 1, 0], points[labels == 1, 1], s=8, c="tab:orange", label="class 1")
        title = "ERM" if model["alpha"] == 0 else f"mixup (α = {model['alpha']:g})"
        ax.set(title=title, xticks=[], yticks=[])
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="p(y = 1 | x)")
    return _save(fig, path)
