"""Bandwidth on the wire and speech quality (PESQ) per codec and packet time, measured in-process.

For each codec setting and ptime, two phones join one room over in-process SIP (bench/inprocess),
each offering only that codec at that a=ptime. The talker sends espeak-ng speech as RTP, encoded
with telerapat's own dsp codecs as its answer asks (a phone would do the same); the listener
decodes what the bridge sends it. Both directions are counted from the RTP datagrams themselves,
so Opus DTX shows as packets not sent; speech quality is ITU-T P.862 MOS-LQO of the listener's
audio against the clean clip (P.862.2 wideband for Opus and G.722, P.862 narrowband at 8 kHz for
G.711), so it covers both encodes, the talker's and the bridge's.

    .venv/bin/python bench/bandwidth.py             # Opus at 3 bitrates, G.722, G.711; 20/40/60 ms
    .venv/bin/python bench/bandwidth.py --smoke     # one short clip, PCMU 20 and OPUS 40, for CI
    .venv/bin/python bench/bandwidth.py --markdown  # the table as Markdown, for the README
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from inprocess import InProcessBridge, Phone, audio_offer, bench_config, rtp_sent_to
from numpy.typing import NDArray
from pesq import pesq
from scipy import signal
from speech import ENGLISH, INDONESIAN, sentences_clip, set_active_level, speak

from bridge.config import OpusConfig
from bridge.rtp.packet import RtpPacket
from bridge.rtp.sender import SendStream
from bridge.sip.opus_fmtp import OpusParameters
from dsp.codecs import codec_rates, new_decoder, new_encoder
from dsp.codecs.base import EncoderSettings, StreamDecoder
from dsp.resample import resample

Samples = NDArray[np.float32]

WIDE_RATE_HZ = 16_000
NARROW_RATE_HZ = 8_000
FRAME_MS = 20
PTIMES_MS = (20, 40, 60)
# Clips last a multiple of every packet time (their least common multiple), so each ptime
# sends the same audio in whole packets.
_CLIP_GRANULE_MS = math.lcm(*PTIMES_MS)
# An RTP datagram on the wire also carries 8 bytes of UDP (RFC 768) and 20 of IPv4 without
# options (RFC 791); the RTP header (12 bytes, RFC 3550 §5.1) is in the datagram already.
UDP_IPV4_HEADER_BYTES = 8 + 20
# The config's default Opus bitrate, and one either side of it.
OPUS_BITRATES_BPS = (12_000, OpusConfig().bitrate_bps, 24_000)
# The target of issue #3: Opus at 40 ms within 24 kbit/s each way, wideband PESQ at least 3.5.
TARGET_PTIME_MS = 40
TARGET_KBIT_S = 24.0
TARGET_PESQ_WB = 3.5
# What an Opus phone asks of the bridge's encoder (RFC 7587 §6.1); maxaveragebitrate follows
# the setting under test, so both ends send the same rate.
PHONE_OPUS_FMTP = "maxplaybackrate=16000;sprop-maxcapturerate=16000;useinbandfec=1;usedtx=1"
TALKER_HOST = "198.51.100.10"  # RFC 5737 TEST-NET-2: names only, nothing is sent anywhere
LISTENER_HOST = "198.51.100.20"
# 1.2 s of silence before the clip, a whole number of packets at every ptime: both Opus
# encoders reach DTX, as in a call under way. It is sent but not counted.
WARM_UP_TICKS = 60

# Speech (bench/speech): espeak-ng sentences trimmed to their sound and joined by pauses, at an
# active level of -26 dB re full scale (ITU-T P.56's nominal speech level), which keeps peaks
# under the room limiter's knee (-6 dBFS), so the mix passes the talker untouched. The
# trailing pause (0.6 s) is longer than the bridge's delay, so the last word is in the window.
SPEECH_LEVEL_DBFS = -26.0


@dataclass(frozen=True, slots=True)
class Script:
    """What one clip says, and in which espeak-ng voice (`+f3` is a female variant)."""

    name: str
    voice: str
    sentences: tuple[str, ...]


SCRIPTS: tuple[Script, ...] = (
    Script("en-m", "en-us", ENGLISH),
    Script("en-f", "en-us+f3", ENGLISH),
    Script("id-m", "id", INDONESIAN),
    Script("id-f", "id+f3", INDONESIAN),
)
SMOKE_SCRIPTS: tuple[Script, ...] = (Script("en-m", "en-us", ENGLISH[:2]),)


@dataclass(frozen=True, slots=True)
class Setting:
    """One row: a codec, its Opus bitrate (None for the fixed-rate codecs), a packet time."""

    codec: str
    ptime_ms: int
    opus_bitrate_bps: int | None = None

    @property
    def wideband(self) -> bool:
        return codec_rates(self.codec).sample_rate_hz == WIDE_RATE_HZ


# RTP/AVP payload types (RFC 3551 §6; Opus takes a dynamic one) and a=rtpmap values.
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9, "OPUS": 111}
RTPMAPS = {"PCMU": None, "PCMA": None, "G722": None, "OPUS": "opus/48000/2"}


@dataclass(frozen=True, slots=True)
class Clip:
    """A clip of speech at 16 kHz and at 8 kHz, both `(samples,)` float32 of equal duration."""

    name: str
    wide: Samples
    narrow: Samples
    speech_s: float  # the sentences' part of it; the rest is pauses

    @property
    def duration_s(self) -> float:
        return len(self.wide) / WIDE_RATE_HZ

    def at(self, rate_hz: int) -> Samples:
        return self.wide if rate_hz == WIDE_RATE_HZ else self.narrow


@dataclass(frozen=True, slots=True)
class Measurement:
    """One clip through the bridge at one setting."""

    clip: str
    duration_s: float
    uplink_bytes: int  # IP bytes, talker -> bridge
    downlink_bytes: int  # IP bytes, bridge -> listener
    uplink_packets: int
    downlink_packets: int
    mos_lqo: float


@dataclass(frozen=True, slots=True)
class Row:
    """A setting's measurements over every clip, summed for bandwidth."""

    setting: Setting
    measurements: tuple[Measurement, ...]

    @property
    def duration_s(self) -> float:
        return sum(m.duration_s for m in self.measurements)

    def kbit_s(self, byte_count: int) -> float:
        return byte_count * 8 / self.duration_s / 1000

    @property
    def uplink_kbit_s(self) -> float:
        return self.kbit_s(sum(m.uplink_bytes for m in self.measurements))

    @property
    def downlink_kbit_s(self) -> float:
        return self.kbit_s(sum(m.downlink_bytes for m in self.measurements))

    @property
    def uplink_packets_s(self) -> float:
        return sum(m.uplink_packets for m in self.measurements) / self.duration_s

    @property
    def downlink_packets_s(self) -> float:
        return sum(m.downlink_packets for m in self.measurements) / self.duration_s

    @property
    def mean_mos(self) -> float:
        return float(np.mean([m.mos_lqo for m in self.measurements]))


# -- speech ---------------------------------------------------------------------------------


def make_clip(script: Script) -> Clip:
    """Speak a script's sentences with pauses between them at SPEECH_LEVEL_DBFS (P.56)."""
    spoken = sentences_clip(script.voice, script.sentences, WIDE_RATE_HZ)
    speech_s = sum(len(speak(text, script.voice, WIDE_RATE_HZ)) for text in script.sentences)
    wide = set_active_level(spoken, SPEECH_LEVEL_DBFS, WIDE_RATE_HZ)
    granule = WIDE_RATE_HZ * _CLIP_GRANULE_MS // 1000
    wide = np.pad(wide, (0, -len(wide) % granule)).astype(np.float32)
    narrow = resample(wide, WIDE_RATE_HZ, NARROW_RATE_HZ)
    return Clip(script.name, wide, narrow, speech_s / WIDE_RATE_HZ)


# -- the two phones -------------------------------------------------------------------------


def phone_offer(setting: Setting, host: str) -> str:
    """Return the SDP offer of a phone that has only `setting`'s codec, at its ptime."""
    fmtp = None
    if setting.codec == "OPUS":
        fmtp = f"{PHONE_OPUS_FMTP};maxaveragebitrate={setting.opus_bitrate_bps}"
    return audio_offer(
        host, PAYLOAD_TYPES[setting.codec], rtpmap=RTPMAPS[setting.codec], fmtp=fmtp,
        ptime_ms=setting.ptime_ms,
    )


def talker_settings(setting: Setting, phone: Phone) -> EncoderSettings:
    """Return how the talker encodes: its own ptime and bitrate, within the bridge's answer.

    The bridge's Opus fmtp says what its decoder wants (RFC 7587 §6.1): FEC, DTX, the
    playback rate that bounds the audio bandwidth, and a ceiling on the bitrate.
    """
    if setting.codec != "OPUS":
        return EncoderSettings(ptime_ms=setting.ptime_ms)
    assert setting.opus_bitrate_bps is not None
    media = phone.answer.media[0]
    wanted = OpusParameters.parse(media.fmtp(int(media.formats[0])))
    ceiling = wanted.max_average_bitrate_bps or setting.opus_bitrate_bps
    return EncoderSettings(
        ptime_ms=setting.ptime_ms,
        bitrate_bps=min(setting.opus_bitrate_bps, ceiling),
        fec=wanted.use_inband_fec,
        dtx=wanted.use_dtx,
        max_audio_bandwidth_hz=min(WIDE_RATE_HZ // 2, wanted.max_playback_rate_hz // 2),
    )


class Talker:
    """The talking phone: encodes its audio one packet at a time into RTP, as its answer asks."""

    def __init__(self, setting: Setting, phone: Phone) -> None:
        rates = codec_rates(setting.codec)
        self._encoder = new_encoder(setting.codec, talker_settings(setting, phone))
        self._send = SendStream(PAYLOAD_TYPES[setting.codec], rates.clock_rate_hz, random.Random(2))
        self._timestamp_step = rates.clock_rate_hz * setting.ptime_ms // 1000

    def packet(self, audio: Samples) -> bytes | None:
        """Return the RTP datagram of one packet's audio, or None in Opus DTX."""
        payload = self._encoder.encode(audio)
        if payload is None:  # nothing on the wire; the RTP clock moves on (RFC 7587 §3.1.3)
            self._send.skip(self._timestamp_step)
            return None
        return self._send.packet(payload, self._timestamp_step)


class Recorder:
    """The listener's phone: decodes the bridge's RTP onto a timeline by RTP timestamp.

    Where no packet came (Opus DTX), the decoder's own concealment fills the time, which
    in DTX is its comfort noise (RFC 7587 §3.1.3); a phone plays the same.
    """

    def __init__(self, decoder: StreamDecoder, ticks: int) -> None:
        self._decoder = decoder
        self._frame_samples = decoder.sample_rate_hz * FRAME_MS // 1000
        self.audio = np.zeros(ticks * self._frame_samples, dtype=np.float32)
        self._origin: int | None = None  # sample position of the first packet's timestamp
        self._first_timestamp = 0
        self._next_position: int | None = None

    def receive(self, datagram: bytes, tick: int) -> None:
        """Decode one RTP datagram that the bridge sent at `tick`."""
        packet = RtpPacket.parse(datagram)
        if self._origin is None:
            self._origin = tick * self._frame_samples
            self._first_timestamp = packet.timestamp
        elapsed = (packet.timestamp - self._first_timestamp) & 0xFFFFFFFF
        position = self._origin + elapsed * self._decoder.sample_rate_hz // (
            self._decoder.clock_rate_hz
        )
        if self._next_position is not None and position > self._next_position:
            filled = self._decoder.conceal(position - self._next_position)
            if filled is not None:
                self._place(self._next_position, filled)
        decoded = self._decoder.decode(packet.payload)
        self._place(position, decoded)
        self._next_position = position + len(decoded)

    def _place(self, position: int, samples: Samples) -> None:
        end = min(position + len(samples), len(self.audio))
        if end > position:
            self.audio[position:end] = samples[: end - position]


def config_yaml(setting: Setting) -> str:
    """Return the bridge's config for a row: that codec only, and the row's Opus bitrate."""
    lines = [f"codecs: [{setting.codec}]", f"ptime_ms: {list(PTIMES_MS)}"]
    if setting.opus_bitrate_bps is not None:
        ceiling = max(setting.opus_bitrate_bps, OpusConfig().max_bitrate_bps)
        lines.append(
            f"opus: {{bitrate_bps: {setting.opus_bitrate_bps}, max_bitrate_bps: {ceiling}}}"
        )
    return "".join(line + "\n" for line in lines)


def run_clip(setting: Setting, clip: Clip) -> Measurement:
    """Send one clip from the talker through the bridge to the listener, and measure it.

    Warm-up silence goes first, sent but not counted; then the clip, tick by tick: the
    talker's packet when one is due, then the bridge's tick and what it sends the listener.
    """
    bridge = InProcessBridge(bench_config(config_yaml(setting)))
    talker_phone = bridge.join(TALKER_HOST, phone_offer(setting, TALKER_HOST))
    listener = bridge.join(LISTENER_HOST, phone_offer(setting, LISTENER_HOST))
    talker = Talker(setting, talker_phone)
    rate_hz = codec_rates(setting.codec).sample_rate_hz
    frame_samples = rate_hz * FRAME_MS // 1000
    frames_per_packet = setting.ptime_ms // FRAME_MS
    speech = clip.at(rate_hz)
    audio = np.concatenate([np.zeros(WARM_UP_TICKS * frame_samples, np.float32), speech])
    ticks = len(audio) // frame_samples
    recorder = Recorder(new_decoder(setting.codec), ticks)
    uplink_bytes = downlink_bytes = uplink_packets = downlink_packets = 0
    for tick in range(ticks):
        measured = tick >= WARM_UP_TICKS
        if tick % frames_per_packet == 0:
            start = tick * frame_samples
            datagram = talker.packet(audio[start:start + frames_per_packet * frame_samples])
            if datagram is not None:
                bridge.send_rtp(talker_phone, datagram)
                if measured:
                    uplink_bytes += len(datagram) + UDP_IPV4_HEADER_BYTES
                    uplink_packets += 1
        for datagram in rtp_sent_to(listener, bridge.tick()):
            recorder.receive(datagram, tick)
            if measured:
                downlink_bytes += len(datagram) + UDP_IPV4_HEADER_BYTES
                downlink_packets += 1
    heard = recorder.audio[WARM_UP_TICKS * frame_samples:]
    return Measurement(
        clip=clip.name,
        duration_s=clip.duration_s,
        uplink_bytes=uplink_bytes,
        downlink_bytes=downlink_bytes,
        uplink_packets=uplink_packets,
        downlink_packets=downlink_packets,
        mos_lqo=mos_lqo(speech, heard, rate_hz),
    )


# -- PESQ -----------------------------------------------------------------------------------


def remove_delay(reference: Samples, degraded: Samples) -> Samples:
    """Shift `degraded` by its bulk delay against `reference` (the cross-correlation peak)
    and cut or pad it to the reference's length; PESQ then aligns what is left."""
    correlation = signal.correlate(degraded, reference, mode="full", method="fft")
    delay = int(np.argmax(correlation)) - (len(reference) - 1)
    shifted = degraded[delay:] if delay >= 0 else np.concatenate(
        [np.zeros(-delay, np.float32), degraded]
    )
    return np.pad(shifted[: len(reference)], (0, max(0, len(reference) - len(shifted))))


def mos_lqo(reference: Samples, degraded: Samples, rate_hz: int) -> float:
    """Return P.862 MOS-LQO: wideband (P.862.2) at 16 kHz, narrowband at 8 kHz."""
    mode = "wb" if rate_hz == WIDE_RATE_HZ else "nb"
    return float(pesq(rate_hz, reference, remove_delay(reference, degraded), mode))


# -- the table ------------------------------------------------------------------------------


def all_settings(ptimes_ms: Iterable[int], opus_bitrates_bps: Iterable[int]) -> list[Setting]:
    """Return every row: Opus at each bitrate, then G.722, PCMU and PCMA; each at each ptime."""
    ptimes = list(ptimes_ms)
    rows = [Setting("OPUS", p, bitrate) for bitrate in opus_bitrates_bps for p in ptimes]
    return rows + [Setting(codec, p) for codec in ("G722", "PCMU", "PCMA") for p in ptimes]


HEADINGS = ("codec", "Opus bit/s", "ptime ms", "up kbit/s", "down kbit/s", "up pkt/s",
            "down pkt/s", "PESQ mode")


def table(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """Return the headings and cells: one MOS column per clip, then their mean."""
    clips = [m.clip for m in rows[0].measurements]
    headings = [*HEADINGS, *clips, "mean MOS"]
    cells = []
    for row in rows:
        bitrate = row.setting.opus_bitrate_bps
        cells.append([
            row.setting.codec,
            "-" if bitrate is None else str(bitrate),
            str(row.setting.ptime_ms),
            f"{row.uplink_kbit_s:.1f}",
            f"{row.downlink_kbit_s:.1f}",
            f"{row.uplink_packets_s:.1f}",
            f"{row.downlink_packets_s:.1f}",
            "wb" if row.setting.wideband else "nb",
            *(f"{m.mos_lqo:.2f}" for m in row.measurements),
            f"{row.mean_mos:.2f}",
        ])
    return headings, cells


def print_plain(headings: list[str], cells: list[list[str]]) -> None:
    widths = [max(len(h), *(len(c[k]) for c in cells)) for k, h in enumerate(headings)]
    print("  ".join(h.rjust(w) for h, w in zip(headings, widths, strict=True)))
    for line in cells:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))


def print_markdown(headings: list[str], cells: list[list[str]]) -> None:
    print("| " + " | ".join(headings) + " |")
    print("| " + " | ".join("---" if k < 1 else "---:" for k in range(len(headings))) + " |")
    for line in cells:
        print("| " + " | ".join(line) + " |")


def target_verdict(rows: Sequence[Row]) -> str:
    """Say whether the best Opus row at 40 ms within 24 kbit/s each way reaches PESQ-WB 3.5."""
    fitting = [
        row for row in rows
        if row.setting.codec == "OPUS" and row.setting.ptime_ms == TARGET_PTIME_MS
        and max(row.uplink_kbit_s, row.downlink_kbit_s) <= TARGET_KBIT_S
    ]
    goal = (f"Opus at {TARGET_PTIME_MS} ms <= {TARGET_KBIT_S:g} kbit/s per direction with "
            f"wideband PESQ >= {TARGET_PESQ_WB}")
    if not fitting:
        return f"target {goal}: not measured (no Opus row at {TARGET_PTIME_MS} ms fits)"
    best = max(fitting, key=lambda row: row.mean_mos)
    met = "MET" if best.mean_mos >= TARGET_PESQ_WB else "NOT MET"
    return (f"target {goal}: {met}; best: {best.setting.opus_bitrate_bps} bit/s, "
            f"up {best.uplink_kbit_s:.1f} / down {best.downlink_kbit_s:.1f} kbit/s, "
            f"PESQ-WB {best.mean_mos:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="one short clip, two rows, for CI")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--opus-bitrates", type=int, nargs="+", default=OPUS_BITRATES_BPS,
                        metavar="BPS", help="Opus bitrate settings to measure")
    args = parser.parse_args()
    if args.smoke:
        scripts = SMOKE_SCRIPTS
        settings = [Setting("PCMU", 20), Setting("OPUS", 40, OpusConfig().bitrate_bps)]
    else:
        scripts = SCRIPTS
        settings = all_settings(PTIMES_MS, args.opus_bitrates)
    clips = [make_clip(script) for script in scripts]
    rows = [Row(s, tuple(run_clip(s, clip) for clip in clips)) for s in settings]
    headings, cells = table(rows)
    if args.markdown:
        print_markdown(headings, cells)
    else:
        print_plain(headings, cells)
    seconds = ", ".join(
        f"{clip.name} {clip.duration_s:.1f} s ({clip.speech_s / clip.duration_s:.0%} speech)"
        for clip in clips
    )
    print(f"\nclips: {seconds}; IP bandwidth = (RTP datagram + {UDP_IPV4_HEADER_BYTES} bytes "
          "UDP/IPv4) x 8 / clip duration, pauses included")
    print(target_verdict(rows))


if __name__ == "__main__":
    main()
