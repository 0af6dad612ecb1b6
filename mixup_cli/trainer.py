"""The training loop: one loop for ERM and every mixing method, on any device.

Read top to bottom: set up (data, model, optimizer, maybe resume), then epochs of steps, each
evaluated on the test split and checkpointed. Progress goes to an optional `TrainCallbacks`;
the library prints nothing itself.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import resource
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import errors, runs
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, to_dict, validate
from .corruption import apply_label_file
from .data import get_dataset
from .data.batches import make_batches
from .devices import resolve_device
from .distributed import from_environment, rank_device
from .errors import ConfigError, RunError
from .evaluation import evaluate
from .mixing import build_mixer
from .models import Normalized, build_model, count_parameters
from .optim import build_optimizer, learning_rate, peak_learning_rate
from .seeding import MIX, MODEL, derive_seed, seed_device_generators
from .speed import compile_model, configure_torch, resolve_speed, set_layout, to_layout

# Keys a resumed run may change; any other difference from the checkpoint's config is refused.
RESUMABLE_CHANGES = ("epochs", "device", "out", "workers", "eval_batch_size", "threads", "compile",
                     "data_on_device", "on_nonfinite")


class Interrupted(errors.Interrupted):
    """Training stopped on request; last.pt holds the exact position to resume from."""

    def __init__(self, checkpoint: Path, epoch: int, step: int):
        super().__init__(f"interrupted at epoch {epoch + 1}, step {step}; state saved to {checkpoint}", checkpoint)
        self.epoch, self.step = epoch, step


class TrainCallbacks:
    """Hooks the CLI uses to draw progress. All optional."""

    def on_start(self, info: dict) -> None: ...

    def on_step(self, epoch: int, step: int, steps: int, loss: float, samples_per_second: float) -> None: ...

    def on_epoch(self, record: dict) -> None: ...


@dataclasses.dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    step: int = 0  # steps finished inside the current epoch (non-zero only after an interruption)
    loss_sum: float = 0.0  # training loss summed over the steps of the current epoch
    seconds: float = 0.0  # training seconds spent in the current epoch
    skipped: int = 0  # steps of the current epoch dropped for a non-finite loss or gradient (on_nonfinite skip)
    history: list = dataclasses.field(default_factory=list)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _build(config: TrainConfig, spec):
    torch.manual_seed(derive_seed(config.seed, 0, 0, MODEL))  # weight initialization
    options = dict(config.model_options)
    if config.dropout is not None:
        options["dropout"] = config.dropout
    net = build_model(config.model, spec.num_classes, spec.input_shape, **options)
    model = Normalized(net, list(spec.mean), list(spec.std), len(spec.input_shape))
    model_record = {"name": config.model, "num_classes": spec.num_classes, "input_shape": list(spec.input_shape),
                    "options": {k: v for k, v in options.items() if v is not None},
                    "mean": list(spec.mean), "std": list(spec.std)}
    return model, model_record


def _finite_step(loss: torch.Tensor, parameters: list, dist, device: torch.device) -> bool:
    """Whether this step's loss and gradients are all finite, agreed by every rank (one host sync)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    total = loss.detach().float()
    if grads:  # a norm is finite only when every entry is: one reduction instead of one check per tensor
        total = total + torch.nn.utils.get_total_norm(grads).float()
    return not dist.any(not math.isfinite(total.item()), device)


def check_resume_config(saved: dict, given: dict, explicit: set[str]) -> None:
    """Refuse a resume whose explicitly given settings contradict the checkpoint's."""
    differ = [k for k in sorted(explicit) if k not in RESUMABLE_CHANGES and k in saved and saved[k] != given.get(k)]
    if differ:
        detail = ", ".join(f"{k}: {saved[k]!r} in the run, {given.get(k)!r} given" for k in differ)
        raise ConfigError(f"--resume with settings that contradict the run ({detail}); drop them or start a new run")


def check_resume_epochs(saved: dict, done: int, epochs: int, run_dir) -> None:
    """A resume may add epochs, never drop them: with fewer, config.yaml and summary.json would
    contradict metrics.jsonl and last.pt, which hold the epochs already trained."""
    planned = max(int(saved.get("epochs", 0)), done)
    if epochs < planned:
        raise ConfigError(f"--resume --epochs {epochs}: the run in '{run_dir}' has finished {done} of its {planned} "
                          f"epochs; pass --epochs {planned} or more (or leave it out), or start a new run with --force")


def train(config: TrainConfig, run_dir: Optional[Path] = None, resume: bool = False, force: bool = False,
          callbacks: Optional[TrainCallbacks] = None, should_stop: Callable[[], bool] = lambda: False,
          log_every: int = 10) -> dict:
    """Train as `config` says and return the summary (also written to <run_dir>/summary.json).

    `run_dir` defaults to config.out, else runs/<dataset>-<model>-<method>-<time>. A new run refuses a
    directory that holds a run unless `force` (which replaces it); `resume` continues the run in
    `run_dir` from its last.pt. A run refused at start-up leaves no folder behind that it created.
    """
    config = validate(copy.deepcopy(config))  # a hand-built TrainConfig gets the CLI's checks; the caller's is untouched
    dist = from_environment(config.device)
    device = rank_device(resolve_device(config.device), dist)  # a missing GPU is refused before any folder is made
    wanted = run_dir if run_dir is not None else config.out
    path = dist.on_main(lambda: runs.run_path(wanted, config))  # one name for every rank: the default holds the time
    with runs.removing_new_empty_dirs(path) if dist.is_main else contextlib.nullcontext():
        dist.on_main(lambda: runs.prepare_run_dir(path, config, resume, force))
        return _train(config, path, dist, device, resume, callbacks, should_stop, log_every)


def _nonfinite_stop(problem: str, run_dir: Path, suggest_skip: bool) -> RunError:
    """The error ending a run on a non-finite loss, with the way out that exists: resuming from the
    last checkpoint when one was saved, starting again when none was."""
    if not (run_dir / runs.LAST).is_file():
        fix = "or with --on-nonfinite skip to drop such steps" if suggest_skip else "or check the data"
        return RunError(f"{problem}, before any checkpoint was saved, so there is nothing to resume; start again "
                        f"(same --out) with a lower --lr, {fix}")
    fix = (f"resume with: mixup train --resume --out {run_dir} --on-nonfinite skip (drops such steps), or "
           if suggest_skip else "check the data, or ")
    return RunError(f"{problem}; the last good checkpoint is kept in {run_dir}: {fix}start again with a lower "
                    f"--lr and --force")


def _train(config: TrainConfig, run_dir: Path, dist, device: torch.device, resume: bool,
           callbacks: Optional[TrainCallbacks], should_stop: Callable[[], bool], log_every: int) -> dict:
    callbacks = callbacks if (callbacks is not None and dist.is_main) else TrainCallbacks()
    rank_part = (dist.rank,) if dist.rank else ()  # each rank draws its own mixing, augmentation and dropout
    spec = get_dataset(config.dataset)
    if config.download:
        spec.download(config.data_dir)
    train_set = apply_label_file(spec.load("train", config.data_dir, augment=True), config.labels, spec)
    test_set = spec.load("test", config.data_dir)
    validation_set = spec.load("validation", config.data_dir) if spec.has_validation else None

    configure_torch(config, device)
    model, model_record = _build(config, spec)
    model.to(device)
    speed = resolve_speed(config, device, spec.input_shape, dist.local_world_size)
    set_layout(model, speed)  # before the optimizer, so its state (momentum) shares the layout
    optimizer = build_optimizer(model, config)
    state = TrainState()
    if resume:
        payload = load_checkpoint(run_dir / runs.LAST, map_location=device)
        check_resume_epochs(payload["config"], payload["state"]["epoch"], config.epochs, run_dir)
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        state = TrainState(**payload["state"])
        if dist.is_main:
            runs.rewrite_metrics(run_dir, state.history)

    cuda = device.type == "cuda"
    autocast_dtype = speed.autocast_dtype
    shard = {"rank": dist.rank, "world_size": dist.world_size}
    train_batches = make_batches(train_set, config.batch_size, device, shuffle=True, augment=spec.augment,
                                 seed=config.seed, workers=speed.workers, drop_last=True,
                                 on_device=speed.data_on_device, **shard)
    test_batches, validation_batches = (
        make_batches(split, config.eval_batch_size, device, shuffle=False, workers=speed.workers,
                     on_device=speed.data_on_device, **shard) if split is not None else None
        for split in (test_set, validation_set))
    # DDP averages gradients across ranks; the unwrapped `model` is what is evaluated and saved.
    step_model = model
    if dist.enabled:
        step_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    step_model = compile_model(step_model, speed)
    steps = len(train_batches)
    mixer = build_mixer(config, model=model, train_set=train_set, device=device)
    skip_nonfinite = config.on_nonfinite == "skip"
    parameters = [p for p in model.parameters() if p.requires_grad]
    buffers = list(model.buffers())  # BatchNorm's running statistics: a skipped step must not move them
    perm_generator = torch.Generator(device=device)
    if dist.is_main:  # only now that the run can start: a refusal above leaves the directory as it was
        if not resume:
            runs.clear_run(run_dir)  # the run that --force replaces
        runs.write_config(run_dir, to_dict(config))
    callbacks.on_start({"device": str(device), "parameters": count_parameters(model), "steps_per_epoch": steps,
                        "train_size": len(train_set), "test_size": len(test_set), "start_epoch": state.epoch,
                        "start_step": state.step, "run_dir": str(run_dir), "world_size": dist.world_size,
                        "global_batch": config.batch_size * dist.world_size,
                        "peak_lr": peak_learning_rate(config, dist.world_size), **speed.describe()})

    def checkpoint_payload() -> dict:
        return {"model": model_record, "dataset": {"name": spec.name, "num_classes": spec.num_classes,
                                                   "pixel_levels": spec.pixel_levels},
                "config": to_dict(config), "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                "state": dataclasses.asdict(state), "epoch": state.epoch}

    best = min((r["test_error"] for r in state.history), default=math.inf)
    trained_samples, trained_seconds = 0, 0.0
    model.train()
    for epoch in range(state.epoch, config.epochs):
        alpha = 0.0 if epoch < config.erm_warmup_epochs else config.alpha
        loss_sum = torch.tensor(state.loss_sum, device=device)
        skipped = state.skipped
        started = time.perf_counter()
        epoch_samples = 0
        batches = train_batches.epoch(epoch, state.step, with_index=mixer.needs_index)  # knn needs dataset indices
        for step, (inputs, labels, *index) in enumerate(batches, start=state.step):
            lr = learning_rate(epoch + step / steps, config, dist.world_size)
            for group in optimizer.param_groups:
                group["lr"] = lr
            seed_device_generators(derive_seed(config.seed, epoch, step, MODEL, *rank_part), device)  # dropout
            mix_seed = derive_seed(config.seed, epoch, step, MIX, *rank_part)
            perm_generator.manual_seed(mix_seed)
            rng = np.random.default_rng(mix_seed)
            batch = mixer(to_layout(inputs, speed), labels, alpha, rng, perm_generator, *index)
            kept_buffers = [b.clone() for b in buffers] if skip_nonfinite else None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_dtype is not None):
                loss = batch.loss(batch.forward(step_model).float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            done = step + 1
            if skip_nonfinite and not _finite_step(loss, parameters, dist, device):
                optimizer.zero_grad(set_to_none=True)  # the weights and the optimizer's state stay as they were
                for buffer, kept in zip(buffers, kept_buffers):
                    buffer.copy_(kept)
                skipped += 1
            else:
                optimizer.step()
                loss_sum += loss.detach()
            epoch_samples += len(labels)
            # Host-device syncs: only at logging points on CUDA, every step on the CPU (free there).
            if not cuda or done % log_every == 0 or done == steps:
                running = loss_sum.item()
                if not math.isfinite(running):
                    raise _nonfinite_stop(f"loss became {running} at epoch {epoch + 1}, step {done}", run_dir, True)
                callbacks.on_step(epoch, done, steps, running / max(done - skipped, 1),
                                  epoch_samples / max(time.perf_counter() - started, 1e-9))
            # Under torchrun a stop request is honoured at the epoch's end, where all ranks agree on it.
            if not dist.enabled and should_stop() and done < steps:
                state.step, state.loss_sum, state.skipped = done, loss_sum.item(), skipped
                state.seconds += time.perf_counter() - started
                save_checkpoint(checkpoint_payload(), run_dir / runs.LAST)
                raise Interrupted(run_dir / runs.LAST, epoch, done)
        if cuda:
            torch.cuda.synchronize(device)
        epoch_seconds = state.seconds + time.perf_counter() - started
        trained_samples += epoch_samples
        trained_seconds += time.perf_counter() - started
        if skipped == steps:
            raise _nonfinite_stop(f"every step of epoch {epoch + 1} had a non-finite loss or gradient and was "
                                  f"skipped", run_dir, False)
        # skip decisions are made jointly, so every rank skipped the same steps
        train_loss = dist.all_reduce_sum(loss_sum.clone()).item() / ((steps - skipped) * dist.world_size)
        if not math.isfinite(train_loss):
            raise _nonfinite_stop(f"loss became {train_loss} in epoch {epoch + 1}", run_dir, not skip_nonfinite)
        reduce = dist.all_reduce_sum if dist.enabled else None
        metrics = evaluate(model, test_batches, spec.num_classes, autocast_dtype, all_reduce=reduce)
        record = {"epoch": epoch + 1, "lr": learning_rate(epoch + 1, config, dist.world_size), "alpha": alpha,
                  "train_loss": train_loss, "test_loss": metrics["loss"], "test_error": metrics["top1_error"],
                  "test_top5_error": metrics["top5_error"], "epoch_seconds": epoch_seconds,
                  "samples_per_second": dist.world_size * min(steps * config.batch_size, len(train_set)) / epoch_seconds,
                  "peak_memory_mb": peak_memory_mb(device)}
        if skip_nonfinite:
            record["skipped_steps"] = skipped
        if validation_batches is not None:
            held_out = evaluate(model, validation_batches, spec.num_classes, autocast_dtype, all_reduce=reduce)
            record.update(validation_loss=held_out["loss"], validation_error=held_out["top1_error"],
                          validation_top5_error=held_out["top5_error"])
        state = TrainState(epoch=epoch + 1, history=state.history + [record])
        if dist.is_main:
            runs.append_metrics(run_dir, record)
            save_checkpoint(checkpoint_payload(), run_dir / runs.LAST)
        if record["test_error"] < best:
            best = record["test_error"]
            if dist.is_main:
                save_checkpoint(checkpoint_payload(), run_dir / runs.BEST)
        callbacks.on_epoch(record)
        if dist.any(should_stop(), device) and epoch + 1 < config.epochs:
            raise Interrupted(run_dir / runs.LAST, epoch + 1, 0)

    summary = summarize(config, state.history, run_dir, count_parameters(model), str(device),
                        trained_samples * dist.world_size, trained_seconds, peak_memory_mb(device))
    summary.update(world_size=dist.world_size, **speed.describe())
    if dist.is_main:
        runs.write_text_atomic(run_dir / runs.SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def summarize(config: TrainConfig, history: list[dict], run_dir: Path, parameters: int, device: str,
              samples: int, seconds: float, peak_mb: float) -> dict:
    last = history[-1]
    test = runs.history_statistics(history)
    summary = {
        "dataset": config.dataset, "model": config.model, "method": config.method, "alpha": config.alpha,
        "epochs": config.epochs, "test_error": last["test_error"], "best_test_error": test["best_test_error"],
        "best_epoch": test["best_epoch"], "median_last10_test_error": test["median_last10_test_error"],
        "test_top5_error": last["test_top5_error"], "test_loss": last["test_loss"], "train_loss": last["train_loss"],
    }
    if last.get("validation_error") is not None:  # datasets with a validation split (Speech Commands, Table 4)
        validation = runs.history_statistics(history, "validation")
        summary.update(validation_error=last["validation_error"], best_validation_error=validation[
            "best_validation_error"], best_validation_epoch=validation["best_validation_epoch"],
            median_last10_validation_error=validation["median_last10_validation_error"])
    summary.update({
        "seconds": sum(r["epoch_seconds"] for r in history),
        "samples_per_second": (samples / seconds) if seconds > 0 else None,
        "peak_memory_mb": peak_mb, "parameters": parameters, "device": device, "seed": config.seed,
        "run_dir": str(run_dir), "checkpoint": str(Path(run_dir) / runs.LAST),
        "best_checkpoint": str(Path(run_dir) / runs.BEST),
    })
    return summary
