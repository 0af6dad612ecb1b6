"""§3.3's spectrogram, checked against a from-scratch numpy computation of the same definition."""
import numpy as np
import torch

from mixup_cli.data.speech_commands import BINS, FRAMES, HOP, WINDOW, spectrograms


def reference(wave: np.ndarray) -> np.ndarray:
    """Reflect-padded centred frames, periodic Hamming window, |rfft|, log1p, per-clip standardization
    over the frames that hold audio, zeros after them: the pipeline the docstring states, in float64."""
    length = HOP * (FRAMES - 1)
    clip = np.zeros(length)
    clip[:min(len(wave), length)] = wave[:length]
    padded = np.pad(clip, WINDOW // 2, mode="reflect")
    window = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)
    frames = np.stack([padded[t * HOP:t * HOP + WINDOW] * window for t in range(FRAMES)], axis=1)
    spect = np.log1p(np.abs(np.fft.rfft(frames, axis=0))[:BINS])
    valid = min(FRAMES, 1 + min(len(wave), length) // HOP)
    audio = spect[:, :valid]
    out = (spect - audio.mean()) / audio.std(ddof=1)
    out[:, valid:] = 0.0
    return out


def test_spectrogram_matches_the_stated_definition():
    rng = np.random.default_rng(0)
    full = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16_000) / 16_000) + 0.05 * rng.standard_normal(16_000))
    short = 0.2 * rng.standard_normal(7_000)  # ends early: the padded frames must be zero
    got = spectrograms([full.astype(np.float32), short.astype(np.float32)])
    assert got.shape == (2, 1, BINS, FRAMES)
    for clip, wave in zip(got, (full, short)):
        np.testing.assert_allclose(clip[0].double().numpy(), reference(wave), atol=2e-4)


def test_spectrogram_bins_see_the_tone():
    """A 1 kHz tone peaks in bin 1000 / (16000 / 320) = 20 of every frame."""
    tone = np.sin(2 * np.pi * 1000 * np.arange(16_000) / 16_000).astype(np.float32)
    got = spectrograms([tone])[0, 0]
    assert torch.all(got[:, 5:-5].argmax(dim=0) == 20)
