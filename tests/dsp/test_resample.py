"""Resampling clips and streaming 8 <-> 16 kHz frames: band kept, aliases gone, timing exact."""

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import signal

from dsp.level import rms_dbfs
from dsp.resample import (
    NARROWBAND_RATE_HZ,
    STREAM_GROUP_DELAY_MS,
    STREAM_PASSBAND_HZ,
    STREAM_PASSBAND_RIPPLE_DB,
    STREAM_STOPBAND_ATTENUATION_DB,
    STREAM_STOPBAND_HZ,
    WIDEBAND_RATE_HZ,
    design_2x_lowpass,
    downsample_16k_to_8k,
    downsampler_state,
    resample,
    upsample_8k_to_16k,
    upsampler_state,
)
from dsp.tones import tone

StreamFunction = Callable[
    [NDArray[np.float32], NDArray[np.float32]], tuple[NDArray[np.float32], NDArray[np.float32]]
]
NARROW_FRAME = 160  # 20 ms at 8 kHz
WIDE_FRAME = 320  # 20 ms at 16 kHz


def middle(samples: np.ndarray, rate_hz: int) -> np.ndarray:
    """Drop 100 ms at both ends, where the clip's own ramps and the filter's edges are."""
    edge = rate_hz // 10
    return samples[edge:-edge]


def test_1khz_tone_survives_16k_to_8k_within_half_a_db() -> None:
    clip = tone([1000.0], 1000, 16000)
    out = resample(clip, 16000, 8000)
    change_db = rms_dbfs(middle(out, 8000)) - rms_dbfs(middle(clip, 16000))
    assert abs(change_db) < 0.5
    assert abs(change_db) < 0.01  # measured: about 0.0001 dB


def test_5khz_tone_is_removed_going_16k_to_8k() -> None:
    clip = tone([5000.0], 1000, 16000)
    out = resample(clip, 16000, 8000)
    assert rms_dbfs(middle(out, 8000)) - rms_dbfs(middle(clip, 16000)) < -40.0


@pytest.mark.parametrize("freq_hz", [4000.0, 4500.0, 6000.0, 7900.0])
def test_everything_above_the_new_nyquist_is_rejected_by_70_db(freq_hz: float) -> None:
    clip = tone([freq_hz], 1000, 16000)
    out = resample(clip, 16000, 8000)
    assert rms_dbfs(middle(out, 8000)) - rms_dbfs(middle(clip, 16000)) < -70.0


def test_3400hz_telephone_band_edge_is_kept() -> None:
    clip = tone([3400.0], 1000, 16000)
    out = resample(clip, 16000, 8000)
    assert abs(rms_dbfs(middle(out, 8000)) - rms_dbfs(middle(clip, 16000))) < 0.1


def test_upsampling_keeps_timing_and_adds_no_images() -> None:
    narrow = tone([1000.0], 500, 8000)
    wide = resample(narrow, 8000, 16000)
    direct = tone([1000.0], 500, 16000)
    assert wide.shape == direct.shape
    # Aligned with a tone synthesized at 16 kHz: the filter delay is compensated.
    np.testing.assert_allclose(middle(wide, 16000), middle(direct, 16000), atol=2e-3)
    # The 7 kHz image of the 1 kHz tone is gone.
    t = np.arange(len(wide)) / 16000
    image = 2 * np.abs(np.mean(middle(wide * np.exp(-2j * np.pi * 7000 * t), 16000)))
    assert 20 * np.log10(image + 1e-12) < -90.0


@pytest.mark.parametrize(
    ("from_hz", "to_hz", "samples", "expected"),
    [
        (16000, 8000, 16000, 8000),
        (8000, 16000, 160, 320),
        (44100, 16000, 44100, 16000),
        (48000, 8000, 4800, 800),
        (22050, 16000, 1000, 726),
    ],
)
def test_length_scales_with_the_rate(from_hz: int, to_hz: int, samples: int, expected: int) -> None:
    out = resample(np.zeros(samples, dtype=np.float32), from_hz, to_hz)
    assert out.shape == (expected,) and out.dtype == np.float32


def test_22050_to_16k_keeps_a_tone_level() -> None:
    # espeak-ng speaks at 22050 Hz: the ratio 320/441 must work as well as 1/2.
    clip = tone([1000.0], 1000, 22050)
    out = resample(clip, 22050, 16000)
    assert abs(rms_dbfs(middle(out, 16000)) - rms_dbfs(middle(clip, 22050))) < 0.05


def test_same_rate_returns_an_equal_copy() -> None:
    clip = tone([1000.0], 100, 8000)
    out = resample(clip, 8000, 8000)
    np.testing.assert_array_equal(out, clip)
    assert out is not clip


def test_resample_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="expected a \\(samples,\\) clip"):
        resample(np.zeros((2, 10), dtype=np.float32), 16000, 8000)
    with pytest.raises(ValueError, match="must be positive"):
        resample(np.zeros(10, dtype=np.float32), 0, 8000)


# Streaming 8 <-> 16 kHz (issue #3)


def stream(
    process: StreamFunction, state: NDArray[np.float32], clips: NDArray[np.float32], frame: int
) -> NDArray[np.float32]:
    """Feed `(k, samples)` clips through `process` in frames of `frame`, like a room's ticks."""
    states = np.stack([state] * len(clips))
    outputs = []
    for start in range(0, clips.shape[1], frame):
        out, states = process(clips[:, start : start + frame], states)
        outputs.append(out)
    return np.concatenate(outputs, axis=1)


def upsample(narrow: NDArray[np.float32]) -> NDArray[np.float32]:
    """Upsample one `(n,)` clip at 8 kHz in 20 ms frames."""
    wide: NDArray[np.float32] = stream(
        upsample_8k_to_16k, upsampler_state(), narrow[np.newaxis], NARROW_FRAME
    )[0]
    return wide


def downsample(wide: NDArray[np.float32]) -> NDArray[np.float32]:
    """Downsample one `(2n,)` clip at 16 kHz in 20 ms frames."""
    narrow: NDArray[np.float32] = stream(
        downsample_16k_to_8k, downsampler_state(), wide[np.newaxis], WIDE_FRAME
    )[0]
    return narrow


def response_db(band: tuple[float, float]) -> NDArray[np.float64]:
    """Return the designed filter's magnitude in dB over `band` (Hz, inclusive) at 16 kHz."""
    frequencies_hz, response = signal.freqz(design_2x_lowpass(), worN=1 << 16, fs=WIDEBAND_RATE_HZ)
    inside = (frequencies_hz >= band[0]) & (frequencies_hz <= band[1])
    return np.asarray(20 * np.log10(np.abs(response[inside])))


def test_2x_lowpass_meets_the_spec() -> None:
    """Measured (scipy.signal.freqz, 65536 points): 149 taps; ripple 0.0150 dB peak-to-peak
    over 0-3.4 kHz and 0.0151 dB over 0-3.6 kHz (within ±0.0076 dB of unity); at least
    71.30 dB down from 4.0 kHz."""
    ripple_34_db = np.ptp(response_db((0.0, 3400.0)))
    ripple_36_db = np.ptp(response_db((0.0, STREAM_PASSBAND_HZ)))
    attenuation_db = -np.max(response_db((STREAM_STOPBAND_HZ, WIDEBAND_RATE_HZ / 2)))
    assert ripple_34_db <= ripple_36_db <= STREAM_PASSBAND_RIPPLE_DB
    assert attenuation_db >= STREAM_STOPBAND_ATTENUATION_DB
    # Tighter than the spec on purpose: the narrowband round trip crosses it twice.
    assert ripple_36_db < 0.02
    assert np.max(np.abs(response_db((0.0, STREAM_PASSBAND_HZ)))) < 0.01


def test_2x_lowpass_is_linear_phase_with_a_whole_sample_delay_at_both_rates() -> None:
    taps = design_2x_lowpass()
    np.testing.assert_array_equal(taps, taps[::-1])
    assert len(taps) == 149 and len(taps) % 4 == 1
    assert STREAM_GROUP_DELAY_MS == 1000 * (len(taps) - 1) / 2 / WIDEBAND_RATE_HZ


def test_upsampler_impulse_response_is_the_filter_at_gain_2() -> None:
    impulse = np.zeros(NARROWBAND_RATE_HZ // 10, dtype=np.float32)
    impulse[0] = 1.0
    taps = design_2x_lowpass()
    out = upsample(impulse)
    np.testing.assert_allclose(out[: len(taps)], 2 * taps, atol=1e-7)
    assert not out[len(taps) :].any()
    assert int(np.argmax(out)) == round(STREAM_GROUP_DELAY_MS * WIDEBAND_RATE_HZ / 1000)


def test_downsampler_keeps_every_other_sample_of_the_filtered_signal() -> None:
    taps = design_2x_lowpass()
    for offset in (0, 1):  # an impulse on a kept sample, then on a dropped one
        impulse = np.zeros(WIDEBAND_RATE_HZ // 10, dtype=np.float32)
        impulse[offset] = 1.0
        filtered = np.convolve(impulse, taps)[: len(impulse)]
        np.testing.assert_allclose(downsample(impulse), filtered[0::2], atol=1e-7)


@pytest.mark.parametrize("freq_hz", [5000.0, 6000.0, 7000.0])
def test_downsampling_leaves_no_alias_of_tones_above_4khz(freq_hz: float) -> None:
    """Measured: -85.5 dB (5 kHz), -72.2 dB (6 kHz), -71.3 dB (7 kHz)."""
    wide = tone([freq_hz], 1000, WIDEBAND_RATE_HZ)
    narrow = downsample(wide)
    change_db = rms_dbfs(middle(narrow, NARROWBAND_RATE_HZ)) - rms_dbfs(
        middle(wide, WIDEBAND_RATE_HZ)
    )
    assert change_db < -60.0


def test_downsampling_passes_a_1khz_tone_at_unity_gain() -> None:
    """Measured: -0.006 dB (the passband ripple at 1 kHz)."""
    wide = tone([1000.0], 1000, WIDEBAND_RATE_HZ)
    narrow = downsample(wide)
    change_db = rms_dbfs(middle(narrow, NARROWBAND_RATE_HZ)) - rms_dbfs(
        middle(wide, WIDEBAND_RATE_HZ)
    )
    assert abs(change_db) < 0.1


def test_upsampling_a_1khz_tone_adds_no_image_above_4200hz() -> None:
    """Measured: the 7 kHz image is 71.3 dB down; the tone's level changes -0.006 dB."""
    narrow = tone([1000.0], 1000, NARROWBAND_RATE_HZ)
    wide = middle(upsample(narrow), WIDEBAND_RATE_HZ)  # 800 whole periods: no leakage
    energy = np.abs(np.fft.rfft(wide)) ** 2
    frequencies_hz = np.fft.rfftfreq(len(wide), 1 / WIDEBAND_RATE_HZ)
    image_db = 10 * np.log10(energy[frequencies_hz > 4200.0].sum() / energy.sum())
    assert image_db < -60.0
    change_db = rms_dbfs(wide) - rms_dbfs(middle(narrow, NARROWBAND_RATE_HZ))
    assert abs(change_db) < 0.1


@pytest.mark.parametrize(
    ("process", "state", "frame", "up", "down"),
    [
        (upsample_8k_to_16k, upsampler_state, NARROW_FRAME, 2, 1),
        (downsample_16k_to_8k, downsampler_state, WIDE_FRAME, 1, 2),
    ],
    ids=["up", "down"],
)
def test_streaming_in_20ms_frames_equals_filtering_the_whole_signal_at_once(
    process: StreamFunction,
    state: Callable[[], NDArray[np.float32]],
    frame: int,
    up: int,
    down: int,
) -> None:
    clips = np.random.default_rng(7).uniform(-1.0, 1.0, (3, 50 * frame)).astype(np.float32)
    streamed = stream(process, state(), clips, frame)
    at_once, _ = process(clips, np.stack([state()] * len(clips)))
    np.testing.assert_allclose(streamed, at_once, rtol=0, atol=1e-6)
    # Both are scipy's polyphase filter in float64 from silence (gain `up` after zero-stuffing).
    expected = signal.upfirdn(up * design_2x_lowpass(), clips.astype(np.float64), up, down)
    np.testing.assert_allclose(streamed, expected[:, : streamed.shape[1]], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("process", "state", "frame"),
    [
        (upsample_8k_to_16k, upsampler_state, NARROW_FRAME),
        (downsample_16k_to_8k, downsampler_state, WIDE_FRAME),
    ],
    ids=["up", "down"],
)
def test_rows_are_independent_streams(
    process: StreamFunction, state: Callable[[], NDArray[np.float32]], frame: int
) -> None:
    rng = np.random.default_rng(8)
    first, second, other = rng.uniform(-0.5, 0.5, (3, 10 * frame)).astype(np.float32)
    together = stream(process, state(), np.stack([first, second]), frame)
    changed = stream(process, state(), np.stack([first, other]), frame)
    alone = stream(process, state(), first[np.newaxis], frame)
    np.testing.assert_array_equal(together[0], changed[0])
    np.testing.assert_allclose(together[0], alone[0], rtol=0, atol=1e-7)
    assert np.max(np.abs(together[1] - changed[1])) > 0.1


def test_streaming_leaves_its_inputs_alone() -> None:
    """A caller may hand the same state to two calls (a room's history for a new own mix)."""
    frames = np.full((2, WIDE_FRAME), 0.25, dtype=np.float32)
    states = np.full((2, len(downsampler_state())), 0.5, dtype=np.float32)
    frames_before, states_before = frames.copy(), states.copy()
    _, new_states = downsample_16k_to_8k(frames, states)
    np.testing.assert_array_equal(frames, frames_before)
    np.testing.assert_array_equal(states, states_before)
    new_states[:] = 0.0
    np.testing.assert_array_equal(states, states_before)


def test_new_streams_start_from_silence() -> None:
    """A state is the stream's last input samples: 74 at 8 kHz, 148 at 16 kHz (taps - 1)."""
    up_state, down_state = upsampler_state(), downsampler_state()
    assert up_state.shape == (74,) and up_state.dtype == np.float32 and not up_state.any()
    assert down_state.shape == (148,) and down_state.dtype == np.float32 and not down_state.any()


def band_limited_noise(rng: np.random.Generator, count: int) -> NDArray[np.float64]:
    """Return white noise band-limited to 200-3400 Hz at 8 kHz, ~100 dB down above 3.5 kHz."""
    band = signal.firwin(801, [200.0, 3400.0], pass_zero=False, window=("kaiser", 10.0), fs=8000)
    return np.asarray(signal.lfilter(band, [1.0], rng.standard_normal(count)))


def vowel(rng: np.random.Generator, count: int) -> NDArray[np.float64]:
    """Return a steady 125 Hz voiced sound: harmonics up to 3375 Hz falling 6 dB/octave."""
    harmonics = np.arange(1, 28)
    phases = rng.uniform(0.0, 2 * np.pi, len(harmonics))
    t = np.arange(count) / NARROWBAND_RATE_HZ
    waves = np.sin(2 * np.pi * 125.0 * np.outer(harmonics, t) + phases[:, np.newaxis])
    return np.asarray((waves / harmonics[:, np.newaxis]).sum(axis=0))


@pytest.mark.parametrize("source", [band_limited_noise, vowel])
def test_up_then_down_returns_speech_band_signals_delayed_by_the_group_delay(
    source: Callable[[np.random.Generator, int], NDArray[np.float64]],
) -> None:
    """Measured error: -58.4 dB (noise) and -57.4 dB (vowel) below the signal."""
    count = 2 * NARROWBAND_RATE_HZ
    t = np.arange(count) / NARROWBAND_RATE_HZ
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * 4.0 * t)  # 4 Hz, the syllable rate of speech
    raw = source(np.random.default_rng(9), count) * syllables
    narrow = (0.3 * raw / np.max(np.abs(raw))).astype(np.float32)
    round_trip = downsample(upsample(narrow))
    delay = round(2 * STREAM_GROUP_DELAY_MS * NARROWBAND_RATE_HZ / 1000)  # 74 samples
    delayed_input = middle(narrow[:-delay], NARROWBAND_RATE_HZ)
    error = middle(round_trip[delay:], NARROWBAND_RATE_HZ) - delayed_input
    error_db = 10 * np.log10(np.sum(error**2) / np.sum(delayed_input**2))
    assert error_db < -50.0


def test_streaming_refuses_bad_shapes() -> None:
    one_dimensional = np.zeros(NARROW_FRAME, np.float32)
    with pytest.raises(ValueError, match=r"\(streams, samples >= 1\) frames, got shape \(160,\)"):
        upsample_8k_to_16k(one_dimensional, upsampler_state()[np.newaxis])
    with pytest.raises(ValueError, match=r"\(streams, samples >= 1\) frames, got shape \(1, 0\)"):
        upsample_8k_to_16k(np.zeros((1, 0), np.float32), upsampler_state()[np.newaxis])
    with pytest.raises(ValueError, match=r"expected states of shape \(2, 74\), got \(1, 74\)"):
        upsample_8k_to_16k(np.zeros((2, NARROW_FRAME), np.float32), upsampler_state()[np.newaxis])
    with pytest.raises(ValueError, match="expected an even number of 16 kHz samples, got 319"):
        downsample_16k_to_8k(np.zeros((1, 319), np.float32), downsampler_state()[np.newaxis])
