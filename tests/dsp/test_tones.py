"""Tones: measured frequencies and levels, DTMF pairs per ITU-T Q.23, and distinct cues."""

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.level import peak_dbfs, rms_dbfs
from dsp.tones import (
    DTMF_FREQUENCIES_HZ,
    confirmation_tone,
    dtmf,
    error_tone,
    hand_raised_cue,
    join_chime,
    leave_chime,
    muted_tone,
    silence,
    tone,
    unmuted_tone,
)

DTMF_ALL_HZ = (697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0)


def dominant_hz(samples: NDArray[np.float32], rate_hz: int) -> float:
    """Frequency of the largest FFT bin, zero-padded to 0.5 Hz resolution."""
    size = 2 * rate_hz
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), n=size))
    return float(np.argmax(spectrum) * rate_hz / size)


def level_at(samples: NDArray[np.float32], freq_hz: float, rate_hz: int) -> float:
    """Amplitude of one frequency component (single-bin DFT over the whole clip)."""
    t = np.arange(len(samples)) / rate_hz
    return float(2 * np.abs(np.mean(samples * np.exp(-2j * np.pi * freq_hz * t))))


@pytest.mark.parametrize(("freq_hz", "rate_hz"), [(440.0, 8000), (1000.0, 8000), (3150.0, 16000)])
def test_tone_has_the_asked_frequency(freq_hz: float, rate_hz: int) -> None:
    clip = tone([freq_hz], 500, rate_hz)
    assert clip.dtype == np.float32 and clip.shape == (rate_hz // 2,)
    assert dominant_hz(clip, rate_hz) == pytest.approx(freq_hz, abs=1.0)


def test_tone_peak_is_the_asked_level() -> None:
    assert peak_dbfs(tone([1000.0], 200, 8000, level_dbfs=-12.0)) == pytest.approx(-12.0, abs=0.05)
    assert peak_dbfs(tone([1000.0], 200, 8000, level_dbfs=-3.0)) == pytest.approx(-3.0, abs=0.05)


def test_tone_sum_never_exceeds_the_level() -> None:
    clip = tone([400.0, 401.0, 802.0], 2000, 8000, level_dbfs=-6.0)
    assert peak_dbfs(clip) <= -6.0
    for freq_hz in (400.0, 401.0, 802.0):
        assert level_at(clip, freq_hz, 8000) == pytest.approx(10 ** (-6 / 20) / 3, rel=0.02)


def test_tone_starts_and_ends_softly() -> None:
    clip = tone([1000.0], 100, 8000, level_dbfs=0.0)
    assert abs(clip[0]) < 0.01 and abs(clip[-1]) < 0.01
    # No step anywhere: the largest sample-to-sample change is the sine's own.
    assert np.max(np.abs(np.diff(clip))) <= 2 * np.sin(np.pi * 1000 / 8000) + 1e-6


def test_tone_rejects_frequencies_at_or_above_nyquist() -> None:
    with pytest.raises(ValueError, match="must lie in"):
        tone([4000.0], 100, 8000)
    with pytest.raises(ValueError, match="at least one frequency"):
        tone([], 100, 8000)


@pytest.mark.parametrize("digit", sorted(DTMF_FREQUENCIES_HZ))
def test_dtmf_digit_is_its_q23_pair(digit: str) -> None:
    clip = dtmf(digit, 100, 8000)
    levels = {f: level_at(clip, f, 8000) for f in DTMF_ALL_HZ}
    strongest = sorted(levels, key=levels.__getitem__, reverse=True)
    assert tuple(sorted(strongest[:2])) == DTMF_FREQUENCIES_HZ[digit]
    # The other six are at least 20 dB down (leakage of a 100 ms burst only).
    assert levels[strongest[2]] < levels[strongest[1]] / 10


def test_dtmf_keypad_matches_q23() -> None:
    assert DTMF_FREQUENCIES_HZ["1"] == (697.0, 1209.0)
    assert DTMF_FREQUENCIES_HZ["5"] == (770.0, 1336.0)
    assert DTMF_FREQUENCIES_HZ["0"] == (941.0, 1336.0)
    assert DTMF_FREQUENCIES_HZ["#"] == (941.0, 1477.0)
    assert DTMF_FREQUENCIES_HZ["D"] == (941.0, 1633.0)
    assert len(DTMF_FREQUENCIES_HZ) == 16


def test_dtmf_accepts_lower_case_letters_and_rejects_others() -> None:
    np.testing.assert_array_equal(dtmf("a", 60, 8000), dtmf("A", 60, 8000))
    for bad in ("E", "12", "", " "):
        with pytest.raises(ValueError, match="not a DTMF digit"):
            dtmf(bad, 60, 8000)


def test_dtmf_level_is_the_peak_of_the_pair() -> None:
    assert peak_dbfs(dtmf("5", 200, 8000)) <= -10.0
    assert peak_dbfs(dtmf("5", 200, 8000)) > -10.5


def halves(clip: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    return clip[: len(clip) // 2], clip[len(clip) // 2 :]


@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_muted_tone_falls_and_unmuted_tone_rises(rate_hz: int) -> None:
    first, second = halves(muted_tone(rate_hz))
    assert dominant_hz(first, rate_hz) > dominant_hz(second, rate_hz) + 100
    first, second = halves(unmuted_tone(rate_hz))
    assert dominant_hz(first, rate_hz) + 100 < dominant_hz(second, rate_hz)


def test_error_tone_is_a_low_double_buzz() -> None:
    clip = error_tone(8000)
    assert dominant_hz(clip, 8000) < 1000.0
    assert level_at(clip, 200.0, 8000) > 0.03
    envelope = np.abs(clip).reshape(-1, 40).max(axis=1)  # 5 ms blocks
    bursts = np.flatnonzero(np.diff((envelope > 0.01).astype(int)) == 1)
    assert len(bursts) == 1  # one silence-to-sound step after the first burst starts


def test_confirmation_tone_is_one_short_beep() -> None:
    clip = confirmation_tone(8000)
    assert dominant_hz(clip, 8000) == pytest.approx(1000.0, abs=2.0)
    assert len(clip) <= 8000 * 0.3


def test_cues_are_distinct_short_and_not_too_loud() -> None:
    makers = (
        confirmation_tone,
        muted_tone,
        unmuted_tone,
        error_tone,
        join_chime,
        leave_chime,
        hand_raised_cue,
    )
    cues = [f(8000) for f in makers]
    for clip in cues:
        assert clip.dtype == np.float32 and clip.ndim == 1
        assert 0.1 * 8000 <= len(clip) <= 0.6 * 8000
        assert peak_dbfs(clip) <= -12.0 + 1e-3 and rms_dbfs(clip) > -30.0
    for i, a in enumerate(cues):
        for b in cues[i + 1 :]:
            assert len(a) != len(b) or not np.allclose(a, b)


def onsets(clip: NDArray[np.float32], rate_hz: int) -> int:
    """Count the silence-to-sound steps of the 5 ms envelope (the first block counts)."""
    block = rate_hz // 200
    envelope = np.abs(clip[: len(clip) // block * block]).reshape(-1, block).max(axis=1)
    sounding = np.concatenate([[0], (envelope > 0.01).astype(int)])
    return int(np.count_nonzero(np.diff(sounding) == 1))


@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_join_chime_rises_and_leave_chime_falls(rate_hz: int) -> None:
    join, leave = join_chime(rate_hz), leave_chime(rate_hz)
    note = round(0.11 * rate_hz)  # both start with a 110 ms note
    assert dominant_hz(join[:note], rate_hz) == pytest.approx(587.3, abs=3.0)
    assert dominant_hz(join[note:], rate_hz) == pytest.approx(784.0, abs=3.0)
    assert dominant_hz(leave[:note], rate_hz) == pytest.approx(784.0, abs=3.0)
    assert dominant_hz(leave[note:], rate_hz) == pytest.approx(587.3, abs=3.0)
    for chime in (join, leave):
        assert len(chime) == round(0.25 * rate_hz)
        assert peak_dbfs(chime) == pytest.approx(-12.0, abs=0.05)
        assert abs(chime[0]) < 0.01 and abs(chime[-1]) < 0.01


def test_chime_notes_die_away_like_a_bell() -> None:
    second_note = join_chime(16000)[round(0.11 * 16000) :]
    fifth = len(second_note) // 5
    assert rms_dbfs(second_note[fifth : 2 * fifth]) > rms_dbfs(second_note[-2 * fifth : -fifth]) + 6


@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_hand_raised_cue_is_a_soft_high_double_beep(rate_hz: int) -> None:
    cue = hand_raised_cue(rate_hz)
    assert len(cue) == round(0.2 * rate_hz)
    assert dominant_hz(cue, rate_hz) == pytest.approx(1320.0, abs=5.0)
    assert onsets(cue, rate_hz) == 2
    assert peak_dbfs(cue) == pytest.approx(-12.0, abs=0.05)
    # Soft: it swells in rather than starting at full level like the member cues.
    assert np.max(np.abs(cue[: rate_hz // 200])) < 0.1 * np.max(np.abs(cue))
    assert onsets(error_tone(rate_hz), rate_hz) == 2 and onsets(join_chime(rate_hz), rate_hz) == 1


def test_silence_is_zeros_of_the_duration() -> None:
    clip = silence(250, 16000)
    assert clip.dtype == np.float32 and clip.shape == (4000,) and not clip.any()
    with pytest.raises(ValueError, match="bad duration"):
        silence(-1, 8000)
