"""Adversarial examples against saved checkpoints: FGSM and I-FGSM, white box and black box (§3.5, Table 3).

The paper (§3.5) attacks an ERM and a mixup ImageNet model with FGSM (Goodfellow et al., 2015) and
its iterative version I-FGSM (Kurakin et al., 2017), both untargeted with the loss taken at the true
labels, at ε = 4 pixel levels; white box (examples made on the model under test) and black box
(examples made on a separately trained ERM model). `run_attack` reproduces that protocol on any
checkpoint this tool writes and returns plain data; the CLI only renders it.

Conventions fixed here so results compare with other implementations on the same checkpoints:
- the perturbation lives in raw image space [0, 1], before normalization (checkpointed models
  normalize their own input, models/base.py: Normalized);
- ε and the I-FGSM step size are given in pixel levels of the 0–255 scale (ε = 4 means 4/255),
  whatever the dataset's own quantization;
- FGSM: x' = clip_[0,1](x + ε·sign(∇ₓ CE(f(x), y)));
- I-FGSM: x'_0 = x, x'_{k+1} = clip_[0,1](clip_{x,ε}(x'_k + a·sign(∇ₓ CE(f(x'_k), y)))), k < steps,
  with a = ε/steps by default; no random start.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from .config import AttackConfig
from .errors import ConfigError
from .registry import Registry

if TYPE_CHECKING:
    import torch

    from .checkpoint import OpenedCheckpoint

# torch is imported inside the functions, so that `mixup --help` does not pay for it.

PIXEL_SCALE = 255.0  # ε is given in levels of the 0–255 scale
LIMIT_SEED = 0  # fixes which test examples --limit keeps

# (model, inputs, labels, epsilon, steps, step_size) -> adversarial inputs; epsilon and step_size
# in input units ([0, 1] for images), model in eval mode taking raw-scale inputs.
AttackFn = Callable[["torch.nn.Module", "torch.Tensor", "torch.Tensor", float, int, Optional[float]], "torch.Tensor"]
ATTACKS: Registry[AttackFn] = Registry("attack method")
# How each method is labelled in tables (the paper's spelling).
TITLES: dict[str, str] = {}


def register_attack(name: str, title: str):
    TITLES[name] = title
    return ATTACKS.register(name)


def input_gradient(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """∇ₓ of the summed cross-entropy at the true labels; the weights get no gradient.

    Summed, not averaged, so each example's gradient does not shrink with the batch size (only its
    sign is used, but a mean can underflow to exact zeros on confident float32 logits).
    `torch.autograd.grad` with the input as the only target never accumulates into `.grad` of
    the parameters, so the model is left exactly as it was.
    """
    import torch
    import torch.nn.functional as F

    with torch.enable_grad():
        x = inputs.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x).float(), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, [x])
    return grad


def project(adversarial: torch.Tensor, clean: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Back onto the L∞ ball of radius ε around the clean input, then onto the image range [0, 1]."""
    import torch

    adversarial = torch.minimum(torch.maximum(adversarial, clean - epsilon), clean + epsilon)
    return adversarial.clamp(0.0, 1.0)


@register_attack("fgsm", "FGSM")
def fgsm(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, epsilon: float,
         steps: int = 1, step_size: Optional[float] = None) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al., 2015): one step of size ε; steps/step_size unused."""
    grad = input_gradient(model, inputs, labels)
    return project(inputs + epsilon * grad.sign(), inputs, epsilon)


@register_attack("ifgsm", "I-FGSM")
def ifgsm(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, epsilon: float,
          steps: int = 10, step_size: Optional[float] = None) -> torch.Tensor:
    """Iterative FGSM (Kurakin et al., 2017, 'basic iterative method'): `steps` sign steps of size
    `step_size` (default ε/steps), each projected onto the ε-ball around x and onto [0, 1]."""
    step_size = epsilon / steps if step_size is None else step_size
    adversarial = inputs.detach().clone()
    for _ in range(steps):
        grad = input_gradient(model, adversarial, labels)
        adversarial = project(adversarial + step_size * grad.sign(), inputs, epsilon)
    return adversarial


def attack(name: str, model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, epsilon: float,
           steps: int = 10, step_size: Optional[float] = None) -> torch.Tensor:
    """Public API: adversarial versions of `inputs` (raw scale, [0, 1]); ε and step_size in [0, 1] units.

    The model is switched to eval mode for the attack (BatchNorm statistics and dropout frozen)
    and put back in the mode it was in.
    """
    fn = ATTACKS.get(name)
    was_training = model.training
    model.eval()
    try:
        return fn(model, inputs, labels, epsilon, steps, step_size).detach()
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------------
# A whole experiment.

@dataclasses.dataclass
class _Target:
    path: str
    payload: dict
    group: Optional[str] = None  # the multi-seed --ckpt directory this seed's model came from
    seed: Optional[int] = None
    opened: Optional["OpenedCheckpoint"] = None  # once the attacked dataset is known (_setup_models)

    @property
    def model(self) -> "torch.nn.Module":
        return self.opened.model


def _load(path: str, group: Optional[str] = None, seed: Optional[int] = None) -> _Target:
    from .checkpoint import load_checkpoint

    return _Target(str(path), load_checkpoint(path), group, seed)


def seed_targets(ckpts: list[str], seeds: Optional[list[int]] = None) -> list[tuple[str, Optional[str], Optional[int]]]:
    """(path, group, seed) of every model to attack: a checkpoint file or run directory as it is
    (group and seed None), and each seed-N run of a multi-seed directory (`mixup train --seeds ...
    --out DIR`), or only `seeds` of them, with the directory as its group. Touches no torch."""
    from .seeds import seed_runs

    expanded, any_group = [], False
    for ckpt in ckpts:
        runs = seed_runs(ckpt)
        if not runs:
            expanded.append((str(ckpt), None, None))
            continue
        any_group = True
        if seeds is not None:
            missing = [s for s in seeds if s not in runs]
            if missing:
                raise ConfigError(f"--seeds: '{ckpt}' holds no seed {', '.join(map(str, missing))} "
                                  f"(its seeds: {', '.join(map(str, runs))})")
            runs = {s: runs[s] for s in seeds}
        expanded += [(str(path), str(ckpt), seed) for seed, path in runs.items()]
    if seeds is not None and not any_group:
        raise ConfigError("--seeds picks seeds of a multi-seed directory (mixup train --seeds ... --out DIR), "
                          "and no --ckpt is one")
    return expanded


def _describe(payload: dict) -> str:
    return f"'{payload['path']}' ({payload['dataset']['name']}, {payload['model']['num_classes']} classes)"


def _check_compatible(payloads: list[dict], spec, role: str) -> None:
    """Every model must take the attacked dataset's inputs and predict its classes."""
    from .checkpoint import refuse_fewshot

    for payload in payloads:
        refuse_fewshot(payload)
        model = payload["model"]
        if model["num_classes"] != spec.num_classes or tuple(model["input_shape"]) != tuple(spec.input_shape):
            raise ConfigError(
                f"{role} checkpoint {_describe(payload)} does not fit dataset '{spec.name}' "
                f"({spec.num_classes} classes, input {tuple(spec.input_shape)}); attack it on its own dataset"
            )


def _subset(test_set, limit: Optional[int]):
    """The first `limit` examples of a fixed permutation of the test split (all of it when None).

    A seeded permutation rather than the first N, so that a small subset is not one class's block
    in splits stored sorted by label; the same N gives the same examples on every machine.
    """
    import torch

    from .data import TensorSplit

    n = len(test_set)
    if limit is None or limit >= n:
        return test_set, torch.arange(n)
    generator = torch.Generator().manual_seed(LIMIT_SEED)
    index = torch.randperm(n, generator=generator)[:limit].sort().values
    if isinstance(test_set, TensorSplit):
        return TensorSplit(test_set.inputs[index], test_set.labels[index], test_set.scale), index
    return torch.utils.data.Subset(test_set, index.tolist()), index


class _Tally:
    """Error counts of one (target, method, ε) cell, kept on the device until the end."""

    def __init__(self, device):
        import torch

        self.counts = torch.zeros(4, device=device)  # top-1 errors, top-5 errors, flips, clean correct

    def add(self, clean_logits: "torch.Tensor", logits: "torch.Tensor", labels: "torch.Tensor") -> None:
        import torch

        from .evaluation import topk_errors

        errors = topk_errors(logits, labels)
        clean_correct = clean_logits.argmax(1) == labels
        flipped = clean_correct & (logits.argmax(1) != labels)
        self.counts += torch.stack([errors[1].float(), errors.get(5, errors[1]).float(),
                                    flipped.sum().float(), clean_correct.sum().float()])


def run_attack(config: AttackConfig, ckpts: list[str], save_examples: Optional[str] = None,
               progress: Optional[Callable[[int, int], None]] = None, seeds: Optional[list[int]] = None) -> list[dict]:
    """Attack every checkpoint in `ckpts` with every method × ε of `config` (§3.5, Table 3).

    White box (no `config.source_ckpt`): each target is attacked with examples made on itself.
    Black box: the examples are made once on the source model and every target sees the same ones.
    A multi-seed directory in `ckpts` (`mixup train --seeds`) stands for each of its seed runs (only
    `seeds` of them when given); their rows carry `group` (the directory) and `seed`, and
    `aggregate_seeds` takes their mean ± std.
    Returns one dict per (target, method, ε), errors in percent; `flip_rate` is the percentage of
    the target's correct clean predictions that the attack turned wrong. `progress(done, total)` is
    called after each batch.
    """
    from .devices import resolve_device

    _check_paths(ckpts, save_examples)
    expanded = seed_targets(ckpts, seeds)
    _check_source(config.source_ckpt)
    targets = [_load(path, group, seed) for path, group, seed in expanded]
    source = _load(config.source_ckpt) if config.source_ckpt else None
    spec = _setup_dataset(config, targets, source)
    device = resolve_device(config.device)
    _setup_models(targets + ([source] if source else []), spec, device)
    batches, index = _setup_data(config, spec, targets, device)

    cells = [(m, e) for m in config.method for e in config.epsilon]
    tallies = {(ti, m, e): _Tally(device) for ti in range(len(targets)) for m, e in cells}
    clean = [_Tally(device) for _ in targets]
    saved = {"labels": [], "clean": [], "examples": {}} if save_examples is not None else None
    total = len(batches)
    n = 0
    for done, (inputs, labels) in enumerate(batches, start=1):
        _attack_batch(config, targets, source, cells, inputs, labels, tallies, clean, saved)
        n += len(labels)
        if progress is not None:
            progress(done, total)

    results = _results(config, targets, source, spec, cells, tallies, clean, n)
    if save_examples is not None:
        _save_examples(save_examples, saved, index, config, source, spec)
    return results


def _check_paths(ckpts: list[str], save_examples: Optional[str]) -> None:
    """Refuse before any checkpoint is read: nothing to attack, or nowhere to write the examples."""
    if not ckpts:
        raise ConfigError("no checkpoint to attack; pass --ckpt FILE (repeat for several)")
    if save_examples is not None and Path(save_examples).exists():
        raise ConfigError(f"'{save_examples}' already exists; remove it or choose another --save-examples path")
    if save_examples is not None and not Path(save_examples).parent.is_dir():
        raise ConfigError(f"folder '{Path(save_examples).parent}' of --save-examples does not exist; create it first")


def _check_source(source_ckpt: Optional[str]) -> None:
    """The black-box source is one model: a multi-seed directory is refused, naming a seed run to pass."""
    from .seeds import seed_runs

    runs = seed_runs(source_ckpt) if source_ckpt else {}
    if runs:
        raise ConfigError(f"--source-ckpt '{source_ckpt}' holds {len(runs)} seed runs; the black-box source is "
                          f"one model: pass one of them, e.g. {next(iter(runs.values()))}")


def _setup_dataset(config: AttackConfig, targets: list[_Target], source: Optional[_Target]):
    """The attacked dataset's spec: --dataset, else the one every target (and the source) was trained on."""
    from .data import get_dataset

    names = {t.payload["dataset"]["name"] for t in targets + ([source] if source else [])}
    if config.dataset is None and len(names) > 1:
        listing = "; ".join(_describe(t.payload) for t in targets + ([source] if source else []))
        raise ConfigError(f"the checkpoints were trained on different datasets ({listing}); attack models of "
                          f"one dataset together, or pass --dataset")
    spec = get_dataset(config.dataset or names.pop())
    _check_compatible([t.payload for t in targets], spec, "target")
    if source:
        _check_compatible([source.payload], spec, "black-box source")
    if spec.pixel_levels is None:
        # ε is defined in pixel levels and the examples are clipped to [0, 1]; neither means anything
        # for standardized table features, so refuse rather than report numbers on a made-up scale.
        raise ConfigError(f"dataset '{spec.name}' is not images (it has no pixel scale), and FGSM/I-FGSM are "
                          f"defined here on images in [0, 1]; attack a checkpoint trained on an image dataset")
    return spec


def _setup_models(models: list[_Target], spec, device) -> None:
    """Each checkpoint opened for evaluation on the attacked dataset: its model on the device, in eval mode."""
    from .checkpoint import open_checkpoint

    for t in models:
        t.opened = open_checkpoint(t.payload, device, spec.name)


def _setup_data(config: AttackConfig, spec, targets: list[_Target], device):
    """(batches of the attacked test examples, their indices in the test split)."""
    from .data.batches import make_batches

    data_dir = config.data_dir or targets[0].payload["config"].get("data_dir")
    test_set, index = _subset(spec.load("test", data_dir), config.limit)
    return make_batches(test_set, config.batch_size, device, shuffle=False), index


def _attack_batch(config: AttackConfig, targets: list[_Target], source: Optional[_Target], cells: list,
                  inputs: torch.Tensor, labels: torch.Tensor, tallies: dict, clean: list,
                  saved: Optional[dict]) -> None:
    """Every (method, ε) cell on one batch, tallied per target; with `saved`, the examples are kept there."""
    import torch

    with torch.no_grad():
        clean_logits = [t.model(inputs).float() for t in targets]
    for ti, logits in enumerate(clean_logits):
        clean[ti].add(logits, logits, labels)
    step_raw = None if config.step_size is None else config.step_size / PIXEL_SCALE
    for method, eps in cells:
        eps_raw = eps / PIXEL_SCALE
        shared = (attack(method, source.model, inputs, labels, eps_raw, config.steps, step_raw)
                  if source else None)
        for ti, target in enumerate(targets):
            adversarial = shared if source else attack(method, target.model, inputs, labels, eps_raw,
                                                       config.steps, step_raw)
            with torch.no_grad():
                tallies[(ti, method, eps)].add(clean_logits[ti], target.model(adversarial).float(), labels)
            # Black box: every target saw the same examples, so they are kept once.
            if saved is not None and (ti == 0 or not source):
                key = (method, eps, None if source else target.path)
                saved["examples"].setdefault(key, []).append(adversarial.cpu())
    if saved is not None:
        saved["labels"].append(labels.cpu())
        saved["clean"].append(inputs.cpu())


def _rate(count: float, total: float) -> Optional[float]:
    return 100.0 * count / total if total else None


def _results(config, targets, source, spec, cells, tallies, clean, n) -> list[dict]:
    import torch

    # One host sync for all the counts of the run.
    clean_counts = torch.stack([c.counts for c in clean]).tolist()
    counts = {key: tally.counts for key, tally in tallies.items()}
    keys = list(counts)
    values = dict(zip(keys, torch.stack([counts[k] for k in keys]).tolist()))
    top5 = spec.num_classes >= 5
    results = []
    for ti, target in enumerate(targets):
        info = target.opened.info
        seeded = {"group": target.group, "seed": target.seed} if target.group is not None else {}
        clean_top1, clean_top5, _, clean_correct = clean_counts[ti]
        for method, eps in cells:
            top1_errors, top5_errors, flips, _ = values[(ti, method, eps)]
            single = method == "fgsm"
            step_size = eps if single else (config.step_size if config.step_size is not None else eps / config.steps)
            results.append({
                "ckpt": target.payload["path"],
                "source_ckpt": source.payload["path"] if source else None,
                "setting": "black-box" if source else "white-box",
                "dataset": spec.name,
                "model": info["model"],
                "train_method": info["method"],
                "alpha": info["alpha"],
                "method": method,
                "epsilon": eps,
                "epsilon_raw": eps / PIXEL_SCALE,
                "steps": 1 if single else config.steps,
                "step_size": step_size,
                "n": n,
                "clean_top1_error": _rate(clean_top1, n),
                "clean_top5_error": _rate(clean_top5, n) if top5 else None,
                "top1_error": _rate(top1_errors, n),
                "top5_error": _rate(top5_errors, n) if top5 else None,
                "flip_rate": _rate(flips, clean_correct),
                **seeded,
            })
    return results


# The figures of a result row that aggregate_seeds averages over a group's seeds.
AGGREGATED = ("clean_top1_error", "clean_top5_error", "top1_error", "top5_error", "flip_rate")


def aggregate_seeds(results: list[dict]) -> list[dict]:
    """Per multi-seed --ckpt group (rows with a `group`), per method × ε: the mean ± std over its seeds
    (seeds.mean_std: {'mean', 'std', 'n', 'values'}) of each figure of AGGREGATED; [] without groups."""
    from .seeds import mean_std

    cells: dict = {}
    for row in results:
        if row.get("group") is not None:
            cells.setdefault((row["group"], row["method"], row["epsilon"]), []).append(row)
    aggregate = []
    for (group, method, epsilon), rows in cells.items():
        first = rows[0]
        same = {key: first[key] for key in ("source_ckpt", "setting", "dataset", "model", "train_method", "alpha",
                                             "steps", "step_size", "n")}
        aggregate.append({"group": group, "method": method, "epsilon": epsilon, **same,
                          "seeds": [row["seed"] for row in rows],
                          **{key: mean_std(row[key] for row in rows) for key in AGGREGATED}})
    return aggregate


def _save_examples(path: str, saved: dict, index: torch.Tensor, config: AttackConfig, source, spec) -> None:
    """Tensors and plain data only, so the file opens with torch.load(weights_only=True).

    {'format', 'dataset', 'test_index', 'labels', 'clean', 'examples': [{'method', 'epsilon', 'ckpt'
    (white box: the model they were made on), 'source_ckpt' (black box), 'inputs'}], 'config'}.
    """
    import torch

    from .checkpoint import save_atomic

    examples = [{"method": m, "epsilon": e, "ckpt": target, "source_ckpt": source.payload["path"] if source else None,
                 "inputs": torch.cat(chunks)} for (m, e, target), chunks in saved["examples"].items()]
    payload = {"format": "mixup-cli-adversarial-examples", "dataset": spec.name, "test_index": index,
               "labels": torch.cat(saved["labels"]), "clean": torch.cat(saved["clean"]),
               "examples": examples, "config": dataclasses.asdict(config)}
    save_atomic(payload, path, "adversarial examples file")
