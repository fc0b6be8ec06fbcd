"""Rooms ticked together hear what they would hear ticked one by one, to the byte.

The controller runs every room's members through the detectors in one `gather_rooms` call
(playout, keypad tones, echo detection, voice detection, AGC, upsampling) and encodes the
rooms in one `RoomEncoder.encode_rooms`; only the choice of talkers and the mix are room
by room. Two bridges get the same calls and the same packets (speech, line noise, a keypad
press, a line that echoes what it hears, G.711 and G.722, lost and late packets) in rooms
with different settings; one ticks its rooms together, the other one by one. Every
datagram each sends must be the same.
"""

from __future__ import annotations

import math
import random

import numpy as np

from bench.inprocess import InProcessBridge, Phone, audio_offer, bench_config, room_extension
from bridge.rtp.packet import RtpPacket, parse_fields
from dsp.codecs import new_decoder, new_encoder
from dsp.codecs.base import EncoderSettings

ROOMS = ("", "voice_detection: false", "agc: false, max_talkers: 1", "")
MEMBERS_PER_ROOM = 5
TICKS = 400
WIDEBAND = {2, 13}  # members calling with G.722
ECHOING = 17  # a member whose line sends back what it hears, 60 ms later, 10 dB down
KEYING = (3, 120)  # a room's first member presses 5 at this tick, for 100 ms


def _voice(member: int, tick: int, rate_hz: int) -> np.ndarray:
    """A talker's 20 ms: a vowel-like harmonic buzz, in syllables, or line noise."""
    samples = rate_hz // 50
    t = (tick * samples + np.arange(samples)) / rate_hz
    if member % MEMBERS_PER_ROOM < 2:
        pitch = 110.0 + 37.0 * member
        buzz = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8))
        envelope = np.clip(np.sin(2 * np.pi * 3.0 * t + member), 0.0, None)
        frame = 0.08 * (1 + member % 3) * buzz * envelope
    else:
        frame = np.random.default_rng(member * 100_000 + tick).normal(0.0, 1e-3, samples)
    if member == KEYING[0] and KEYING[1] <= tick < KEYING[1] + 5:
        frame = frame + 0.2 * (np.sin(2 * np.pi * 770 * t) + np.sin(2 * np.pi * 1336 * t))
    return np.asarray(frame, np.float32)


class _Caller:
    """One phone: its codec, and what it heard (for the echoing line)."""

    def __init__(self, index: int, phone: Phone) -> None:
        self.index, self.phone = index, phone
        self.wideband = index in WIDEBAND
        self.rate_hz = 16000 if self.wideband else 8000
        self.payload_type = 9 if self.wideband else (8 if index % 3 == 1 else 0)
        name = "G722" if self.wideband else ("PCMA" if self.payload_type == 8 else "PCMU")
        self.encoder = new_encoder(name, EncoderSettings())
        self.decoder = new_decoder(name)
        self.heard: list[np.ndarray] = []

    def packet(self, tick: int) -> bytes:
        frame = _voice(self.index, tick, self.rate_hz)
        if self.index == ECHOING and len(self.heard) > 3:
            frame = frame + 0.3 * self.heard[-4]
        payload = self.encoder.encode(frame)
        assert payload is not None
        clock = 8000 // 50  # G.722's RTP clock runs at 8 kHz too
        return bytes(RtpPacket(self.payload_type, tick & 0xFFFF, tick * clock, self.index + 1,
                               payload))

    def hear(self, data: bytes) -> None:
        self.heard.append(self.decoder.decode(parse_fields(data)[-1]))


def _run(together: bool) -> list[list[tuple[int, bytes, tuple[str, int]]]]:
    config = bench_config("codecs: [PCMU, PCMA, G722]", rooms=len(ROOMS), room_yaml=ROOMS)
    bridge = InProcessBridge(config)
    if not together:
        bridge.controller._rooms_alone_until = math.inf  # noqa: SLF001
    callers = []
    for index in range(len(ROOMS) * MEMBERS_PER_ROOM):
        host = f"10.0.{index}.1"
        payload_type = 9 if index in WIDEBAND else (8 if index % 3 == 1 else 0)
        phone = bridge.join(host, audio_offer(host, payload_type),
                            room_extension(index % len(ROOMS)))
        callers.append(_Caller(index, phone))
        if index % 4 == 0:
            bridge.tick()  # joins spread over ticks
    rng = random.Random(7)
    late: list[tuple[int, Phone, bytes]] = []
    sent = []
    for tick in range(TICKS):
        arriving = [(due, phone, data) for due, phone, data in late if due <= tick]
        late = [entry for entry in late if entry[0] > tick]
        for caller in callers:
            chance = rng.random()
            if chance < 0.03:
                continue  # lost
            data = caller.packet(tick)
            if chance < 0.1:
                late.append((tick + rng.choice([1, 2]), caller.phone, data))
            else:
                arriving.append((tick, caller.phone, data))
        rng.shuffle(arriving)
        bridge.send_rtp_many([(phone, data) for _, phone, data in arriving])
        out = sorted(bridge.tick(), key=lambda datagram: (datagram[0], datagram[1]))
        by_port = {caller.phone.bridge_rtp_port: caller for caller in callers}
        for port, data, _ in out:
            if port in by_port:
                by_port[port].hear(data)
        sent.append(out)
    return sent


def test_rooms_ticked_together_send_what_they_send_one_by_one() -> None:
    together, alone = _run(True), _run(False)
    assert sum(len(tick) for tick in together) > TICKS * 15  # they do send
    for tick, (ours, theirs) in enumerate(zip(together, alone, strict=True)):
        assert ours == theirs, tick
