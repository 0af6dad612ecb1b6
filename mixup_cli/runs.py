"""Run directories: where a command keeps its config, metrics, checkpoints and results, and their
lifecycle, one for every command that writes one (train, gan, corrupt-labels):

    resolve_out        --out, or runs/<a default name> (RunKind.default_name)
    check_out          refuse what cannot run there: --resume without what it needs, a file, an
                       occupied directory without --force (one message each, named by the RunKind)
    read_saved_config  the config a directory was started with, from its YAML file (never a checkpoint)
    resolve_for        a command's config: on --resume, the saved config < YAML < flags, refusing
                       given keys that contradict it; the keys a resume may change are the config
                       class's RESUMABLE

A training run:

    <run>/config.yaml     the resolved config
    <run>/metrics.jsonl   one JSON object per finished epoch
    <run>/last.pt         the latest checkpoint (also written on interruption)
    <run>/best.pt         the checkpoint of the best test error so far
    <run>/summary.json    the final summary
    <run>/.mixup.lock     while a process writes the directory: its PID, under an exclusive flock

One writer per directory: DirLock takes an exclusive advisory lock (fcntl.flock) on <dir>/.mixup.lock
before anything is written, and check_out refuses a directory another process holds, naming its PID.
The kernel drops the lock when the holder dies, SIGKILL included, so a lock is never stuck.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Callable, Optional

from .errors import ConfigError, RunError

CONFIG, METRICS, LAST, BEST, SUMMARY = "config.yaml", "metrics.jsonl", "last.pt", "best.pt", "summary.json"
EXPERIMENT = "experiment.yaml"  # a corrupt-labels experiment's config
LOCK = ".mixup.lock"  # held (flock) by the process writing the directory; holds its PID


def _dataset_part(config) -> str:
    return config.dataset.replace(":", "-").replace("/", "_")[-40:]


def default_run_name(config) -> str:
    alpha = f"-a{config.alpha:g}" if config.alpha > 0 else ""
    return f"{_dataset_part(config)}-{config.model}-{config.method}{alpha}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclasses.dataclass(frozen=True)
class RunKind:
    """What a command's directory holds, for its checks and messages."""

    noun: str  # "run", "experiment"
    contents: str  # what an occupied directory holds, for the refusal: "a run", "results"
    needs: tuple  # the files --resume needs, the first proving there is something to continue
    saved_config: str  # the file holding the config it was started with
    default_name: Callable  # config -> the folder name under runs/ when --out is not given
    own: Optional[tuple] = None  # names whose presence means the directory is occupied; None: anything
    # Keys added after a release with a default unlike the behaviour before them: the value a saved config
    # that predates the key ran with, so a resume continues that run as it started (gan's g_loss).
    legacy: Optional[dict] = None


# A run is its checkpoints: a folder whose first checkpoint never got written (a full disk, a kill in epoch 1)
# holds only config.yaml and perhaps metrics.jsonl, nothing to resume, and a new run may start there.
TRAIN_RUN = RunKind("run", "a run", (LAST, CONFIG), CONFIG, default_run_name, (LAST, BEST, SUMMARY))
GAN_EXPERIMENT = RunKind("experiment", "results", (CONFIG,), CONFIG,
                         lambda c: f"gan-{c.dataset}-{time.strftime('%Y%m%d-%H%M%S')}",
                         (CONFIG, SUMMARY, "real.csv", "runs"),
                         legacy={"g_loss": "non-saturating"})  # the only generator loss before --g-loss
CORRUPT_LABELS_EXPERIMENT = RunKind("experiment", "files", (EXPERIMENT,), EXPERIMENT,
                                    lambda c: f"corrupt-labels-{_dataset_part(c)}-{time.strftime('%Y%m%d-%H%M%S')}")


def resolve_out(kind: RunKind, path, config) -> Path:
    """The directory: `path` (--out) when given, else runs/<the kind's default name> ($MIXUP_RUNS_DIR
    instead of runs/ when set)."""
    from .env import runs_root

    return Path(path) if path else runs_root() / kind.default_name(config)


def run_path(path, config) -> Path:
    """A training run's directory: --out, else runs/<dataset>-<model>-<method>[-a<alpha>]-<date>-<time>."""
    return resolve_out(TRAIN_RUN, path, config)


def holds(kind: RunKind, directory: Path) -> bool:
    directory = Path(directory)
    if not directory.is_dir():
        return False
    if kind.own is None:
        return any(p.name != LOCK for p in directory.iterdir())
    return any((directory / name).exists() for name in kind.own)


def holds_run(run_dir: Path) -> bool:
    return holds(TRAIN_RUN, run_dir)


def check_out(kind: RunKind, directory: Path, resume: bool, force: bool) -> None:
    """Refuse what cannot be run in `directory`, touching nothing (so a refusal costs no files)."""
    directory = Path(directory)
    refuse_live_writer(directory)  # before anything else: --force must never replace a live run
    if resume:
        for name in kind.needs:
            if not (directory / name).is_file():
                again = "" if not directory.is_dir() or holds(kind, directory) else \
                    " (it saved nothing to resume from: start it again without --resume)"
                raise ConfigError(f"--resume: '{directory}' holds no {name}, so no {kind.noun} to resume{again}; "
                                  f"check --out")
        return
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"output path '{directory}' exists and is not a directory; choose another --out")
    if holds(kind, directory) and not force:
        raise ConfigError(f"output directory '{directory}' already holds {kind.contents}; pass --resume to continue "
                          f"the {kind.noun} in it, --force to replace it, or choose another --out")


def check_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    check_out(TRAIN_RUN, run_dir, resume, force)


def read_saved_config(kind: RunKind, directory: Path) -> dict:
    """The config `directory` was started with, from its YAML file (cheap: no checkpoint is opened)."""
    from .config import load_yaml

    check_out(kind, directory, resume=True, force=False)
    return load_yaml(Path(directory) / kind.saved_config)


def check_resume_config(kind: RunKind, saved: dict, given, explicit: set) -> None:
    """Refuse a resume whose explicitly given settings contradict the saved ones, except the keys
    the config class declares changeable (its RESUMABLE)."""
    from .config import to_dict

    resumable, given = type(given).RESUMABLE, to_dict(given)
    differ = [k for k in sorted(explicit) if k not in resumable and k in saved and saved[k] != given.get(k)]
    if differ:
        detail = ", ".join(f"{k}: {saved[k]!r} in the {kind.noun}, {given.get(k)!r} given" for k in differ)
        raise ConfigError(f"--resume with settings that contradict the {kind.noun} ({detail}); drop them or start "
                          f"a new {kind.noun} in another --out")


def resolve_for(kind: RunKind, resolve: Callable, yaml_path, overrides: dict, explicit: set, resume: bool):
    """A command's config: `resolve(yaml_path, overrides, base=None)` (defaults < base < YAML < flags);
    on --resume the base is the directory's saved config, and explicit contradictions are refused."""
    if not resume:
        return resolve(yaml_path, overrides)
    if not overrides.get("out"):
        raise ConfigError(f"--resume needs --out DIR, the {kind.noun} directory to continue")
    saved = {**(kind.legacy or {}), **read_saved_config(kind, Path(overrides["out"]))}
    given = resolve(yaml_path, overrides, base=saved)
    check_resume_config(kind, saved, given, explicit)
    return given


def prepare_run_dir(path, config, resume: bool, force: bool, lock: Optional["DirLock"] = None,
                    kind: RunKind = TRAIN_RUN) -> Path:
    """Check and create (or, for --resume, find) the run directory; never silently reuse one that
    holds a run. A run replaced by `force` is deleted later, by `clear_run`, once the new run can start.
    `lock` (a DirLock) is taken on the directory before anything is written in it."""
    run_dir = resolve_out(kind, path, config)
    check_out(kind, run_dir, resume, force)
    if not resume:
        ensure_writable_dir(run_dir)
    if lock is not None:
        lock.take(run_dir)
    return run_dir


_HELD: dict = {}  # resolved directory -> the DirLock of this process holding it


def _in_use(directory: Path, holder: str) -> ConfigError:
    return ConfigError(f"'{directory}' is in use by another mixup process ({holder}) writing to it; wait for it "
                       f"to finish or stop it, or choose another --out")


def _holder(fd: int) -> str:
    """'PID n' from a lock file's text, as its holder wrote it."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"PID {text}" if text.isdigit() else "PID unknown"


def refuse_live_writer(directory: Path) -> None:
    """Refuse `directory` when another process holds its lock (naming its PID); touches nothing."""
    directory = Path(directory)
    if directory.resolve() in _HELD:
        return  # this process's own lock
    try:
        fd = os.open(directory / LOCK, os.O_RDONLY)
    except OSError:
        return  # no lock file: nobody writes there (or it cannot be read, and the later checks say so)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a live writer's exclusive lock refuses this
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise _in_use(directory, _holder(fd)) from None
    finally:
        os.close(fd)


class DirLock:
    """An exclusive advisory lock on one directory for as long as the `with` block runs (the process,
    for a command): `take(directory)` after the directory exists and before anything is written in it.
    A second process is refused with a ConfigError naming this one's PID. On release the lock file is
    removed; a holder killed with SIGKILL leaves the file but not the lock (the kernel drops it)."""

    RETRIES = 8  # a refuse_live_writer probe holds a shared lock for microseconds: try again briefly

    def __init__(self):
        self.fd: Optional[int] = None
        self.directory: Optional[Path] = None

    def take(self, directory: Path) -> None:
        directory = Path(directory)
        if self.fd is not None:
            if directory.resolve() != self.directory.resolve():
                raise ValueError(f"DirLock holds '{self.directory}' already, not '{directory}'")
            return
        for attempt in range(self.RETRIES):
            fd = self._open(directory)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                if attempt == self.RETRIES - 1:
                    raise _in_use(directory, holder) from None
                time.sleep(0.05)
                continue
            if _same_file(fd, directory / LOCK):  # not a file its last holder removed while we opened it
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self.fd, self.directory = fd, directory
                _HELD[directory.resolve()] = self
                return
            os.close(fd)
        raise _in_use(directory, "PID unknown")

    @staticmethod
    def _open(directory: Path) -> int:
        try:
            return os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"output directory '{directory}' is not writable ({exc.strerror}); make it writable "
                              f"or choose another --out") from None

    def release(self) -> None:
        if self.fd is None:
            return
        _HELD.pop(self.directory.resolve(), None)
        with contextlib.suppress(OSError):
            if _same_file(self.fd, self.directory / LOCK):
                (self.directory / LOCK).unlink()  # while still held: no one can lock the old file after us
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "DirLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def clear_run(run_dir: Path) -> None:
    """Delete the files of a run being replaced (--force); anything else in the directory stays."""
    for name in (LAST, BEST, METRICS, SUMMARY, CONFIG):
        (Path(run_dir) / name).unlink(missing_ok=True)


# Temporary files this package's atomic writes make beside a run's files (checkpoint.save_atomic,
# checkpoint.link_checkpoint, write_text_atomic); a SIGKILL mid-write leaves them behind.
ORPHAN_PATTERNS = tuple(f".{name}.*.tmp" for name in (LAST, BEST)) + tuple(
    f".{name}.*.link" for name in (LAST, BEST)) + tuple(f".{name}.tmp" for name in (CONFIG, METRICS, SUMMARY))


def remove_orphans(run_dir: Path) -> list:
    """Delete the temporary files killed writes left in `run_dir` (only ORPHAN_PATTERNS, only regular
    files directly inside it); the names removed. Call it while holding the directory's lock."""
    removed = []
    for pattern in ORPHAN_PATTERNS:
        for path in sorted(Path(run_dir).glob(pattern)):
            if path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path.name)
    return removed


@contextlib.contextmanager
def removing_new_empty_dirs(path):
    """Run a block that may create the folder `path`. If the block fails, the folders it created
    (`path` and parents that were missing) are removed again while empty, so a refused run or a failed
    download leaves no debris; a folder that existed before, or holds anything, is never removed."""
    created = []
    folder = Path(path).absolute()
    while not os.path.lexists(folder) and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    try:
        yield
    except BaseException:
        for folder in created:  # deepest first; rmdir refuses a folder that is not empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` and prove it takes a file, or refuse with a one-line ConfigError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"output directory '{path}' is not writable ({exc.strerror}); choose another --out") from None
    return path


def write_config(run_dir: Path, config_dict: dict) -> None:
    import yaml

    write_text_atomic(run_dir / CONFIG, yaml.safe_dump(config_dict, sort_keys=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path` and rename it; a failed write leaves no temporary file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RunError(f"could not write '{path}': {exc.strerror or exc}; free disk space or choose another "
                       f"--out") from None


def append_metrics(run_dir: Path, record: dict) -> None:
    with open(run_dir / METRICS, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def rewrite_metrics(run_dir: Path, history: list[dict]) -> None:
    """On resume: the metrics file holds exactly the epochs the checkpoint has seen."""
    write_text_atomic(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in history))


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def history_statistics(history: list[dict], split: str = "test") -> dict:
    """The paper's ways of reading a run's per-epoch errors on `split`: the best epoch's (Table 2
    "best"), the last epoch's (Table 2 "last") and the median over the last 10 epochs (§3.8).
    All None when the history has no such errors (no metrics.jsonl, or no such split)."""
    key = f"{split}_error"
    epoch_key = "best_epoch" if split == "test" else f"best_{split}_epoch"
    names = (f"best_{key}", epoch_key, f"last_{key}", f"median_last10_{key}", "epochs_run")
    rows = [r for r in history if r.get(key) is not None]
    if not rows:
        return dict.fromkeys(names)
    best = min(rows, key=lambda r: r[key])
    tail = sorted(r[key] for r in rows[-10:])
    median = (tail[(len(tail) - 1) // 2] + tail[len(tail) // 2]) / 2
    return dict(zip(names, (best[key], best["epoch"], rows[-1][key], median, rows[-1]["epoch"])))
