"""Speech clips for benches and tests: espeak-ng sentences, trimmed, joined, at a set level.

espeak-ng is deterministic, so a clip is a pure function of its text, voice, speed and pitch;
clips are cached per process. Everything is mono float32 with 1.0 at int16 full scale. This
module knows nothing of the bridge: it only makes audio.

    .venv/bin/python bench/speech.py   # each script's active level and length, per voice

Benches import it as a sibling (`from speech import speak`), tests as `bench.speech`.
"""

from __future__ import annotations

import io
import subprocess
import wave
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import signal
from scipy.ndimage import maximum_filter1d

from dsp.resample import resample

Samples = NDArray[np.float32]

ENGLISH = (
    "Good morning, everyone.",
    "The river rose forty centimetres, so the east road is closed.",
    "Please send your field reports before noon.",
)
INDONESIAN = (
    "Selamat pagi semuanya.",
    "Air sungai naik empat puluh senti, jadi jalan timur ditutup.",
    "Mohon kirim laporan sebelum siang.",
)
# espeak-ng voices: a language, and `+f3` for one of its female variants.
VOICES = ("en-us", "en-us+f3", "id", "id+f3")

# ITU-T P.56 (12/2011) §B.3 method B: the envelope is |x| through two one-pole smoothers of
# 0.03 s; a sample is active while the envelope was above the threshold within the last 0.2 s
# (the hangover); the active level is the one that sits 15.9 dB above its own threshold.
_ENVELOPE_TIME_CONSTANT_S = 0.03
_HANGOVER_S = 0.2
_MARGIN_DB = 15.9

_CLIP_CACHE_SIZE = 256


def speak(
    text: str,
    voice: str = "en-us",
    rate_hz: int = 16000,
    *,
    speed_wpm: int = 165,
    pitch: int | None = None,
    trim_db: float | None = -45.0,
) -> Samples:
    """Return espeak-ng's rendering of `text`: `(n,)` float32 at `rate_hz`, espeak's own level.

    `pitch` is espeak-ng's `-p` (0-99; None: the voice's own). With `trim_db`, the clip is cut
    to run from the first to the last sample within `trim_db` of its peak magnitude. The
    result is a fresh copy of a cached clip, so callers may scale it in place.
    """
    return _spoken(text, voice, rate_hz, speed_wpm, pitch, trim_db).copy()


@lru_cache(maxsize=_CLIP_CACHE_SIZE)
def _spoken(
    text: str, voice: str, rate_hz: int, speed_wpm: int, pitch: int | None,
    trim_db: float | None,
) -> Samples:
    """Return `speak`'s clip, read-only, made once per process per argument set."""
    pitch_args = ["-p", str(pitch)] if pitch is not None else []
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed_wpm), *pitch_args, "--stdout", text],
        capture_output=True, check=True, timeout=60,
    ).stdout
    with wave.open(io.BytesIO(wav), "rb") as reader:
        espeak_rate_hz = reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    samples = resample(pcm.astype(np.float32) / 32768, espeak_rate_hz, rate_hz)
    if trim_db is not None:
        magnitude = np.abs(samples)
        loud = np.flatnonzero(magnitude > np.max(magnitude) * 10 ** (trim_db / 20))
        if loud.size == 0:
            raise ValueError(f"espeak-ng made no sound for {text!r} in voice {voice!r}")
        samples = samples[loud[0] : loud[-1] + 1]
    samples.flags.writeable = False
    return samples


def active_level_dbfs(clip: Samples, rate_hz: int = 16000) -> float:
    """Return the active speech level of a `(n,)` clip in dB re full scale (ITU-T P.56 method B).

    Every envelope sample is a candidate threshold; with the samples sorted by held envelope,
    cumulative sums give the active level at each at once, and the answer is interpolated (in
    dB) where that level first stands `_MARGIN_DB` above its threshold.
    """
    x = np.asarray(clip, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"expected a non-empty (samples,) clip, got shape {x.shape}")
    g = np.exp(-1.0 / (rate_hz * _ENVELOPE_TIME_CONSTANT_S))
    envelope = signal.lfilter([(1 - g) ** 2], [1.0, -2 * g, g * g], np.abs(x))
    # Causal running maximum over the hangover: active while above the threshold any time in
    # the last 0.2 s. maximum_filter1d centres its window; the origin moves it to end at n.
    hold = round(_HANGOVER_S * rate_hz)
    held = maximum_filter1d(envelope, size=hold, origin=(hold - 1) // 2, mode="constant")
    order = np.argsort(held)[::-1]
    thresholds = held[order]
    audible = thresholds > 0
    if not audible.any():
        raise ValueError("clip is silent")
    energy = np.cumsum(x[order] ** 2)[audible]
    counts = np.arange(1, x.size + 1)[audible]
    level_db = 10 * np.log10(np.maximum(energy / counts, 1e-30))
    threshold_db = 20 * np.log10(thresholds[audible])
    excess_db = level_db - threshold_db  # grows as the threshold falls
    reached = np.flatnonzero(excess_db >= _MARGIN_DB)
    if reached.size == 0:
        return float(level_db[-1])  # never 15.9 dB above: the whole clip counts as active
    k = int(reached[0])
    if k == 0:
        return float(level_db[0])
    fraction = (_MARGIN_DB - excess_db[k - 1]) / (excess_db[k] - excess_db[k - 1])
    return float(level_db[k - 1] + fraction * (level_db[k] - level_db[k - 1]))


def set_active_level(clip: Samples, dbfs: float, rate_hz: int = 16000) -> Samples:
    """Return `clip` scaled so that its active speech level (P.56 method B) is `dbfs`."""
    gain = 10 ** ((dbfs - active_level_dbfs(clip, rate_hz)) / 20)
    return np.asarray(clip * gain, dtype=np.float32)


def sentences_clip(
    voice: str,
    sentences: Sequence[str],
    rate_hz: int = 16000,
    pauses_s: Sequence[float] = (0.6, 0.8),
    leading_s: float = 0.3,
    trailing_s: float = 0.6,
) -> Samples:
    """Return `sentences` spoken in `voice`, each trimmed, with silences: `(n,)` float32.

    `leading_s` of silence comes first, then the sentences with `pauses_s` between them
    (cycled), then `trailing_s`. The level is espeak-ng's own; see `set_active_level`.
    """
    def silence(seconds: float) -> Samples:
        return np.zeros(round(seconds * rate_hz), dtype=np.float32)

    parts = [silence(leading_s)]
    for index, text in enumerate(sentences):
        if index:
            parts.append(silence(pauses_s[(index - 1) % len(pauses_s)]))
        parts.append(speak(text, voice, rate_hz))
    parts.append(silence(trailing_s))
    return np.concatenate(parts)


def main() -> None:
    """Print each voice's script: its length and its active level as espeak-ng speaks it."""
    for voice in VOICES:
        sentences = INDONESIAN if voice.startswith("id") else ENGLISH
        clip = sentences_clip(voice, sentences)
        print(f"{voice:>9}: {len(clip) / 16000:5.2f} s, "
              f"active level {active_level_dbfs(clip):6.2f} dBFS")


if __name__ == "__main__":
    main()
