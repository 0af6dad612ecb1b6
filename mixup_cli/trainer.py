"""The training loop: one loop for ERM and every mixing method, on any device.

Read as a recipe (torchtune's shape): `train` resolves the device and the run directory once;
`_Recipe.setup` runs the set-up steps (data, model, optimizer, resume, batches, the step's model,
mixing) and `_Recipe.run` the epochs, each `_train_epoch` (of `_train_step`s), `_evaluate_epoch`
on the test split and `_end_epoch` (checkpoints on their cadence, metrics, stop requests).
Progress goes to an optional `TrainCallbacks`; the library prints nothing itself.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import errors, runs
from .checkpoint import SaveCadence, link_checkpoint, load_checkpoint, repair_best, save_checkpoint
from .config import TrainConfig, to_dict, validate
from .data import get_dataset
from .data.batches import make_batches
from .data.labels import apply_label_file
from .devices import resolve_device
from .distributed import from_environment, rank_device
from .errors import ConfigError, RunError
from .evaluation import evaluate
from .logging_sinks import Sinks, open_sinks
from .mixing import build_mixer
from .models import Normalized, build_model, count_parameters
from .models.base import CompiledStages
from .optim import build_optimizer, global_batch, learning_rate, peak_learning_rate
from .seeding import MIX, MODEL, derive_seed, seed_device_generators
from .speed import compile_model, configure_torch, resolve_speed, set_layout, to_layout


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

    def on_prepare(self, what: str, done: int, total: int) -> None:
        """Progress of slow set-up work before the first step (e.g. "knn neighbours", rows done of total)."""


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

    `run_dir` defaults to config.out, else runs/<dataset>-<model>-<method>[-a<alpha>]-<date>-<time>. A new run refuses a
    directory that holds a run unless `force` (which replaces it); `resume` continues the run in
    `run_dir` from its last.pt. A run refused at start-up leaves no folder behind that it created.
    """
    wall_start = time.perf_counter()  # the summary's wall_seconds: set-up, evaluation and checkpoints too
    config = validate(copy.deepcopy(config))  # a hand-built TrainConfig gets the CLI's checks; the caller's is untouched
    dist = from_environment(config.device)
    # The device is resolved here, once (a missing GPU is refused before any folder is made); every step uses it.
    device = rank_device(resolve_device(config.device), dist)
    wanted = run_dir if run_dir is not None else config.out
    path = dist.on_main(lambda: runs.run_path(wanted, config))  # one name for every rank: the default holds the time
    # One writer per run directory: rank 0 locks it before writing anything, for the whole run.
    with runs.removing_new_empty_dirs(path) if dist.is_main else contextlib.nullcontext(), runs.DirLock() as lock:
        dist.on_main(lambda: runs.prepare_run_dir(path, config, resume, force, lock))
        recipe = _Recipe(config, path, dist, device, callbacks, should_stop, log_every, wall_start)
        recipe.setup(resume)
        return recipe.run()


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


def _with_logged_timings(history: list[dict], run_dir: Path) -> list[dict]:
    """`history` (a checkpoint's) with checkpoint_seconds filled in from metrics.jsonl where it lacks it:
    a checkpoint cannot hold the time of its own write, which was logged after the write."""
    path, logged = run_dir / runs.METRICS, {}
    lines = path.read_text().splitlines() if path.is_file() else []
    for line in lines:
        with contextlib.suppress(ValueError):  # a line cut short by a kill
            record = json.loads(line)
            if isinstance(record, dict):
                logged[record.get("epoch")] = record
    for record in history:
        seconds = logged.get(record.get("epoch"), {}).get("checkpoint_seconds")
        if "checkpoint_seconds" not in record and seconds is not None:
            record["checkpoint_seconds"] = seconds
    return history


def _compile_counts() -> tuple[int, int]:
    """(graphs dynamo has captured, frames it gave up on and ran eagerly) in this process so far.
    A frame past dynamo's recompile limit is one such: its calls silently fall back to eager."""
    from torch._dynamo.utils import counters

    frames = counters["frames"]
    return counters["stats"]["unique_graphs"], frames["total"] - frames["ok"]


class _Recipe:
    """One run: its pieces, made by the set-up steps of `setup`, and the epoch steps of `run`."""

    def __init__(self, config: TrainConfig, run_dir: Path, dist, device: torch.device,
                 callbacks: Optional[TrainCallbacks], should_stop: Callable[[], bool], log_every: int,
                 wall_start: float):
        self.config, self.run_dir, self.dist, self.device = config, run_dir, dist, device
        self.callbacks = callbacks if (callbacks is not None and dist.is_main) else TrainCallbacks()
        self.should_stop, self.log_every, self.wall_start = should_stop, log_every, wall_start
        self.rank_part = (dist.rank,) if dist.rank else ()  # each rank draws its own mixing, augmentation and dropout
        self.cadence = SaveCadence(config.save_every)
        self.trained_samples, self.trained_seconds = 0, 0.0  # this process's, for the summary's samples/s

    # ------------------------------------------------------------------ set-up

    def setup(self, resume: bool) -> None:
        self._setup_data()
        configure_torch(self.config, self.device)
        self._setup_model()
        self._setup_optimizer()
        self._resume_state(resume)
        self._setup_batches()
        self._setup_step_model()
        self._setup_mixing()
        self._start(resume)

    def _setup_data(self) -> None:
        config = self.config
        self.spec = spec = get_dataset(config.dataset)
        if config.download:
            spec.download(config.data_dir)
        self.train_set = apply_label_file(spec.load("train", config.data_dir, augment=True), config.labels, spec)
        self.test_set = spec.load("test", config.data_dir)
        self.validation_set = spec.load("validation", config.data_dir) if spec.has_validation else None

    def _setup_model(self) -> None:
        self.model, self.model_record = _build(self.config, self.spec)
        self.model.to(self.device)
        self.speed = resolve_speed(self.config, self.device, self.spec.input_shape, self.dist.local_world_size)
        set_layout(self.model, self.speed)  # before the optimizer, so its state (momentum) shares the layout

    def _setup_optimizer(self) -> None:
        self.optimizer = build_optimizer(self.model, self.config)

    def _resume_state(self, resume: bool) -> None:
        self.state = TrainState()
        if not resume:
            return
        payload = load_checkpoint(self.run_dir / runs.LAST, map_location=self.device)
        check_resume_epochs(payload["config"], payload["state"]["epoch"], self.config.epochs, self.run_dir)
        try:
            self.model.load_state_dict(payload["state_dict"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.state = TrainState(**payload["state"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a crafted or foreign last.pt
            raise ConfigError(f"checkpoint '{payload['path']}' does not fit this run ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); restore it or start "
                              f"again with --force") from None
        if self.dist.is_main:  # metrics.jsonl may run ahead of last.pt (written on a cadence): cut it back
            runs.rewrite_metrics(self.run_dir, _with_logged_timings(self.state.history, self.run_dir))
            self._repair_after_kill(payload)

    def _repair_after_kill(self, payload: dict) -> None:
        """What a SIGKILL mid-save leaves: temporary files, and best.pt behind the best epoch last.pt records."""
        runs.remove_orphans(self.run_dir)
        best_epoch = payload.get("best_epoch", runs.history_statistics(self.state.history)["best_epoch"])
        note = repair_best(self.run_dir / runs.LAST, self.run_dir / runs.BEST, payload, best_epoch)
        if note:
            print(note, file=sys.stderr)

    def _setup_batches(self) -> None:
        config, speed, device = self.config, self.speed, self.device
        shard = {"rank": self.dist.rank, "world_size": self.dist.world_size}
        # An optimizer step's whole batch (accumulate micro-batches), drawn, augmented and mixed as one: the
        # run sees what a run with a batch `accumulate` times larger sees (_accumulate_gradients cuts it).
        self.train_batches = make_batches(self.train_set, global_batch(config), device, shuffle=True,
                                          augment=self.spec.augment, seed=config.seed, workers=speed.workers,
                                          drop_last=True, on_device=speed.data_on_device, **shard)
        self.test_batches, self.validation_batches = (
            make_batches(split, config.eval_batch_size, device, shuffle=False, workers=speed.workers,
                         on_device=speed.data_on_device, **shard) if split is not None else None
            for split in (self.test_set, self.validation_set))
        self.steps = len(self.train_batches)

    def _setup_step_model(self) -> None:
        """What a training step calls. DDP averages gradients across ranks; the unwrapped `model` is
        what is evaluated and saved. Manifold mixing compiles stage by stage (models/base.py:
        CompiledStages), as a mixing point varying per batch would make one graph per point."""
        model, speed = self.model, self.speed
        stagewise = speed.compile_mode is not None and getattr(self.config, "mix_where", "input") == "manifold"
        step_model = CompiledStages(model, lambda f: compile_model(f, speed)) if stagewise else model
        self.ddp = None  # the DDP wrapper, for no_sync while accumulating
        if self.dist.enabled:
            step_model = self.ddp = torch.nn.parallel.DistributedDataParallel(
                step_model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.step_model = step_model if stagewise else compile_model(step_model, speed)
        self.compile_regions = 0 if speed.compile_mode is None else (len(model.net.stages) + 1 if stagewise else 1)
        self.compile_counts = _compile_counts() if speed.compile_mode is not None else None

    def _setup_mixing(self) -> None:
        self.mixer = build_mixer(self.config, model=self.model, train_set=self.train_set, device=self.device,
                                 on_prepare=getattr(self.callbacks, "on_prepare", None))
        self.skip_nonfinite = self.config.on_nonfinite == "skip"
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.buffers = list(self.model.buffers())  # BatchNorm's running statistics: a skipped step must not move them
        self.perm_generator = torch.Generator(device=self.device)

    def _start(self, resume: bool) -> None:
        config, dist, state = self.config, self.dist, self.state
        if dist.is_main:  # only now that the run can start: a refusal above leaves the directory as it was
            if not resume:
                runs.clear_run(self.run_dir)  # the run that --force replaces
            runs.write_config(self.run_dir, to_dict(config))
        # --log: the epochs metrics.jsonl holds now (a resume's, cut back to its checkpoint) start each sink
        self.sinks = open_sinks(config.log, self.run_dir, runs.read_metrics(self.run_dir), to_dict(config)) \
            if dist.is_main else Sinks([])
        self.callbacks.on_start({
            "device": str(self.device), "parameters": count_parameters(self.model), "steps_per_epoch": self.steps,
            "train_size": len(self.train_set), "test_size": len(self.test_set), "start_epoch": state.epoch,
            "start_step": state.step, "run_dir": str(self.run_dir), "world_size": dist.world_size,
            "global_batch": global_batch(config, dist.world_size), "accumulate": config.accumulate,
            "compile_regions": self.compile_regions,
            "peak_lr": peak_learning_rate(config, dist.world_size), **self.speed.describe()})

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict:
        self.best = min((r["test_error"] for r in self.state.history), default=math.inf)
        self.model.train()
        try:
            for epoch in range(self.state.epoch, self.config.epochs):
                trained = self._train_epoch(epoch)
                record = self._evaluate_epoch(epoch, trained)
                self._end_epoch(epoch, record)
        finally:  # an interrupted run too: every finished epoch is in the sinks' files
            self.sinks.close()
        return self._summary()

    def _train_epoch(self, epoch: int) -> dict:
        """One epoch of steps, from state.step (non-zero after an interruption); its training figures."""
        config, state = self.config, self.state
        off = getattr(config, "mixup_off_epoch", None)  # timm's: epochs (0-based) from it on are ERM
        alpha = 0.0 if epoch < config.erm_warmup_epochs or (off is not None and epoch >= off) else config.alpha
        loss_sum = torch.tensor(state.loss_sum, device=self.device)  # summed on the device: no sync per step
        skipped, samples = state.skipped, 0
        started = time.perf_counter()
        batches = self.train_batches.epoch(epoch, state.step, with_index=self.mixer.needs_index)  # knn: indices
        for step, (inputs, labels, *index) in enumerate(batches, start=state.step):
            if not self._train_step(epoch, step, alpha, inputs, labels, index, loss_sum):
                skipped += 1
            samples += len(labels)
            done = step + 1
            self._report_step(epoch, done, loss_sum, skipped, samples, started)
            # Under torchrun a stop request is honoured at the epoch's end, where all ranks agree on it.
            if not self.dist.enabled and self.should_stop() and done < self.steps:
                self._interrupt(epoch, done, loss_sum, skipped, started)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        self.trained_samples += samples
        self.trained_seconds += seconds
        return {"alpha": alpha, "train_loss": self._train_loss(epoch, loss_sum, skipped),
                "epoch_seconds": state.seconds + seconds, "skipped": skipped}

    def _train_step(self, epoch: int, step: int, alpha: float, inputs: torch.Tensor, labels: torch.Tensor,
                    index: list, loss_sum: torch.Tensor) -> bool:
        """One optimizer step, its randomness seeded by its position (a resumed run draws the same);
        False when on_nonfinite skip dropped it. Adds the step's loss to `loss_sum` in place."""
        config, device = self.config, self.device
        lr = learning_rate(epoch + step / self.steps, config, self.dist.world_size)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        seed_device_generators(derive_seed(config.seed, epoch, step, MODEL, *self.rank_part), device)  # dropout
        mix_seed = derive_seed(config.seed, epoch, step, MIX, *self.rank_part)
        self.perm_generator.manual_seed(mix_seed)
        rng = np.random.default_rng(mix_seed)
        batch = self.mixer(to_layout(inputs, self.speed), labels, alpha, rng, self.perm_generator, *index)
        kept_buffers = [b.clone() for b in self.buffers] if self.skip_nonfinite else None
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._accumulate_gradients(batch)
        if self.skip_nonfinite and not _finite_step(loss, self.parameters, self.dist, device):
            self.optimizer.zero_grad(set_to_none=True)  # the weights and the optimizer's state stay as they were
            for buffer, kept in zip(self.buffers, kept_buffers):
                buffer.copy_(kept)
            return False
        self.optimizer.step()
        loss_sum += loss  # already detached
        return True

    def _accumulate_gradients(self, batch) -> torch.Tensor:
        """Forward and backward over the step's mixed batch, in `accumulate` micro-batches; the batch's
        loss (detached). Each micro-batch's mean loss is weighted by its share of the rows, so the
        gradients sum to the whole batch's mean-loss gradient: the large batch's update, exactly (up to
        float summation order) for a model without BatchNorm, whose statistics see one micro-batch at a
        time. Under DDP only the last micro-batch's backward all-reduces (the others run in no_sync)."""
        parts = batch.micro_batches(self.config.accumulate)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                  enabled=self.speed.autocast_dtype is not None)
        total = None
        for i, (part, share) in enumerate(parts):
            last = i == len(parts) - 1
            with self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext():
                with autocast:
                    loss = part.loss(part.forward(self.step_model).float())
                (loss if share == 1.0 else loss * share).backward()
            loss = loss.detach() if share == 1.0 else loss.detach() * share
            total = loss if total is None else total + loss
        return total

    def _report_step(self, epoch: int, done: int, loss_sum: torch.Tensor, skipped: int, samples: int,
                     started: float) -> None:
        # Host-device syncs: only at logging points on CUDA, every step on the CPU (free there).
        if self.device.type == "cuda" and done % self.log_every != 0 and done != self.steps:
            return
        running = loss_sum.item()
        if not math.isfinite(running):
            raise _nonfinite_stop(f"loss became {running} at epoch {epoch + 1}, step {done}", self.run_dir, True)
        self.callbacks.on_step(epoch, done, self.steps, running / max(done - skipped, 1),
                               samples / max(time.perf_counter() - started, 1e-9))

    def _interrupt(self, epoch: int, done: int, loss_sum: torch.Tensor, skipped: int, started: float) -> None:
        """Save the exact position inside the epoch to last.pt and stop."""
        state = self.state
        state.step, state.loss_sum, state.skipped = done, loss_sum.item(), skipped
        state.seconds += time.perf_counter() - started
        save_checkpoint(self._payload(), self.run_dir / runs.LAST)
        raise Interrupted(self.run_dir / runs.LAST, epoch, done)

    def _train_loss(self, epoch: int, loss_sum: torch.Tensor, skipped: int) -> float:
        """The epoch's mean training loss over every rank's kept steps; a non-finite one ends the run."""
        if skipped == self.steps:
            raise _nonfinite_stop(f"every step of epoch {epoch + 1} had a non-finite loss or gradient and was "
                                  f"skipped", self.run_dir, False)
        # skip decisions are made jointly, so every rank skipped the same steps
        world = self.dist.world_size
        train_loss = self.dist.all_reduce_sum(loss_sum.clone()).item() / ((self.steps - skipped) * world)
        if not math.isfinite(train_loss):
            raise _nonfinite_stop(f"loss became {train_loss} in epoch {epoch + 1}", self.run_dir,
                                  not self.skip_nonfinite)
        return train_loss

    def _evaluate_epoch(self, epoch: int, trained: dict) -> dict:
        """The epoch's record: its training figures and the test (and validation) split's errors."""
        config, dist, spec, autocast_dtype = self.config, self.dist, self.spec, self.speed.autocast_dtype
        # Each rank has moved its own BatchNorm statistics on its shard since DDP last synced them; the
        # checkpoint holds rank 0's, so the all-reduced error must be rank 0's model's too.
        dist.broadcast_buffers(self.model)
        reduce = dist.all_reduce_sum if dist.enabled else None
        metrics = evaluate(self.model, self.test_batches, spec.num_classes, autocast_dtype, all_reduce=reduce)
        seconds = trained["epoch_seconds"]
        record = {"epoch": epoch + 1, "lr": learning_rate(epoch + 1, config, dist.world_size),
                  "alpha": trained["alpha"], "train_loss": trained["train_loss"], "test_loss": metrics["loss"],
                  "test_error": metrics["top1_error"], "test_top5_error": metrics["top5_error"],
                  "epoch_seconds": seconds,  # training steps only, like samples_per_second
                  "samples_per_second": dist.world_size * min(self.steps * global_batch(config), len(self.train_set))
                  / seconds, "peak_memory_mb": peak_memory_mb(self.device)}
        if self.skip_nonfinite:
            record["skipped_steps"] = trained["skipped"]
        if self.validation_batches is not None:
            held_out = evaluate(self.model, self.validation_batches, spec.num_classes, autocast_dtype,
                                all_reduce=reduce)
            record.update(validation_loss=held_out["loss"], validation_error=held_out["top1_error"],
                          validation_top5_error=held_out["top5_error"])
        return record

    def _end_epoch(self, epoch: int, record: dict) -> None:
        """Checkpoints, then the record logged with their time, then a stop request honoured."""
        self.state = TrainState(epoch=epoch + 1, history=self.state.history + [record])
        stop = self.dist.any(self.should_stop(), self.device) and epoch + 1 < self.config.epochs
        improved = record["test_error"] < self.best
        self.best = min(self.best, record["test_error"])
        # Only rank 0 writes. A checkpoint cannot hold its own write time: the record is given it after the
        # write, so last.pt's copy lacks it and metrics.jsonl's has it (a resume takes it from there).
        last_epoch = epoch + 1 == self.config.epochs
        record["checkpoint_seconds"] = self._save(last_epoch or stop, improved) if self.dist.is_main else 0.0
        if self.dist.is_main:
            runs.append_metrics(self.run_dir, record)
            self.sinks.log(record)
        self.callbacks.on_epoch(record)
        if stop:
            raise Interrupted(self.run_dir / runs.LAST, epoch + 1, 0)

    def _save(self, forced: bool, improved: bool) -> float:
        """Write last.pt when due, and best.pt on a new best test error; the seconds spent.

        A new best always writes last.pt too, and best.pt becomes a link to it (one write, not two), so
        best.pt is never ahead of the position a resume starts from: a resume replays the epochs after
        last.pt, and a best.pt from those epochs could belong to a replay that turns out otherwise."""
        if not (forced or improved or self.cadence.due(self.state.epoch)):
            return 0.0
        started = time.perf_counter()
        payload = self._payload()
        save_checkpoint(payload, self.run_dir / runs.LAST)
        if improved:
            link_checkpoint(self.run_dir / runs.LAST, self.run_dir / runs.BEST, payload)
        seconds = time.perf_counter() - started
        self.cadence.wrote(seconds)
        return seconds

    def _payload(self) -> dict:
        spec = self.spec
        return {"model": self.model_record, "dataset": {"name": spec.name, "num_classes": spec.num_classes,
                                                        "pixel_levels": spec.pixel_levels},
                "config": to_dict(self.config), "method": self.config.method, "state_dict": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "state": dataclasses.asdict(self.state),
                "epoch": self.state.epoch,  # best.pt must hold best_epoch (a resume repairs it: _repair_after_kill)
                "best_epoch": runs.history_statistics(self.state.history)["best_epoch"]}

    def _summary(self) -> dict:
        dist, device = self.dist, self.device
        summary = summarize(self.config, self.state.history, self.run_dir, count_parameters(self.model), str(device),
                            self.trained_samples * dist.world_size, self.trained_seconds, peak_memory_mb(device))
        summary.update(world_size=dist.world_size, **self.speed.describe())
        if self.compile_counts is not None:  # how many graphs compiling made, and whether any code ran eagerly
            graphs, fallbacks = (now - then for now, then in zip(_compile_counts(), self.compile_counts))
            summary.update(compile_regions=self.compile_regions, compile_graphs=graphs, compile_fallbacks=fallbacks)
        summary["wall_seconds"] = time.perf_counter() - self.wall_start
        if dist.is_main:
            runs.write_text_atomic(self.run_dir / runs.SUMMARY, json.dumps(summary, indent=2) + "\n")
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
        "seconds": sum(r["epoch_seconds"] for r in history),  # training steps, every epoch of the run
        "checkpoint_seconds": sum(r.get("checkpoint_seconds") or 0.0 for r in history),
        "samples_per_second": (samples / seconds) if seconds > 0 else None,  # this process's training throughput
        "peak_memory_mb": peak_mb, "parameters": parameters, "device": device, "seed": config.seed,
        "run_dir": str(run_dir), "checkpoint": str(Path(run_dir) / runs.LAST),
        "best_checkpoint": str(Path(run_dir) / runs.BEST),
    })
    return summary
