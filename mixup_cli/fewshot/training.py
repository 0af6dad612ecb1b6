"""Training a few-shot backbone: S2M2's Algorithm 1 (Mangla et al. 2020) and the baselines it is
compared with, in one loop over stages.

    method     stage 1 (`epochs`)                    stage 2 (s2m2 only, at most `finetune_epochs`)
    baseline   L_class                               -
    manifold   L_mm (manifold mixup, eq. 10)         -
    rotation   L_class + L_rot on rotated images     -
    s2m2       L_class + L_rot                       L_mm + 0.5 (L_class + L_rot), until validation
                                                     accuracy stops improving (`patience` epochs)

After every epoch the backbone's features of the validation classes are scored on the same seeded
episodes (episodes.py); best.pt holds the best epoch of the method's last stage (s2m2: of stage 2,
since Algorithm 1 outputs the fine-tuned backbone; stage 1 trains its `epochs` through). The run
directory is the one `mixup train` writes (runs.py: config.yaml, metrics.jsonl, last.pt, best.pt,
summary.json, its lock), and every
draw is a pure function of (seed, epoch, step), so a resume from last.pt, in either stage and
even mid-epoch, ends exactly where the uninterrupted run ends.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import sys
import time
import types
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .. import errors, runs
from ..checkpoint import link_checkpoint, load_checkpoint, repair_best, save_checkpoint
from ..config import to_dict, validate
from ..config.fewshot import FewShotConfig
from ..data import get_dataset
from ..data.batches import make_batches
from ..devices import resolve_device
from ..errors import ConfigError, RunError
from ..mixing import build_mixer
from ..models import count_parameters
from ..seeding import MIX, MODEL, derive_seed, seed_device_generators
from ..speed import configure_torch
from .episodes import check_episode_shape, evaluate_episodes, extract_features
from .network import FewShotNet, rotation_losses
from .splits import parse_split, pooled_images, role_images

FEWSHOT_RUN = runs.RunKind(
    "run", "a run", (runs.LAST, runs.CONFIG), runs.CONFIG,
    lambda c: f"fewshot-{c.dataset.replace(':', '-')[-40:]}-{c.model}-{c.method}-{time.strftime('%Y%m%d-%H%M%S')}",
    (runs.LAST, runs.BEST, runs.SUMMARY))
# Which losses each stage of each method trains with (LOSSES below); s2m2 alone has a second stage.
STAGES = {"baseline": ("class",), "manifold": ("mixup",), "rotation": ("rotation",),
          "s2m2": ("rotation", "s2m2-finetune")}
SUBSET_SEED = 0  # --per-class picks the same images in every run, so runs of a split compare


class Interrupted(errors.Interrupted):
    """Training stopped on request; last.pt holds the exact position to resume from."""


class FewShotCallbacks:
    """Hooks the CLI uses to draw progress. All optional."""

    def on_start(self, info: dict) -> None: ...

    def on_step(self, stage: int, epoch: int, step: int, steps: int, loss: float) -> None: ...

    def on_epoch(self, record: dict) -> None: ...


@dataclasses.dataclass
class FewShotState:
    stage: int = 1  # the stage being trained, 1 or 2
    epoch: int = 0  # epochs finished in this stage
    step: int = 0  # steps finished in the current epoch (non-zero only after an interruption)
    loss_sum: float = 0.0  # training loss summed over the current epoch's steps
    seconds: float = 0.0  # training seconds spent in the current epoch
    since_best: int = 0  # stage 2: epochs since its best validation accuracy
    done: bool = False
    history: list = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------------------- losses

def _class_loss(recipe: "_Recipe", inputs, labels, rng, generator) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(recipe.net(inputs), labels)


def _mixup_loss(recipe: "_Recipe", inputs, labels, rng, generator) -> torch.Tensor:
    """L_mm (eq. 10): mixing/'s manifold mixup at a random eligible layer (the input included)."""
    batch = recipe.mixer(inputs, labels, recipe.config.alpha, rng, generator)
    return batch.loss(batch.forward(recipe.net))


def _rotation_loss(recipe: "_Recipe", inputs, labels, rng, generator) -> torch.Tensor:
    class_loss, rotation_loss = rotation_losses(recipe.net, inputs, labels)
    return class_loss + rotation_loss


def _finetune_loss(recipe: "_Recipe", inputs, labels, rng, generator) -> torch.Tensor:
    """Algorithm 1's fine-tuning loss: L_mm + 0.5 (L_class + L_rot)."""
    return _mixup_loss(recipe, inputs, labels, rng, generator) + \
        0.5 * _rotation_loss(recipe, inputs, labels, rng, generator)


LOSSES = {"class": _class_loss, "mixup": _mixup_loss, "rotation": _rotation_loss, "s2m2-finetune": _finetune_loss}


# ------------------------------------------------------------------------------------- the run

def train_fewshot(config: FewShotConfig, run_dir: Optional[Path] = None, resume: bool = False,
                  force: bool = False, callbacks: Optional[FewShotCallbacks] = None,
                  should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Train as `config` says and return the summary (also in <run_dir>/summary.json). `run_dir`
    defaults to config.out, else runs/fewshot-<dataset>-<model>-<method>-<date>-<time>; `resume`
    continues the run there from last.pt; `force` replaces a run there."""
    wall_start = time.perf_counter()
    config = validate(copy.deepcopy(config))
    device = resolve_device(config.device)
    path = runs.resolve_out(FEWSHOT_RUN, run_dir if run_dir is not None else config.out, config)
    with runs.removing_new_empty_dirs(path), runs.DirLock() as lock:
        runs.prepare_run_dir(path, config, resume, force, lock, kind=FEWSHOT_RUN)
        recipe = _Recipe(config, path, device, callbacks or FewShotCallbacks(), should_stop, wall_start)
        recipe.setup(resume)
        return recipe.run()


class _Recipe:
    """One run: its pieces, made by the set-up steps of `setup`, and the stages' epochs of `run`."""

    def __init__(self, config: FewShotConfig, run_dir: Path, device: torch.device, callbacks: FewShotCallbacks,
                 should_stop: Callable[[], bool], wall_start: float):
        self.config, self.run_dir, self.device = config, run_dir, device
        self.callbacks, self.should_stop, self.wall_start = callbacks, should_stop, wall_start

    # ------------------------------------------------------------------ set-up

    def setup(self, resume: bool) -> None:
        configure_torch(self.config, self.device)
        self._setup_data()
        self._setup_model()
        self._resume_state(resume)
        self._start(resume)

    def _setup_data(self) -> None:
        config = self.config
        self.spec = spec = get_dataset(config.dataset)
        self.split = parse_split(config.split, spec.name, spec.num_classes)
        pool = pooled_images(spec, config.data_dir)
        self.base_set = role_images(pool, self.split.base, config.per_class, SUBSET_SEED)
        self.val_set = role_images(pool, self.split.val, config.per_class, SUBSET_SEED)
        # Refused before any training (and before --force clears a run), not after the first epoch.
        sizes = torch.bincount(self.val_set.labels, minlength=len(self.split.val)).tolist()
        check_episode_shape(config.val_ways, config.val_shots, config.queries, sizes, "val",
                            ("--val-ways", "--val-shots"))
        self.batches = make_batches(self.base_set, config.batch_size, self.device, shuffle=True,
                                    augment=spec.augment, seed=config.seed, drop_last=True)
        self.steps = len(self.batches)
        if self.steps == 0:
            raise ConfigError(f"the {len(self.base_set)} base images make no batch of {config.batch_size}; lower "
                              f"--batch-size")

    def _setup_model(self) -> None:
        config, spec = self.config, self.spec
        torch.manual_seed(derive_seed(config.seed, 0, 0, MODEL))  # weight initialization
        self.net = FewShotNet(config.model, len(self.split.base), spec.input_shape, list(spec.mean),
                              list(spec.std), config.cosine_scale).to(self.device)
        self.model_record = {"name": config.model, "num_classes": len(self.split.base),
                             "input_shape": list(spec.input_shape), "options": {}, "mean": list(spec.mean),
                             "std": list(spec.std)}
        # Manifold mixup through the one mixing interface (mixing/): random pairs, a random mixing point.
        self.mixer = build_mixer(types.SimpleNamespace(mix_where="manifold"), model=self.net)
        self.optimizer = self._new_optimizer()

    def _new_optimizer(self) -> torch.optim.Optimizer:
        # A fresh Adam for each stage, as the official code starts S2M2_R's fine-tuning from the rotation run.
        return torch.optim.Adam(self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)

    def _resume_state(self, resume: bool) -> None:
        self.state = FewShotState()
        if not resume:
            return
        payload = load_checkpoint(self.run_dir / runs.LAST, map_location=self.device)
        try:
            self.net.load_state_dict(payload["state_dict"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.state = FewShotState(**payload["state"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"checkpoint '{payload['path']}' does not fit this few-shot run ({type(exc).__name__}"
                              f"); restore it or start again with --force") from None
        runs.rewrite_metrics(self.run_dir, self.state.history)  # metrics.jsonl may run ahead of last.pt
        # What a SIGKILL mid-save leaves: temporary files, and best.pt behind the best epoch last.pt records.
        runs.remove_orphans(self.run_dir)
        note = repair_best(self.run_dir / runs.LAST, self.run_dir / runs.BEST, payload, payload.get("best_epoch"))
        if note:
            print(note, file=sys.stderr)

    def _start(self, resume: bool) -> None:
        if not resume:
            runs.clear_run(self.run_dir)
        runs.write_config(self.run_dir, to_dict(self.config))
        self.callbacks.on_start({
            "device": str(self.device), "parameters": count_parameters(self.net), "steps_per_epoch": self.steps,
            "base_images": len(self.base_set), "val_images": len(self.val_set), "split": self.split.describe(),
            "stage": self.state.stage, "start_epoch": self.state.epoch, "start_step": self.state.step,
            "stages": self.final_stage, "run_dir": str(self.run_dir)})

    # ------------------------------------------------------------------ the stages

    def run(self) -> dict:
        self.net.train()
        while not self.state.done:
            record = self._evaluate_epoch(self._train_epoch())
            self._end_epoch(record)
        return self._summary()

    def _epoch_index(self) -> int:
        """The epoch's number over the whole run (stage 2 continues stage 1's count): its draws' seed."""
        return self.state.epoch + (self.config.epochs if self.state.stage == 2 else 0)

    def _train_epoch(self) -> dict:
        state, config = self.state, self.config
        loss_fn = LOSSES[STAGES[config.method][state.stage - 1]]
        epoch = self._epoch_index()
        loss_sum = torch.tensor(state.loss_sum, device=self.device)
        started = time.perf_counter()
        generator = torch.Generator(device=self.device)
        for step, (inputs, labels) in enumerate(self.batches.epoch(epoch, state.step), start=state.step):
            seed_device_generators(derive_seed(config.seed, epoch, step, MODEL), self.device)  # dropout
            mix_seed = derive_seed(config.seed, epoch, step, MIX)
            generator.manual_seed(mix_seed)
            loss = loss_fn(self, inputs, labels, np.random.default_rng(mix_seed), generator)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach()
            # One host sync per step, for the progress bar and the non-finite check: small next to a
            # step of 4 x batch rotated images.
            running = loss_sum.item() / (step + 1)
            if not math.isfinite(running):
                raise RunError(f"the loss became {running} in stage {state.stage}, epoch {state.epoch + 1}, step "
                               f"{step + 1}; start again (--force) with a lower --lr")
            self.callbacks.on_step(state.stage, state.epoch, step + 1, self.steps, running)
            if self.should_stop() and step + 1 < self.steps:
                self._interrupt(step + 1, loss_sum, started)
        return {"train_loss": loss_sum.item() / self.steps, "epoch_seconds": state.seconds + time.perf_counter()
                - started}

    def _interrupt(self, done: int, loss_sum: torch.Tensor, started: float) -> None:
        state = self.state
        state.step, state.loss_sum = done, loss_sum.item()
        state.seconds += time.perf_counter() - started
        save_checkpoint(self._payload(), self.run_dir / runs.LAST)
        raise Interrupted(f"interrupted in stage {state.stage}, epoch {state.epoch + 1}, step {done}; state saved "
                          f"to {self.run_dir / runs.LAST}", self.run_dir / runs.LAST)

    def _evaluate_epoch(self, trained: dict) -> dict:
        """The epoch's record: its training loss and its validation-episode accuracy."""
        config = self.config
        features = extract_features(self.net, self.val_set, self.device, config.eval_batch_size)
        val = evaluate_episodes(features, self.val_set.labels, config.val_ways, config.val_shots, config.queries,
                                config.val_episodes, config.seed, config.classifier)
        return {"epoch": self._epoch_index() + 1, "stage": self.state.stage, "stage_epoch": self.state.epoch + 1,
                "train_loss": trained["train_loss"], "val_accuracy": val["mean"], "val_ci95": val["ci95"],
                "epoch_seconds": trained["epoch_seconds"]}

    def _end_epoch(self, record: dict) -> None:
        """Advance the schedule (stage 2's early stop), save last.pt (and best.pt), log the record."""
        config, state = self.config, self.state
        # best.pt is the checkpoint the method outputs: its last stage's best validation epoch
        # (Algorithm 1 returns the fine-tuned backbone, so s2m2's is one of stage 2's epochs).
        improved = record["stage"] == self.final_stage and \
            record["val_accuracy"] > max((r["val_accuracy"] for r in self._selectable()), default=-1.0)
        state.history = state.history + [record]
        state.epoch, state.step, state.loss_sum, state.seconds = state.epoch + 1, 0, 0.0, 0.0
        if state.stage == 2:  # s2m2's fine-tuning: its own epochs alone are compared (improved)
            state.since_best = 0 if improved else state.since_best + 1
            # An early stop ends stage 2 before --finetune-epochs; its last epoch ends it anyway.
            record["early_stop"] = state.since_best >= config.patience and state.epoch < config.finetune_epochs
            state.done = record["early_stop"] or state.epoch >= config.finetune_epochs
        elif state.epoch >= config.epochs:
            if self.final_stage == 2:
                state.stage, state.epoch = 2, 0
                self.optimizer = self._new_optimizer()
            else:
                state.done = True
        payload = self._payload()
        save_checkpoint(payload, self.run_dir / runs.LAST)
        if improved:  # best.pt is a link to this last.pt: one write, never ahead of a resume's position
            link_checkpoint(self.run_dir / runs.LAST, self.run_dir / runs.BEST, payload)
        runs.append_metrics(self.run_dir, record)
        self.callbacks.on_epoch(record)
        if self.should_stop() and not state.done:
            raise Interrupted(f"interrupted after epoch {record['epoch']}; state saved to "
                              f"{self.run_dir / runs.LAST}", self.run_dir / runs.LAST)

    @property
    def final_stage(self) -> int:
        return len(STAGES[self.config.method])

    def _selectable(self) -> list[dict]:
        """The epochs best.pt is chosen among: those of the method's last stage."""
        return [r for r in self.state.history if r["stage"] == self.final_stage]

    def _payload(self) -> dict:
        spec, state = self.spec, self.state
        best = max(self._selectable(), key=lambda r: r["val_accuracy"], default=None)
        return {"model": self.model_record, "dataset": {"name": spec.name, "num_classes": spec.num_classes,
                                                        "pixel_levels": spec.pixel_levels},
                "config": to_dict(self.config), "method": self.config.method, "state_dict": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(), "state": dataclasses.asdict(state),
                "epoch": len(state.history), "best_epoch": best["epoch"] if best else None,
                "fewshot": {"split": self.split.to_dict(), "cosine_scale": self.config.cosine_scale,
                            "per_class": self.config.per_class, "subset_seed": SUBSET_SEED}}

    def _summary(self) -> dict:
        config, history = self.config, self.state.history
        best = max(self._selectable(), key=lambda r: r["val_accuracy"])
        stage2 = [r for r in history if r["stage"] == 2]
        summary = {
            "dataset": config.dataset, "split": self.split.to_dict(), "model": config.model,
            "method": config.method, "seed": config.seed, "epochs": config.epochs,
            "finetune_epochs_run": len(stage2), "stopped_early": bool(stage2 and stage2[-1].get("early_stop")),
            "val_accuracy": history[-1]["val_accuracy"], "best_val_accuracy": best["val_accuracy"],
            "best_val_ci95": best["val_ci95"], "best_epoch": best["epoch"], "best_stage": best["stage"],
            "val_ways": config.val_ways, "val_shots": config.val_shots, "train_loss": history[-1]["train_loss"],
            "seconds": sum(r["epoch_seconds"] for r in history), "parameters": count_parameters(self.net),
            "device": str(self.device), "run_dir": str(self.run_dir),
            "checkpoint": str(self.run_dir / runs.LAST), "best_checkpoint": str(self.run_dir / runs.BEST),
            "wall_seconds": time.perf_counter() - self.wall_start}
        runs.write_text_atomic(self.run_dir / runs.SUMMARY, json.dumps(summary, indent=2) + "\n")
        return summary
