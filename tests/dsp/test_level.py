"""Level helpers: RMS and peak in dBFS against full scale, and gains in dB."""

import math

import numpy as np
import pytest

from dsp.level import gain_db, peak_dbfs, rms_dbfs


def full_scale_sine() -> np.ndarray:
    return np.sin(2 * np.pi * np.arange(8000) * 997 / 8000).astype(np.float32)


def test_full_scale_sine_reads_minus_3_db_rms_and_0_db_peak() -> None:
    sine = full_scale_sine()
    assert rms_dbfs(sine) == pytest.approx(-3.0103, abs=1e-3)
    assert peak_dbfs(sine) == pytest.approx(0.0, abs=0.05)


def test_square_wave_at_half_scale_reads_minus_6_db() -> None:
    square = np.tile(np.array([0.5, -0.5], dtype=np.float32), 100)
    assert rms_dbfs(square) == pytest.approx(-6.0206, abs=1e-4)
    assert peak_dbfs(square) == pytest.approx(-6.0206, abs=1e-4)


def test_levels_use_every_sample_of_any_shape() -> None:
    frames = np.zeros((2, 100), dtype=np.float32)
    frames[1] = 0.25
    assert rms_dbfs(frames) == pytest.approx(20 * math.log10(0.25) - 10 * math.log10(2))
    assert peak_dbfs(frames) == pytest.approx(20 * math.log10(0.25))


def test_silence_and_empty_arrays_read_minus_infinity() -> None:
    for samples in (np.zeros(160, dtype=np.float32), np.zeros(0, dtype=np.float32)):
        assert rms_dbfs(samples) == -math.inf
        assert peak_dbfs(samples) == -math.inf


def test_gain_db_scales_by_decibels() -> None:
    sine = full_scale_sine()
    quieter = gain_db(sine, -20.0)
    assert quieter.dtype == np.float32 and quieter.shape == sine.shape
    np.testing.assert_allclose(quieter, sine * 0.1, rtol=1e-6, atol=1e-7)
    assert rms_dbfs(gain_db(sine, -6.0)) == pytest.approx(rms_dbfs(sine) - 6.0, abs=1e-4)
    np.testing.assert_array_equal(gain_db(sine, 0.0), sine)
