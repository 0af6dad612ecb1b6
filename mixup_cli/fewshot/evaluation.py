"""`evaluate_fewshot`: a few-shot checkpoint's N-way K-shot accuracy on its split's novel classes.

The checkpoint is opened the one way checkpoints are opened (checkpoint.load_checkpoint, which
takes a run directory too: its best.pt, the best validation epoch); its saved config says which
dataset, split and per-class subset it was trained on, so the novel images are the same for every
run of a split, and the episodes (seeded by `episode_seed` alone) are the same for every checkpoint.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..checkpoint import load_checkpoint
from ..config import resolve_config
from ..config.fewshot import FewShotConfig, FewShotEvalConfig
from ..data import get_dataset
from ..devices import resolve_device
from ..errors import ConfigError
from ..speed import cpu_threads
from .episodes import check_episode_shape, evaluate_episodes, extract_features
from .network import FewShotNet
from .splits import ClassSplit, pooled_images, role_images


def open_fewshot(path, device: torch.device, data_dir: Optional[str] = None) -> tuple[FewShotNet, FewShotConfig, dict]:
    """(the network in eval mode on `device`, the run's config, the checkpoint payload); `data_dir`
    replaces the run's dataset folder."""
    payload = load_checkpoint(path)
    if "fewshot" not in payload:
        raise ConfigError(f"checkpoint '{payload['path']}' is not a few-shot backbone; pass a run of mixup fewshot "
                          f"train (mixup eval evaluates the others)")
    config = resolve_config(FewShotConfig, base=payload["config"], overrides={"data_dir": data_dir})
    model, spec = payload["model"], get_dataset(config.dataset)
    net = FewShotNet(model["name"], model["num_classes"], tuple(model["input_shape"]), model["mean"], model["std"],
                     payload["fewshot"]["cosine_scale"])
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ConfigError(f"checkpoint '{payload['path']}' does not match its backbone '{model['name']}': "
                          f"{str(exc).splitlines()[0][:160]}") from None
    if spec.num_classes != payload["dataset"]["num_classes"]:
        raise ConfigError(f"checkpoint '{payload['path']}' was trained on {payload['dataset']['num_classes']} "
                          f"classes of '{spec.name}', which now has {spec.num_classes}")
    return net.to(device).eval(), config, payload


def evaluate_fewshot(path, options: FewShotEvalConfig, on_shot=None) -> dict:
    """Accuracy (mean ± 95 % CI over `options.episodes` episodes) for each of `options.shots`;
    `on_shot(shots, result)` after each."""
    device = resolve_device(options.device)
    torch.set_num_threads(cpu_threads(options.threads, device))
    net, config, payload = open_fewshot(path, device, options.data_dir)
    split = ClassSplit(**{role: tuple(c) for role, c in payload["fewshot"]["split"].items()})
    pool = pooled_images(get_dataset(config.dataset), config.data_dir)
    novel = role_images(pool, split.novel, payload["fewshot"]["per_class"], payload["fewshot"]["subset_seed"])
    sizes = torch.bincount(novel.labels, minlength=len(split.novel)).tolist()
    for shots in options.shots:  # refused before any feature is computed
        check_episode_shape(options.ways, shots, options.queries, sizes)
    features = extract_features(net, novel, device, options.eval_batch_size)
    results = []
    for shots in options.shots:
        result = evaluate_episodes(features, novel.labels, options.ways, shots, options.queries, options.episodes,
                                   options.episode_seed, options.classifier)
        results.append(result)
        if on_shot is not None:
            on_shot(shots, result)
    return {"ckpt": payload["path"], "dataset": config.dataset, "model": config.model, "method": config.method,
            "seed": config.seed, "epoch": payload["epoch"], "novel_classes": len(split.novel),
            "novel_images": len(novel), "episode_seed": options.episode_seed, "results": results}


def accuracy_of(report: dict, shots: int) -> Optional[dict]:
    return next((r for r in report["results"] if r["shots"] == shots), None)


def unpaired_shots(reports: list[dict]) -> list[int]:
    """The shot counts whose episodes differ between `reports`: their checkpoints hold different novel
    images (another dataset, split or --per-class), so the same seed could not give them the same episodes."""
    digests: dict[int, set] = {}
    for report in reports:
        for r in report["results"]:
            digests.setdefault(r["shots"], set()).add(r["episodes_digest"])
    return [shots for shots, seen in digests.items() if len(seen) > 1]
