"""Gateway legs and trunks in the call controller: a plain RTP leg, a SIP dial-out with
digest auth, RFC 4733 digits and re-dial, trunk registration and who may call."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from twisted.internet.task import Clock

from bridge.conference.gateway import LegState
from bridge.config import parse_config
from bridge.controller import DIAL_ANSWER_TIMEOUT_S, CallController
from bridge.rtp.packet import RtpPacket
from bridge.rtp.telephone_event import DigitStarted, TelephoneEventReceiver
from bridge.sip.auth import AccountSecrets, Authenticated, Authenticator, compute_ha1
from bridge.sip.flow import Flow
from bridge.sip.message import Request, Response, response_to
from bridge.sip.parser import parse_message
from bridge.sip.registration import RegistrationState
from bridge.sip.sdp import SessionDescription
from bridge.trunks import Trunks
from tests.bridge.test_controller import (
    BRIDGE,
    FRAME,
    PCMU,
    FakePorts,
    Phone,
    level_at,
    prompts,
    tone,
)

GATEWAY = ("192.0.2.80", 5080)  # the video meeting's SIP gateway
GATEWAY_RTP = ("192.0.2.80", 30000)
VIDEO_RTP = ("192.0.2.90", 20000)  # the plain RTP leg's far side
TRUNK = ("192.0.2.70", 5070)

CONFIG = f"""
sip:
  listen: ["udp:{BRIDGE[0]}:{BRIDGE[1]}"]
  domain: telerapat.test
  allow_from: ["198.51.100.0/24"]
rtp: {{ports: "40000-40099", timeout_s: 5}}
language: en
trunks:
  - id: upstream
    registrar: "sip:{TRUNK[0]}:{TRUNK[1]}"
    username: telerapat
    password: trunk-pass
    expires_s: 60
rooms:
  - id: terbuka
    extension: "2000"
    voice_detection: false
    agc: false
    gateways:
      - id: video
        rtp: {{codec: pcmu, remote: "{VIDEO_RTP[0]}:{VIDEO_RTP[1]}", sdp_file: legs/video.sdp}}
  - id: rakor
    extension: "1000"
    numbers: ["0215551000"]
    voice_detection: false
    agc: false
    gateways:
      - id: zoom
        sip:
          uri: "sip:81234567@{GATEWAY[0]}:{GATEWAY[1]}"
          username: bridge
          password: meeting-pass
          digits: "812#"
          digits_delay_s: 1.0
          redial_min_s: 2
          redial_max_s: 8
          codecs: [PCMU]
"""


class GatewayRig:
    """A controller whose clock is a `task.Clock`, with its outputs captured."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(100.0)
        self.ports = FakePorts()
        self.controller = CallController(
            parse_config(CONFIG, "/etc/telerapat/test.yaml"), prompts(), self.ports,
            rng=random.Random(3), secret=b"s" * 32,
        )
        self.controller.start(self.clock.seconds())

    @property
    def now(self) -> float:
        return self.clock.seconds()

    def sent(self) -> list[tuple[Request | Response, Flow]]:
        return [(parse_message(d), f) for d, f in self.controller.sip_datagrams()]

    def receive(self, message: bytes, flow: Flow) -> None:
        self.controller.receive_sip(message, flow, self.now)

    def advance(self, seconds: float) -> list[tuple[int, bytes, tuple[str, int]]]:
        """Let time pass in 20 ms ticks, running timers as they fall due."""
        out = []
        for _ in range(round(seconds / 0.02)):
            self.clock.advance(0.02)
            deadline = self.controller.next_deadline()
            if deadline is not None and deadline <= self.now:
                self.controller.handle_timer(self.now)
            self.controller.tick(self.now)
            out += self.controller.rtp_datagrams()
        return out

    def call(self, phone: Phone, extension: str) -> int:
        """A phone joins; return the bridge's RTP port for it."""
        self.controller.receive_sip(phone.request("INVITE", extension, phone.sdp()), phone.flow,
                                    self.now)
        answer = [m for m, _ in self.sent() if isinstance(m, Response) and m.status == 200][0]
        phone.to_tag = answer.to_address.tag
        self.controller.receive_sip(phone.request("ACK", extension), phone.flow, self.now)
        return SessionDescription.parse(answer.body).media[0].port


def _answer(request: Request, status: int, *, headers: list[tuple[str, str]] | None = None,
            body: bytes = b"", to_tag: str = "far1") -> bytes:
    response = response_to(request, status, headers=headers or [], to_tag=to_tag)
    if body:
        response.headers.add("Content-Type", "application/sdp")
        response.body = body
    return bytes(response)


def _gateway_sdp() -> bytes:
    host, port = GATEWAY_RTP
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n").encode()


def _invites(sent: list[tuple[Request | Response, Flow]]) -> list[tuple[Request, Flow]]:
    return [(m, f) for m, f in sent if isinstance(m, Request) and m.method == "INVITE"]


# -- plain RTP leg -------------------------------------------------------------------------


def test_plain_rtp_leg_describes_itself_and_carries_the_room_both_ways() -> None:
    rig = GatewayRig()
    [(path, sdp)] = rig.controller.gateway_sdp_files()
    assert path == Path("/etc/telerapat/legs/video.sdp")
    leg_port = SessionDescription.parse(sdp).media[0].port
    assert b"a=rtpmap:0 PCMU/8000" in sdp
    assert not [d for d in rig.advance(0.2) if d[2] == VIDEO_RTP]  # no room yet: silent

    phone = Phone(1, 7000)
    phone_port = rig.call(phone, "2000")
    to_video: list[np.ndarray] = []
    to_phone: list[np.ndarray] = []
    video_seq = 0
    for index in range(40):
        payload = PCMU.encode(tone(500, index)[np.newaxis])[0].tobytes()
        rig.controller.receive_rtp(phone_port, phone.rtp(payload), (phone.host, phone.rtp_port),
                                   rig.now)
        video = PCMU.encode(tone(1300, index)[np.newaxis])[0].tobytes()
        rig.controller.receive_rtp(leg_port, bytes(RtpPacket(0, video_seq, video_seq * FRAME,
                                                             0x77, video)), VIDEO_RTP, rig.now)
        video_seq += 1
        for port, data, destination in rig.advance(0.02):
            samples = PCMU.decode(RtpPacket.parse(data).payload)
            if destination == VIDEO_RTP:
                assert port == leg_port  # symmetric RTP: from the port it receives on
                to_video.append(samples)
            elif destination == (phone.host, phone.rtp_port):
                to_phone.append(samples)
    heard_by_video = np.concatenate(to_video)[-FRAME * 10:]
    heard_by_phone = np.concatenate(to_phone)[-FRAME * 10:]
    assert level_at(heard_by_video, 500) > 0.2 and level_at(heard_by_video, 1300) < 0.01
    assert level_at(heard_by_phone, 1300) > 0.2 and level_at(heard_by_phone, 500) < 0.01

    # The phone leaves: the room is empty, the leg stops sending.
    phone.cseq += 1
    rig.receive(phone.request("BYE", "2000"), phone.flow)
    rig.advance(0.1)
    assert not [d for d in rig.advance(0.5) if d[2] == VIDEO_RTP]


# -- SIP dial-out leg --------------------------------------------------------------------------


def test_dial_out_answers_the_challenge_sends_digits_redials_and_hangs_up() -> None:
    rig = GatewayRig()
    rig.sent()  # the trunk's REGISTER
    phone = Phone(1, 7000)
    rig.call(phone, "1000")
    rig.advance(0.04)  # the room starts at its next tick
    [(invite, flow)] = _invites(rig.sent())
    assert (flow.remote_host, flow.remote_port) == GATEWAY and flow.local == BRIDGE
    assert invite.uri == f"sip:81234567@{GATEWAY[0]}:{GATEWAY[1]}"
    assert "Authorization" not in invite.headers

    challenger = Authenticator("meeting.test", {"bridge": AccountSecrets(
        "bridge", compute_ha1("bridge", "meeting.test", "meeting-pass", "MD5"), None)},
        b"k" * 32, rng=random.Random(1))
    challenge = challenger.authenticate(invite, rig.now)
    assert not isinstance(challenge, Authenticated)
    rig.receive(_answer(invite, challenge.status, headers=list(challenge.headers)),
                Flow("udp", *BRIDGE, *GATEWAY))
    [(retry, _)] = _invites(rig.sent())
    assert isinstance(challenger.authenticate(retry, rig.now), Authenticated)

    rig.receive(_answer(retry, 200, headers=[("Contact", f"<sip:gw@{GATEWAY[0]}:{GATEWAY[1]}>")],
                        body=_gateway_sdp()), Flow("udp", *BRIDGE, *GATEWAY))
    acks = [m for m, _ in rig.sent() if isinstance(m, Request) and m.method == "ACK"]
    assert len(acks) == 1

    receiver = TelephoneEventReceiver()
    digits: list[str] = []
    to_gateway = [RtpPacket.parse(data) for _, data, destination in rig.advance(3.0)
                  if destination == GATEWAY_RTP]
    kinds = [packet.payload_type for packet in to_gateway]
    assert kinds[:49] == [0] * 49  # audio for the 1 s digits_delay_s (the first tick answered)
    for packet in to_gateway:
        if packet.payload_type == 101:
            event = receiver.receive(packet.payload, packet.timestamp, packet.marker)
            if isinstance(event, DigitStarted):
                digits.append(event.digit)
    assert digits == ["8", "1", "2", "#"]

    # The far end hangs up: the leg waits 2 s, then dials again.
    bye = (f"BYE sip:telerapat@{BRIDGE[0]}:{BRIDGE[1]} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP {GATEWAY[0]}:{GATEWAY[1]};branch=z9hG4bKfarbye\r\n"
           f"From: {retry.headers.get('To')};tag=far1\r\nTo: {retry.headers.get('From')}\r\n"
           f"Call-ID: {retry.call_id}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n")
    rig.receive(bye.encode(), Flow("udp", *BRIDGE, *GATEWAY))
    assert [m.status for m, _ in rig.sent() if isinstance(m, Response)] == [200]
    rig.advance(1.9)
    assert not _invites(rig.sent())
    rig.advance(0.2)
    [(redial, _)] = _invites(rig.sent())
    assert redial.headers.get("Call-ID") != retry.headers.get("Call-ID")

    # Nobody answers it: after the answer timeout it is cancelled, then tried again later.
    rig.receive(_answer(redial, 180), Flow("udp", *BRIDGE, *GATEWAY))
    rig.sent()
    rig.advance(DIAL_ANSWER_TIMEOUT_S + 0.1)
    cancels = [m for m, _ in rig.sent() if isinstance(m, Request) and m.method == "CANCEL"]
    assert cancels and len({cancel.top_via.branch for cancel in cancels}) == 1  # resent

    # The phone leaves: the room ends and nothing is dialled any more.
    phone.cseq += 1
    rig.receive(phone.request("BYE", "1000"), phone.flow)
    rig.advance(20.0)
    assert not _invites(rig.sent())


# -- trunk and who may call ------------------------------------------------------------------


def test_registers_to_the_trunk_and_takes_its_calls_to_the_did() -> None:
    rig = GatewayRig()
    [(register, flow)] = [(m, f) for m, f in rig.sent() if isinstance(m, Request)]
    assert register.method == "REGISTER" and (flow.remote_host, flow.remote_port) == TRUNK
    assert register.uri == f"sip:{TRUNK[0]}:{TRUNK[1]}"
    assert f"sip:telerapat@{BRIDGE[0]}:{BRIDGE[1]}" in register.headers.get("Contact")
    contact = register.headers.get("Contact")
    rig.receive(_answer(register, 200, headers=[("Contact", f"{contact};expires=60")]),
                Flow("udp", *BRIDGE, *TRUNK))
    assert rig.controller.next_deadline() is not None

    # A call relayed by the trunk (not in allow_from, but the trunk's address) to the DID.
    pstn = Phone(9, 7100)
    pstn.host, pstn.port = TRUNK
    pstn.flow = Flow("udp", *BRIDGE, *TRUNK)
    invite = pstn.request("INVITE", "telerapat").replace(
        b"To: <sip:telerapat@", b"To: <sip:0215551000@")
    invite = invite.replace(b"Content-Length: 0\r\n\r\n", (
        f"Content-Type: application/sdp\r\nContent-Length: {len(pstn.sdp())}\r\n\r\n"
        f"{pstn.sdp()}").encode())
    rig.receive(invite, pstn.flow)
    assert [m.status for m, _ in rig.sent() if isinstance(m, Response) and m.status >= 200] == [
        200]


def test_calls_from_outside_allow_from_are_refused() -> None:
    rig = GatewayRig()
    rig.sent()
    stranger = Phone(1, 7000)
    stranger.host = "203.0.113.5"
    stranger.flow = Flow("udp", *BRIDGE, stranger.host, 5060)
    rig.receive(stranger.request("INVITE", "2000", stranger.sdp()), stranger.flow)
    assert [m.status for m, _ in rig.sent() if isinstance(m, Response)][-1] == 403
    assert len(rig.ports.in_use) == 1  # the plain RTP leg's port only


def test_a_trunk_whose_name_does_not_resolve_yet_is_retried_with_backoff() -> None:
    config = parse_config(CONFIG.replace(f"sip:{TRUNK[0]}:{TRUNK[1]}", "sip:trunk.example:5070"),
                          "test.yaml")
    addresses: dict[str, str] = {}

    def resolve(host: str) -> str:
        if host not in addresses:
            raise OSError(f"{host}: no address")
        return addresses[host]

    sent: list[tuple[Request, Flow]] = []

    def send(request: Request, flow: Flow, now: float) -> str:
        sent.append((request, flow))
        return f"branch{len(sent)}"

    trunks = Trunks(config, BRIDGE, resolve, rng=random.Random(1))
    trunks.start(0.0, send)
    assert not sent
    retry_at = trunks.next_deadline()
    assert retry_at is not None and 15.0 <= retry_at <= 30.0  # retry_min_s 30, jittered
    addresses["trunk.example"] = TRUNK[0]
    trunks.handle_timer(retry_at, send)
    [(register, flow)] = sent
    assert register.method == "REGISTER" and (flow.remote_host, flow.remote_port) == TRUNK
    assert trunks.is_trunk(TRUNK[0])


def test_a_reinvite_without_telephone_event_cancels_pending_digits_not_the_clock() -> None:
    rig = GatewayRig()
    rig.sent()
    phone = Phone(1, 7000)
    rig.call(phone, "1000")
    rig.advance(0.04)
    [(invite, _)] = _invites(rig.sent())
    gateway = Flow("udp", *BRIDGE, *GATEWAY)
    contact = [("Contact", f"<sip:gw@{GATEWAY[0]}:{GATEWAY[1]}>")]
    rig.receive(_answer(invite, 200, headers=contact, body=_gateway_sdp()), gateway)
    rig.sent()
    # Before the digits start (digits_delay_s: 1), the far end moves to PCMU alone.
    body = _gateway_sdp().replace(b" 0 101\r\n", b" 0\r\n").replace(
        b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n", b"")
    reinvite = (f"INVITE sip:telerapat@{BRIDGE[0]}:{BRIDGE[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {GATEWAY[0]}:{GATEWAY[1]};branch=z9hG4bKreinv\r\n"
                f"From: {invite.headers.get('To')};tag=far1\r\n"
                f"To: {invite.headers.get('From')}\r\n"
                f"Call-ID: {invite.call_id}\r\nCSeq: 7 INVITE\r\n"
                f"Contact: {contact[0][1]}\r\n"
                f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n")
    rig.receive(reinvite.encode() + body, gateway)
    assert [m.status for m, _ in rig.sent() if isinstance(m, Response)][-1] == 200
    to_gateway = [RtpPacket.parse(d) for _, d, dest in rig.advance(3.0) if dest == GATEWAY_RTP]
    assert len(to_gateway) >= 140 and {p.payload_type for p in to_gateway} == {0}


def test_leg_and_trunk_states_are_there_for_the_operator() -> None:
    rig = GatewayRig()
    rig.sent()
    assert {(s.leg_id, s.state) for s in rig.controller.gateway_statuses()} == {
        ("video", LegState.IDLE), ("zoom", LegState.IDLE)}
    assert rig.controller.trunk_states() == {"upstream": RegistrationState.REGISTERING}
    rig.call(Phone(1, 7000), "2000")
    rig.advance(0.04)
    states = {s.leg_id: s for s in rig.controller.gateway_statuses()}
    assert states["video"].state is LegState.UP and states["video"].reason == "stream started"
    assert states["zoom"].state is LegState.IDLE
