"""N-1 mixing and the soft limiter: exact minus mixes, silence alone, no overload or wrap."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from dsp.codecs.base import from_pcm16, to_pcm16
from dsp.mixer import LIMITER_CEILING, LIMITER_KNEE, limit, mix_minus

N = 160


def quiet_voices(members: int, seed: int, peak: float = 0.1) -> NDArray[np.float32]:
    """Distinct int16-grid signals small enough that no sum of them reaches the knee."""
    rng = np.random.default_rng(seed)
    pcm = rng.integers(-int(peak * 32768), int(peak * 32768), size=(members, N), dtype=np.int16)
    return from_pcm16(pcm)


def test_a_lone_talker_hears_silence() -> None:
    frames = quiet_voices(1, seed=1)
    mix = mix_minus(frames, np.array([True]))
    np.testing.assert_array_equal(mix.talkers, [0])
    assert mix.minus.shape == (1, N)
    assert not mix.minus.any()
    np.testing.assert_array_equal(mix.total, frames[0])


def test_nobody_talking_gives_silence_and_no_rows() -> None:
    mix = mix_minus(quiet_voices(4, seed=2), np.zeros(4, dtype=np.bool_))
    assert mix.talkers.shape == (0,) and mix.minus.shape == (0, N)
    assert mix.total.shape == (N,) and not mix.total.any()


def test_each_talker_hears_exactly_the_others() -> None:
    frames = quiet_voices(5, seed=3)
    talking = np.array([True, True, False, True, True])
    mix = mix_minus(frames, talking)
    np.testing.assert_array_equal(mix.talkers, [0, 1, 3, 4])
    assert mix.talkers.dtype == np.intp
    for row, member in enumerate(mix.talkers):
        others = [k for k in (0, 1, 3, 4) if k != member]
        expected = frames[others].astype(np.float64).sum(axis=0).astype(np.float32)
        np.testing.assert_array_equal(mix.minus[row], expected)
    # The non-talker's frame is in nobody's mix.
    expected_total = frames[[0, 1, 3, 4]].astype(np.float64).sum(axis=0).astype(np.float32)
    np.testing.assert_array_equal(mix.total, expected_total)


def test_own_voice_leaves_no_residue_in_the_minus_mix() -> None:
    frames = quiet_voices(3, seed=4)
    mix = mix_minus(frames, np.ones(3, dtype=np.bool_))
    for row in range(3):
        residue = mix.minus[row] - sum(frames[k] for k in range(3) if k != row)
        assert np.max(np.abs(residue)) == 0.0


def test_mix_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="expected \\(members, samples\\) frames"):
        mix_minus(np.zeros((3, N), dtype=np.float32), np.ones(2, dtype=np.bool_))
    with pytest.raises(ValueError, match="expected \\(members, samples\\) frames"):
        mix_minus(np.zeros(N, dtype=np.float32), np.ones(1, dtype=np.bool_))


def test_huge_sums_stay_inside_full_scale_with_their_sign() -> None:
    frames = np.full((50, N), 0.99, dtype=np.float32)
    frames[:, ::2] = -1.0
    mix = mix_minus(frames, np.ones(50, dtype=np.bool_))
    for signal in (mix.total, *mix.minus):
        assert np.all(np.abs(signal) < 1.0)
        assert np.all(signal[::2] < -LIMITER_KNEE) and np.all(signal[1::2] > LIMITER_KNEE)
    pcm = to_pcm16(mix.total)
    assert pcm[0] == -32767 and pcm[1] == 32767


def test_limit_is_the_identity_below_the_knee() -> None:
    x = np.linspace(-LIMITER_KNEE, LIMITER_KNEE, 10001, dtype=np.float32)
    np.testing.assert_array_equal(limit(x), x)


def test_limit_is_smooth_at_the_knee() -> None:
    h = 1e-3  # well above float32 resolution at 0.5 (6e-8)
    x = np.array([LIMITER_KNEE - h, LIMITER_KNEE, LIMITER_KNEE + h], dtype=np.float64)
    y = limit(x).astype(np.float64)
    # Same value and slope on both sides: the curve bends without a corner.
    assert y[1] == pytest.approx(LIMITER_KNEE)
    assert (y[2] - y[1]) / h == pytest.approx(1.0, abs=1e-3)
    assert (y[1] - y[0]) / h == pytest.approx(1.0, abs=1e-3)


def test_limit_compresses_increasingly_above_the_knee() -> None:
    x = np.linspace(LIMITER_KNEE, 20.0, 100001)
    y = limit(x)
    assert np.all(np.diff(y) >= 0) and y[-1] < 1.0
    slopes = np.diff(y.astype(np.float64)) / np.diff(x)
    assert slopes[0] > 0.99 and slopes[len(slopes) // 20] < 0.5
    # -3 dB over the knee at twice full scale input: about 0.982.
    assert float(limit(np.array([2.0]))[0]) == pytest.approx(0.5 + 0.5 * np.tanh(3.0), abs=1e-6)


def test_limit_never_reaches_full_scale_and_is_odd() -> None:
    x = np.array([1.0, 3.0, 1e6, 3e38, np.inf], dtype=np.float64)
    y = limit(x)
    assert y.dtype == np.float32
    assert np.all(y < 1.0) and np.all(y <= LIMITER_CEILING) and np.all(np.diff(y) >= 0)
    assert float(y[0]) == pytest.approx(0.5 + 0.5 * np.tanh(1.0), abs=1e-6)
    np.testing.assert_array_equal(limit(-x), -y)
    assert np.all(to_pcm16(y[1:]) == 32767)


def test_limit_keeps_any_shape() -> None:
    assert limit(np.zeros((2, 3, 4), dtype=np.float32)).shape == (2, 3, 4)


@st.composite
def rooms(draw: st.DrawFn) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    members = draw(st.integers(min_value=1, max_value=8))
    pcm = draw(arrays(np.int16, (members, N)))
    talking = draw(arrays(np.bool_, members))
    return from_pcm16(pcm), talking


@settings(max_examples=150, deadline=None)
@given(rooms())
def test_mix_minus_stays_in_range_and_subtracts_own_voice(
    room: tuple[NDArray[np.float32], NDArray[np.bool_]],
) -> None:
    frames, talking = room
    mix = mix_minus(frames, talking)
    np.testing.assert_array_equal(mix.talkers, np.flatnonzero(talking))
    for signal in (mix.total, *mix.minus):
        # Scaled to int16 and rounded, without any clipping, it still fits: no wrap.
        assert np.all(np.abs(np.rint(signal.astype(np.float64) * 32768)) <= 32767)
    sums = frames[talking].astype(np.float64).sum(axis=0)
    np.testing.assert_array_equal(mix.total, limit(sums))
    for row, member in enumerate(mix.talkers):
        others = frames[talking & (np.arange(len(talking)) != member)].astype(np.float64)
        np.testing.assert_array_equal(mix.minus[row], limit(others.sum(axis=0)))
        # Sign is never flipped by the limiter: no wrap-around.
        assert np.all(np.sign(mix.minus[row]) == np.sign(others.sum(axis=0)))


@settings(max_examples=100, deadline=None)
@given(arrays(np.int16, (1, N)))
def test_a_lone_member_always_hears_silence(pcm: NDArray[np.int16]) -> None:
    mix = mix_minus(from_pcm16(pcm), np.array([True]))
    assert not mix.minus.any()
