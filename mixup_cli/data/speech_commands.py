"""Google Speech Commands v0.01 (Warden, 2017) as normalized spectrograms, for §3.3.

The released folder layout under --data-dir (or its speech_commands_v0.01/ subfolder):

    <word>/<speaker>_nohash_<n>.wav     30 word folders of 16 kHz, 16-bit mono, ~1 s clips
    validation_list.txt, testing_list.txt   relative paths of the validation and test clips

The training split is every clip in neither list; the validation and test splits are the clips of
validation_list.txt and testing_list.txt (Table 4 reports both; the trainer evaluates both). WAV files are decoded with
Python's own `wave` module, so no ffmpeg is needed.

Spectrograms as in §3.3 and the Google-commands code it used (Adi, GCommandsPytorch): STFT
magnitude (torchaudio.transforms.Spectrogram, centred frames, reflect padding) with a 20 ms Hamming
window and 10 ms hop (320/160 samples at 16 kHz), log(1 + |X|),
normalized to zero mean and unit variance per utterance, then zero-padded (or cut) to 101 frames.
The 320-point FFT gives 161 frequency bins; the Nyquist bin is dropped to reach the paper's 160,
so every input is 1 x 160 x 101. mixup then mixes these spectrograms, the level the paper used.

They are computed once and cached as float16 under DATA_DIR/.mixup-cache/ (about 2 GB for the
full training set), keyed by the clip list and these parameters, and served as a TensorSplit.
"""
from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..runs import removing_new_empty_dirs
from . import DatasetSpec, register_dataset
from .files import data_root, missing_files_error
from .tensor_split import TensorSplit

CLASSES = ("bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy", "house", "left",
           "marvin", "nine", "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop", "three",
           "tree", "two", "up", "wow", "yes", "zero")
SAMPLE_RATE = 16_000
WINDOW, HOP = 320, 160  # 20 ms and 10 ms at 16 kHz
BINS, FRAMES = 160, 101
CACHE_VERSION = 1
LISTS = ("validation_list.txt", "testing_list.txt")


def find_root(data_dir) -> Path:
    base = data_root(data_dir)
    for candidate in (base, base / "speech_commands_v0.01", base / "SpeechCommands" / "speech_commands_v0.01"):
        if all((candidate / name).is_file() for name in LISTS):
            return candidate
    raise missing_files_error("speechcommands", base, ["validation_list.txt", "testing_list.txt",
                                                       "<word>/*.wav for the 30 v0.01 words"])


def split_files(root: Path, split: str) -> list[str]:
    """Relative paths ('yes/0a7c2a8d_nohash_0.wav') of the split's clips, sorted."""
    held_out = {name: {line.strip() for line in (root / name).read_text().splitlines() if line.strip()}
                for name in LISTS}
    if split in ("test", "validation"):
        return sorted(held_out["testing_list.txt" if split == "test" else "validation_list.txt"])
    missing = [word for word in CLASSES if not (root / word).is_dir()]
    if missing:
        raise ConfigError(f"speechcommands: '{root}' lacks the word folders {', '.join(missing[:5])}"
                          f"{'...' if len(missing) > 5 else ''}; it must hold all 30 words of v0.01")
    excluded = held_out["validation_list.txt"] | held_out["testing_list.txt"]
    files = [f"{word}/{path.name}" for word in CLASSES for path in (root / word).glob("*.wav")]
    return sorted(f for f in files if f not in excluded)


def read_wav(path: Path) -> np.ndarray:
    """16-bit PCM mono 16 kHz samples as float32 in [-1, 1)."""
    try:
        with wave.open(str(path), "rb") as handle:
            if handle.getsampwidth() != 2 or handle.getnchannels() != 1 or handle.getframerate() != SAMPLE_RATE:
                raise ConfigError(f"'{path}' is not 16-bit mono {SAMPLE_RATE} Hz PCM "
                                  f"({8 * handle.getsampwidth()}-bit, {handle.getnchannels()} channel(s), "
                                  f"{handle.getframerate()} Hz)")
            frames = handle.readframes(handle.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ConfigError(f"'{path}' is not a readable WAV file ({exc})") from None
    except FileNotFoundError:
        raise ConfigError(f"'{path}' is listed but missing; restore the dataset's files") from None
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0


def spectrograms(waves: list[np.ndarray]) -> torch.Tensor:
    """N x 1 x 160 x 101 normalized log-magnitude spectrograms of clips of any length."""
    length = HOP * (FRAMES - 1)  # 16,000 samples: exactly 101 centred frames
    batch = torch.zeros(len(waves), length)
    valid = torch.empty(len(waves), dtype=torch.long)
    for i, w in enumerate(waves):
        w = torch.from_numpy(w[:length])
        batch[i, :len(w)] = w
        valid[i] = min(FRAMES, 1 + len(w) // HOP)
    spect = torch.log1p(_magnitude()(batch)[:, :BINS, :FRAMES])  # N,160,101
    mask = (torch.arange(FRAMES)[None, :] < valid[:, None]).float()[:, None, :]  # frames of real audio
    count = mask.sum(dim=(1, 2)) * BINS
    mean = (spect * mask).sum(dim=(1, 2)) / count
    var = ((spect - mean[:, None, None]) ** 2 * mask).sum(dim=(1, 2)) / (count - 1).clamp(min=1)
    std = var.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    normalized = (spect - mean[:, None, None]) / std[:, None, None]
    return (normalized * mask).unsqueeze(1)  # zero-padded past each clip's end


def _magnitude():
    """|STFT| as §3.3's pipeline computes it; torchaudio is imported here so that other datasets never load it."""
    from torchaudio.transforms import Spectrogram

    return Spectrogram(n_fft=WINDOW, win_length=WINDOW, hop_length=HOP, window_fn=torch.hamming_window,
                       power=1.0, center=True, pad_mode="reflect")


def _cache_path(root: Path, split: str, files: list[str]) -> Path:
    key = hashlib.sha1(("\n".join(files) + f"|{CACHE_VERSION}|{WINDOW}|{HOP}|{BINS}|{FRAMES}").encode()).hexdigest()[:12]
    return root / ".mixup-cache" / f"speechcommands-{split}-{key}.pt"


def _compute(root: Path, files: list[str], chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    index = {word: i for i, word in enumerate(CLASSES)}
    labels = []
    for f in files:
        word = f.split("/")[0]
        if word not in index:
            raise ConfigError(f"speechcommands: '{f}' is not in one of the 30 v0.01 word folders")
        labels.append(index[word])
    inputs = torch.empty(len(files), 1, BINS, FRAMES, dtype=torch.float16)
    for lo in range(0, len(files), chunk):
        part = files[lo:lo + chunk]
        inputs[lo:lo + len(part)] = spectrograms([read_wav(root / f) for f in part]).half()
    return inputs, torch.tensor(labels, dtype=torch.long)


def _load(split: str, data_dir, augment: bool) -> TensorSplit:
    root = find_root(data_dir)
    files = split_files(root, split)
    if not files:
        raise ConfigError(f"speechcommands: the {split} split under '{root}' has no clips")
    cache = _cache_path(root, split, files)
    if cache.is_file():
        try:
            saved = torch.load(cache, weights_only=True)
            return TensorSplit(saved["inputs"], saved["labels"])
        except Exception:  # a damaged cache is recomputed, never trusted
            cache.unlink(missing_ok=True)
    inputs, labels = _compute(root, files)
    _write_cache(cache, {"inputs": inputs, "labels": labels})
    return TensorSplit(inputs, labels)


def _write_cache(cache: Path, payload: dict) -> None:
    """Best effort: a read-only or full data folder just means computing again next time, and a failed
    write leaves neither its partial file nor a cache folder it made."""
    tmp = cache.with_suffix(".tmp")
    try:
        with removing_new_empty_dirs(cache.parent):
            cache.parent.mkdir(exist_ok=True)
            try:
                torch.save(payload, tmp)
                tmp.replace(cache)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    except (OSError, RuntimeError):  # torch.save reports a full disk as a RuntimeError
        pass


SPEECH_COMMANDS = register_dataset(DatasetSpec(
    name="speechcommands", num_classes=len(CLASSES), input_shape=(1, BINS, FRAMES),
    mean=(0.0,), std=(1.0,),  # already normalized per utterance
    default_model="vgg11", loader=_load, splits=("train", "validation", "test"),
    description="Speech Commands v0.01, 30 words, 160x101 spectrograms",
))
