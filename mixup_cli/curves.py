"""Training curves over epochs (the paper's Figure 3b: test error of ERM and mixup as training goes).

Each run directory's metrics.jsonl holds one record per epoch. Runs whose config.yaml differ only in
the seed (and in settings that do not change the experiment: device, threads, logging, ...) form one
curve: the mean over the seeds, with a band of ± one standard deviation.
"""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError
from .seeds import mean_std, seed_runs

DEFAULT_METRICS = ("test_error", "train_loss", "lr")
# Config keys that do not change what a run computes, besides the Speed and Run panels' options.
_NOT_THE_SETTING = {"seed", "out", "device", "data_dir", "download"}
_SEED_SUFFIX = re.compile(r"(?:^|[-_.])(?:s|seed)-?\d+$")  # erm-s0, mixup_seed3; not epochs200


@dataclass
class Curve:
    label: str
    runs: list[Path]
    epochs: list[int] = field(default_factory=list)
    stats: dict[str, list[dict]] = field(default_factory=dict)  # metric -> per-epoch mean_std

    def as_dict(self) -> dict:
        return {"label": self.label, "runs": [str(r) for r in self.runs], "epochs": self.epochs,
                "metrics": {m: [{"mean": s["mean"], "std": s["std"], "n": s["n"]} for s in stats]
                            for m, stats in self.stats.items()}}


def read_metrics(run: Path) -> dict[int, dict]:
    """Epoch -> record of a run's metrics.jsonl; a repeated epoch keeps its last record (a resumed
    run replays epochs), and a torn last line (a run killed while writing) is skipped."""
    path = Path(run) / "metrics.jsonl"
    lines = path.read_text().splitlines()
    records = {}
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ConfigError(f"'{path}' line {number} is not JSON; the file is damaged") from None
        if isinstance(record, dict) and isinstance(record.get("epoch"), int):
            records[record["epoch"]] = record
    return dict(sorted(records.items()))


def expand_runs(paths: list[Path]) -> list[Path]:
    """Run directories (holding metrics.jsonl) as given, and the seed-N runs of multi-seed folders."""
    runs = []
    for path in map(Path, paths):
        if (path / "metrics.jsonl").is_file():
            runs.append(path)
        elif seeded := [run for run in seed_runs(path).values() if (run / "metrics.jsonl").is_file()]:
            runs.extend(seeded)
        else:
            raise ConfigError(f"'{path}' is neither a run directory (no metrics.jsonl) nor a folder of seed-N "
                              "runs; give the directory of a train or corrupt-labels run")
    return runs


def _setting(run: Path) -> str:
    """What identifies a run's experiment: its config without the seed and the speed/run settings."""
    path = run / "config.yaml"
    if not path.is_file():
        return f"run:{run}"  # nothing to compare: a curve of its own
    config = yaml.safe_load(path.read_text()) or {}
    ignored = _NOT_THE_SETTING | _speed_and_run_keys()
    setting = {k: v for k, v in config.items() if k not in ignored}
    if setting.get("labels"):
        setting["labels"] = _label_setting(_label_path(run, setting["labels"], config.get("out")))
    return json.dumps(setting, sort_keys=True, default=str)


def _label_path(run: Path, labels: str, out) -> Path:
    """The label file as seen from here: a relative path was relative to where the run was started, as
    its relative `out` was, so it is found from the run directory wherever `mixup plot` runs."""
    path = Path(labels)
    if path.is_absolute() or path.is_file() or not out or Path(out).is_absolute():
        return path
    found = Path(run) / os.path.relpath(path, out)
    return found if found.is_file() else path


def _label_setting(path):
    """A corrupted-label file stands for its corruption (dataset, fraction, ...) less its seed: the seeds
    of a corrupt-labels experiment train on different files of the same setting."""
    from .data.labels import load_label_file

    path = str(path)
    try:
        settings = load_label_file(path).settings()
    except (ConfigError, OSError):
        return path  # gone or unreadable: the path is all there is to compare
    settings.pop("seed")
    return settings


@functools.cache  # the same for every run of a plot
def _speed_and_run_keys() -> frozenset[str]:
    import dataclasses

    from .config.train import TrainConfig

    return frozenset({f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("panel") in ("Speed", "Run")})


def group_runs(runs: list[Path]) -> dict[str, list[Path]]:
    """Runs of the same setting together, keyed by the setting, in the order first given."""
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(_setting(run), []).append(run)
    return groups


def _name(group: list[Path]) -> str:
    names = {(run.parent.name if re.fullmatch(r"seed-\d+", run.name) else _SEED_SUFFIX.sub("", run.name)) or run.name
             for run in group}
    return " / ".join(sorted(names))


def _labels(groups: dict[str, list[Path]]) -> list[str]:
    """Each group's folder name; where two share one, the settings that tell them apart are added."""
    names = [_name(group) for group in groups.values()]
    flat = [_flatten(json.loads(key)) if not key.startswith("run:") else {"run": key[4:]} for key in groups]
    labels = []
    for i, name in enumerate(names):
        twins = [j for j, other in enumerate(names) if other == name]
        # The same keys for every twin (those on which they do not all agree): the first three, and more
        # until no two twins read alike.
        varying = sorted(k for k in {k for j in twins for k in flat[j]}
                         if len({_text(flat[j].get(k)) for j in twins}) > 1)
        shown = varying[:3]
        for key in varying[3:]:
            if len({tuple(_text(flat[j].get(k)) for k in shown) for j in twins}) == len(twins):
                break
            shown.append(key)
        text = ", ".join(f"{k}={flat[i].get(k)}" for k in shown)
        labels.append(f"{name} ({text})" if text else name)
    return labels


def _text(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _flatten(setting: dict) -> dict:
    """{'labels': {'fraction': 0.5}} -> {'fraction': 0.5}: a label file's corruption reads as its own keys."""
    flat = {}
    for key, value in setting.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return flat


def build_curves(paths: list[Path], metrics=DEFAULT_METRICS, labels: list[str] = ()) -> list[Curve]:
    """One Curve per setting, over the epochs every one of its runs has reached."""
    groups = group_runs(expand_runs(paths))
    if labels and len(labels) != len(groups):
        raise ConfigError(f"{len(labels)} --label given for {len(groups)} curves (runs that differ only in the "
                          "seed form one curve); give one per curve, in order")
    curves = []
    for label, group in zip(labels or _labels(groups), groups.values()):
        records = [read_metrics(run) for run in group]
        for run, record in zip(group, records):
            if not record:
                raise ConfigError(f"'{run / 'metrics.jsonl'}' holds no finished epoch yet; leave the run out or "
                                  "wait for its first epoch")
        epochs = sorted(set.intersection(*(set(r) for r in records)))
        curve = Curve(label, group, epochs)
        for metric in metrics:
            for run, record in zip(group, records):  # every run: a band of fewer seeds than its legend says is wrong
                _check_metric(metric, run, record)
            curve.stats[metric] = [mean_std(r[e].get(metric) for r in records) for e in epochs]
        curves.append(curve)
    return curves


def _check_metric(metric: str, run: Path, records: dict[int, dict]) -> None:
    available = sorted({k for record in records.values() for k, v in record.items()
                        if isinstance(v, (int, float)) and k != "epoch"})
    if metric not in available:
        raise ConfigError(f"metric '{metric}' is not in '{run / 'metrics.jsonl'}'; it has {', '.join(available)}")


def plot_curves(curves: list[Curve], metrics, outs: list[Path], title: str = "") -> list[str]:
    """One panel per metric, one line per curve, its seeds' ± std as a band; written to each of `outs`
    (the suffix picks the format: .png or .svg)."""
    from .analysis_plots import _pyplot, check_new_file

    for out in outs:
        check_new_file(out)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.3), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for curve in curves:
            mean = [s["mean"] for s in curve.stats[metric]]
            std = [s["std"] for s in curve.stats[metric]]
            seeds = len(curve.runs)
            line, = ax.plot(curve.epochs, mean, label=f"{curve.label} ({seeds} run{'s' * (seeds > 1)})")
            if seeds > 1:
                ax.fill_between(curve.epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                                color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set(xlabel="epoch", ylabel="%" if metric.endswith("error") else "",
               title=metric.replace("_", " ") + (" (%)" if metric.endswith("error") else ""))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=1.03)
    written = []
    for out in outs:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=90, bbox_inches="tight")
        written.append(str(out))
    plt.close(fig)
    return written
