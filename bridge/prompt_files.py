"""Load the prompt WAV files of `prompts/<language>/<name>.wav` into a PromptLibrary.

`prompts/common/<name>.wav` holds the clips that are the same in every language (the hold
music). Deployments may replace the generated voice with recordings of the same names:
any mono 16-bit PCM WAV is accepted and resampled to the room rate.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from bridge.conference.prompts import COMMON, Clip, PromptLibrary
from dsp.resample import resample

LANGUAGES = ("id", "en")


def read_wav(path: Path) -> tuple[Clip, int]:
    """Read a mono 16-bit PCM WAV as float32 in [-1, 1) and its rate."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: prompts must be mono 16-bit PCM WAV")
        rate = wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return samples, rate


def load_prompts(directory: Path, rate_hz: int) -> PromptLibrary:
    """Read every prompt of every language and the common clips, resampled to `rate_hz`."""
    clips: dict[tuple[str, str], Clip] = {}
    for language in (*LANGUAGES, COMMON):
        for path in sorted((directory / language).glob("*.wav")):
            samples, rate = read_wav(path)
            if rate != rate_hz:
                samples = resample(samples, rate, rate_hz)
            clips[(language, path.stem)] = samples.astype(np.float32)
    if not clips:
        raise FileNotFoundError(f"no prompts found under {directory}")
    return PromptLibrary(rate_hz, clips)
