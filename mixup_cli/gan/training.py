"""Training toy GANs, standard and mixup (§3.7, Figure 5), resumably.

An experiment is a grid of sub-runs (method x z-dim x lr x seed). Each sub-run lives in
`<out>/runs/<key>/`: `last.pt` (checkpoint while unfinished), `result.json` (once finished) and
the sample CSVs of its snapshots. A resumed experiment skips sub-runs holding `result.json` and
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
from ..config import to_dict
from ..devices import resolve_device
from ..errors import ConfigError, RunError
from ..runs import ensure_writable_dir
from ..seeding import MIX, MODEL, derive_seed
from .config import GanConfig, default_threads
from .losses import LAMBDA_SCHEMES, generator_loss, standard_discriminator_loss
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


def _checkpoint_payload(config, sub, generator, discriminator, opt_g, opt_d, iteration, window, snapshots,
                        seconds) -> dict:
    return {"config": to_dict(config), "subrun": dataclasses.asdict(sub), "iteration": iteration,
            "generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
            "optimizer_g": opt_g.state_dict(), "optimizer_d": opt_d.state_dict(),
            "state": {"window": window, "snapshots": snapshots, "seconds": seconds}}


def train_subrun(config: GanConfig, toy: Toy2D, sub: SubRun, run_dir: Path, device: torch.device,
                 callbacks: GanCallbacks, should_stop: Callable[[], bool] = lambda: False,
                 progress_every: int = 20, index: int = 0, total: int = 1, resume: bool = False) -> dict:
    """Train one GAN; returns its result (snapshots with metrics) and writes result.json.

    With `resume`, a `last.pt` in `run_dir` is continued from; otherwise training starts afresh."""
    run_dir.mkdir(parents=True, exist_ok=True)
    generator, discriminator = build_networks(config, sub)
    generator.to(device)
    discriminator.to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=sub.lr)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=sub.lr)
    start, snapshots, seconds = 0, [], 0.0
    window = {"d_sum": 0.0, "g_sum": 0.0, "iterations": 0}  # losses since the previous snapshot
    last = run_dir / runs.LAST
    if resume and last.is_file():
        payload = load_checkpoint(last, map_location=device)
        if payload.get("subrun") != dataclasses.asdict(sub):
            raise ConfigError(f"checkpoint '{last}' belongs to another sub-run; remove it or use --force")
        generator.load_state_dict(payload["generator"])
        discriminator.load_state_dict(payload["discriminator"])
        opt_g.load_state_dict(payload["optimizer_g"])
        opt_d.load_state_dict(payload["optimizer_d"])
        start = payload["iteration"]
        window, snapshots, seconds = (payload["state"][k] for k in ("window", "snapshots", "seconds"))
    callbacks.on_subrun_start(sub, index, total, start)

    scheme = LAMBDA_SCHEMES.get(config.lam_dist)
    mixing = sub.alpha > 0
    b, steps = config.batch_size, config.d_steps
    reals_per_step = b * (scheme.reals if mixing else 1)
    fakes_per_step = b * (scheme.fakes if mixing else 1)
    centres = toy.centres_tensor(device)
    eval_noise = torch.randn(config.num_samples, sub.z_dim,
                             generator=torch.Generator().manual_seed(derive_seed(sub.seed, 0, 0, EVAL))).to(device)
    draws = torch.Generator(device=device)
    snapshot_at = set(config.snapshot_iterations())
    d_sum = torch.tensor(window["d_sum"], device=device)
    g_sum = torch.tensor(window["g_sum"], device=device)
    window_iterations = window["iterations"]
    lambdas = None
    d_params = list(discriminator.parameters())

    def save(iteration: int) -> None:
        state = {"d_sum": d_sum.item(), "g_sum": g_sum.item(), "iterations": window_iterations}
        save_checkpoint(_checkpoint_payload(config, sub, generator, discriminator, opt_g, opt_d, iteration,
                                            state, snapshots, seconds + time.perf_counter() - started), last)

    started = time.perf_counter()
    trained = 0
    for iteration in range(start, config.iterations):
        if should_stop():
            save(iteration)
            raise Interrupted(last, iteration)
        draws.manual_seed(derive_seed(sub.seed, iteration, DATA))
        if mixing and (lambdas is None or iteration % LAMBDA_BLOCK == 0):
            block = iteration // LAMBDA_BLOCK
            rng = np.random.default_rng(derive_seed(sub.seed, block, MIX))
            drawn = scheme.draw(sub.alpha, (LAMBDA_BLOCK, steps, b * scheme.lambdas_per_example, 1), rng)
            lambdas = torch.from_numpy(drawn.astype(np.float32)).to(device)

        # Discriminator: every step's fakes from one generator forward (g is fixed during these steps).
        real = toy.sample(steps * reals_per_step, generator=draws, centres=centres).view(steps, reals_per_step, 2)
        with torch.no_grad():
            noise = torch.randn(steps * fakes_per_step, sub.z_dim, generator=draws, device=device)
            fake = generator(noise).view(steps, fakes_per_step, 2)
        for k in range(steps):
            if mixing:
                d_loss = scheme.loss(discriminator, real[k], fake[k], lambdas[iteration % LAMBDA_BLOCK, k], draws)
            else:
                logits = discriminator(torch.cat([real[k], fake[k]]))
                d_loss = standard_discriminator_loss(logits[:b], logits[b:])
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            d_sum += d_loss.detach()

        # Generator: non-saturating loss on unmixed fakes; d's weights need no gradient here.
        for p in d_params:
            p.requires_grad_(False)
        noise = torch.randn(b, sub.z_dim, generator=draws, device=device)
        g_loss = generator_loss(discriminator(generator(noise)))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
        g_sum += g_loss.detach()
        window_iterations += 1
        trained += 1
        done = iteration + 1

        if done in snapshot_at:
            record = _snapshot(config, toy, sub, generator, eval_noise, run_dir, done,
                               d_sum.item() / (window_iterations * steps), g_sum.item() / window_iterations)
            snapshots.append(record)
            d_sum.zero_()
            g_sum.zero_()
            window_iterations = 0
            callbacks.on_snapshot(sub, record)
            if done < config.iterations:
                save(done)
        elif done % config.checkpoint_every == 0:
            save(done)
        if done % progress_every == 0 or done == config.iterations:
            callbacks.on_progress(sub, done)

    elapsed = time.perf_counter() - started
    result = {**dataclasses.asdict(sub), "key": sub.key, "iterations": config.iterations,
              "final": snapshots[-1] if snapshots else None, "snapshots": snapshots,
              "seconds": seconds + elapsed,
              "iterations_per_second": (trained / elapsed) if trained and elapsed > 0 else None,
              "device": str(device), "threads": torch.get_num_threads()}
    # Order matters for a kill at any moment: final weights, then result.json (which marks the
    # sub-run finished), then drop last.pt.
    save_checkpoint({"config": to_dict(config), "subrun": dataclasses.asdict(sub), "iteration": config.iterations,
                     "generator": generator.state_dict(), "discriminator": discriminator.state_dict()},
                    run_dir / FINAL)
    runs.write_text_atomic(run_dir / RESULT, json.dumps(result, indent=2) + "\n")
    last.unlink(missing_ok=True)
    return result


def _snapshot(config, toy, sub, generator, eval_noise, run_dir, iteration, d_loss, g_loss) -> dict:
    if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
        raise RunError(f"{sub.key}: a loss became non-finite before iteration {iteration} (d {d_loss}, g {g_loss}); "
                       f"lower --lr")
    with torch.no_grad():
        samples = generator(eval_noise).float().cpu()
    write_samples(run_dir / f"samples-{sub.method}-{iteration}.csv", samples)
    return {"iteration": iteration, **score(samples, toy, config), "d_loss": d_loss, "g_loss": g_loss}


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
    from .plot import plot_snapshots

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

    # The figure: the first grid point, ERM above mixup, as in Figure 5.
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
                   f"lr {first.lr:g}, seed {first.seed}, lambda {config.lam_dist}")
    trained = [r["iterations_per_second"] for r in results if r.get("iterations_per_second")]
    summary = {"dataset": config.dataset, "dataset_description": toy.description, "alpha": config.alpha,
               "lam_dist": config.lam_dist, "iterations": config.iterations, "d_steps": config.d_steps,
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


def prepare_out_dir(path: Optional[str], config: GanConfig, resume: bool, force: bool) -> Path:
    """Create (or, for --resume, find) the output directory; never silently reuse one holding results."""
    import shutil

    out = Path(path) if path else Path("runs") / f"gan-{config.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    ours = [runs.CONFIG, SUMMARY, REAL_CSV, "runs"]
    if resume:
        if not (out / runs.CONFIG).is_file():
            raise ConfigError(f"--resume: '{out}' holds no GAN experiment ({runs.CONFIG} missing); check --out")
        return out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path '{out}' exists and is not a directory; choose another --out")
    if out.is_dir() and any((out / name).exists() for name in ours):
        if not force:
            raise ConfigError(f"output directory '{out}' already holds results; pass --resume to continue, "
                              f"--force to replace them, or choose another --out")
        shutil.rmtree(out / "runs", ignore_errors=True)
        for item in out.iterdir():
            ours_too = item.name.startswith(("samples-", "gan-")) and item.suffix in (".csv", ".png")
            if item.is_file() and (item.name in ours or ours_too):
                item.unlink()
    return ensure_writable_dir(out)


# Keys a resumed experiment may change; any other explicitly given difference is refused. The grid
# lists may grow (or shrink): a sub-run's directory is named by everything that varies between sub-runs,
# so finished ones stay valid and only the new cells are trained.
RESUMABLE_CHANGES = ("device", "threads", "out", "seeds", "z_dim", "lr", "compare")


def check_resume_config(saved: dict, given: dict, explicit: set) -> None:
    differ = [k for k in sorted(explicit) if k not in RESUMABLE_CHANGES and k in saved and saved[k] != given.get(k)]
    if differ:
        detail = ", ".join(f"{k}: {saved[k]!r} in the experiment, {given.get(k)!r} given" for k in differ)
        raise ConfigError(f"--resume with settings that contradict the experiment ({detail}); "
                          f"drop them or use a new --out")
