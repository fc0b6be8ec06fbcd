"""G.722 streams over libg722: framing, the 8 kHz RTP clock, fidelity, wideband and state."""


import G722
import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.codecs.base import EncoderSettings, to_pcm16
from dsp.codecs.g722 import G722StreamDecoder, G722StreamEncoder
from dsp.level import rms_dbfs
from dsp.tones import tone
from tests.dsp.codecs.speech import FRAME_SAMPLES, RATE_HZ, SPEECH, as_frames

# The transmit and receive QMF filter banks (24 taps each) delay the audio by 22 samples
# (measured by cross-correlation below).
CODEC_DELAY_SAMPLES = 22


def round_trip(frames: NDArray[np.float32], ptime_ms: int = 20) -> NDArray[np.float32]:
    encoder = G722StreamEncoder(EncoderSettings(ptime_ms=ptime_ms))
    decoder = G722StreamDecoder()
    return np.concatenate([decoder.decode(encoder.encode(frame)) for frame in frames])


def snr_db(original: NDArray[np.float32], decoded: NDArray[np.float32]) -> float:
    """Signal to error ratio of `decoded` against `original` advanced by the codec delay."""
    aligned = decoded[CODEC_DELAY_SAMPLES:]
    reference = original[: len(aligned)]
    return rms_dbfs(reference) - rms_dbfs(aligned - reference)


@pytest.mark.parametrize(("ptime_ms", "payload_bytes"), [(20, 160), (40, 320), (60, 480)])
def test_payload_is_one_byte_per_two_samples_and_timestamps_step_at_8_khz(
    ptime_ms: int, payload_bytes: int
) -> None:
    frame_samples = RATE_HZ * ptime_ms // 1000
    encoder = G722StreamEncoder(EncoderSettings(ptime_ms=ptime_ms))
    decoder = G722StreamDecoder()
    payload = encoder.encode(as_frames(SPEECH, frame_samples)[3])
    assert len(payload) == payload_bytes
    decoded = decoder.decode(payload)
    assert decoded.shape == (frame_samples,) and decoded.dtype == np.float32
    # RFC 3551 §4.5.2: the clock is 8000 Hz, so the timestamp advances by the byte count.
    timestamp_step = len(decoded) * decoder.clock_rate_hz // decoder.sample_rate_hz
    assert timestamp_step == payload_bytes == 8 * ptime_ms


def test_speech_round_trip_keeps_the_waveform() -> None:
    frames = as_frames(SPEECH, FRAME_SAMPLES)
    decoded = round_trip(frames)
    original = frames.reshape(-1)
    lag = int(np.argmax(np.correlate(decoded[:8000], original[:8000], "full"))) - 7999
    assert lag == CODEC_DELAY_SAMPLES
    # Measured: 29.5 dB on this clip (correlation 0.9994). G.722 is a waveform coder, so
    # unlike Opus the error can be asked to stay far below the speech.
    assert snr_db(original, decoded) > 26.0


def test_tone_round_trip_is_within_g722_quantisation() -> None:
    clip = tone([1004.0], 500, RATE_HZ, level_dbfs=-12.0)
    decoded = round_trip(as_frames(clip, FRAME_SAMPLES))
    # Measured: 47.5 dB once the ADPCM step sizes have adapted (the first 50 ms).
    assert snr_db(clip[800:], decoded[800:]) > 42.0


def test_wideband_keeps_a_6_khz_tone() -> None:
    clip = tone([6000.0], 1000, RATE_HZ, level_dbfs=-12.0)
    decoded = round_trip(as_frames(clip, FRAME_SAMPLES))[1600:]
    spectrum = np.fft.rfft(decoded.astype(np.float64))
    above_4_khz = np.where(np.fft.rfftfreq(len(decoded), 1.0 / RATE_HZ) > 4000.0, spectrum, 0.0)
    # Measured: -15.05 dBFS out for -15.04 dBFS in; the upper sub-band carries 4-8 kHz.
    level = rms_dbfs(np.fft.irfft(above_4_khz, n=len(decoded)))
    assert level == pytest.approx(rms_dbfs(clip[1600:]), abs=0.5)


def test_state_carries_over_between_frames() -> None:
    frames = as_frames(SPEECH, FRAME_SAMPLES)
    encoder = G722StreamEncoder(EncoderSettings())
    framewise = b"".join(encoder.encode(frame) for frame in frames)
    whole = G722.G722(RATE_HZ, 64_000).encode(to_pcm16(frames.reshape(-1)))
    assert framewise == whole


def test_configure_changes_the_frame_length() -> None:
    encoder = G722StreamEncoder(EncoderSettings(ptime_ms=20))
    encoder.configure(EncoderSettings(ptime_ms=40))
    assert len(encoder.encode(np.zeros(640, dtype=np.float32))) == 320
    with pytest.raises(ValueError, match=r"expected a \(640,\) frame, got shape \(320,\)"):
        encoder.encode(np.zeros(320, dtype=np.float32))


def test_configure_rejects_a_ptime_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="ptime must be positive, got 0 ms"):
        G722StreamEncoder(EncoderSettings(ptime_ms=0))


def test_g722_has_no_fec_and_no_concealment() -> None:
    decoder = G722StreamDecoder()
    assert decoder.recover(bytes(160), FRAME_SAMPLES) is None
    assert decoder.conceal(FRAME_SAMPLES) is None


def test_every_byte_string_decodes() -> None:
    decoder = G722StreamDecoder()
    assert decoder.decode(b"").shape == (0,)
    decoded = decoder.decode(bytes(range(256)))
    assert decoded.shape == (512,) and decoded.min() >= -1.0 and decoded.max() < 1.0
