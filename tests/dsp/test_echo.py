"""Echo detector and canceller: delay found, echo removed, near end kept, no false alarms."""

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import signal

from dsp.echo import (
    DETECTOR_CHECK_FRAMES,
    DETECTOR_STATE_SIZE,
    EchoCanceller,
    detect_echo,
    echo_detector_state,
    update_echo_detectors,
)

Signal = NDArray[np.float64]
BULK_DELAY_MS = 150
RATES = (8000, 16000)


def room(rate_hz: int) -> Signal:
    """Return a 60 ms echo path: a direct path then decaying noise, at -10 dB."""
    rng = np.random.default_rng(11)
    t = np.arange(round(0.06 * rate_hz)) / rate_hz
    response = rng.standard_normal(t.size) * np.exp(-t / 0.009) * 0.5
    response[0] = 1.0
    scaled: Signal = response / np.sqrt(np.sum(response**2)) * 10 ** (-10 / 20)
    return scaled


def pink(samples: int, seed: int) -> Signal:
    """Return unit-power pink noise (Kellet's 1/f filter on white noise)."""
    white = np.random.default_rng(seed).standard_normal(samples)
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    noise = signal.lfilter(b, a, white)
    normalised: Signal = noise / np.sqrt(np.mean(noise**2))
    return normalised


def speech_like(samples: int, rate_hz: int, seed: int) -> Signal:
    """Return pink noise in syllables and words of random lengths, unit power.

    The syllable envelope is low-passed noise (under 5 Hz), so two such signals do not
    share a rhythm (a fixed syllable rate would correlate their envelopes like echo).
    """
    rng = np.random.default_rng(seed)
    sos = signal.butter(2, 5.0, fs=rate_hz, output="sos")
    syllables = np.clip(signal.sosfilt(sos, rng.standard_normal(samples)), 0.0, None)
    word_lengths = rng.integers(rate_hz // 5, rate_hz, samples // (rate_hz // 5) + 1)
    spoken = rng.random(word_lengths.size) > 0.3
    words = np.repeat(spoken, word_lengths)[:samples]
    x = pink(samples, seed + 100) * syllables * words
    normalised: Signal = x / np.sqrt(np.mean(x**2))
    return normalised


def far_end(kind: str, samples: int, rate_hz: int) -> Signal:
    """Return the far end at -20 dBFS: white, pink or speech-like."""
    if kind == "white":
        x = np.random.default_rng(1).standard_normal(samples)
    elif kind == "pink":
        x = pink(samples, 2)
    else:
        x = speech_like(samples, rate_hz, 3)
    scaled: Signal = x * 10 ** (-20 / 20)
    return scaled


def echo_of(reference: Signal, rate_hz: int) -> Signal:
    """Return the echo of `reference` after the bulk delay and the room, with -60 dBFS noise."""
    delay = round(BULK_DELAY_MS * rate_hz / 1000)
    echo = np.concatenate((np.zeros(delay), signal.lfilter(room(rate_hz), 1.0, reference)))
    noise = np.random.default_rng(5).standard_normal(reference.size) * 10 ** (-60 / 20)
    result: Signal = echo[: reference.size] + noise
    return result


def cancel(canceller: EchoCanceller, mic: Signal, reference: Signal) -> Signal:
    """Run `canceller` over whole signals, frame by frame."""
    n = canceller.frame_samples
    out = np.zeros(mic.size)
    for start in range(0, mic.size - n + 1, n):
        frame = slice(start, start + n)
        out[frame] = canceller.process(
            mic[frame].astype(np.float32), reference[frame].astype(np.float32)
        )
    return out


def power_db(x: Signal) -> float:
    return float(10 * np.log10(np.mean(x**2)))


def near_end_gain(out: Signal, near: Signal) -> float:
    """Return the least-squares gain of `near` in `out`: how much of the near end got through."""
    return float(out @ near) / float(near @ near)


@pytest.mark.parametrize("rate_hz", RATES)
@pytest.mark.parametrize("kind", ["white", "pink", "speech"])
def test_far_end_only_finds_the_delay_and_cancels_25_db_after_2_s(rate_hz: int, kind: str) -> None:
    reference = far_end(kind, 4 * rate_hz, rate_hz)
    mic = echo_of(reference, rate_hz)
    canceller = EchoCanceller(rate_hz, rate_hz // 50)
    out = cancel(canceller, mic, reference)

    assert canceller.delay_ms == pytest.approx(BULK_DELAY_MS, abs=5)
    after = slice(2 * rate_hz, 4 * rate_hz)
    assert power_db(mic[after]) - power_db(out[after]) >= 25.0
    assert canceller.erle_db >= 15.0  # a running estimate, smoothed over about a second
    assert not canceller.double_talk


@pytest.mark.parametrize("rate_hz", RATES)
def test_near_end_alone_passes_unchanged(rate_hz: int) -> None:
    near = speech_like(3 * rate_hz, rate_hz, 8) * 10 ** (-25 / 20)
    canceller = EchoCanceller(rate_hz, rate_hz // 50)
    out = cancel(canceller, near, np.zeros(near.size))

    assert abs(power_db(out) - power_db(near)) < 1.0
    assert canceller.delay_ms is None


@pytest.mark.parametrize("rate_hz", RATES)
def test_near_end_alone_after_convergence_passes_within_1_db(rate_hz: int) -> None:
    total = 6 * rate_hz
    reference = far_end("speech", total, rate_hz)
    reference[3 * rate_hz :] = 0.0  # the far end stops talking
    near = np.zeros(total)
    near[4 * rate_hz :] = speech_like(2 * rate_hz, rate_hz, 8) * 10 ** (-25 / 20)
    canceller = EchoCanceller(rate_hz, rate_hz // 50)
    out = cancel(canceller, echo_of(reference, rate_hz) + near, reference)

    after = slice(4 * rate_hz, total)
    assert abs(power_db(out[after]) - power_db(near[after])) < 1.0


@pytest.mark.parametrize("rate_hz", RATES)
def test_double_talk_keeps_the_near_end_and_the_filter(rate_hz: int) -> None:
    total = 11 * rate_hz
    reference = far_end("speech", total, rate_hz)
    near = np.zeros(total)
    near[4 * rate_hz : 8 * rate_hz] = speech_like(4 * rate_hz, rate_hz, 9) * 10 ** (-25 / 20)
    echo = echo_of(reference, rate_hz)
    mic = echo + near
    canceller = EchoCanceller(rate_hz, rate_hz // 50)
    out = cancel(canceller, mic, reference)

    talk = slice(5 * rate_hz, 8 * rate_hz)
    loss_db = -20 * np.log10(near_end_gain(out[talk], near[talk]))
    assert loss_db <= 3.0
    # The filter did not diverge: once the near end stops, the echo is cancelled at once.
    after = slice(round(8.5 * rate_hz), total)
    assert power_db(mic[after]) - power_db(out[after]) >= 25.0


def test_canceller_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="not 11025"):
        EchoCanceller(11025, 220)
    canceller = EchoCanceller(8000, 160)
    with pytest.raises(ValueError, match=r"expected \(160,\) frames"):
        canceller.process(np.zeros(320, np.float32), np.zeros(320, np.float32))


def frame_powers(x: Signal, rate_hz: int) -> NDArray[np.float64]:
    n = rate_hz // 50
    powers: NDArray[np.float64] = np.mean(x[: x.size // n * n].reshape(-1, n) ** 2, axis=1)
    return powers


def run_detector(mic: Signal, reference: Signal, rate_hz: int) -> list[float]:
    """Return the detector's verdict (delay in ms, NaN for none) after every frame."""
    mic_powers, reference_powers = frame_powers(mic, rate_hz), frame_powers(reference, rate_hz)
    states = echo_detector_state()[np.newaxis]
    verdicts = []
    for mic_power, reference_power in zip(mic_powers, reference_powers, strict=True):
        delay, states = detect_echo(np.array([mic_power]), np.array([reference_power]), states)
        verdicts.append(float(delay[0]))
    return verdicts


@pytest.mark.parametrize("rate_hz", RATES)
def test_detector_finds_echo_on_an_echoic_line(rate_hz: int) -> None:
    reference = far_end("speech", 8 * rate_hz, rate_hz)
    verdicts = run_detector(echo_of(reference, rate_hz), reference, rate_hz)

    assert np.isnan(verdicts[0])
    assert verdicts[-1] == pytest.approx(BULK_DELAY_MS, abs=20)


@pytest.mark.parametrize("rate_hz", RATES)
def test_detector_hears_no_echo_on_an_echo_free_line(rate_hz: int) -> None:
    total = 30 * rate_hz
    reference = far_end("speech", total, rate_hz)
    near = speech_like(total, rate_hz, 21) * 10 ** (-25 / 20)
    noise = np.random.default_rng(4).standard_normal(total) * 10 ** (-60 / 20)
    verdicts = run_detector(near + noise, reference, rate_hz)

    assert all(np.isnan(verdicts))


def test_detector_runs_many_streams_at_once_each_on_its_own() -> None:
    rate_hz = 8000
    reference = far_end("speech", 8 * rate_hz, rate_hz)
    echoic = frame_powers(echo_of(reference, rate_hz), rate_hz)
    quiet = frame_powers(np.full(reference.size, 1e-4), rate_hz)
    far = frame_powers(reference, rate_hz)
    states = np.stack([echo_detector_state(), echo_detector_state()])
    for k in range(far.size):
        delay, states = detect_echo(
            np.array([echoic[k], quiet[k]]), np.array([far[k], far[k]]), states
        )
    assert delay[0] == pytest.approx(BULK_DELAY_MS, abs=20)
    assert np.isnan(delay[1])


def test_streams_in_different_phases_are_checked_in_different_frames() -> None:
    """Streams that start together are checked in their own phases of the check period,
    so a room whose members all joined at once is not checked all in one tick."""
    rate_hz = 8000
    reference = far_end("speech", 8 * rate_hz, rate_hz)
    echoic = frame_powers(echo_of(reference, rate_hz), rate_hz)
    far = frame_powers(reference, rate_hz)
    phases = (0, 10, DETECTOR_CHECK_FRAMES + 10)  # the last: the same as 10
    states = np.stack([echo_detector_state(phase) for phase in phases])
    found_at: dict[int, int] = {}
    for k in range(far.size):
        delay, states = detect_echo(np.full(3, echoic[k]), np.full(3, far[k]), states)
        for row in np.flatnonzero(~np.isnan(delay)).tolist():
            found_at.setdefault(row, k)
    # Echo is reported at a stream's second check with echo in a row: the same frame for
    # the same phase, 10 frames apart with phases 10 apart.
    assert set(found_at) == {0, 1, 2}
    assert found_at[1] == found_at[2]
    assert (found_at[1] - found_at[0]) % DETECTOR_CHECK_FRAMES == DETECTOR_CHECK_FRAMES - 10


def test_detector_rejects_states_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=f"expected \\(k, {DETECTOR_STATE_SIZE}\\) states"):
        detect_echo(np.zeros(1), np.zeros(1), np.zeros((1, 5)))


def test_detectors_updated_in_place_follow_their_copies() -> None:
    """The bridge keeps its detectors in one array and updates them where they are: frame
    by frame that gives the delays and rows `detect_echo` gives, which leaves its input
    as it was."""
    rate_hz = 8000
    reference = far_end("speech", 8 * rate_hz, rate_hz)
    echoic = frame_powers(echo_of(reference, rate_hz), rate_hz)
    quiet = frame_powers(np.full(reference.size, 1e-4), rate_hz)
    far = frame_powers(reference, rate_hz)
    copied = np.stack([echo_detector_state(phase) for phase in (0, 7, 7)])
    in_place = copied.copy()
    for k in range(far.size):
        mic, sent = np.array([echoic[k], quiet[k], echoic[k]]), np.full(3, far[k])
        before = copied.copy()
        delay, new = detect_echo(mic, sent, copied)
        assert np.array_equal(copied, before)
        copied = new
        np.testing.assert_array_equal(update_echo_detectors(mic, sent, in_place), delay)
    np.testing.assert_array_equal(in_place, copied)
    assert delay[0] == pytest.approx(BULK_DELAY_MS, abs=20) and np.isnan(delay[1])


def test_detectors_in_place_need_float32_rows() -> None:
    with pytest.raises(ValueError, match="states of float32"):
        update_echo_detectors(np.zeros(1), np.zeros(1),
                              echo_detector_state()[np.newaxis].astype(np.float64))
