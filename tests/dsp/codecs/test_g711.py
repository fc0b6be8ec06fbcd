"""G.711 μ-law and A-law: bit-exact tables, golden codes, quantisation error and frame API."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from dsp.codecs.base import from_pcm16, to_pcm16
from dsp.codecs.g711 import (
    PcmaCodec,
    PcmuCodec,
    decode_alaw,
    decode_ulaw,
    encode_alaw,
    encode_ulaw,
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


def pcm16(values: list[int]) -> NDArray[np.float32]:
    return from_pcm16(np.array(values, dtype=np.int16))


def decoded16(samples: NDArray[np.float32]) -> NDArray[np.int32]:
    """Decoded floats back on the int16 grid (exact: they are multiples of 2**-15)."""
    scaled = samples.astype(np.float64) * 32768.0
    assert np.array_equal(scaled, np.round(scaled))
    return scaled.astype(np.int32)


@pytest.fixture(scope="module")
def audioop():  # type: ignore[no-untyped-def]
    """CPython's C G.711 (Sun's reference algorithm); gone from Python 3.13 on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


def test_ulaw_encode_matches_audioop_for_every_int16(audioop) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(audioop.lin2ulaw(ALL_INT16.tobytes(), 2), dtype=np.uint8)
    np.testing.assert_array_equal(encode_ulaw(from_pcm16(ALL_INT16)), expected)


def test_alaw_encode_matches_audioop_for_every_int16(audioop) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(audioop.lin2alaw(ALL_INT16.tobytes(), 2), dtype=np.uint8)
    np.testing.assert_array_equal(encode_alaw(from_pcm16(ALL_INT16)), expected)


def test_ulaw_decode_matches_audioop_for_every_code(audioop) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES.tobytes(), 2), dtype=np.int16)
    np.testing.assert_array_equal(decoded16(decode_ulaw(ALL_CODES)), expected)


def test_alaw_decode_matches_audioop_for_every_code(audioop) -> None:  # type: ignore[no-untyped-def]
    expected = np.frombuffer(audioop.alaw2lin(ALL_CODES.tobytes(), 2), dtype=np.int16)
    np.testing.assert_array_equal(decoded16(decode_alaw(ALL_CODES)), expected)


def test_ulaw_golden_codes() -> None:
    # Zero, ±1 LSB, the first value of segment 1 (14-bit 31), full scale (G.711 Table 2:
    # code 0x80 / 0x00), and 14-bit 2000: segment 5, step 15.
    samples = pcm16([0, 1, -1, 124, 32767, -32768, 8000, -8000])
    expected = [0xFF, 0xFF, 0x7E, 0xEF, 0x80, 0x00, 0xA0, 0x20]
    np.testing.assert_array_equal(encode_ulaw(samples), np.array(expected, dtype=np.uint8))


def test_alaw_golden_codes() -> None:
    # Even-bit inversion: zero is 0xD5 and -1 LSB 0x55; full scale is 0xAA / 0x2A;
    # 13-bit 1000 is segment 5, step 15 (0xDF before inversion).
    samples = pcm16([0, 1, -1, 255, 32767, -32768, 8000, -8000])
    expected = [0xD5, 0xD5, 0x55, 0xDA, 0xAA, 0x2A, 0x8A, 0x0A]
    np.testing.assert_array_equal(encode_alaw(samples), np.array(expected, dtype=np.uint8))


def test_ulaw_golden_decoded_values() -> None:
    codes = np.array([0xFF, 0x7F, 0xFE, 0x80, 0x00, 0xF0], dtype=np.uint8)
    np.testing.assert_array_equal(decoded16(decode_ulaw(codes)), [0, 0, 8, 32124, -32124, 120])


def test_alaw_golden_decoded_values() -> None:
    codes = np.array([0xD5, 0x55, 0xAA, 0x2A, 0xD4], dtype=np.uint8)
    np.testing.assert_array_equal(decoded16(decode_alaw(codes)), [8, -8, 32256, -32256, 24])


@pytest.mark.parametrize(
    ("encode", "decode"), [(encode_ulaw, decode_ulaw), (encode_alaw, decode_alaw)]
)
def test_quantiser_is_monotonic_over_int16(encode, decode) -> None:  # type: ignore[no-untyped-def]
    reconstructed = decoded16(decode(encode(from_pcm16(ALL_INT16))))
    assert np.all(np.diff(reconstructed) >= 0)


def test_ulaw_codes_survive_a_decode_encode_cycle() -> None:
    # 0x7F is μ-law's "negative zero": it decodes to 0, which encodes as 0xFF.
    again = encode_ulaw(decode_ulaw(ALL_CODES))
    expected = ALL_CODES.copy()
    expected[0x7F] = 0xFF
    np.testing.assert_array_equal(again, expected)


def test_alaw_codes_survive_a_decode_encode_cycle() -> None:
    np.testing.assert_array_equal(encode_alaw(decode_alaw(ALL_CODES)), ALL_CODES)


def test_encode_clips_out_of_range_floats_keeping_the_sign() -> None:
    samples = np.array([1.0, 7.5, -1.0, -7.5, np.inf, -np.inf], dtype=np.float32)
    np.testing.assert_array_equal(encode_ulaw(samples), [0x80, 0x80, 0x00, 0x00, 0x80, 0x00])
    np.testing.assert_array_equal(encode_alaw(samples), [0xAA, 0xAA, 0x2A, 0x2A, 0xAA, 0x2A])


def test_to_pcm16_rounds_to_nearest() -> None:
    lsb = 1.0 / 32768
    samples = np.array([0.4 * lsb, 0.6 * lsb, -0.6 * lsb, 100.49 * lsb], dtype=np.float32)
    np.testing.assert_array_equal(to_pcm16(samples), [0, 1, -1, 100])


def test_encode_and_decode_keep_any_shape() -> None:
    samples = np.zeros((2, 3, 4), dtype=np.float32)
    assert encode_ulaw(samples).shape == (2, 3, 4)
    assert encode_alaw(samples).dtype == np.uint8
    assert decode_alaw(np.zeros((5, 2), dtype=np.uint8)).shape == (5, 2)
    assert decode_ulaw(np.zeros((5, 2), dtype=np.uint8)).dtype == np.float32


def ulaw_step16(codes: NDArray[np.uint8]) -> NDArray[np.int32]:
    segment = (~codes.astype(np.int32) >> 4) & 0x07
    step: NDArray[np.int32] = np.int32(8) << segment
    return step


def alaw_step16(codes: NDArray[np.uint8]) -> NDArray[np.int32]:
    segment = ((codes.astype(np.int32) ^ 0x55) >> 4) & 0x07
    step: NDArray[np.int32] = np.int32(16) << np.maximum(segment - 1, 0)
    return step


@settings(max_examples=200, deadline=None)
@given(arrays(np.int16, 160))
def test_ulaw_round_trip_stays_within_one_step(pcm: NDArray[np.int16]) -> None:
    codes = encode_ulaw(from_pcm16(pcm))
    error = np.abs(decoded16(decode_ulaw(codes)) - pcm.astype(np.int32))
    assert np.all(error <= ulaw_step16(codes))


@settings(max_examples=200, deadline=None)
@given(arrays(np.int16, 160))
def test_alaw_round_trip_stays_within_one_step(pcm: NDArray[np.int16]) -> None:
    codes = encode_alaw(from_pcm16(pcm))
    error = np.abs(decoded16(decode_alaw(codes)) - pcm.astype(np.int32))
    assert np.all(error <= alaw_step16(codes))


@pytest.mark.parametrize("codec", [PcmuCodec(), PcmaCodec()], ids=["PCMU", "PCMA"])
def test_codec_encodes_many_members_at_once(codec: PcmuCodec | PcmaCodec) -> None:
    rng = np.random.default_rng(7)
    frames = rng.uniform(-0.9, 0.9, size=(5, 160)).astype(np.float32)
    payloads = codec.encode(frames)
    assert payloads.shape == (5, 160) and payloads.dtype == np.uint8
    for row in range(5):
        np.testing.assert_array_equal(
            codec.decode(payloads[row].tobytes()), codec.decode_many(payloads)[row]
        )
    assert codec.decode_many(payloads).shape == (5, 160)


@pytest.mark.parametrize("codec", [PcmuCodec(), PcmaCodec()], ids=["PCMU", "PCMA"])
@pytest.mark.parametrize(("rows", "size"), [(0, 160), (1, 160), (77, 160), (500, 160),
                                            (33, 80), (9, 4097)])
def test_many_payloads_decode_as_each_alone(
    codec: PcmuCodec | PcmaCodec, rows: int, size: int
) -> None:
    """However many rows (a sweep is decoded a block of rows at a time) and whatever
    their size, and from a view into a sweep's datagrams as the bridge passes them."""
    datagrams = np.random.default_rng(rows + size).integers(0, 256, (rows, size + 12), np.uint8)
    payloads = datagrams[:, 12:]
    decoded = codec.decode_many(payloads)
    assert decoded.shape == (rows, size) and decoded.dtype == np.float32
    for row in range(rows):
        np.testing.assert_array_equal(decoded[row], codec.decode(payloads[row].tobytes()))


def test_codec_identities_follow_rfc_3551() -> None:
    for codec, name in ((PcmuCodec(), "PCMU"), (PcmaCodec(), "PCMA")):
        assert codec.name == name
        assert codec.sample_rate_hz == codec.clock_rate_hz == 8000
        assert codec.samples_in(160) == 160
        assert codec.samples_in(0) == 0
        assert codec.decode(b"").shape == (0,)


def test_codec_payloads_equal_the_module_functions() -> None:
    frames = np.linspace(-1.0, 1.0, 320, endpoint=False, dtype=np.float32).reshape(2, 160)
    np.testing.assert_array_equal(PcmuCodec().encode(frames), encode_ulaw(frames))
    np.testing.assert_array_equal(PcmaCodec().encode(frames), encode_alaw(frames))


def test_codec_refuses_frames_that_are_not_two_dimensional() -> None:
    with pytest.raises(ValueError, match="expected \\(members, samples\\) frames"):
        PcmuCodec().encode(np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError, match="expected \\(members, bytes\\) payloads"):
        PcmaCodec().decode_many(np.zeros(160, dtype=np.uint8))
    with pytest.raises(ValueError, match="cannot be negative"):
        PcmuCodec().samples_in(-1)
