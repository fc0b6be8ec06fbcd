"""The real CallController driven in-process: phones join over SIP, RTP goes both ways, no sockets.

The benchmarks share it (bench/tick.py, bench/bandwidth.py). A phone is a host address and an
SDP offer; `InProcessBridge.join` sends its INVITE and the ACK of the 200 OK, and returns the
call's RTP ports and the bridge's SDP answer. Time is `now`, moved on 20 ms per `tick`; nothing
here reads a clock. Imported as a sibling module, since bench/ is a folder of scripts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.conference.media import FRAME_MS, ROOM_RATE_HZ
from bridge.config import Config, parse_config
from bridge.controller import CallController
from bridge.prompt_files import load_prompts
from bridge.sip.flow import Flow
from bridge.sip.message import Response
from bridge.sip.parser import parse_message
from bridge.sip.sdp import SessionDescription

# RFC 5737 TEST-NET-1: an address nothing is bound to, which only names the bridge here.
BRIDGE_HOST = "192.0.2.1"
SIP_PORT = 5060
EXTENSION = "2000"
PHONE_RTP_PORT = 4000
TICK_S = FRAME_MS / 1000
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
# RTP never times out, so a phone that only listens stays in the call.
_BASE_CONFIG = f"""
sip: {{listen: ["udp:{BRIDGE_HOST}:{SIP_PORT}"]}}
rtp: {{ports: "20000-29999", timeout_s: 3600}}
language: en
"""

RtpDatagram = tuple[int, bytes, tuple[str, int]]  # (bridge's local port, bytes, destination)


def room_extension(index: int) -> str:
    """The extension of the bench bridge's room `index` (0: 2000, the only one by default)."""
    return str(int(EXTENSION) + index)


def bench_config(extra_yaml: str = "", rooms: int = 1, room_yaml: Sequence[str] = ()) -> Config:
    """Return the config of a bench bridge: `rooms` rooms at extensions 2000, 2001, ...
    (`room_extension`) and no RTP timeout.

    `extra_yaml` adds top-level keys the base leaves out (codecs, ptime_ms, opus);
    `room_yaml[i]`, keys of room i (e.g. "agc: false").
    """
    settings = [*room_yaml, *[""] * rooms][:rooms]
    listed = ", ".join(
        f'{{id: bench{index or ""}, extension: "{room_extension(index)}"'
        f'{", " + keys if keys else ""}}}'
        for index, keys in enumerate(settings)
    )
    return parse_config(f"{_BASE_CONFIG}rooms: [{listed}]\n{extra_yaml}", "bench")


class MemoryPorts:
    """Hands out even RTP ports without binding anything (the controller's MediaPorts)."""

    def __init__(self) -> None:
        self._next = 20000

    def allocate(self, host: str) -> int:
        self._next += 2
        return self._next

    def release(self, port: int) -> None:
        """Nothing was bound, so nothing is closed."""


@dataclass(frozen=True, slots=True)
class Phone:
    """One member's end of a call: where it takes RTP, and what the bridge answered."""

    host: str
    bridge_rtp_port: int  # the bridge's port for this call, from the m= line of its answer
    answer: SessionDescription
    rtp_port: int = PHONE_RTP_PORT

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.rtp_port)


def audio_offer(
    host: str,
    payload_type: int,
    *,
    rtpmap: str | None = None,
    fmtp: str | None = None,
    ptime_ms: int | None = None,
) -> str:
    """Return an SDP offer of one audio codec (RFC 3264 §5) at PHONE_RTP_PORT on `host`.

    `rtpmap` is the a=rtpmap value after the payload type ("opus/48000/2"); static payload
    types need none (RFC 3551 §6).
    """
    lines = [
        "v=0", f"o=- 1 1 IN IP4 {host}", "s=-", f"c=IN IP4 {host}", "t=0 0",
        f"m=audio {PHONE_RTP_PORT} RTP/AVP {payload_type}",
    ]
    if rtpmap is not None:
        lines.append(f"a=rtpmap:{payload_type} {rtpmap}")
    if fmtp is not None:
        lines.append(f"a=fmtp:{payload_type} {fmtp}")
    if ptime_ms is not None:
        lines.append(f"a=ptime:{ptime_ms}")
    return "\r\n".join(lines) + "\r\n"


def rtp_sent_to(phone: Phone, datagrams: list[RtpDatagram]) -> list[bytes]:
    """Return the RTP datagrams of `phone`'s call; RTCP leaves from the odd port above it."""
    return [data for port, data, _ in datagrams if port == phone.bridge_rtp_port]


class InProcessBridge:
    """A CallController with the bench config, the real prompts and a scripted clock."""

    def __init__(self, config: Config, *, seed: int = 1) -> None:
        prompts = load_prompts(PROMPTS_DIR, ROOM_RATE_HZ)
        self.controller = CallController(
            config, prompts, MemoryPorts(), rng=random.Random(seed), secret=b"b" * 32
        )
        self.ticks = 0
        self._calls = 0

    @property
    def now(self) -> float:
        return self.ticks * TICK_S

    def join(self, host: str, offer: str, extension: str = EXTENSION) -> Phone:
        """Call the room at `extension` from `host` with SDP `offer`, ACK the 200 OK (RFC
        3261 §13.2.2.4)."""
        self._calls += 1
        call = self._calls
        flow = Flow("udp", BRIDGE_HOST, SIP_PORT, host, SIP_PORT)
        uri = f"sip:{extension}@{BRIDGE_HOST}"

        def request(method: str, branch: str, to_tag: str, body: str) -> bytes:
            content_type = "Content-Type: application/sdp\r\n" if body else ""
            return (
                f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{SIP_PORT};branch=z9hG4bK{branch}\r\n"
                f"From: <sip:phone{call}@{host}>;tag=phone{call}\r\n"
                f"To: <{uri}>{to_tag}\r\n"
                f"Call-ID: bench{call}@{host}\r\nCSeq: 1 {method}\r\n"
                f"Contact: <sip:phone{call}@{host}:{SIP_PORT}>\r\n"
                f"{content_type}Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode()

        self.controller.receive_sip(request("INVITE", f"inv{call}", "", offer), flow, self.now)
        answers = [
            message for data, _ in self.controller.sip_datagrams()
            if isinstance(message := parse_message(data), Response) and message.status == 200
        ]
        if not answers:
            raise RuntimeError(f"the bridge did not answer {host}'s INVITE with 200 OK")
        ok = answers[0]
        # The ACK of a 2xx is a transaction of its own, with a new branch (RFC 3261 §17.1.1.3).
        ack = request("ACK", f"ack{call}", f";tag={ok.to_address.tag}", "")
        self.controller.receive_sip(ack, flow, self.now)
        self.controller.sip_datagrams()
        answer = SessionDescription.parse(ok.body)
        return Phone(host, answer.media[0].port, answer)

    def send_rtp(self, phone: Phone, datagram: bytes) -> None:
        """Deliver one RTP datagram from `phone` to its call's port, now."""
        self.controller.receive_rtp(phone.bridge_rtp_port, datagram, phone.address, self.now)

    def send_rtp_many(self, datagrams: list[tuple[Phone, bytes]]) -> None:
        """Deliver one sweep of RTP datagrams, now, as the sockets hand them over."""
        self.controller.receive_rtp_many(
            (phone.bridge_rtp_port, datagram, phone.address, self.now)
            for phone, datagram in datagrams
        )

    def tick(self) -> list[RtpDatagram]:
        """Run one 20 ms media tick, move the clock on, and return the RTP and RTCP sent."""
        self.controller.tick(self.now)
        self.ticks += 1
        return self.controller.rtp_datagrams()
