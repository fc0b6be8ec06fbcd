"""Whole-clip resampling: passband kept, aliases rejected, timing and length preserved."""

import numpy as np
import pytest

from dsp.level import rms_dbfs
from dsp.resample import resample
from dsp.tones import tone


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
