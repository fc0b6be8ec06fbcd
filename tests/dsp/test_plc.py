"""Pitch, concealment and pitch-period time-stretching (dsp/plc.py)."""

import numpy as np
import pytest

from dsp.plc import (
    HISTORY_MS,
    PITCH_MAX_MS,
    Concealer,
    compress,
    expand,
    fill_holes,
    pitch_period,
    pitch_periods,
)

RATE = 8000


def tone(hz: float, samples: int, rate_hz: int = RATE) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(samples) / rate_hz)).astype(np.float32)


@pytest.mark.parametrize(("rate_hz", "hz"), [(8000, 150.0), (8000, 100.0), (16000, 125.0)])
def test_pitch_period_of_a_tone(rate_hz: int, hz: float) -> None:
    """The tone's period, or (150 Hz at 8 kHz: 53.3 and 106.7 samples match alike) the
    longest multiple of it in the search's range: the fewest seams in a concealment."""
    period, correlation = pitch_period(tone(hz, rate_hz // 10, rate_hz), rate_hz)
    periods = [k * rate_hz / hz for k in (1, 2, 3)]
    longest = max(lag for lag in periods if lag <= rate_hz * PITCH_MAX_MS / 1000)
    assert abs(period - longest) <= 1
    assert correlation > 0.95


def test_pitch_period_of_silence_has_no_correlation() -> None:
    assert pitch_period(np.zeros(800, np.float32), RATE)[1] == 0.0


def test_compress_removes_one_period_without_a_seam() -> None:
    signal = tone(200, 400)  # period 40 samples exactly
    out = compress(signal, 160, 40, 40)
    assert out.shape == (160,)
    np.testing.assert_allclose(out, signal[:160], atol=1e-5)


def test_expand_repeats_one_period_without_a_seam() -> None:
    signal = tone(200, 400)
    out = expand(signal, 160, 40, 40)
    assert out.shape == (160,)
    np.testing.assert_allclose(out, signal[:160], atol=1e-5)


def test_concealment_continues_the_waveform_then_fades_out() -> None:
    signal = tone(150, 480)
    concealer = Concealer(RATE)
    for start in range(0, 480, 160):
        concealer.played(signal[start : start + 160])
    frames = [concealer.conceal(160) for _ in range(4)]
    out = np.concatenate([f for f, _ in frames])
    joined = np.concatenate([signal, out])
    assert np.max(np.abs(np.diff(joined))) <= 1.5 * np.max(np.abs(np.diff(signal)))
    assert [audible for _, audible in frames] == [True, True, True, False]
    assert np.max(np.abs(out[:80])) == pytest.approx(0.3, abs=0.02)
    assert not out[480:].any()


def test_resume_fades_real_audio_in_over_the_concealment() -> None:
    signal = tone(150, 800)
    concealer = Concealer(RATE)
    for start in range(0, 480, 160):
        concealer.played(signal[start : start + 160])
    concealed, _ = concealer.conceal(160)
    resumed = concealer.resume(signal[640:800].copy())
    assert concealer.lost == 0
    joined = np.concatenate([signal[:480], concealed, resumed])
    assert np.max(np.abs(np.diff(joined))) <= 1.5 * np.max(np.abs(np.diff(signal)))
    np.testing.assert_array_equal(resumed[64:], signal[704:800])  # 8 ms after 20 ms lost


def test_nothing_to_conceal_after_silence() -> None:
    concealer = Concealer(RATE)
    out, audible = concealer.conceal(160)
    assert not audible and not out.any()


def test_concealment_toward_known_audio_ends_where_that_audio_starts() -> None:
    signal = tone(200, 800)  # period 40 samples: both repeats are exact
    concealer = Concealer(RATE)
    for start in range(0, 480, 160):
        concealer.played(signal[start : start + 160])
    filled, audible = concealer.conceal_toward(160, 160, signal[640:920])
    assert audible and concealer.lost == 0  # the loss is over: no overlap-add on resuming
    # In phase over the last period; the last samples are (almost) the future's own backward
    # repeat, while the fading forward repeat still weighs on the earlier ones.
    assert np.corrcoef(filled[-40:], signal[600:640])[0, 1] > 0.999
    np.testing.assert_allclose(filled[-10:], signal[630:640], atol=0.01)


def test_a_new_loss_ending_as_far_away_as_an_earlier_one_searches_its_own_future() -> None:
    """A loss that resumed early (the rest of its hole came late) leaves the pitch of its
    future behind; a later loss whose audio resumes as far from its start must not take
    it for its own (the cache is for the calls of one loss)."""
    history = [tone(150, 160), tone(150, 160)]
    concealer = Concealer(RATE)
    concealer.played_many(history)
    concealer.conceal_toward(80, 160, tone(100, 280))  # half of a 160-sample hole
    concealer.resume(tone(150, 80))  # ... whose second half came after all
    concealer.played_many(history)
    filled, _ = concealer.conceal_toward(160, 160, tone(210, 280))  # another 160 to fill
    fresh = Concealer(RATE)
    fresh.played_many(history)
    np.testing.assert_array_equal(filled, fresh.conceal_toward(160, 160, tone(210, 280))[0])


def test_a_lost_onset_is_rebuilt_from_the_audio_after_it() -> None:
    concealer = Concealer(RATE)
    concealer.played(np.zeros(160, np.float32))
    signal = tone(200, 480)
    filled, audible = concealer.conceal_toward(160, 160, signal[160:440])
    assert audible  # plain concealment of silence would be silent
    assert np.corrcoef(filled[-40:], signal[120:160])[0, 1] > 0.99  # rising into the onset
    np.testing.assert_allclose(filled[-10:], signal[150:160], atol=0.02)


def test_a_gap_as_long_as_a_pause_is_not_filled_from_the_audio_after_it() -> None:
    concealer = Concealer(RATE)
    concealer.played(np.zeros(160, np.float32))
    filled, audible = concealer.conceal_toward(160, 8 * 160, tone(200, 280))
    assert not audible and not filled.any()  # no pre-echo of the next talk spurt


@pytest.mark.parametrize(("rate_hz", "frame"), [(8000, 160), (8000, 80), (16000, 320),
                                                (48000, 960)])
def test_holes_filled_together_are_what_each_line_s_concealer_fills(rate_hz: int,
                                                                   frame: int) -> None:
    """`fill_holes` (a playout bank's one-frame losses, many lines at once) gives each line,
    to the bit, the fill its own Concealer makes toward the audio after the hole: voices,
    noise, silence before a lost onset, full-scale noise."""
    rng = np.random.default_rng(rate_hz + frame)
    played = -(-int(rate_hz * HISTORY_MS / 1000) // frame) + 1  # frames of history
    future = rate_hz * 35 // 1000
    size = played * frame + frame + future
    t = np.arange(size)
    histories, futures, expected = [], [], []
    for k in range(24):
        kind = k % 4
        if kind == 0:
            signal = 0.3 * np.sin(2 * np.pi * t / rng.uniform(30, 250) * rate_hz / 8000)
        elif kind == 1:
            signal = 1e-3 * rng.standard_normal(size)
        elif kind == 2:
            signal = np.where(t >= played * frame + frame, 0.2 * rng.standard_normal(size), 0.0)
        else:
            signal = rng.uniform(-1, 1, size)
        signal = signal.astype(np.float32)
        history, after = signal[: played * frame], signal[played * frame + frame :]
        concealer = Concealer(rate_hz)
        concealer.played_many(list(history.reshape(played, frame)))
        expected.append(concealer.conceal_toward(frame, frame, after.copy())[0])
        assert concealer.lost == 0
        histories.append(history)
        futures.append(after)
    filled = fill_holes(np.array(histories), np.array(futures), frame, rate_hz)
    assert filled.dtype == np.float32
    for k in range(24):
        np.testing.assert_array_equal(filled[k], expected[k])


def test_pitch_periods_of_many_lines_are_each_line_s_pitch_period() -> None:
    rng = np.random.default_rng(4)
    t = np.arange(400)
    signals = np.array(
        [np.sin(2 * np.pi * t / period) for period in (40, 50, 57.3, 80, 100, 119)]
        + [rng.standard_normal(400) for _ in range(6)]).astype(np.float32)
    lags, correlations = pitch_periods(signals, 8000)
    for k, signal in enumerate(signals):
        assert pitch_period(signal, 8000) == (int(lags[k]), float(correlations[k]))
