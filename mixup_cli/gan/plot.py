"""The Figure 5 layout: one row per method (ERM above mixup), one column per snapshot iteration,
real data in blue under the generated samples in orange. matplotlib (Agg) is imported here only."""
from __future__ import annotations

from pathlib import Path

import numpy as np

ROW_NAMES = {"erm": "ERM GAN", "mixup": "mixup GAN"}


def plot_snapshots(path: Path, real: np.ndarray, panels: dict, methods: list[str], iterations: list[int],
                   alphas: dict, toy, title: str = "", cell_inches: float = 1.7, dpi: int = 90) -> Path:
    """`panels[(method, iteration)] = (samples n x 2, snapshot record)`; writes a PNG to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows, cols = len(methods), len(iterations)
    fig, axes = plt.subplots(rows, cols, figsize=(cell_inches * cols + 0.4, (cell_inches + 0.3) * rows + 0.3),
                             squeeze=False, dpi=dpi, layout="constrained")
    extent = np.abs(real).max() * 1.3
    for i, method in enumerate(methods):
        for j, iteration in enumerate(iterations):
            ax = axes[i][j]
            ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.6, linewidths=0, rasterized=True)
            if (method, iteration) in panels:
                samples, snap = panels[(method, iteration)]
                ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:orange", alpha=0.35, linewidths=0,
                           rasterized=True)
                # Below the panel, not on it: the grid's modes fill the whole square.
                near = f" ({snap['modes_reached']} near)" if "modes_reached" in snap else ""
                ax.set_xlabel(f"{snap['modes_covered']}/{snap['num_modes']} modes{near}, "
                              f"{100 * snap['high_quality']:.0f}% hq", fontsize=7, labelpad=2)
            ax.set_xlim(-extent, extent)
            ax.set_ylim(-extent, extent)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if i == 0:
                ax.set_title(f"{iteration:,}", fontsize=8)
            if j == 0:
                label = ROW_NAMES.get(method, method)
                if alphas.get(method, 0) > 0:
                    label += f"\n(α = {alphas[method]:g})"
                ax.set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
