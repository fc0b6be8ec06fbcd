"""The codec registry: lookup by RTP encoding name, and a usable codec for every name."""

import numpy as np
import pytest

from dsp.codecs import (
    STREAM_CODECS,
    SUPPORTED_CODECS,
    CodecRates,
    codec_rates,
    get_codec,
    new_decoder,
    new_encoder,
)
from dsp.codecs.base import EncoderSettings
from dsp.codecs.g711 import G711StreamDecoder, G711StreamEncoder
from dsp.level import rms_dbfs
from dsp.tones import tone


def test_supported_codecs_are_the_g711_pair() -> None:
    assert SUPPORTED_CODECS == ("PCMU", "PCMA")


@pytest.mark.parametrize("name", ["PCMU", "pcmu", "PcMa", "pcma"])
def test_get_codec_ignores_case(name: str) -> None:
    codec = get_codec(name)
    assert codec.name == name.upper()
    assert get_codec(name.lower()) is codec


def test_get_codec_rejects_unknown_names() -> None:
    with pytest.raises(ValueError) as excinfo:
        get_codec("G729")
    assert str(excinfo.value) == "no codec named 'G729'"


@pytest.mark.parametrize("name", SUPPORTED_CODECS)
def test_every_codec_carries_a_tone_with_g711_fidelity(name: str) -> None:
    codec = get_codec(name)
    clip = tone([1004.0], 200, codec.sample_rate_hz, level_dbfs=-12.0)
    frames = clip[: len(clip) // 160 * 160].reshape(-1, 160)
    decoded = codec.decode_many(codec.encode(frames)).reshape(-1)
    original = frames.reshape(-1)
    snr_db = rms_dbfs(original) - rms_dbfs(decoded - original)
    # G.711 gives about 38 dB SNR over a wide range of levels (companding).
    assert snr_db > 33.0


def test_stream_codecs_are_g711_g722_and_opus() -> None:
    assert STREAM_CODECS == ("PCMU", "PCMA", "G722", "OPUS")


@pytest.mark.parametrize(
    ("name", "rates"),
    [
        ("PCMU", (8000, 8000)),
        ("PCMA", (8000, 8000)),
        ("G722", (16000, 8000)),  # RFC 3551 §4.5.2
        ("opus", (16000, 48000)),  # our API rate; RFC 7587 §4.1 clock
    ],
)
def test_codec_rates_are_known_without_building_a_codec(name: str, rates: tuple[int, int]) -> None:
    assert codec_rates(name) == rates
    assert codec_rates(name) == CodecRates(sample_rate_hz=rates[0], clock_rate_hz=rates[1])


@pytest.mark.parametrize("name", STREAM_CODECS)
def test_new_encoder_and_decoder_match_their_name_and_rates(name: str) -> None:
    encoder = new_encoder(name.lower(), EncoderSettings())
    decoder = new_decoder(name.lower())
    assert encoder.name == decoder.name == name
    expected = codec_rates(name)
    assert (encoder.sample_rate_hz, encoder.clock_rate_hz) == expected
    assert (decoder.sample_rate_hz, decoder.clock_rate_hz) == expected


@pytest.mark.parametrize("name", STREAM_CODECS)
def test_every_stream_is_a_fresh_instance(name: str) -> None:
    settings = EncoderSettings()
    assert new_encoder(name, settings) is not new_encoder(name, settings)
    assert new_decoder(name) is not new_decoder(name)


def test_stream_factories_reject_unknown_names() -> None:
    for lookup in (lambda: new_encoder("G729", EncoderSettings()), lambda: new_decoder("G729")):
        with pytest.raises(ValueError) as excinfo:
            lookup()
        assert str(excinfo.value) == "no codec named 'G729'"
    with pytest.raises(ValueError, match="no codec named 'iLBC'"):
        codec_rates("iLBC")


@pytest.mark.parametrize("name", STREAM_CODECS)
@pytest.mark.parametrize("ptime_ms", [20, 40])
def test_every_stream_codec_carries_a_tone(name: str, ptime_ms: int) -> None:
    rate_hz = codec_rates(name).sample_rate_hz
    settings = EncoderSettings(ptime_ms=ptime_ms, bitrate_bps=24_000)
    encoder, decoder = new_encoder(name, settings), new_decoder(name)
    clip = tone([1004.0], 400, rate_hz, level_dbfs=-12.0)
    frame_samples = rate_hz * ptime_ms // 1000
    frames = clip[: len(clip) // frame_samples * frame_samples].reshape(-1, frame_samples)
    decoded = []
    for frame in frames:
        payload = encoder.encode(frame)
        assert payload is not None
        decoded.append(decoder.decode(payload))
        assert len(decoded[-1]) == frame_samples
    # Past the codecs' start-up (Opus and G.722 adapt over the first tens of ms), all four
    # keep the level within 0.04 dB (measured): a steady tone is easy for every one.
    settled = np.concatenate(decoded)[rate_hz // 10 :]
    assert rms_dbfs(settled) == pytest.approx(rms_dbfs(clip[rate_hz // 10 :]), abs=0.3)


@pytest.mark.parametrize("name", SUPPORTED_CODECS)
def test_g711_stream_adapter_matches_the_frame_codec(name: str) -> None:
    codec = get_codec(name)
    clip = tone([440.0, 1800.0], 60, 8000, level_dbfs=-6.0)
    frames = clip.reshape(-1, 160)
    encoder = G711StreamEncoder(codec, EncoderSettings(ptime_ms=20))
    decoder = G711StreamDecoder(codec)
    payloads = [encoder.encode(frame) for frame in frames]
    assert payloads == [row.tobytes() for row in codec.encode(frames)]
    for payload in payloads:
        np.testing.assert_array_equal(decoder.decode(payload), codec.decode(payload))
    assert decoder.recover(payloads[1], 160) is None and decoder.conceal(160) is None


def test_g711_stream_encoder_checks_the_frame_length() -> None:
    encoder = G711StreamEncoder(get_codec("PCMU"), EncoderSettings(ptime_ms=20))
    encoder.configure(EncoderSettings(ptime_ms=30))
    assert len(encoder.encode(np.zeros(240, dtype=np.float32))) == 240
    with pytest.raises(ValueError, match=r"expected a \(240,\) frame, got shape \(2, 120\)"):
        encoder.encode(np.zeros((2, 120), dtype=np.float32))
    with pytest.raises(ValueError, match="ptime must be positive, got -20 ms"):
        encoder.configure(EncoderSettings(ptime_ms=-20))
