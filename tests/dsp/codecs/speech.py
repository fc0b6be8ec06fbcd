"""Speech for codec tests: the shipped English welcome prompt, cut into frames."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

RATE_HZ = 16_000
FRAME_SAMPLES = 320  # 20 ms
WELCOME_WAV = Path(__file__).resolve().parents[3] / "prompts" / "en" / "welcome.wav"


def load_speech() -> NDArray[np.float32]:
    """The English welcome prompt: 2.4 s of espeak-ng speech, 16 kHz mono, -3 dBFS peak."""
    with wave.open(str(WELCOME_WAV)) as clip:
        assert clip.getframerate() == RATE_HZ and clip.getnchannels() == 1
        pcm = np.frombuffer(clip.readframes(clip.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / np.float32(32768.0)


SPEECH = load_speech()


def as_frames(clip: NDArray[np.float32], frame_samples: int) -> NDArray[np.float32]:
    """Whole frames of `clip`, `(k, frame_samples)`; the tail is dropped."""
    count = len(clip) // frame_samples
    return clip[: count * frame_samples].reshape(count, frame_samples)
