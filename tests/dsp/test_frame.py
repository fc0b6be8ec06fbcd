"""Frame sizes: exact sample counts per 20 ms tick, and refusal of fractional frames."""

import pytest

from dsp.frame import FRAME_MS, frame_samples


@pytest.mark.parametrize(
    ("rate_hz", "ms", "expected"),
    [(8000, 20, 160), (16000, 20, 320), (48000, 20, 960), (8000, 10, 80), (16000, 30, 480)],
)
def test_frame_samples_counts_whole_samples(rate_hz: int, ms: int, expected: int) -> None:
    assert frame_samples(rate_hz, ms) == expected


def test_frame_samples_defaults_to_20_ms() -> None:
    assert FRAME_MS == 20
    assert frame_samples(8000) == 160


def test_frame_samples_rejects_fractional_frames() -> None:
    with pytest.raises(ValueError, match="not a whole number of samples"):
        frame_samples(11025, 20)


@pytest.mark.parametrize(("rate_hz", "ms"), [(0, 20), (-8000, 20), (8000, 0)])
def test_frame_samples_rejects_non_positive_values(rate_hz: int, ms: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        frame_samples(rate_hz, ms)
