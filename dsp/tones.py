"""Synthetic tones: sine sums, DTMF digits and the short audible cues of the bridge.

Every function returns a `(samples,)` float32 clip at the rate asked for, ready to be
queued as a prompt; nothing here knows rooms, members or codecs. Levels are peak dBFS
(1.0 = int16 full scale) of the whole clip, so a tone can never clip by itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from dsp.level import gain_db

# Raised-cosine on/off ramps: a hard start or stop would splatter energy across the band
# and click; 5 ms is short enough not to blur 100 ms cues.
_RAMP_MS = 5

# ITU-T Q.23 keypad: row (low group) and column (high group) frequencies.
_DTMF_ROWS_HZ = (697.0, 770.0, 852.0, 941.0)
_DTMF_COLUMNS_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
_DTMF_KEYPAD = ("123A", "456B", "789C", "*0#D")
DTMF_FREQUENCIES_HZ: dict[str, tuple[float, float]] = {
    key: (_DTMF_ROWS_HZ[row], _DTMF_COLUMNS_HZ[column])
    for row, keys in enumerate(_DTMF_KEYPAD)
    for column, key in enumerate(keys)
}

# Cues: pitches within the telephone band (300-3400 Hz), so they survive G.711 handsets,
# and peaks at tone()'s default level.
_CUE_PEAK_DBFS = -12.0
_CONFIRMATION_HZ = 1000.0
_MUTE_HIGH_HZ = 660.0
_MUTE_LOW_HZ = 440.0
# A 200 Hz buzz carries its harmonics, so it stays audible where handsets cut below 300 Hz.
_BUZZ_HZ = (200.0, 400.0, 600.0, 800.0)
# Join/leave chimes: a fourth apart (D5, G5), above the mute cues' 440/660 Hz so the two
# pairs are not confused; each note dies away like a struck bell.
_CHIME_LOW_HZ = 587.3
_CHIME_HIGH_HZ = 784.0
_CHIME_DECAY_S = 0.06
# The moderators' raised-hand cue: two short high beeps, unlike any member cue.
_HAND_RAISED_HZ = 1320.0


def _sample_count(duration_ms: int, rate_hz: int) -> int:
    """Return the samples in `duration_ms` at `rate_hz`, rounded to the nearest sample."""
    if rate_hz <= 0 or duration_ms < 0:
        raise ValueError(f"bad duration or rate: {duration_ms} ms at {rate_hz} Hz")
    return round(rate_hz * duration_ms / 1000)


def silence(duration_ms: int, rate_hz: int) -> NDArray[np.float32]:
    """Return `duration_ms` of digital silence, `(samples,)` float32."""
    return np.zeros(_sample_count(duration_ms, rate_hz), dtype=np.float32)


def tone(
    freqs_hz: Sequence[float], duration_ms: int, rate_hz: int, level_dbfs: float = -12.0
) -> NDArray[np.float32]:
    """Return equal-amplitude sines at `freqs_hz`, `(samples,)` float32, with soft edges.

    The components' amplitudes add up to `level_dbfs` (peak dBFS), so the sum never
    exceeds it whatever the phases. Frequencies must lie below the Nyquist rate.
    """
    frequencies = np.asarray(freqs_hz, dtype=np.float64)
    if frequencies.ndim != 1 or frequencies.size == 0:
        raise ValueError("a tone needs at least one frequency")
    if np.any(frequencies <= 0.0) or np.any(frequencies >= rate_hz / 2):
        raise ValueError(f"frequencies {list(freqs_hz)} must lie in (0, {rate_hz / 2}) Hz")
    count = _sample_count(duration_ms, rate_hz)
    phase = 2.0 * np.pi * np.outer(frequencies, np.arange(count) / rate_hz)  # (f, samples)
    waveform = np.sin(phase).sum(axis=0) / frequencies.size  # peak <= 1.0
    ramp = min(_sample_count(_RAMP_MS, rate_hz), count // 2)
    rising = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    waveform[:ramp] *= rising
    waveform[count - ramp :] *= rising[::-1]
    return gain_db(waveform, level_dbfs)


def dtmf(
    digit: str, duration_ms: int, rate_hz: int, level_dbfs: float = -10.0
) -> NDArray[np.float32]:
    """Return the DTMF tone pair of `digit` (0-9, *, #, A-D) per ITU-T Q.23, `(samples,)`."""
    pair = DTMF_FREQUENCIES_HZ.get(digit.upper())
    if pair is None:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return tone(pair, duration_ms, rate_hz, level_dbfs)


def confirmation_tone(rate_hz: int) -> NDArray[np.float32]:
    """Return a single short 1 kHz beep: 'done', e.g. a PIN or command accepted."""
    return tone([_CONFIRMATION_HZ], 150, rate_hz)


def muted_tone(rate_hz: int) -> NDArray[np.float32]:
    """Return two falling tones (660 Hz, then 440 Hz): 'your microphone is off'."""
    return np.concatenate(
        [
            tone([_MUTE_HIGH_HZ], 120, rate_hz),
            silence(40, rate_hz),
            tone([_MUTE_LOW_HZ], 160, rate_hz),
        ]
    )


def unmuted_tone(rate_hz: int) -> NDArray[np.float32]:
    """Return two rising tones (440 Hz, then 660 Hz): 'your microphone is on again'."""
    return np.concatenate(
        [
            tone([_MUTE_LOW_HZ], 120, rate_hz),
            silence(40, rate_hz),
            tone([_MUTE_HIGH_HZ], 160, rate_hz),
        ]
    )


def error_tone(rate_hz: int) -> NDArray[np.float32]:
    """Return a low double buzz: 'that key or command was not accepted'."""
    buzz = tone(_BUZZ_HZ, 150, rate_hz)
    return np.concatenate([buzz, silence(80, rate_hz), buzz])


def _shaped_note(
    freq_hz: float, duration_ms: int, rate_hz: int, envelope: NDArray[np.float64]
) -> NDArray[np.float32]:
    """Return a tone under `envelope` (one gain per sample), its peak at the cues' -12 dBFS."""
    note = tone([freq_hz], duration_ms, rate_hz, level_dbfs=0.0) * envelope
    return gain_db(note / np.max(np.abs(note)), _CUE_PEAK_DBFS)


def _chime_note(freq_hz: float, duration_ms: int, rate_hz: int) -> NDArray[np.float32]:
    """Return one chime note: struck, then dying away exponentially."""
    decay = np.exp(-np.arange(_sample_count(duration_ms, rate_hz)) / (rate_hz * _CHIME_DECAY_S))
    return _shaped_note(freq_hz, duration_ms, rate_hz, decay)


def join_chime(rate_hz: int) -> NDArray[np.float32]:
    """Return a rising two-note chime (D5, then G5), 250 ms: 'someone joined'."""
    return np.concatenate(
        [_chime_note(_CHIME_LOW_HZ, 110, rate_hz), _chime_note(_CHIME_HIGH_HZ, 140, rate_hz)]
    )


def leave_chime(rate_hz: int) -> NDArray[np.float32]:
    """Return a falling two-note chime (G5, then D5), 250 ms: 'someone left'."""
    return np.concatenate(
        [_chime_note(_CHIME_HIGH_HZ, 110, rate_hz), _chime_note(_CHIME_LOW_HZ, 140, rate_hz)]
    )


def hand_raised_cue(rate_hz: int) -> NDArray[np.float32]:
    """Return a soft double beep at 1320 Hz, 200 ms, for moderators: 'a hand went up'.

    Each beep swells and fades over its whole length (a Hann window), so it is gentler
    than the flat-topped member cues and does not startle a moderator who is talking.
    """
    beep = _shaped_note(_HAND_RAISED_HZ, 70, rate_hz, np.hanning(_sample_count(70, rate_hz)))
    return np.concatenate([beep, silence(60, rate_hz), beep])
