"""The codec registry: lookup by RTP encoding name, and a usable codec for every name."""

import pytest

from dsp.codecs import SUPPORTED_CODECS, get_codec
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
