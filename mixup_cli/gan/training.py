"""Training toy GANs, standard and mixup (§3.7, Figure 5), resumably.

An experiment is a grid of sub-runs (method x z-dim x lr x seed). Each sub-run lives in
`<out>/runs/<key>/`: `last.pt` (checkpoint while unfinished), `result.json` (once finished),
the sample CSVs of its snapshots, and with --log the snapshots' metrics (summary.csv, tensorboard/),
keyed by iteration. A resumed experiment skips sub-runs holding `result.json` and
continues an unfinished one from its `last.pt`; every random draw is a function of (seed,
iteration), so a resumed sub-run makes the same draws the uninterrupted one would have.

The loop is written for many small steps: the fakes of all discriminator steps of an iteration
come from one generator forward (the generator does not change between them, so this is exact),
lambdas are drawn in blocks, the discriminator's weights are frozen during the generator step,
and losses are summed on the device and read only at snapshots.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .. import errors, runs
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import GanConfig, default_threads, to_dict
from ..devices import resolve_device
from ..errors import ConfigError, RunError
from ..logging_sinks import Sinks, open_sinks
from ..runs import ensure_writable_dir
from ..seeding import MIX, MODEL, derive_seed
from .losses import GENERATOR_LOSSES, LAMBDA_SCHEMES, standard_discriminator_loss
from .toy2d import Toy2D, get_toy, mode_metrics

DATA, EVAL = 10, 11  # seeding streams of this module (real data and noise; the fixed evaluation noise)
NEAR_STDS = 10.0  # radius of the coarse 'modes reached' view, in standard deviations
LAMBDA_BLOCK = 100  # iterations whose lambdas are drawn at once (one host-to-device copy per block)
RESULT, FINAL, REAL_CSV, SUMMARY = "result.json", "final.pt", "real.csv", "summary.json"


class Interrupted(errors.Interrupted):
    """Stopped on request; the current sub-run's last.pt holds where to continue."""

    def __init__(self, checkpoint: Path, iteration: int):
        super().__init__(f"interrupted at iteration {iteration}; state saved to {checkpoint}", checkpoint)
        self.iteration = iteration


@dataclasses.dataclass(frozen=True)
class SubRun:
    method: str
    alpha: float
    z_dim: int
    lr: float
    seed: int

    @property
    def key(self) -> str:
        return f"{self.method}-z{self.z_dim}-lr{self.lr:g}-seed{self.seed}"


def plan(config: GanConfig) -> list[SubRun]:
    """Every sub-run, grouped so that each (z-dim, lr, seed) trains ERM and mixup back to back."""
    return [SubRun(method, alpha, z, lr, seed) for z in config.z_dim for lr in config.lr
            for seed in config.seeds for method, alpha in config.methods]


class GanCallbacks:
    """Hooks the CLI uses to draw progress. All optional."""

    def on_subrun_start(self, sub: SubRun, index: int, total: int, start_iteration: int) -> None: ...

    def on_progress(self, sub: SubRun, iteration: int) -> None: ...

    def on_snapshot(self, sub: SubRun, record: dict) -> None: ...

    def on_subrun_end(self, sub: SubRun, result: dict, skipped: bool) -> None: ...


def mlp(inputs: int, outputs: int, hidden: int, layers: int) -> torch.nn.Sequential:
    """`layers` hidden layers of `hidden` ReLU units (§3.7: three of 512)."""
    modules, width = [], inputs
    for _ in range(layers):
        modules += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    modules.append(torch.nn.Linear(width, outputs))
    return torch.nn.Sequential(*modules)


def build_networks(config: GanConfig, sub: SubRun):
    """Generator and discriminator; the same seed gives ERM and mixup the same initial weights."""
    torch.manual_seed(derive_seed(sub.seed, 0, 0, MODEL))
    discriminator = mlp(2, 1, config.hidden, config.layers)
    generator = mlp(sub.z_dim, 2, config.hidden, config.layers)
    return generator, discriminator


def write_samples(path: Path, points: torch.Tensor) -> None:
    """One 'x,y' line per point after an 'x,y' header, written atomically."""
    lines = "\n".join(f"{x:.6g},{y:.6g}" for x, y in points.tolist())
    runs.write_text_atomic(path, "x,y\n" + lines + "\n")


def read_samples(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def real_points(config: GanConfig, toy: Toy2D) -> torch.Tensor:
    generator = torch.Generator().manual_seed(derive_seed(config.seeds[0], 0, 0, EVAL))
    return toy.sample(config.num_samples, generator=generator)


def train_subrun(config: GanConfig, toy: Toy2D, sub: SubRun, run_dir: Path, device: torch.device,
                 callbacks: GanCallbacks, should_stop: Callable[[], bool] = lambda: False,
                 progress_every: int = 20, index: int = 0, total: int = 1, resume: bool = False) -> dict:
    """Train one GAN; returns its result (snapshots with metrics) and writes result.json.

    With `resume`, a `last.pt` in `run_dir` is continued from; otherwise training starts afresh."""
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe = _SubRunRecipe(config, toy, sub, run_dir, device)
    if resume:
        recipe.load_last()
    callbacks.on_subrun_start(sub, index, total, recipe.start)
    recipe.setup_sampling()
    return recipe.train(callbacks, should_stop, progress_every)


class _SubRunRecipe:
    """One sub-run, read top to bottom like a training recipe: set up the networks and optimizers,
    maybe resume from last.pt, set up the sampling streams, then train (discriminator steps, a
    generator step, snapshots and checkpoints) and finish (final.pt, result.json)."""

    def __init__(self, config: GanConfig, toy: Toy2D, sub: SubRun, run_dir: Path, device: torch.device):
        self.config, self.toy, self.sub, self.run_dir, self.device = config, toy, sub, run_dir, device
        self.last = run_dir / runs.LAST
        self.start, self.snapshots, self.seconds = 0, [], 0.0
        self.window = {"d_sum": 0.0, "g_sum": 0.0, "iterations": 0}  # losses since the previous snapshot
        self._setup_networks()

    def _setup_networks(self) -> None:
        self.generator, self.discriminator = build_networks(self.config, self.sub)
        self.generator.to(self.device)
        self.discriminator.to(self.device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.sub.lr)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.sub.lr)
        self.d_params = list(self.discriminator.parameters())

    def load_last(self) -> None:
        """Continue from `last.pt` when there is one (it must be this very sub-run's)."""
        if not self.last.is_file():
            return
        payload = load_checkpoint(self.last, map_location=self.device)
        if payload.get("subrun") != dataclasses.asdict(self.sub):
            raise ConfigError(f"checkpoint '{self.last}' belongs to another sub-run; remove it or use --force")
        self.generator.load_state_dict(payload["generator"])
        self.discriminator.load_state_dict(payload["discriminator"])
        self.opt_g.load_state_dict(payload["optimizer_g"])
        self.opt_d.load_state_dict(payload["optimizer_d"])
        self.start = payload["iteration"]
        self.window, self.snapshots, self.seconds = (payload["state"][k] for k in ("window", "snapshots", "seconds"))

    def setup_sampling(self) -> None:
        """The lambda scheme, batch shapes, random streams, and the loss sums of the current window."""
        config, sub, device = self.config, self.sub, self.device
        self.scheme = LAMBDA_SCHEMES.get(config.lam_dist)
        self.generator_loss = GENERATOR_LOSSES.get(config.g_loss)
        self.mixing = sub.alpha > 0
        b = config.batch_size
        self.reals_per_step = b * (self.scheme.reals if self.mixing else 1)
        self.fakes_per_step = b * (self.scheme.fakes if self.mixing else 1)
        self.centres = self.toy.centres_tensor(device)
        eval_seed = torch.Generator().manual_seed(derive_seed(sub.seed, 0, 0, EVAL))
        self.eval_noise = torch.randn(config.num_samples, sub.z_dim, generator=eval_seed).to(device)
        self.draws = torch.Generator(device=device)
        self.snapshot_at = set(config.snapshot_iterations())
        self.d_sum = torch.tensor(self.window["d_sum"], device=device)
        self.g_sum = torch.tensor(self.window["g_sum"], device=device)
        self.window_iterations = self.window["iterations"]
        self.lambdas = None

    def train(self, callbacks: GanCallbacks, should_stop: Callable[[], bool], progress_every: int) -> dict:
        """The iterations left, each snapshot also to the --log sinks (opened with the resumed snapshots)."""
        sinks = open_sinks(self.config.log, self.run_dir, [tracked(s) for s in self.snapshots], to_dict(self.config),
                           step_key="iteration")
        try:
            return self._train(callbacks, should_stop, progress_every, sinks)
        finally:  # an interrupted sub-run too: every snapshot taken is in the sinks' files
            sinks.close()

    def _train(self, callbacks: GanCallbacks, should_stop: Callable[[], bool], progress_every: int,
               sinks: Sinks) -> dict:
        config = self.config
        self.started = time.perf_counter()
        trained = 0
        for iteration in range(self.start, config.iterations):
            if should_stop():
                self.save(iteration)
                raise Interrupted(self.last, iteration)
            self.step(iteration)
            trained += 1
            done = iteration + 1
            if done in self.snapshot_at:
                record = self.snapshot(done)
                sinks.log(tracked(record))
                callbacks.on_snapshot(self.sub, record)
                if done < config.iterations:
                    self.save(done)
            elif done % config.checkpoint_every == 0:
                self.save(done)
            if done % progress_every == 0 or done == config.iterations:
                callbacks.on_progress(self.sub, done)
        return self.finish(trained, time.perf_counter() - self.started)

    def step(self, iteration: int) -> None:
        """One iteration: d_steps discriminator steps, then one generator step, all drawn from (seed, iteration)."""
        self.draws.manual_seed(derive_seed(self.sub.seed, iteration, DATA))
        if self.mixing and (self.lambdas is None or iteration % LAMBDA_BLOCK == 0):
            self._draw_lambdas(iteration // LAMBDA_BLOCK)
        self._discriminator_steps(iteration)
        self._generator_step()
        self.window_iterations += 1

    def _draw_lambdas(self, block: int) -> None:
        steps, b = self.config.d_steps, self.config.batch_size
        rng = np.random.default_rng(derive_seed(self.sub.seed, block, MIX))
        drawn = self.scheme.draw(self.sub.alpha, (LAMBDA_BLOCK, steps, b * self.scheme.lambdas_per_example, 1), rng)
        self.lambdas = torch.from_numpy(drawn.astype(np.float32)).to(self.device)

    def _discriminator_steps(self, iteration: int) -> None:
        """Every step's fakes from one generator forward (g is fixed during these steps)."""
        steps, b, draws = self.config.d_steps, self.config.batch_size, self.draws
        real = self.toy.sample(steps * self.reals_per_step, generator=draws,
                               centres=self.centres).view(steps, self.reals_per_step, 2)
        with torch.no_grad():
            noise = torch.randn(steps * self.fakes_per_step, self.sub.z_dim, generator=draws, device=self.device)
            fake = self.generator(noise).view(steps, self.fakes_per_step, 2)
        for k in range(steps):
            if self.mixing:
                lam = self.lambdas[iteration % LAMBDA_BLOCK, k]
                d_loss = self.scheme.loss(self.discriminator, real[k], fake[k], lam, draws)
            else:
                logits = self.discriminator(torch.cat([real[k], fake[k]]))
                d_loss = standard_discriminator_loss(logits[:b], logits[b:])
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            self.d_sum += d_loss.detach()

    def _generator_step(self) -> None:
        """--g-loss (minimax or non-saturating) on unmixed fakes; d's weights need no gradient here."""
        for p in self.d_params:
            p.requires_grad_(False)
        noise = torch.randn(self.config.batch_size, self.sub.z_dim, generator=self.draws, device=self.device)
        g_loss = self.generator_loss(self.discriminator(self.generator(noise)))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        for p in self.d_params:
            p.requires_grad_(True)
        self.g_sum += g_loss.detach()

    def snapshot(self, iteration: int) -> dict:
        """Score the generator now and start a new loss window; the record is kept for result.json."""
        record = _snapshot(self.config, self.toy, self.sub, self.generator, self.eval_noise, self.run_dir, iteration,
                           self.d_sum.item() / (self.window_iterations * self.config.d_steps),
                           self.g_sum.item() / self.window_iterations)
        self.snapshots.append(record)
        self.d_sum.zero_()
        self.g_sum.zero_()
        self.window_iterations = 0
        return record

    def save(self, iteration: int) -> None:
        window = {"d_sum": self.d_sum.item(), "g_sum": self.g_sum.item(), "iterations": self.window_iterations}
        seconds = self.seconds + time.perf_counter() - self.started
        save_checkpoint({**self._weights(iteration), "optimizer_g": self.opt_g.state_dict(),
                         "optimizer_d": self.opt_d.state_dict(),
                         "state": {"window": window, "snapshots": self.snapshots, "seconds": seconds}}, self.last)

    def _weights(self, iteration: int) -> dict:
        return {"config": to_dict(self.config), "subrun": dataclasses.asdict(self.sub), "iteration": iteration,
                "generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict()}

    def finish(self, trained: int, elapsed: float) -> dict:
        sub, snapshots = self.sub, self.snapshots
        result = {**dataclasses.asdict(sub), "key": sub.key, "iterations": self.config.iterations,
                  "final": snapshots[-1] if snapshots else None, "snapshots": snapshots,
                  "seconds": self.seconds + elapsed,
                  "iterations_per_second": (trained / elapsed) if trained and elapsed > 0 else None,
                  "device": str(self.device), "threads": torch.get_num_threads()}
        # Order matters for a kill at any moment: final weights, then result.json (which marks the
        # sub-run finished), then drop last.pt.
        save_checkpoint(self._weights(self.config.iterations), self.run_dir / FINAL)
        runs.write_text_atomic(self.run_dir / RESULT, json.dumps(result, indent=2) + "\n")
        self.last.unlink(missing_ok=True)
        return result


def _snapshot(config, toy, sub, generator, eval_noise, run_dir, iteration, d_loss, g_loss) -> dict:
    if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
        raise RunError(f"{sub.key}: a loss became non-finite before iteration {iteration} (d {d_loss}, g {g_loss}); "
                       f"lower --lr")
    with torch.no_grad():
        samples = generator(eval_noise).float().cpu()
    write_samples(run_dir / f"samples-{sub.method}-{iteration}.csv", samples)
    return {"iteration": iteration, **score(samples, toy, config), "d_loss": d_loss, "g_loss": g_loss}


def tracked(record: dict) -> dict:
    """A snapshot's numbers (iteration first), as --log writes them; the per-mode counts stay in result.json."""
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def score(samples: torch.Tensor, toy: Toy2D, config: GanConfig) -> dict:
    """The strict metrics (3 std) and a coarse view (NEAR_STDS std: where the samples went, even
    when they are not yet sharp; 10 std is 0.1 here, under half the distance between modes)."""
    strict = mode_metrics(samples, toy, config.cover_share)
    near = mode_metrics(samples, toy, config.cover_share, radius_stds=NEAR_STDS)
    return {"modes_covered": strict["modes_covered"], "num_modes": strict["num_modes"],
            "high_quality": strict["high_quality"], "modes_reached": near["modes_covered"],
            "near_share": near["high_quality"], "samples_per_mode": strict["samples_per_mode"]}


def rescore(result: dict, run_dir: Path, toy: Toy2D, config: GanConfig) -> dict:
    """Recompute a finished sub-run's metrics from its saved samples (so metrics added later, or a
    new --cover-share, apply to old runs too); losses and timings are kept."""
    for snap in result["snapshots"]:
        path = run_dir / f"samples-{result['method']}-{snap['iteration']}.csv"
        if path.is_file():
            snap.update(score(torch.from_numpy(read_samples(path)).float(), toy, config))
    result["final"] = result["snapshots"][-1] if result["snapshots"] else None
    return result


def finished_result(run_dir: Path, sub: SubRun) -> Optional[dict]:
    """The result of a finished sub-run, or None when it still has to (re)train."""
    path = run_dir / RESULT
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # damaged: train it again (its last.pt, if any, is still there)
    same = all(result.get(k) == v for k, v in dataclasses.asdict(sub).items())
    return result if same and result.get("final") is not None else None


def aggregate(results: list[dict]) -> list[dict]:
    """Mean and spread of the final modes covered and high-quality share, per method (and per
    (z-dim, lr) cell when the grid has several), over seeds."""
    rows = []
    cells = sorted({(r["z_dim"], r["lr"]) for r in results})
    groups = [("all", None)] + ([(f"z{z}-lr{lr:g}", (z, lr)) for z, lr in cells] if len(cells) > 1 else [])
    methods = list(dict.fromkeys(r["method"] for r in results))
    for label, cell in groups:
        for method in methods:
            chosen = [r for r in results if r["method"] == method and (cell is None or (r["z_dim"], r["lr"]) == cell)]
            modes = np.array([r["final"]["modes_covered"] for r in chosen], dtype=float)
            reached = np.array([r["final"].get("modes_reached", np.nan) for r in chosen], dtype=float)
            quality = np.array([r["final"]["high_quality"] for r in chosen], dtype=float)
            rows.append({"group": label, "method": method, "alpha": chosen[0]["alpha"], "runs": len(chosen),
                         "num_modes": chosen[0]["final"]["num_modes"],
                         "modes_mean": float(modes.mean()),
                         "modes_std": float(modes.std(ddof=1)) if len(modes) > 1 else 0.0,
                         "modes_min": int(modes.min()), "modes_max": int(modes.max()),
                         "all_modes_share": float((modes == chosen[0]["final"]["num_modes"]).mean()),
                         "reached_mean": float(reached.mean()),
                         "reached_std": float(reached.std(ddof=1)) if len(reached) > 1 else 0.0,
                         "high_quality_mean": float(quality.mean()),
                         "high_quality_std": float(quality.std(ddof=1)) if len(quality) > 1 else 0.0})
    return rows


def run_experiment(config: GanConfig, out_dir: Path, resume: bool = False, callbacks: Optional[GanCallbacks] = None,
                   should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Train every sub-run of the grid (skipping finished ones), then plot and summarize."""
    callbacks = callbacks or GanCallbacks()
    toy = get_toy(config.dataset)
    device = resolve_device(config.device)
    torch.set_num_threads(config.threads or default_threads())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs.write_config(out_dir, to_dict(config))
    real = real_points(config, toy)
    write_samples(out_dir / REAL_CSV, real)

    subruns = plan(config)
    results = []
    for index, sub in enumerate(subruns):
        run_dir = out_dir / "runs" / sub.key
        result = finished_result(run_dir, sub) if resume else None
        if result is not None:
            result = rescore(result, run_dir, toy, config)
            callbacks.on_subrun_end(sub, result, skipped=True)
        else:
            result = train_subrun(config, toy, sub, run_dir, device, callbacks, should_stop, index=index,
                                  total=len(subruns), resume=resume)
            callbacks.on_subrun_end(sub, result, skipped=False)
        results.append(result)

    figure = _plot_first_pair(config, toy, out_dir, subruns, results, real)
    trained = [r["iterations_per_second"] for r in results if r.get("iterations_per_second")]
    summary = {"dataset": config.dataset, "dataset_description": toy.description, "alpha": config.alpha,
               "lam_dist": config.lam_dist, "g_loss": config.g_loss, "iterations": config.iterations,
               "d_steps": config.d_steps,
               "batch_size": config.batch_size, "hidden": config.hidden, "layers": config.layers,
               "seeds": config.seeds, "z_dim": config.z_dim, "lr": config.lr, "cover_share": config.cover_share,
               "figure": str(figure), "out": str(out_dir), "device": str(device),
               "threads": torch.get_num_threads(),
               "seconds": sum(r["seconds"] for r in results),
               "iterations_per_second": (sum(trained) / len(trained)) if trained else None,
               "grid": aggregate(results),
               "runs": [{k: v for k, v in r.items()} for r in results]}
    runs.write_text_atomic(out_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def _plot_first_pair(config: GanConfig, toy: Toy2D, out_dir: Path, subruns: list[SubRun], results: list[dict],
                     real: torch.Tensor) -> Path:
    """The figure: the first grid point, ERM above mixup, as in Figure 5; its sample CSVs are copied
    beside it."""
    from .plot import plot_snapshots

    first = subruns[0]
    pair = [r for r, s in zip(results, subruns) if (s.z_dim, s.lr, s.seed) == (first.z_dim, first.lr, first.seed)]
    panels = {}
    for result in pair:
        for snap in result["snapshots"]:
            name = f"samples-{result['method']}-{snap['iteration']}.csv"
            text = (out_dir / "runs" / result["key"] / name).read_text()
            runs.write_text_atomic(out_dir / name, text)
            panels[(result["method"], snap["iteration"])] = (read_samples(out_dir / name), snap)
    figure = out_dir / f"gan-{config.dataset}.png"
    plot_snapshots(figure, real.numpy(), panels, [r["method"] for r in pair], config.snapshot_iterations(),
                   {r["method"]: r["alpha"] for r in pair}, toy, title=f"{toy.name}: z-dim {first.z_dim}, "
                   f"lr {first.lr:g}, seed {first.seed}, lambda {config.lam_dist}, g loss {config.g_loss}")
    return figure


def prepare_out_dir(path: Optional[str], config: GanConfig, resume: bool, force: bool,
                    lock: Optional[runs.DirLock] = None) -> Path:
    """Create (or, for --resume, find) the output directory; never silently reuse one holding results.
    `lock` (a DirLock, held by the caller while it runs the experiment) is taken before anything is
    written or deleted there."""
    import shutil

    out = runs.resolve_out(runs.GAN_EXPERIMENT, path, config)
    runs.check_out(runs.GAN_EXPERIMENT, out, resume, force)
    if not resume:
        ensure_writable_dir(out)
    if lock is not None:
        lock.take(out)
    if resume:
        return out
    if runs.holds(runs.GAN_EXPERIMENT, out):  # --force: our files go, anything else stays
        shutil.rmtree(out / "runs", ignore_errors=True)
        for item in out.iterdir():
            ours_too = item.name.startswith(("samples-", "gan-")) and item.suffix in (".csv", ".png")
            if item.is_file() and (item.name in runs.GAN_EXPERIMENT.own or ours_too):
                item.unlink()
    return ensure_writable_dir(out)
