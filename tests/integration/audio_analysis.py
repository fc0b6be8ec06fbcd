"""Measure what a real client heard: WAV I/O, levels, and normalised cross-correlation.

Recordings from baresip's sndfile filter hold one frame per received RTP packet, so a
stretch without packets leaves no gap: a sent clip is located in a recording by
correlation, never by an absolute position. Everything here is float64/float32 numpy on
mono samples scaled so that 1.0 is int16 full scale.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.signal import fftconvolve, lfilter, resample_poly, welch

Samples = NDArray[np.float32]

# First-order pre-emphasis before correlating: it whitens speech's steep spectral tilt, so
# unrelated speech correlates less by chance (measured here on espeak-ng clips through
# two G.711 passes: the best chance peak fell from 0.08-0.11 to 0.04-0.085), while an
# exact copy still peaks at 1.0 since both signals go through the same filter.
PRE_EMPHASIS = 0.95

_WAV_HEADER_BYTES = 12  # "RIFF", size, "WAVE"; chunks follow
_CANONICAL_WAV_HEADER_BYTES = 44  # RIFF header, a 16-byte fmt chunk, the data chunk's header


@dataclass(frozen=True, slots=True)
class CorrelationPeak:
    """The best match of a reference clip inside a recording."""

    value: float  # normalised cross-correlation at the best lag, in [-1, 1]
    offset_samples: int  # where in the recording the reference starts at that lag


def read_wav(path: Path) -> tuple[Samples, int]:
    """Read a mono 16-bit PCM WAV as `(n,)` float32 and its rate in Hz.

    Also reads a file still being written: libsndfile fills in the RIFF and data sizes
    only when it closes the file, so a data size that is zero or runs past the end of
    the file means "everything to the end".
    """
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    position = _WAV_HEADER_BYTES
    rate_hz = 0
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        body = position + 8
        if chunk_id == b"fmt ":
            audio_format, channels, rate_hz = (
                int.from_bytes(data[body : body + 2], "little"),
                int.from_bytes(data[body + 2 : body + 4], "little"),
                int.from_bytes(data[body + 4 : body + 8], "little"),
            )
            bits = int.from_bytes(data[body + 14 : body + 16], "little")
            if audio_format != 1 or channels != 1 or bits != 16:
                raise ValueError(f"{path}: expected mono 16-bit PCM")
        elif chunk_id == b"data":
            if rate_hz == 0:
                raise ValueError(f"{path}: data chunk before fmt chunk")
            end = len(data) if size == 0 or body + size > len(data) else body + size
            end -= (end - body) % 2
            pcm = np.frombuffer(data[body:end], dtype="<i2")
            return (pcm.astype(np.float32) / 32768.0), rate_hz
        position = body + size + (size % 2)
    raise ValueError(f"{path}: no data chunk")


def write_wav(path: Path, samples: Samples, rate_hz: int) -> None:
    """Write `(n,)` float samples as a mono 16-bit PCM WAV (clipped to int16)."""
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(pcm.tobytes())


def recorded_samples(path: Path) -> int:
    """How many 16-bit samples a WAV being written holds so far (standard 44-byte header).

    Used to mark where in a recording something happened, relative to the same file.
    """
    if not path.exists():
        return 0
    return max(0, path.stat().st_size - 44) // 2


def resample(samples: Samples, from_hz: int, to_hz: int) -> Samples:
    """Resample with scipy's polyphase filter (independent of the bridge's resampler)."""
    if from_hz == to_hz:
        return samples.astype(np.float32)
    common = gcd(from_hz, to_hz)
    out = resample_poly(samples.astype(np.float64), to_hz // common, from_hz // common)
    return np.asarray(out, dtype=np.float32)


def rms_dbfs(samples: Samples) -> float:
    """Root-mean-square level in dB relative to full scale; -inf for digital silence."""
    if samples.shape[0] == 0:
        raise ValueError("no samples to measure")
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    return float(10 * np.log10(power)) if power > 0 else float("-inf")


def trim_silence(samples: Samples, rate_hz: int, threshold_dbfs: float = -45.0) -> Samples:
    """Cut leading and trailing 10 ms blocks quieter than `threshold_dbfs`."""
    block = rate_hz // 100
    count = samples.shape[0] // block
    blocks = samples[: count * block].reshape(count, block).astype(np.float64)
    power = np.mean(blocks * blocks, axis=1)
    loud = np.flatnonzero(power > 10 ** (threshold_dbfs / 10))
    if loud.size == 0:
        raise ValueError("clip is silent")
    return samples[loud[0] * block : (loud[-1] + 1) * block]


def correlation_peak(
    recording: Samples, reference: Samples, *, floor_dbfs: float = -55.0
) -> CorrelationPeak:
    """Find `reference` in `recording`: the peak of their normalised cross-correlation.

    Both are pre-emphasised (`PRE_EMPHASIS`); then at every lag the dot product is
    divided by the norms of the reference and of the recording window under it, so the
    value is 1.0 for an exact (scaled) copy whatever the level, and near 0 for unrelated
    audio. Windows quieter than `floor_dbfs` (measured before pre-emphasis) are skipped:
    dividing by a near-zero norm would turn codec noise into a false match.
    """
    n = reference.shape[0]
    if n == 0:
        raise ValueError("empty reference")
    if recording.shape[0] < n:
        raise ValueError(
            f"recording ({recording.shape[0]} samples) is shorter than the reference ({n})"
        )
    raw = recording.astype(np.float64)
    ref = _pre_emphasise(reference.astype(np.float64))
    rec = _pre_emphasise(raw)
    ref_norm = float(np.sqrt(np.sum(ref * ref)))
    if ref_norm == 0:
        raise ValueError("silent reference")
    dot = fftconvolve(rec, ref[::-1], mode="valid")  # (len(rec) - n + 1,)
    audible = _window_sums(raw * raw, n) > n * 10 ** (floor_dbfs / 10)
    window_energy = _window_sums(rec * rec, n)
    ncc = np.zeros_like(dot)
    usable = audible & (window_energy > 0)
    ncc[usable] = dot[usable] / (ref_norm * np.sqrt(window_energy[usable]))
    best = int(np.argmax(ncc))
    return CorrelationPeak(float(ncc[best]), best)


def _pre_emphasise(samples: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(lfilter([1.0, -PRE_EMPHASIS], [1.0], samples), dtype=np.float64)


def _window_sums(values: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """Sums over every window of `n` consecutive values (never negative from rounding)."""
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    return np.maximum(cumulative[n:] - cumulative[:-n], 0.0)


def read_recording(path: Path) -> tuple[Samples, int]:
    """Read a finished 16-bit PCM WAV of any channel count as mono `(n,)` float32 and its
    rate in Hz, averaging the channels.

    baresip runs its audio at the codec's rate and channel count and sndfile records it
    so: Opus (RFC 7587 §7, opus/48000/2) gives 48 kHz stereo files whose two channels
    carry the same mono stream, G.722 16 kHz mono, G.711 8 kHz mono.
    """
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM")
        channels, rate_hz = wav.getnchannels(), wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    frames = pcm[: pcm.shape[0] - pcm.shape[0] % channels].reshape(-1, channels)
    return (frames.astype(np.float32).mean(axis=1) / 32768.0).astype(np.float32), rate_hz


def recorded_seconds(path: Path) -> float:
    """How many seconds of audio a WAV being written holds so far (standard 44-byte header,
    whose format fields libsndfile writes at once; only its sizes come at the close)."""
    if not path.exists():
        return 0.0
    with path.open("rb") as wav:
        header = wav.read(_CANONICAL_WAV_HEADER_BYTES)
    if len(header) < _CANONICAL_WAV_HEADER_BYTES:
        return 0.0
    bytes_per_second = int.from_bytes(header[28:32], "little")  # the fmt chunk's byte rate
    return max(0, path.stat().st_size - _CANONICAL_WAV_HEADER_BYTES) / bytes_per_second


def band_level_dbfs(
    samples: Samples, rate_hz: int, low_hz: float, high_hz: float, *, resolution_hz: float = 10.0
) -> float:
    """The level of the content in [`low_hz`, `high_hz`) in dBFS (as `rms_dbfs` measures a
    whole signal), from Welch's averaged periodogram (scipy) with Hann windows of
    1 / `resolution_hz` seconds: a steady tone's power stays within two bins of it, while
    broadband noise counts only for the band's width, so finer bins see a tone deeper
    below the noise."""
    frequencies, density = welch(
        samples.astype(np.float64), fs=rate_hz, window="hann",
        nperseg=round(rate_hz / resolution_hz), scaling="density",
    )
    in_band = (frequencies >= low_hz) & (frequencies < high_hz)
    power = float(np.sum(density[in_band]) * (frequencies[1] - frequencies[0]))
    return float(10 * np.log10(power)) if power > 0 else float("-inf")
