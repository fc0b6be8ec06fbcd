"""The call controller: SIP calls become room members and RTP carries their audio."""

from __future__ import annotations

import logging
import random
import struct
from typing import Any

import numpy as np
import pytest

import bridge.controller as controller_module
from bridge.conference.prompts import PromptLibrary
from bridge.conference.room import HANG_UP_DRAIN_S
from bridge.config import Config, parse_config
from bridge.controller import CallController, NoMediaPorts
from bridge.rtp.packet import RtpPacket
from bridge.rtp.rtcp import ReportBlock, RtcpReceiverReport
from bridge.rtp.stream import ReceiveBank
from bridge.sip.flow import Flow
from bridge.sip.message import Request, Response
from bridge.sip.parser import parse_message
from bridge.sip.sdp import SessionDescription
from dsp.codecs import get_codec
from dsp.jitter import JitterBank

BRIDGE = ("192.0.2.1", 5060)
RATE = 8000
FRAME = 160
ROOM_RATE = 16000
PCMU = get_codec("PCMU")

CONFIG = """
sip:
  listen: ["udp:192.0.2.1:5060"]
  domain: telerapat.test
rtp: {ports: "40000-40099", timeout_s: 5}
language: en
accounts:
  demo: {password: "demo1234"}
rooms:
  # Tones, not speech: any line above the floor talks, at its own level.
  - {id: terbuka, extension: "2000", voice_detection: false, agc: false}
  - {id: rakor, extension: "1000", pin: "4321"}
  - {id: tertutup, extension: "3000", access: accounts}
"""


def prompts() -> PromptLibrary:
    names = ("enter_pin", "wrong_pin", "too_many_attempts", "welcome", "alone", "muted",
             "unmuted", "moderator")
    clip = np.zeros(ROOM_RATE // 50, dtype=np.float32)  # 20 ms of silence: prompts end at once
    return PromptLibrary(ROOM_RATE, {("en", name): clip for name in names})


class FakePorts:
    """Hands out even port numbers like the real pool, without binding anything."""

    def __init__(self, limit: int = 50) -> None:
        self.free = [40000 + 2 * i for i in range(limit)]
        self.in_use: set[int] = set()

    def allocate(self, host: str) -> int:
        if not self.free:
            raise NoMediaPorts("exhausted")
        port = self.free.pop(0)
        self.in_use.add(port)
        return port

    def release(self, port: int) -> None:
        self.in_use.discard(port)
        self.free.append(port)


def config() -> Config:
    return parse_config(CONFIG, "test.yaml")


class Phone:
    """A scripted SIP phone at `host:port` sending RTP from `rtp_port`."""

    def __init__(self, number: int, rtp_port: int) -> None:
        self.host = f"198.51.100.{number}"
        self.port = 5060
        self.rtp_port = rtp_port
        self.call_id = f"call-{number}@{self.host}"
        self.tag = f"tag{number}"
        self.cseq = 1
        self.flow = Flow("udp", *BRIDGE, self.host, self.port)
        self.to_tag: str | None = None
        self.seq = 1000 * number
        self.ts = 0

    def sdp(self, direction: str = "sendrecv", codecs: str = "0 101") -> str:
        return (
            f"v=0\r\no=- 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\nt=0 0\r\n"
            f"m=audio {self.rtp_port} RTP/AVP {codecs}\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na={direction}\r\n"
        )

    def request(self, method: str, extension: str, body: str = "", extra: str = "") -> bytes:
        to_tag = f";tag={self.to_tag}" if self.to_tag and method != "INVITE" or (
            method == "INVITE" and self.cseq > 1 and self.to_tag) else ""
        content = "Content-Type: application/sdp\r\n" if body else ""
        text = (
            f"{method} sip:{extension}@{BRIDGE[0]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{method}{self.cseq}"
            f"{self.call_id}\r\n"
            f"From: <sip:phone@{self.host}>;tag={self.tag}\r\n"
            f"To: <sip:{extension}@{BRIDGE[0]}>{to_tag}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq} {method}\r\n"
            f"Contact: <sip:phone@{self.host}:{self.port}>\r\nMax-Forwards: 70\r\n"
            f"{extra}{content}Content-Length: {len(body)}\r\n\r\n{body}"
        )
        return text.encode()

    def rtp(self, payload: bytes, payload_type: int = 0, marker: bool = False) -> bytes:
        packet = RtpPacket(payload_type, self.seq & 0xFFFF, self.ts, 0x1234, payload, marker)
        self.seq += 1
        self.ts += FRAME
        return bytes(packet)


class Rig:
    """A controller with its outputs captured, driven by scripted time."""

    def __init__(self, ports: FakePorts | None = None) -> None:
        self.ports = ports or FakePorts()
        self.controller = CallController(
            config(), prompts(), self.ports, rng=random.Random(7), secret=b"s" * 32
        )
        self.now = 100.0

    def sip(self, phone: Phone, data: bytes) -> list[Response | Request]:
        self.controller.receive_sip(data, phone.flow, self.now)
        return self.sent_sip()

    def sent_sip(self) -> list[Response | Request]:
        return [parse_message(data) for data, _ in self.controller.sip_datagrams()]

    def call(self, phone: Phone, extension: str = "2000", body: str | None = None) -> Response:
        out = self.sip(phone, phone.request("INVITE", extension, phone.sdp() if body is None
                                            else body))
        final = [m for m in out if isinstance(m, Response) and m.status >= 200]
        assert len(final) == 1, out
        if final[0].status == 200:
            phone.to_tag = final[0].to_address.tag
            self.sip(phone, phone.request("ACK", extension))
        return final[0]

    def local_port(self, response: Response) -> int:
        return SessionDescription.parse(response.body).media[0].port

    def speak(self, phone: Phone, local_port: int, samples: np.ndarray) -> None:
        payload = PCMU.encode(samples[np.newaxis])[0].tobytes()
        self.controller.receive_rtp(local_port, phone.rtp(payload), (phone.host, phone.rtp_port),
                                    self.now)

    def tick(self) -> list[tuple[int, bytes, tuple[str, int]]]:
        self.controller.tick(self.now)
        self.now += 0.02
        return self.controller.rtp_datagrams()


def tone(freq_hz: float, index: int) -> np.ndarray:
    t = (np.arange(FRAME) + index * FRAME) / RATE
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def level_at(samples: np.ndarray, freq_hz: float) -> float:
    t = np.arange(samples.shape[0]) / RATE
    return float(2 * abs(np.mean(samples * np.exp(-2j * np.pi * freq_hz * t))))


def test_unknown_extension_gets_404() -> None:
    rig = Rig()
    assert rig.call(Phone(1, 7000), extension="9999").status == 404
    assert not rig.ports.in_use


def test_call_is_answered_with_pcmu_on_an_allocated_port() -> None:
    rig = Rig()
    response = rig.call(Phone(1, 7000))
    assert response.status == 200
    answer = SessionDescription.parse(response.body)
    assert answer.media[0].formats == ["0", "101"]
    assert answer.connection is not None and answer.connection.address == BRIDGE[0]
    assert rig.local_port(response) in rig.ports.in_use


def test_offer_without_a_common_codec_gets_488_and_frees_the_port() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    assert rig.call(phone, body=phone.sdp(codecs="18")).status == 488
    assert not rig.ports.in_use


def test_no_free_rtp_port_gets_503() -> None:
    rig = Rig(FakePorts(limit=0))
    assert rig.call(Phone(1, 7000)).status == 503


def test_room_for_accounts_challenges_an_unauthenticated_caller() -> None:
    rig = Rig()
    response = rig.call(Phone(1, 7000), extension="3000")
    assert response.status == 401
    assert "WWW-Authenticate" in response.headers
    assert not rig.ports.in_use


def test_two_callers_hear_each_other_and_not_themselves() -> None:
    rig = Rig()
    alice, bob = Phone(1, 7000), Phone(2, 7002)
    alice_port = rig.local_port(rig.call(alice))
    bob_port = rig.local_port(rig.call(bob))
    heard: dict[tuple[str, int], list[np.ndarray]] = {}
    for index in range(30):
        rig.speak(alice, alice_port, tone(500, index))
        rig.speak(bob, bob_port, tone(1300, index))
        for port, data, destination in rig.tick():
            packet = RtpPacket.parse(data)
            assert port in (alice_port, bob_port)
            heard.setdefault(destination, []).append(PCMU.decode(packet.payload))
    to_alice = np.concatenate(heard[(alice.host, alice.rtp_port)])[-FRAME * 10 :]
    to_bob = np.concatenate(heard[(bob.host, bob.rtp_port)])[-FRAME * 10 :]
    assert level_at(to_alice, 1300) > 0.2 and level_at(to_alice, 500) < 0.01
    assert level_at(to_bob, 500) > 0.2 and level_at(to_bob, 1300) < 0.01


def test_rtp_is_sent_every_tick_with_continuous_sequence_and_timestamps() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    rig.call(phone)
    packets = [RtpPacket.parse(data) for _ in range(10) for _, data, _ in rig.tick()]
    assert len(packets) == 10
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    stamps = [p.timestamp for p in packets]
    assert all((b - a) % 2**32 == FRAME for a, b in zip(stamps, stamps[1:], strict=False))
    assert len({p.ssrc for p in packets}) == 1


def test_rtp_latches_to_the_address_packets_really_come_from() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    port = rig.local_port(rig.call(phone))
    nat = ("203.0.113.9", 31000)
    rig.controller.receive_rtp(port, phone.rtp(b"\xff" * FRAME), nat, rig.now)
    assert {destination for _, _, destination in rig.tick()} == {nat}


def test_a_datagram_that_raises_is_logged_and_the_rest_of_the_sweep_is_played(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig()
    alpha, bravo = Phone(1, 7000), Phone(2, 7002)
    alpha_port, bravo_port = (rig.local_port(rig.call(p)) for p in (alpha, bravo))
    parse = controller_module.parse_fields

    def parse_or_fail(data: bytes) -> object:
        if data.endswith(b"boom"):
            raise RuntimeError("a bug")
        return parse(data)

    monkeypatch.setattr(controller_module, "parse_fields", parse_or_fail)
    with caplog.at_level(logging.ERROR):
        rig.controller.receive_rtp_many([
            (alpha_port, alpha.rtp(b"\xff" * (FRAME - 4) + b"boom"),
             (alpha.host, alpha.rtp_port), rig.now),
            (bravo_port, bravo.rtp(b"\xff" * FRAME), (bravo.host, bravo.rtp_port), rig.now),
        ])
    assert f"packet from {alpha.host}:7000 on port {alpha_port} dropped" in caplog.text
    by_port = rig.controller._by_port  # noqa: SLF001
    assert by_port[alpha_port].room.member(by_port[alpha_port].member_id).media.jitter \
        .statistics().packets == 0
    assert by_port[bravo_port].room.member(by_port[bravo_port].member_id).media.jitter \
        .statistics().packets == 1


def test_rtp_relatches_only_after_several_packets_from_a_new_source() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    port = rig.local_port(rig.call(phone))
    source = (phone.host, phone.rtp_port)
    rig.controller.receive_rtp(port, phone.rtp(b"\xff" * FRAME), source, rig.now)
    stray = ("203.0.113.66", 4444)
    rig.controller.receive_rtp(port, phone.rtp(b"\xff" * FRAME), stray, rig.now)
    assert {destination for _, _, destination in rig.tick()} == {source}
    for _ in range(5):
        rig.controller.receive_rtp(port, phone.rtp(b"\xff" * FRAME), stray, rig.now)
    assert {destination for _, _, destination in rig.tick()} == {stray}


def telephone_event(event: int, end: bool, duration: int) -> bytes:
    return struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)


def press(rig: Rig, phone: Phone, port: int, digit_event: int) -> None:
    """One RFC 4733 key press: start, continuation, three end packets, same timestamp."""
    start_ts = phone.ts
    for i, end in enumerate([False, False, True, True, True]):
        phone.ts = start_ts
        rig.controller.receive_rtp(
            port, phone.rtp(telephone_event(digit_event, end, 400 * (i + 1)), 101, i == 0),
            (phone.host, phone.rtp_port), rig.now)
    phone.ts = start_ts + 800


def test_star_six_over_rfc4733_mutes_a_caller_for_the_others() -> None:
    rig = Rig()
    alice, bob = Phone(1, 7000), Phone(2, 7002)
    alice_port = rig.local_port(rig.call(alice))
    rig.local_port(rig.call(bob))
    press(rig, alice, alice_port, 10)  # *
    press(rig, alice, alice_port, 6)
    heard = []
    for index in range(20):
        rig.speak(alice, alice_port, tone(700, index))
        heard += [PCMU.decode(RtpPacket.parse(data).payload) for _, data, dest in rig.tick()
                  if dest[0] == bob.host]
    assert level_at(np.concatenate(heard), 700) < 0.001


def test_digit_in_sip_info_is_accepted() -> None:
    rig = Rig()
    alice, bob = Phone(1, 7000), Phone(2, 7002)
    alice_port = rig.local_port(rig.call(alice))
    rig.call(bob)
    for digit in ("*", "6"):
        alice.cseq += 1
        body = f"Signal={digit}\r\nDuration=160\r\n"
        info = alice.request("INFO", "2000", extra="Content-Type: application/dtmf-relay\r\n")
        info = info.replace(b"Content-Length: 0\r\n\r\n",
                            f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        responses = rig.sip(alice, info)
        assert [r.status for r in responses if isinstance(r, Response)] == [200]
    heard = []
    for index in range(20):
        rig.speak(alice, alice_port, tone(700, index))
        heard += [PCMU.decode(RtpPacket.parse(data).payload) for _, data, dest in rig.tick()
                  if dest[0] == bob.host]
    assert level_at(np.concatenate(heard), 700) < 0.001


def test_silent_member_is_hung_up_with_bye_after_the_timeout() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    rig.call(phone)
    requests: list[Request] = []
    for _ in range(5 * 50 + 60):  # timeout_s: 5
        rig.tick()
        requests += [m for m in rig.sent_sip() if isinstance(m, Request)]
    assert [r.method for r in requests] == ["BYE"]
    assert requests[0].uri == f"sip:phone@{phone.host}:{phone.port}"


def test_talking_member_is_not_hung_up() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    port = rig.local_port(rig.call(phone))
    for index in range(8 * 50):
        rig.speak(phone, port, tone(300, index))
        rig.tick()
        assert not [m for m in rig.sent_sip() if isinstance(m, Request)]


def test_bye_from_the_caller_frees_the_member_and_port() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    rig.call(phone)
    phone.cseq += 1
    responses = rig.sip(phone, phone.request("BYE", "2000"))
    assert [r.status for r in responses if isinstance(r, Response)] == [200]
    assert not rig.ports.in_use
    assert rig.controller.active_calls == 0
    assert rig.tick() == []


def test_invite_without_sdp_gets_an_offer_and_takes_the_answer_from_the_ack() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    out = rig.sip(phone, phone.request("INVITE", "2000"))
    ok = [m for m in out if isinstance(m, Response) and m.status == 200][0]
    offer = SessionDescription.parse(ok.body)
    assert {"0", "8", "101"} <= set(offer.media[0].formats)
    phone.to_tag = ok.to_address.tag
    assert rig.tick() == []  # nothing to send before the answer says where
    rig.sip(phone, phone.request("ACK", "2000", body=phone.sdp()))
    assert {dest for _, _, dest in rig.tick()} == {(phone.host, phone.rtp_port)}


def test_hold_stops_our_audio_and_resume_restarts_it() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    rig.call(phone)
    assert rig.tick()
    phone.cseq += 1
    out = rig.sip(phone, phone.request("INVITE", "2000", phone.sdp("sendonly")))
    ok = [m for m in out if isinstance(m, Response) and m.status == 200][0]
    assert "a=recvonly" in ok.body.decode()
    rig.sip(phone, phone.request("ACK", "2000"))
    assert rig.tick() == []
    phone.cseq += 1
    rig.sip(phone, phone.request("INVITE", "2000", phone.sdp("sendrecv")))
    rig.sip(phone, phone.request("ACK", "2000"))
    assert rig.tick()


def test_wrong_pin_three_times_ends_the_call() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    port = rig.local_port(rig.call(phone, extension="1000"))
    for _ in range(3):
        for event in (1, 1, 11):  # "11#"
            press(rig, phone, port, event)
            rig.tick()
    requests: list[Request] = []
    # The 20 ms goodbye prompt, then HANG_UP_DRAIN_S for the phone to play it out.
    for _ in range(round(HANG_UP_DRAIN_S / 0.02) - 2):
        rig.tick()
        requests += [m for m in rig.sent_sip() if isinstance(m, Request)]
    assert requests == []
    for _ in range(10):
        rig.tick()
        requests += [m for m in rig.sent_sip() if isinstance(m, Request)]
    assert [r.method for r in requests] == ["BYE"]


@pytest.mark.parametrize("garbage", [b"", b"\x80\x00", b"\x80" + b"\x00" * 5, b"\xff" * 200])
def test_malformed_rtp_is_ignored(garbage: bytes) -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    port = rig.local_port(rig.call(phone))
    rig.controller.receive_rtp(port, garbage, (phone.host, phone.rtp_port), rig.now)
    rig.controller.receive_rtcp(port + 1, garbage, (phone.host, phone.rtp_port + 1), rig.now)
    assert len(rig.tick()) == 1


def test_register_is_challenged_then_accepted() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    register = (
        f"REGISTER sip:{BRIDGE[0]} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {phone.host}:5060;branch=z9hG4bKreg1\r\n"
        f"From: <sip:demo@telerapat.test>;tag=r1\r\nTo: <sip:demo@telerapat.test>\r\n"
        f"Call-ID: reg@{phone.host}\r\nCSeq: 1 REGISTER\r\n"
        f"Contact: <sip:demo@{phone.host}:5060>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    responses = rig.sip(phone, register)
    assert [r.status for r in responses if isinstance(r, Response)] == [401]


def test_rtcp_reports_go_to_the_rtcp_port_every_five_seconds_on_average() -> None:
    """RFC 3550 §6.2-6.3.1: the first report after half the 5 s minimum, then every 5 s,
    each interval times a random factor in 0.5-1.5."""
    from bridge.rtp.rtcp import RtcpSenderReport, parse_rtcp

    rig = Rig()
    phone = Phone(1, 7000)
    port = rig.local_port(rig.call(phone))
    start = rig.now
    reports: list[tuple[float, int, tuple[str, int], bytes]] = []
    for index in range(50 * 60):
        rig.speak(phone, port, tone(300, index))
        reports += [(rig.now, p, d, data) for p, data, d in rig.tick() if p % 2]
    times = [t - start for t, _, _, _ in reports]
    gaps = np.diff(times)
    assert 2.5 * 0.5 - 0.03 <= times[0] <= 2.5 * 1.5 + 0.03
    assert gaps.min() >= 5.0 * 0.5 - 0.03 and gaps.max() <= 5.0 * 1.5 + 0.03
    assert 4.0 <= gaps.mean() <= 6.0 and np.ptp(gaps) > 1.0  # random, 5 s on average
    assert {(p, d) for _, p, d, _ in reports} == {(port + 1, (phone.host, phone.rtp_port + 1))}
    packets = parse_rtcp(reports[-1][3])
    assert isinstance(packets[0], RtcpSenderReport) and packets[0].reports
    assert packets[0].packet_count >= 50 * times[-1] - 5  # every 20 ms packet counted


def test_each_member_reports_on_its_own_schedule_and_a_departed_one_stops() -> None:
    rig = Rig()
    phones = [Phone(n, 7000 + 2 * n) for n in (1, 2, 3)]
    ports: dict[int, int] = {}
    joined: dict[int, float] = {}
    left_at = 0.0
    reports: dict[int, list[float]] = {n: [] for n in ports}
    for index in range(50 * 20):
        for number, phone in enumerate(phones, start=1):
            if index == 50 * (number - 1):  # joins at 0, 1 and 2 s
                ports[number], joined[number] = rig.local_port(rig.call(phone)), rig.now
                reports[number] = []
            if number in ports:
                rig.speak(phone, ports[number], tone(300, index))
        if index == 50 * 5:  # the second leaves at 5 s
            phones[1].cseq += 1
            rig.sip(phones[1], phones[1].request("BYE", "2000"))
            del ports[2]
            left_at = rig.now - joined[2]
        for port, _, destination in rig.tick():
            if port % 2:
                number = next(n for n, p in enumerate(phones, start=1)
                              if destination == (p.host, p.rtp_port + 1))
                reports[number].append(rig.now - joined[number])
    for number in (1, 3):  # every 2.5-7.5 s from 1.25-3.75 s on, each on its own draws
        assert 1.2 <= reports[number][0] <= 3.8
        assert all(2.45 <= gap <= 7.55 for gap in np.diff(reports[number]))
    assert reports[1] != pytest.approx(reports[3], abs=0.05)
    assert reports[2] and reports[2][-1] < left_at


def test_members_who_join_together_report_in_different_ticks() -> None:
    """A report also takes the leg's receive counts out of the bank for a packet: 40
    members who joined in one tick must not all report in one tick."""
    rig = Rig()
    phones = [Phone(n, 7000 + 2 * n) for n in range(1, 41)]
    ports = [rig.local_port(rig.call(phone)) for phone in phones]
    per_tick: list[int] = []
    for index in range(50 * 4):  # every first report is due in 1.25-3.75 s
        for phone, port in zip(phones, ports, strict=True):
            rig.speak(phone, port, tone(300, index))
        per_tick.append(sum(1 for port, _, _ in rig.tick() if port % 2))
    assert sum(per_tick) == 40
    assert max(per_tick) <= 3


OPUS_OFFER_MEDIA = (
    "m=audio {port} RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\n"
    "a=fmtp:111 useinbandfec=1;usedtx=1;maxplaybackrate=16000;maxaveragebitrate=20000\r\n"
    "a=rtpmap:101 telephone-event/48000\r\na=fmtp:101 0-15\r\na=ptime:40\r\na=sendrecv\r\n"
)


def opus_offer(phone: Phone) -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 {phone.host}\r\ns=-\r\nc=IN IP4 {phone.host}\r\nt=0 0\r\n"
            + OPUS_OFFER_MEDIA.format(port=phone.rtp_port))


def test_opus_call_follows_the_callers_fmtp_and_ptime_and_adapts_to_reported_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    answer = rig.call(phone, body=opus_offer(phone))
    assert answer.status == 200
    sdp = answer.body.decode()
    assert "a=rtpmap:111 opus/48000/2" in sdp and "a=ptime:40" in sdp
    assert "maxplaybackrate=16000" in sdp and "useinbandfec=1" in sdp
    media = rig.controller._by_member[1].room.member(1).media  # noqa: SLF001
    # Our configured 20 kbit/s, within the caller's maxaveragebitrate; its usedtx and
    # useinbandfec are taken; ptime 40 means a packet every other tick.
    assert (media.settings.ptime_ms, media.settings.bitrate_bps) == (40, 20_000)
    assert media.settings.dtx and media.settings.fec
    sent = [rtp for _ in range(10) for rtp in rig.tick()]
    ssrc = RtpPacket.parse(sent[0][1]).ssrc
    assert {RtpPacket.parse(data).payload_type for _, data, _ in sent} == {111}
    report = RtcpReceiverReport(0x1234, (ReportBlock(ssrc, 8, 5, 1000, 0, 0, 0),))
    port = rig.local_port(answer)
    with caplog.at_level(logging.INFO):
        rig.controller.receive_rtcp(port + 1, bytes(report), (phone.host, phone.rtp_port + 1),
                                    rig.now)
    # 3 % lost: FEC on at the lowest bitrate libopus sends it with, within the caller's cap.
    assert (media.settings.bitrate_bps, media.settings.expected_loss_percent) == (20_000, 10)
    assert "link: 3.1 % lost, sending 20000 bit/s with 10 % FEC protection" in caplog.text


def test_a_room_whose_tick_fails_does_not_silence_the_other_rooms(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig()
    open_phone, pin_phone = Phone(1, 7000), Phone(2, 7002)
    rig.call(open_phone, "2000")
    rig.call(pin_phone, "1000")
    broken = rig.controller._by_member[1].room  # noqa: SLF001

    def fail(*args: object) -> None:
        raise RuntimeError("boom")

    for step in ("prepare_tick", "finish_tick"):
        with monkeypatch.context() as patched, caplog.at_level(logging.ERROR):
            patched.setattr(broken, step, fail)
            caplog.clear()
            sent = rig.tick()
        audio = {destination for _, _, destination in sent
                 if destination[1] in (open_phone.rtp_port, pin_phone.rtp_port)}
        assert audio == {(pin_phone.host, pin_phone.rtp_port)}, step
        assert "room=terbuka: tick failed" in caplog.text and "RuntimeError: boom" in caplog.text
        rig.now += controller_module.TICK_FAILURE_LOG_S  # logged again


@pytest.mark.parametrize("stage", ["detector", "encode"])
def test_a_fault_in_the_rooms_shared_stage_costs_the_other_rooms_one_tick(
    stage: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """The rooms' members go through the detectors together, and the rooms' encodes run
    together; a room whose state breaks either costs every room that tick, then the rooms
    go one by one, so only its own room is silent, until a minute passes without a
    failure."""
    rig = Rig()
    open_phone, pin_phone = Phone(1, 7000), Phone(2, 7002)
    rig.call(open_phone, "2000")
    rig.call(pin_phone, "1000")
    room = rig.controller._by_member[1].room  # noqa: SLF001
    media = room._members[1].media  # noqa: SLF001
    if stage == "detector":
        talker, media.talker = media.talker, None  # type: ignore[assignment]
    else:
        encoder, room._encoder = room._encoder, None  # type: ignore[assignment]  # noqa: SLF001
    rtp = {(open_phone.host, open_phone.rtp_port), (pin_phone.host, pin_phone.rtp_port)}

    def heard() -> set[tuple[str, int]]:
        return {destination for _, _, destination in rig.tick() if destination in rtp}

    with caplog.at_level(logging.ERROR):
        assert heard() == set()
        assert f"rooms: the shared {stage} stage failed" in caplog.text
        assert heard() == heard() == {(pin_phone.host, pin_phone.rtp_port)}
        assert "room=terbuka: tick failed" in caplog.text
        # Mended: after a minute without a failure, together again.
        if stage == "detector":
            media.talker = talker
        else:
            room._encoder = encoder  # noqa: SLF001
        assert heard() == rtp
        rig.now += controller_module.ROOMS_ALONE_S
        caplog.clear()
        assert heard() == heard() == rtp
    assert caplog.text == ""


@pytest.mark.parametrize(("codec", "after_gap"), [
    ("PCMU", ("in line", False, False)),  # nothing to rebuild: counted and placed in line
    ("opus", ("alone", True, False)),  # its FEC or concealment fills the gap first
    # G.722 (an 8000 clock, as G.711's) after a re-INVITE from G.711: the stream's state
    # goes on, but the packet after a gap goes to the decoder's concealment all the same.
    ("G722", ("alone", True, False)),
])
def test_a_new_ssrc_starts_a_new_sequence_so_its_packets_are_neither_late_nor_lost(
    monkeypatch: pytest.MonkeyPatch, codec: str, after_gap: tuple[str, bool, bool],
) -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    port = rig.local_port(rig.call(phone, body=opus_offer(phone) if codec == "opus" else None))
    if codec == "G722":
        phone.cseq += 1
        answer = rig.sip(phone, phone.request("INVITE", "2000", phone.sdp(codecs="9 101")))
        assert any(isinstance(m, Response) and m.status == 200 and b"G722/8000" in m.body
                   for m in answer)
        rig.sip(phone, phone.request("ACK", "2000"))
    payload_type = {"PCMU": 0, "opus": 111, "G722": 9}[codec]
    room = rig.controller._by_member[1].room  # noqa: SLF001
    seen: list[tuple[str, bool, bool]] = []  # (how it was queued, lost before, late)
    arrivals: list[float | None] = []

    def queue_audio(batch: object, member: int, ts: int, payload: bytes, *, lost_before: bool,
                    late: bool, arrival_s: float | None) -> None:
        seen.append(("alone", lost_before, late))
        arrivals.append(arrival_s)

    def queue_frames(batch: object, members: list[int], stamps: list[int], payloads: object,
                     times: list[float]) -> None:  # packets in line: nothing owed, not late
        seen.extend([("in line", False, False)] * len(members))
        arrivals.extend(times)

    monkeypatch.setattr(room, "queue_audio", queue_audio)
    monkeypatch.setattr(room, "queue_frames", queue_frames)
    source = (phone.host, phone.rtp_port)
    for _ in range(3):
        rig.controller.receive_rtp(port, phone.rtp(b"\xff" * FRAME, payload_type), source,
                                   rig.now)
    phone.seq += 5  # five packets lost
    rig.controller.receive_rtp(port, phone.rtp(b"\xff" * FRAME, payload_type), source, rig.now)
    # The far end restarts its stream (a transfer, a re-INVITE): new SSRC, lower numbers.
    phone.seq -= 20_000
    restarted = RtpPacket(payload_type, phone.seq & 0xFFFF, phone.ts, 0x9999, b"\xff" * FRAME)
    rig.controller.receive_rtp(port, bytes(restarted), source, rig.now)
    following = RtpPacket(payload_type, (phone.seq + 1) & 0xFFFF, phone.ts + FRAME, 0x9999,
                          b"\xff" * FRAME)
    rig.controller.receive_rtp(port, bytes(following), source, rig.now)
    assert seen[3] == after_gap
    assert [entry[1:] for entry in seen] == (
        [(False, False)] * 3 + [after_gap[1:]] + [(False, False)] * 2)
    assert arrivals == [rig.now] * 6  # the playout buffer learns the link's jitter from these


def test_the_callers_maxaveragebitrate_holds_even_below_our_minimum() -> None:
    rig = Rig()
    phone = Phone(1, 7000)
    offer = opus_offer(phone).replace("maxaveragebitrate=20000", "maxaveragebitrate=6000")
    assert rig.call(phone, body=offer).status == 200
    media = rig.controller._by_member[1].room.member(1).media  # noqa: SLF001
    assert media.settings.bitrate_bps == 6000


def _faulty_sweeps(rig: Rig, phones: list[Phone], ports: list[int], seed: int,
                   ticks: int) -> list[tuple[int, bytes, tuple[str, int]]]:
    """Drive the phones' RTP through `rig` with loss, duplicates, reordering, new sources,
    key presses, odd sizes and address changes; return everything the bridge sent."""
    rng = random.Random(seed)
    ssrcs = [0x1234] * len(phones)
    sent = []
    for tick in range(ticks):
        per_phone: list[list[tuple[int, bytes, tuple[str, int], float]]] = []
        for k, (phone, port) in enumerate(zip(phones, ports, strict=True)):
            roll = rng.random()
            payload = PCMU.encode(tone(300 + 150 * k, tick)[np.newaxis])[0].tobytes()
            if roll < 0.02:
                ssrcs[k] = rng.randrange(2**32)
            if roll < 0.03:
                payload = payload[:80]
            source = (phone.host, phone.rtp_port) if rng.random() < 0.97 else ("203.0.113.5", 9)
            arrival = rig.now + rng.random() * 0.03
            packets = []
            if roll > 0.05:  # else lost
                packets.append(bytes(RtpPacket(0, phone.seq & 0xFFFF, phone.ts, ssrcs[k],
                                               payload)))
            if 0.05 < roll < 0.08:
                packets.append(packets[-1])  # duplicated
            if 0.08 < roll < 0.10:  # a key press, or a codec we did not agree on
                phone.seq += 1
                packets.append(bytes(RtpPacket(101 if roll < 0.09 else 18, phone.seq & 0xFFFF,
                                               phone.ts, ssrcs[k], telephone_event(5, False, 160))))
            if 0.10 < roll < 0.16:  # the next one or two too (a stall), maybe swapped
                for _ in range(rng.choice([1, 2])):
                    phone.seq += 1
                    phone.ts += FRAME
                    packets.insert(len(packets) if roll > 0.11 else 0, bytes(
                        RtpPacket(0, phone.seq & 0xFFFF, phone.ts, ssrcs[k], payload)))
            phone.seq += 1
            phone.ts += FRAME
            per_phone.append([(port, data, source, arrival) for data in packets])
        sweep = []
        while any(per_phone):  # the phones' packets interleaved, each phone's in order
            queue = rng.choice([q for q in per_phone if q])
            sweep.append(queue.pop(0))
        rig.controller.receive_rtp_many(sweep)
        sent.extend(rig.tick())
    return sent


@pytest.mark.parametrize("seed", range(3))
def test_a_sweep_taken_together_sends_and_counts_what_one_by_one_would(
    seed: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def run() -> tuple[list[tuple[int, bytes, tuple[str, int]]], list[object]]:
        rig = Rig()
        phones = [Phone(k + 1, 7000 + 2 * k) for k in range(5)]
        ports = [rig.local_port(rig.call(phone)) for phone in phones]
        sent = _faulty_sweeps(rig, phones, ports, seed, 300)
        calls = [rig.controller._by_port[port] for port in ports]  # noqa: SLF001
        counted = [
            (call.receive.statistics() if call.receive else None, call.highest_seq,
             call.last_media_at, call.remote_rtp,
             call.room.member(call.member_id).media.jitter.statistics())
            for call in calls
        ]
        return sent, counted

    accept_many = ReceiveBank.accept_many
    taken: list[int] = []

    def counted_accept_many(self: ReceiveBank, *args: Any) -> np.ndarray:
        accepted = accept_many(self, *args)
        taken.append(int(accepted.sum()))
        return accepted

    monkeypatch.setattr(ReceiveBank, "accept_many", counted_accept_many)
    with caplog.at_level(logging.ERROR):
        together = run()
    assert sum(taken) > 0.7 * 5 * 300  # most packets were taken together
    # ... and none fell back to one by one because taking them together raised
    assert "could not be taken together" not in caplog.text
    monkeypatch.setattr(ReceiveBank, "accept_many",  # none taken: each goes one by one
                        lambda self, streams, *_: np.zeros(len(streams), np.bool_))
    alone = run()
    assert together[1] == alone[1]
    assert together[0] == alone[0]


@pytest.mark.parametrize("seed", range(2))
def test_packets_made_in_the_send_bank_are_those_made_one_by_one(
    seed: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every member's packets and RTCP reports, through loss, key presses and a member on
    hold, whether made together (`SendBank`) or stream by stream."""
    def run() -> list[tuple[int, bytes, tuple[str, int]]]:
        rig = Rig()
        phones = [Phone(k + 1, 7000 + 2 * k) for k in range(5)]
        ports = [rig.local_port(rig.call(phone)) for phone in phones]
        sent = _faulty_sweeps(rig, phones, ports, seed, 150)
        held = phones[1]  # puts us on hold, then takes us off: its clock moves on meanwhile
        for direction in ("sendonly", "sendrecv"):
            held.cseq += 1
            rig.sip(held, held.request("INVITE", "2000", held.sdp(direction)))
            rig.sip(held, held.request("ACK", "2000"))
            sent += _faulty_sweeps(rig, phones, ports, seed + 10, 75)
        return sent

    monkeypatch.setattr(controller_module, "SEND_BANK_MIN_STREAMS", 1)
    made = controller_module.SendBank.packets
    together: list[int] = []

    def counted_packets(self: object, streams: list[object], *args: Any) -> bytes:
        together.append(len(streams))
        return made(self, streams, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(controller_module.SendBank, "packets", counted_packets)
    banked = run()
    assert sum(together) > 0.9 * 5 * 300 and max(together) >= 2
    monkeypatch.setattr(controller_module, "SEND_BANK_MIN_STREAMS", 10**9)
    assert run() == banked


def test_a_sweep_of_several_rooms_goes_into_the_playout_buffers_in_one_push(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rooms share one playout bank: a sweep's steady packets, whatever their rooms,
    are decoded and placed together, not room by room."""
    rig = Rig()
    phones = [Phone(k + 1, 7000 + 2 * k) for k in range(6)]
    ports = [rig.local_port(rig.call(phone, "2000" if k < 3 else "1000"))
             for k, phone in enumerate(phones)]
    rooms = {rig.controller._by_port[port].room for port in ports}  # noqa: SLF001
    assert len(rooms) == 2
    pushed: list[int] = []
    push_many = JitterBank.push_many

    def counted(self: JitterBank, buffers: list[Any], *args: Any) -> None:
        pushed.append(len(buffers))
        push_many(self, buffers, *args)

    monkeypatch.setattr(JitterBank, "push_many", counted)
    for _ in range(5):
        rig.controller.receive_rtp_many([
            (port, phone.rtp(PCMU.encode(tone(400, 0)[np.newaxis])[0].tobytes()),
             (phone.host, phone.rtp_port), rig.now)
            for phone, port in zip(phones, ports, strict=True)
        ])
        rig.tick()
    assert pushed[-3:] == [6, 6, 6]
