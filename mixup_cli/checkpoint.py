"""Checkpoints: written atomically, read without unpickling code, complete enough to rebuild.

A checkpoint is a dict of tensors and plain data only (no pickled classes), so it loads with
`torch.load(..., weights_only=True)`: opening a checkpoint from someone else never runs code.
It holds the model's registry name and arguments, the dataset and its normalization, the
resolved config and the training position, so `load_model(path)` needs nothing else.
"""
from __future__ import annotations

import dataclasses
import hashlib
import numbers
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import torch

from .errors import ConfigError, RunError

FORMAT = "mixup-cli-checkpoint"
VERSION = 1
CHECKSUM = "checksum"  # "sha256:<hex>" of everything else in the payload; absent in older checkpoints
MAX_PARAMETERS = 1_000_000_000  # a checkpoint asking for a bigger model is refused before anything is allocated
MAX_OPTION = 100_000  # the largest integer a model option may have (width, depth, growth, ...)


def _feed(hasher, value) -> None:
    """Feed a payload value into `hasher`, tagged by type so that different structures never collide."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().to("cpu").contiguous().reshape(-1)
        hasher.update(f"T{flat.dtype}{tuple(value.shape)}:".encode())
        hasher.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    elif isinstance(value, Mapping):
        hasher.update(f"D{len(value)}:".encode())
        for key, item in value.items():
            _feed(hasher, key)
            _feed(hasher, item)
    elif isinstance(value, (list, tuple)):
        hasher.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for item in value:
            _feed(hasher, item)
    else:  # None, bool, int, float, str, bytes: their repr is exact (floats round-trip)
        text = repr(value).encode()
        hasher.update(f"{type(value).__name__}{len(text)}:".encode() + text)


def payload_checksum(payload: Mapping) -> str:
    """SHA-256 of every tensor's bytes and every plain value in `payload` except its checksum."""
    hasher = hashlib.sha256()
    _feed(hasher, {k: v for k, v in payload.items() if k != CHECKSUM})
    return f"sha256:{hasher.hexdigest()}"


def save_atomic(payload: dict, path: Union[str, Path], what: str, hint: str = "") -> Path:
    """torch.save to a temporary file beside `path`, fsync, then rename: `path` is never half-written."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise RunError(f"could not write {what} '{path}': {exc.strerror or exc}{hint}") from None
    except RuntimeError as exc:  # torch's zip writer reports a failed write (ENOSPC, EIO) as a RuntimeError
        Path(tmp).unlink(missing_ok=True)
        if not _write_failed(exc, path.parent):
            raise
        raise RunError(f"could not write {what} '{path}': {_write_problem(path.parent)}{hint}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


LOW_SPACE = 1 << 20  # a filesystem with less free space than this (bytes) is taken to be full


def _free_bytes(folder: Path) -> Optional[int]:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _write_failed(exc: RuntimeError, folder: Path) -> bool:
    """Whether torch.save's RuntimeError is a failed write to disk rather than a bug or a bad payload."""
    text = str(exc)
    free = _free_bytes(folder)
    return ("unexpected pos" in text or "write failed" in text or "No space left" in text
            or (free is not None and free < LOW_SPACE))


def _write_problem(folder: Path) -> str:
    free = _free_bytes(folder)
    if free is None or free < LOW_SPACE:
        return "No space left on device"
    return "the write failed (disk full, quota exceeded or an I/O error)"


def save_checkpoint(payload: dict, path: Union[str, Path]) -> None:
    """Save `payload` with the format tag and a checksum of its contents, which every load verifies."""
    # One copy to host memory, shared by the checksum and torch.save (a GPU run's tensors would
    # otherwise cross the bus twice per checkpoint).
    full = _moved({"format": FORMAT, "version": VERSION,
                   **{k: v for k, v in payload.items() if k not in (CHECKSUM, "path")}}, "cpu")
    full[CHECKSUM] = payload_checksum(full)
    kept = "the previous checkpoint is kept" if Path(path).is_file() else "no checkpoint is saved yet"
    save_atomic(full, path, "checkpoint", f"; {kept}. Free disk space or choose another --out")


def link_checkpoint(source: Union[str, Path], path: Union[str, Path], payload: dict) -> None:
    """Make `path` the checkpoint just written to `source` without writing it twice: a hard link,
    swapped in atomically. A later save to `source` renames a new file over it and leaves `path`
    as it was. Where the filesystem has no hard links, `payload` is saved to `path` instead."""
    source, path = Path(source), Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.link")
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        save_checkpoint(payload, path)


def _held_epoch(best: Path, last: Path, last_epoch: int) -> Optional[int]:
    """The epoch `best` holds: last.pt's when it is a link to it, else read from it; None if unreadable."""
    try:
        if os.path.samefile(best, last):
            return last_epoch
    except OSError:
        return None
    try:
        return load_checkpoint(best)["epoch"]
    except ConfigError:
        return None


def repair_best(last: Union[str, Path], best: Union[str, Path], payload: dict, best_epoch: Optional[int]) -> str:
    """Make `best` hold epoch `best_epoch` (the run's best, as last.pt records it) when a kill between
    the last.pt and best.pt writes left it behind: link it to `last` when last.pt (`payload`) is the end
    of that epoch. '' when nothing was wrong; else a line saying what was done or could not be."""
    last, best = Path(last), Path(best)
    if best_epoch is None:
        return ""
    held = _held_epoch(best, last, payload["epoch"]) if best.is_file() else None
    if held == best_epoch:
        return ""
    was = f"held epoch {held}" if held is not None else ("was missing" if not best.is_file() else "was unreadable")
    if payload["epoch"] == best_epoch and payload["state"].get("step", 0) == 0:
        link_checkpoint(last, best, payload)
        return f"repaired {best}: it {was}, the run's best is epoch {best_epoch} (now linked to {last.name})"
    return (f"warning: {best} {was}, but the run's best is epoch {best_epoch}, which no checkpoint here holds; "
            f"it is left as it is")


class SaveCadence:
    """Whether last.pt is due after an epoch, apart from the epochs that always write it (the last
    one, a stop request, a new best test error).

    `every` N: after every Nth epoch (counted from the run's start, so a resumed run keeps the same
    epochs). None, "auto": when writing last.pt last time took at most `share` of the time that has
    passed since that write ended, so checkpoints cost at most ~5 % of a run, and a killed run loses at
    most ~20 write-times of work plus an epoch. The first epoch of a process always writes, which
    measures the write. Only rank 0 writes, so only its clock decides.
    """

    def __init__(self, every: Optional[int], share: float = 0.05, clock: Callable[[], float] = time.perf_counter):
        self.every, self.share, self.clock = every, share, clock
        self.write_seconds: Optional[float] = None  # the last write of last.pt; unknown until the first
        self.written_at = clock()

    def due(self, epochs_done: int) -> bool:
        if self.every is not None:
            return epochs_done % self.every == 0
        return self.write_seconds is None or self.write_seconds <= self.share * (self.clock() - self.written_at)

    def wrote(self, seconds: float) -> None:
        self.write_seconds, self.written_at = seconds, self.clock()


def load_checkpoint(path: Union[str, Path], map_location: Any = "cpu") -> dict:
    """Read a checkpoint with weights_only=True; any damage is a one-line ConfigError."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise ConfigError(f"run directory '{path}' holds no best.pt or last.pt; pass a checkpoint file")
    if not path.is_file():
        raise ConfigError(f"checkpoint '{path}' does not exist; pass the path of a .pt file written by mixup train")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise ConfigError(f"'{path}' is not a mixup checkpoint (not a PyTorch archive: truncated, corrupted or "
                          f"another kind of file); pass a .pt file written by mixup train")
    try:
        # Read onto the CPU, where the checksum is computed, and move to `map_location` once verified.
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for damaged files
        text = str(exc)
        if "Weights only load failed" in text or "Unsupported global" in text:
            raise ConfigError(
                f"checkpoint '{path}' holds pickled objects beyond tensors and plain data, which are not loaded "
                f"for safety; only load checkpoints written by mixup train"
            ) from None
        reason = text.split(". ")[0].splitlines()[0][:120] if text else type(exc).__name__
        raise ConfigError(f"checkpoint '{path}' cannot be read (truncated or corrupted: {reason}); "
                          f"pass an intact .pt file written by mixup train") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"'{path}' is not a mixup checkpoint; pass a .pt file written by mixup train")
    version = payload.get("version", 0)
    if not isinstance(version, int) or version > VERSION:
        raise ConfigError(f"checkpoint '{path}' has format version {version!r}, not one this mixup reads (up to "
                          f"{VERSION}); upgrade mixup-cli")
    _verify_checksum(payload, path)
    _check_layout(payload, path)
    payload["path"] = str(path)
    return payload if str(map_location) == "cpu" else _moved(payload, map_location)


def _moved(value, device):
    """`value` with every tensor in it on `device` (tensors already on the CPU stay shared on the CPU)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _moved(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_moved(item, device) for item in value)
    return value


def _verify_checksum(payload: dict, path: Path) -> None:
    stored = payload.get(CHECKSUM)
    if stored is None:
        return  # written before checkpoints carried one
    if stored != payload_checksum(payload):
        raise ConfigError(f"checkpoint '{path}' is corrupted: its contents do not match the checksum stored in it "
                          f"(changed on disk or in a copy); restore it from a backup or pass another checkpoint")


# What each kind of checkpoint must hold: a training run's (mixup train) and a GAN sub-run's (mixup gan).
TRAINING_LAYOUT = {"model": Mapping, "dataset": Mapping, "config": Mapping, "state_dict": Mapping,
                   "optimizer": Mapping, "state": Mapping, "epoch": int}
GAN_LAYOUT = {"config": Mapping, "subrun": Mapping, "iteration": int, "generator": Mapping, "discriminator": Mapping}
MODEL_LAYOUT = {"name": str, "num_classes": int, "input_shape": (list, tuple), "options": Mapping,
                "mean": (list, tuple), "std": (list, tuple)}


def _malformed(path, what: str) -> ConfigError:
    return ConfigError(f"checkpoint '{path}' is not a complete mixup checkpoint ({what}); pass a .pt file written "
                       f"by mixup train or mixup gan")


def _require(record: Mapping, layout: dict, path, where: str = "") -> None:
    for key, kind in layout.items():
        if key not in record:
            raise _malformed(path, f"no '{where}{key}'")
        value = record[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _malformed(path, f"'{where}{key}' is a {type(value).__name__}")


def _check_layout(payload: dict, path) -> None:
    """Refuse a crafted or foreign dict with one line, before anything indexes into it."""
    if "generator" in payload:
        _require(payload, GAN_LAYOUT, path)
        if "model" not in payload:
            return  # a GAN sub-run's checkpoint; one that also claims a model is checked as a training one
    _require(payload, TRAINING_LAYOUT, path)
    _require(payload["model"], MODEL_LAYOUT, path, "model.")
    _require(payload["dataset"], {"name": str}, path, "dataset.")
    _require(payload["state"], {"epoch": int}, path, "state.")
    check_model_spec(payload["model"], path)


def check_model_spec(spec: Mapping, path) -> None:
    """The model a checkpoint asks for, within bounds: plain option values, sane sizes (no allocation yet)."""
    def whole(value, low, high):
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    shape = spec["input_shape"]
    if not whole(spec["num_classes"], 1, 1_000_000) or not 1 <= len(shape) <= 4 or \
            not all(whole(d, 1, MAX_OPTION) for d in shape):
        raise _malformed(path, f"model.num_classes {spec['num_classes']!r} or model.input_shape out of bounds")
    for key, value in spec["options"].items():
        plain = value is None or isinstance(value, (bool, str, float)) or whole(value, -MAX_OPTION, MAX_OPTION)
        if not isinstance(key, str) or not plain:
            raise _malformed(path, f"model option {key!r} = {str(value)[:40]} is out of bounds")
    if not all(isinstance(v, numbers.Real) for v in [*spec["mean"], *spec["std"]]):
        raise _malformed(path, "model.mean or model.std holds a non-number")


def _check_size(spec: Mapping, path) -> None:
    """Build the model on the meta device (no memory) and refuse more than MAX_PARAMETERS parameters."""
    from .models import build_model, count_parameters

    with torch.device("meta"):
        parameters = count_parameters(build_model(spec["name"], spec["num_classes"], tuple(spec["input_shape"]),
                                                  **spec["options"]))
    if parameters > MAX_PARAMETERS:
        raise ConfigError(f"checkpoint '{path}' asks for a model of {parameters:,} parameters, over the limit of "
                          f"{MAX_PARAMETERS:,}; it is not a checkpoint mixup train writes")


def model_from_checkpoint(payload: dict) -> torch.nn.Module:
    """The checkpoint's model in eval mode, taking raw-scale inputs (it normalizes them itself)."""
    from .models import Normalized, build_model

    if "model" not in payload:
        raise ConfigError(f"checkpoint '{payload.get('path')}' holds no classifier (a GAN sub-run's?); pass a "
                          f"checkpoint written by mixup train")
    spec = payload["model"]
    try:
        _check_size(spec, payload.get("path"))
        net = build_model(spec["name"], spec["num_classes"], tuple(spec["input_shape"]), **spec["options"])
        model = Normalized(net, spec["mean"], spec["std"], len(spec["input_shape"]))
    except ConfigError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:  # options of the wrong kind for the model, say
        raise _malformed(payload.get("path"), f"its model cannot be built: {str(exc).splitlines()[0][:120]}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ConfigError(f"checkpoint '{payload.get('path')}' does not match its model '{spec['name']}': "
                          f"{str(exc).splitlines()[0][:160]}") from None
    return model.eval()


def method_of(record: Mapping) -> str:
    """'mixup' or 'erm': the method a checkpoint payload names, else (checkpoints written before it was
    saved, or a saved TrainConfig dict) the one its alpha means, as TrainConfig.method decides."""
    method = record.get("method")
    if isinstance(method, str):
        return method
    config = record.get("config", record)
    alpha = config.get("alpha") if isinstance(config, Mapping) else None
    return "mixup" if (alpha is None or alpha > 0) else "erm"


def checkpoint_name(path: Union[str, Path]) -> str:
    """A short name for a checkpoint in a table: its run directory for best.pt/last.pt, else its stem."""
    p = Path(path)
    return p.parent.name if p.name in ("best.pt", "last.pt") else p.stem


@dataclasses.dataclass
class OpenedCheckpoint:
    """A checkpoint opened for evaluation: `model` in eval mode on the device (raw-scale inputs),
    `spec` its dataset's DatasetSpec, `config` the run's saved config, `info` what tables show of it
    (ckpt, name, dataset, model, method, alpha, epoch), `payload` the checkpoint as read, `device`
    where the model is."""

    model: torch.nn.Module
    spec: Any
    config: dict
    info: dict
    payload: dict
    device: torch.device

    @property
    def path(self) -> str:
        return self.payload["path"]


def open_checkpoint(source: Union[str, Path, dict], device: Union[str, torch.device] = "cpu",
                    dataset: Optional[str] = None) -> OpenedCheckpoint:
    """The one way to open a checkpoint for evaluation: a checkpoint file, a run directory (its best.pt,
    else last.pt), or a payload already read by load_checkpoint. `device` is a torch.device or a name
    (auto | cpu | cuda | cuda:N). `spec` is the checkpoint's own dataset, or `dataset` when given (to
    evaluate on another registered dataset with the same classes)."""
    from .data import get_dataset
    from .devices import resolve_device

    payload = source if isinstance(source, dict) else load_checkpoint(source)
    refuse_fewshot(payload)
    spec = get_dataset(dataset or payload["dataset"]["name"])
    if spec.num_classes != payload["model"]["num_classes"]:
        raise ConfigError(f"checkpoint '{payload['path']}' has {payload['model']['num_classes']} classes but "
                          f"dataset '{spec.name}' has {spec.num_classes}")
    torch_device = resolve_device(device) if isinstance(device, str) else device
    model = model_from_checkpoint(payload).to(torch_device).eval()
    config = payload.get("config", {})
    info = {"ckpt": payload["path"], "name": checkpoint_name(payload["path"]), "dataset": payload["dataset"]["name"],
            "model": payload["model"]["name"], "method": method_of(payload), "alpha": config.get("alpha"),
            "epoch": payload["epoch"]}
    return OpenedCheckpoint(model, spec, config, info, payload, torch_device)


def refuse_fewshot(payload: dict) -> None:
    """A few-shot backbone's classifier knows only the base classes: its error on a whole dataset means nothing."""
    if "fewshot" in payload:
        raise ConfigError(f"checkpoint '{payload['path']}' is a few-shot backbone (mixup fewshot train); score it "
                          f"on novel-class episodes with mixup fewshot eval --ckpt {payload['path']}")


def load_model(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    """Public API: the model of a checkpoint file (or run directory), in eval mode, raw-scale inputs."""
    return open_checkpoint(path, device).model
