"""Malformed SIP over raw UDP and TCP: each answered or dropped per RFC 3261; the bridge goes on."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.integration.harness import (
    LOCALHOST,
    SIPP,
    SIPP_SCENARIOS,
    ProcessGroup,
    RunningBridge,
    run_sipp,
)

REPLY_TIMEOUT_S = 5.0
TCP_MAX_MESSAGE_BYTES = 65_535  # bridge.sip.parser.MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class Reply:
    """A response from the bridge, read without the bridge's own parser."""

    status: int
    reason: str
    headers: list[tuple[str, str]]

    @classmethod
    def parse(cls, data: bytes) -> Reply:
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        start, *lines = head.split("\r\n")
        match = re.fullmatch(r"SIP/2\.0 (\d{3}) (.*)", start)
        assert match, f"not a SIP response: {start!r}"
        headers = [(name.strip(), value.strip()) for name, _, value in
                   (line.partition(":") for line in lines)]
        return cls(int(match.group(1)), match.group(2), headers)

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


class SipRequest:
    """A request written field by field, so that a test can break any of them."""

    def __init__(
        self,
        method: str = "OPTIONS",
        *,
        transport: str = "UDP",
        local_port: int,
        omit: tuple[str, ...] = (),
        extra: tuple[tuple[str, str], ...] = (),
        content_length: str | None = None,
        max_forwards: str = "70",
        body: bytes = b"",
    ) -> None:
        unique = time.monotonic_ns()
        self.method = method
        self.branch = f"z9hG4bK-raw{unique}"
        self.call_id = f"raw-{unique}@{LOCALHOST}"
        self.fields = [
            ("Via", f"SIP/2.0/{transport} {LOCALHOST}:{local_port};branch={self.branch};rport"),
            ("Max-Forwards", max_forwards),
            ("From", f"<sip:robot@{LOCALHOST}>;tag=r{unique}"),
            ("To", f"<sip:2000@{LOCALHOST}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"1 {method}"),
            *extra,
            ("Content-Length", str(len(body)) if content_length is None else content_length),
        ]
        self.fields = [(name, value) for name, value in self.fields if name not in omit]
        self.body = body

    def __bytes__(self) -> bytes:
        head = "".join(f"{name}: {value}\r\n" for name, value in self.fields)
        return f"{self.method} sip:2000@{LOCALHOST} SIP/2.0\r\n{head}\r\n".encode() + self.body

    def ack(self, reply: Reply) -> bytes:
        """The ACK of a non-2xx final response: the INVITE's branch, the reply's To."""
        fields = [(n, (reply.header("To") or v) if n == "To" else v) for n, v in self.fields
                  if n not in ("Content-Length", "CSeq")]
        head = "".join(f"{name}: {value}\r\n" for name, value in fields)
        return (f"ACK sip:2000@{LOCALHOST} SIP/2.0\r\n{head}CSeq: 1 ACK\r\n"
                "Content-Length: 0\r\n\r\n").encode()


class UdpPeer:
    """A raw UDP socket talking to the bridge's SIP port."""

    def __init__(self, bridge: RunningBridge) -> None:
        self.address = (LOCALHOST, bridge.sip_port)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((LOCALHOST, 0))
        self.socket.settimeout(REPLY_TIMEOUT_S)
        self.port = int(self.socket.getsockname()[1])

    def send(self, data: bytes) -> None:
        self.socket.sendto(data, self.address)

    def reply(self) -> Reply:
        return Reply.parse(self.socket.recv(70_000))

    def assert_no_reply_to_the_last(self) -> None:
        """The bridge reads datagrams in order: if the first reply after a probe is the
        probe's own 200, what was sent before the probe got no answer."""
        probe = SipRequest(local_port=self.port)
        self.send(bytes(probe))
        reply = self.reply()
        assert (reply.status, reply.header("Call-ID")) == (200, probe.call_id), reply


@pytest.fixture
def udp(bridge: RunningBridge) -> Iterator[UdpPeer]:
    peer = UdpPeer(bridge)
    yield peer
    peer.socket.close()


def tcp_connect(bridge: RunningBridge) -> socket.socket:
    connection = socket.create_connection((LOCALHOST, bridge.sip_port), timeout=REPLY_TIMEOUT_S)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def tcp_options(connection: socket.socket) -> Reply:
    """Send OPTIONS on a connection and read its response (one recv holds it on loopback)."""
    request = SipRequest(transport="TCP", local_port=connection.getsockname()[1])
    connection.sendall(bytes(request))
    reply = Reply.parse(connection.recv(70_000))
    assert reply.header("Call-ID") == request.call_id
    return reply


def assert_closed_by_the_bridge(connection: socket.socket) -> None:
    """Wait (bounded by the socket timeout) for the bridge to close, sending nothing."""
    try:
        data = connection.recv(70_000)
    except ConnectionResetError:  # closed with our unread bytes still queued: RST
        return
    assert data == b"", f"the bridge answered instead of closing: {data[:200]!r}"


def dropped_log(bridge: RunningBridge, port: int, reason: str) -> None:
    bridge.process.wait_for_output(
        rf"dropped message from 127\.0\.0\.1:{port} \(udp\): [^\n]*{reason}", timeout_s=5
    )


# -- UDP: answered ------------------------------------------------------------------------

Build = Callable[[int], SipRequest]

ANSWERED: list[tuple[str, Build, int, str]] = [
    ("missing Call-ID", lambda port: SipRequest(local_port=port, omit=("Call-ID",)), 400,
     "missing Call-ID header"),
    ("missing CSeq", lambda port: SipRequest(local_port=port, omit=("CSeq",)), 400,
     "missing CSeq header"),
    ("Content-Length not a number",
     lambda port: SipRequest(local_port=port, content_length="twelve"), 400,
     "invalid Content-Length"),
    # RFC 3261 §18.3: a datagram shorter than its Content-Length is an error, 400.
    ("Content-Length beyond the datagram",
     lambda port: SipRequest(local_port=port, content_length="500", body=b"v=0\r\n"), 400,
     "Content-Length 500 exceeds"),
    # RFC 3261 §8.2.1: a method we do not know is 501, one we know but refuse is 405.
    ("unknown method", lambda port: SipRequest("FROBNICATE", local_port=port), 501, ""),
    ("SUBSCRIBE", lambda port: SipRequest("SUBSCRIBE", local_port=port,
                                          extra=(("Event", "presence"),)), 405, ""),
    # RFC 3261 §8.2.2.3: an option tag we do not support in Require is 420.
    ("unsupported Require", lambda port: SipRequest(local_port=port,
                                                    extra=(("Require", "100rel"),)), 420, ""),
    # A request that used up its hops where we would be the one to act on it: 483.
    ("INVITE at Max-Forwards 0", lambda port: SipRequest("INVITE", local_port=port,
                                                         max_forwards="0"), 483, ""),
    # RFC 3261 §11: OPTIONS at Max-Forwards 0 pings the first hop, which may answer it.
    ("OPTIONS at Max-Forwards 0", lambda port: SipRequest(local_port=port, max_forwards="0"),
     200, ""),
    # 60 kB of header still fits one datagram (65,507 bytes) and the 65,535-byte limit.
    ("60 kB header", lambda port: SipRequest(local_port=port,
                                             extra=(("X-Padding", "a" * 60_000),)), 200, ""),
]


@pytest.mark.parametrize(("build", "status", "logged"),
                         [case[1:] for case in ANSWERED], ids=[case[0] for case in ANSWERED])
def test_udp_request_is_answered(
    bridge: RunningBridge, udp: UdpPeer, build: Build, status: int, logged: str
) -> None:
    request = build(udp.port)
    data = bytes(request)
    assert len(data) < 65_507
    udp.send(data)
    reply = udp.reply()
    assert reply.status == status, reply
    # §8.2.6.2: the response copies what the request had of Via, Call-ID and CSeq.
    via = reply.header("Via") or ""
    assert f"branch={request.branch}" in via and f"rport={udp.port}" in via
    fields = dict(request.fields)
    for name in ("Call-ID", "CSeq"):
        assert reply.header(name) == fields.get(name)
    assert re.search(r";tag=\S+", reply.header("To") or "")
    if status in (405, 501):
        assert "INVITE" in (reply.header("Allow") or "")
    if status == 420:
        assert reply.header("Unsupported") == "100rel"
    if request.method == "INVITE":
        udp.send(request.ack(reply))  # stop the retransmissions of our final response
    if logged:
        dropped_log(bridge, udp.port, f"rejected with {status}: {re.escape(logged)}")
    udp.assert_no_reply_to_the_last()  # exactly one answer


# -- UDP: dropped -------------------------------------------------------------------------

STRAY_RESPONSE = (
    f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {LOCALHOST}:5070;branch=z9hG4bK-nobody\r\n"
    f"From: <sip:2000@{LOCALHOST}>;tag=1\r\nTo: <sip:robot@{LOCALHOST}>;tag=2\r\n"
    "Call-ID: stray@127.0.0.1\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n"
).encode()

DROPPED: list[tuple[str, Callable[[int], bytes], str]] = [
    ("binary garbage", lambda port: b"\x00\xff\xfe\x80 not SIP at all \x01\r\n\r\n",
     "unparsable message: message head is not UTF-8"),
    ("text garbage", lambda port: b"HELLO THERE\r\nthis is: not sip\r\n\r\n",
     "unparsable message: invalid start line"),
    ("no empty line after the head",
     lambda port: bytes(SipRequest(local_port=port)).rstrip(b"\r\n") + b"\r\n",
     "message head is not terminated"),
    # §8.2.6.2/§18.2.2: without a Via a response has nowhere to go.
    ("missing Via", lambda port: bytes(SipRequest(local_port=port, omit=("Via",))),
     "unanswerable request without a usable Via"),
    ("response matching no request", lambda port: STRAY_RESPONSE,
     "200 response matches no transaction"),
    ("ACK matching no call", lambda port: bytes(SipRequest("ACK", local_port=port)),
     "ACK matches no transaction or call"),
]


@pytest.mark.parametrize(("build", "logged"), [case[1:] for case in DROPPED],
                         ids=[case[0] for case in DROPPED])
def test_udp_message_is_dropped_and_logged(
    bridge: RunningBridge, udp: UdpPeer, build: Callable[[int], bytes], logged: str
) -> None:
    udp.send(build(udp.port))
    udp.assert_no_reply_to_the_last()
    dropped_log(bridge, udp.port, re.escape(logged))


# -- TCP ----------------------------------------------------------------------------------


def test_tcp_100_kb_header_closes_that_connection_only(bridge: RunningBridge) -> None:
    with tcp_connect(bridge) as good, tcp_connect(bridge) as bad:
        assert tcp_options(good).status == 200
        head = bytes(SipRequest(transport="TCP", local_port=bad.getsockname()[1],
                                extra=(("X-Padding", "a" * 100_000),)))
        assert len(head) > TCP_MAX_MESSAGE_BYTES
        try:
            bad.sendall(head)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still writing: that is the point
        assert_closed_by_the_bridge(bad)
        bridge.process.wait_for_output(
            rf"closing tcp connection from 127\.0\.0\.1:{bad.getsockname()[1]}: "
            r"message (head )?too large", timeout_s=5)
        assert tcp_options(good).status == 200


def test_tcp_garbage_closes_that_connection_only(bridge: RunningBridge) -> None:
    with tcp_connect(bridge) as good, tcp_connect(bridge) as bad:
        assert tcp_options(good).status == 200
        bad.sendall(b"\x16\x03\x01\x02\x00 a TLS hello, or any garbage\r\n\r\n")
        assert_closed_by_the_bridge(bad)
        bridge.process.wait_for_output(
            rf"closing tcp connection from 127\.0\.0\.1:{bad.getsockname()[1]}: "
            r"Content-Length is required", timeout_s=5)
        assert tcp_options(good).status == 200


def test_tcp_bad_request_is_answered_and_the_connection_stays(bridge: RunningBridge) -> None:
    """A framed message that is invalid gets its 400; only unframeable bytes close."""
    with tcp_connect(bridge) as connection:
        request = SipRequest(transport="TCP", local_port=connection.getsockname()[1],
                             omit=("Call-ID",))
        connection.sendall(bytes(request))
        reply = Reply.parse(connection.recv(70_000))
        assert reply.status == 400 and reply.header("CSeq") == "1 OPTIONS"
        assert tcp_options(connection).status == 200


def test_tcp_request_sent_byte_by_byte_is_answered(bridge: RunningBridge) -> None:
    with tcp_connect(bridge) as connection:
        request = SipRequest(transport="TCP", local_port=connection.getsockname()[1])
        for byte in bytes(request):  # TCP_NODELAY: each write leaves as its own segment
            connection.sendall(bytes([byte]))
        reply = Reply.parse(connection.recv(70_000))
        assert (reply.status, reply.header("Call-ID")) == (200, request.call_id)


# -- After all of it ------------------------------------------------------------------------


@pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian package sip-tester)")
def test_bridge_still_answers_options_and_carries_a_call_after_malformed_input(
    procs: ProcessGroup, bridge: RunningBridge
) -> None:
    """Run last in this module, on the bridge every test above has fed, and feed it all
    once more."""
    udp = UdpPeer(bridge)
    for _, build, _, _ in ANSWERED:
        request = build(udp.port)
        udp.send(bytes(request))
        reply = udp.reply()
        if request.method == "INVITE":
            udp.send(request.ack(reply))
    for _, make, _ in DROPPED:
        udp.send(make(udp.port))
    udp.assert_no_reply_to_the_last()
    udp.socket.close()
    with tcp_connect(bridge) as bad:
        bad.sendall(b"\x00\xff garbage\r\n\r\n")
        assert_closed_by_the_bridge(bad)
    options = run_sipp(procs, bridge, SIPP_SCENARIOS / "options.xml", service="2000")
    assert options.returncode == 0, options.describe()
    call = run_sipp(procs, bridge, SIPP_SCENARIOS / "uac_call.xml", service="2000",
                    extra_args=["-d", "300"])
    assert call.returncode == 0, call.describe()
    (call_id,) = call.call_ids
    bridge.process.wait_for_output(rf"call={re.escape(call_id)} [^\n]*ended", timeout_s=5)
    assert bridge.process.popen.poll() is None
    assert "Traceback" not in bridge.log()
