"""Twisted edges: media clock, driver timer, SIP over UDP/TCP, RTP port pool (no real sockets)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport, StringTransport

from bridge.controller import NoMediaPorts
from bridge.net.driver import ControllerDriver
from bridge.net.media_clock import MAX_CATCH_UP_TICKS, MediaClock
from bridge.net.rtp_udp import RtpPortPool
from bridge.net.sip_tcp import SipTcpFactory, TcpConnections
from bridge.net.sip_udp import SipUdpProtocol
from bridge.sip.flow import Flow

OPTIONS = (
    b"OPTIONS sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:7000;branch=z9hG4bK1\r\n"
    b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:2000@127.0.0.1>\r\nCall-ID: c1\r\n"
    b"CSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody"
)


def test_media_clock_ticks_every_20_ms() -> None:
    clock = Clock()
    ticks: list[float] = []
    media = MediaClock(clock, ticks.append)
    media.start()
    for count in range(1, 11):
        clock.advance(count * 0.02 - clock.seconds())  # the exact due times, no float drift
    assert len(ticks) == 10
    assert media.statistics.late_ticks == 0
    media.stop()


def test_media_clock_catches_up_a_few_ticks_after_a_stall_and_skips_the_rest() -> None:
    clock = Clock()
    ticks: list[float] = []
    media = MediaClock(clock, ticks.append)
    media.start()
    clock.advance(0.02)
    clock.advance(0.2)  # a 200 ms stall: ten ticks due at once
    assert len(ticks) == 1 + MAX_CATCH_UP_TICKS
    assert media.statistics.skipped_ticks == 10 - MAX_CATCH_UP_TICKS
    assert media.statistics.late_ticks == 2  # the last tick run is the one due now
    media.stop()


def test_media_clock_stopped_from_within_a_tick_ticks_no_more() -> None:
    clock = Clock()
    ticks: list[float] = []
    media = MediaClock(clock, lambda now: (ticks.append(now), media.stop()))
    media.start()
    clock.advance(0.1)
    assert len(ticks) == 1 and not clock.getDelayedCalls()


def test_media_clock_gets_its_phase_back_after_a_stall_though_ticks_take_15_ms() -> None:
    clock = Clock()
    work = [0.015] * 150
    work[5] = 0.045  # one tick stalls: the next two are owed when it ends
    started: list[float] = []

    def tick(now: float) -> None:
        started.append(now)
        clock.advance(work[len(started) - 1])

    media = MediaClock(clock, tick)
    media.start()
    while len(started) < 150:
        clock.advance(0.001)
    lateness = [now - 0.02 * (k + 1) for k, now in enumerate(started)]
    assert media.statistics.skipped_ticks == 0
    # The owed ticks run back to back, each a little less late, until the clock is on
    # time again (a LoopingCall would run two every 40 ms from the stall on).
    assert 0 < media.statistics.late_ticks <= 5
    assert max(lateness[20:]) < 0.001
    media.stop()


def test_media_clock_reports_its_timing_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    cpu_s = [0.0]  # the thread's CPU time: all of every tick's 3 ms

    def tick(now: float) -> None:
        clock.advance(0.003)
        cpu_s[0] += 0.003

    media = MediaClock(clock, tick, report_interval_s=1.0, cpu_clock=lambda: cpu_s[0])
    media.start()
    with caplog.at_level(logging.INFO, logger="bridge.net.media_clock"):
        for count in range(1, 101):
            late_s = 0.011 if count == 60 else 0.001  # one tick 11 ms late, the others 1 ms
            clock.advance(count * 0.02 + late_s - clock.seconds())
    reports = [r.getMessage() for r in caplog.records if "media clock:" in r.getMessage()]
    assert len(reports) == 2
    assert reports[0].startswith("media clock: 50 ticks in 1 s, 0 late (0.00 % over 5 ms)")
    assert "lateness ms p50 1.00 p99 1.00 max 1.00" in reports[0]
    assert "tick work ms p50 3.00 p99 3.00 max 3.00" in reports[0]
    assert reports[0].endswith("0 of them over 2 ms off the CPU (max 0.00 ms)")
    assert reports[1].startswith("media clock: 50 ticks in 1 s, 1 late (2.00 % over 5 ms)")
    assert "max 11.00" in reports[1]
    with caplog.at_level(logging.INFO, logger="bridge.net.media_clock"):
        for count in range(101, 106):  # five ticks, then a report on demand
            clock.advance(count * 0.02 - clock.seconds())
        media.report()
        media.report()  # nothing since: no line
    reports = [r.getMessage() for r in caplog.records if "media clock:" in r.getMessage()]
    assert len(reports) == 3 and reports[2].startswith("media clock: 5 ticks in 0 s")
    media.stop()


class StubController:
    """Just enough of CallController for the driver: outputs and one deadline."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.timer_calls: list[float] = []
        self.sip_out: list[tuple[bytes, Flow]] = []
        self.rtp_out: list[tuple[int, bytes, tuple[str, int]]] = []
        self.received: list[tuple[str, float]] = []

    def receive_sip(self, data: bytes, flow: Flow, now: float) -> None:
        self.received.append(("sip", now))
        self.sip_out.append((b"reply", flow))
        self.deadline = now + 0.5

    def receive_rtp(self, port: int, data: bytes, source: Any, now: float) -> None:
        self.received.append(("rtp", now))

    def handle_timer(self, now: float) -> None:
        self.timer_calls.append(now)
        self.deadline = None

    def next_deadline(self) -> float | None:
        return self.deadline

    def sip_datagrams(self) -> list[tuple[bytes, Flow]]:
        out, self.sip_out = self.sip_out, []
        return out

    def rtp_datagrams(self) -> list[tuple[int, bytes, tuple[str, int]]]:
        out, self.rtp_out = self.rtp_out, []
        return out


def test_driver_flushes_outputs_and_fires_the_deadline_timer() -> None:
    clock = Clock()
    controller = StubController()
    sent: list[bytes] = []
    driver = ControllerDriver(clock, controller, lambda d, f: sent.append(d),  # type: ignore[arg-type]
                              lambda datagrams: None, list)
    flow = Flow("udp", "127.0.0.1", 5060, "127.0.0.1", 7000)
    clock.advance(10.0)
    driver.sip_received(b"x", flow)
    assert sent == [b"reply"]
    clock.advance(0.49)
    assert controller.timer_calls == []
    clock.advance(0.01)
    assert controller.timer_calls == [10.5]
    assert not clock.getDelayedCalls()


def test_driver_tick_takes_in_the_swept_rtp_before_mixing() -> None:
    class Controller(StubController):
        def __init__(self) -> None:
            super().__init__()
            self.ticks: list[float] = []

        def receive_rtp_many(self, datagrams: Any) -> None:
            self.received.extend(("rtp", now) for _, _, _, now in datagrams)

        def tick(self, now: float) -> None:
            self.ticks.append(now)
            self.received.append(("tick", now))

    controller = Controller()
    swept = [(40000, b"rtp", ("127.0.0.9", 7000), 1.0), (40002, b"rtp", ("127.0.0.9", 7002), 1.5)]
    driver = ControllerDriver(Clock(), controller, lambda d, f: None,  # type: ignore[arg-type]
                              lambda datagrams: None, lambda: swept)
    driver.tick(2.0)
    # The arrival times, not the tick's; all of the sweep before the mix.
    assert controller.received == [("rtp", 1.0), ("rtp", 1.5), ("tick", 2.0)]


def test_sip_udp_hands_datagrams_on_with_their_flow_and_sends_back() -> None:
    received: list[tuple[bytes, Flow]] = []
    protocol = SipUdpProtocol("127.0.0.1", 5060, lambda d, f: received.append((d, f)))
    transport = FakeDatagramTransport()
    protocol.makeConnection(transport)
    protocol.datagramReceived(b"hello", ("127.0.0.2", 7000))
    assert received == [(b"hello", Flow("udp", "127.0.0.1", 5060, "127.0.0.2", 7000))]
    protocol.send(b"reply", received[0][1])
    assert transport.written == [(b"reply", ("127.0.0.2", 7000))]


def make_tcp(received: list[tuple[bytes, Flow]]) -> tuple[Any, StringTransport, TcpConnections]:
    connections = TcpConnections()
    factory = SipTcpFactory(connections, lambda d, f: received.append((d, f)))
    protocol = factory.buildProtocol(None)
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 5060),
        peerAddress=IPv4Address("TCP", "127.0.0.3", 40123),
    )
    protocol.makeConnection(transport)
    return protocol, transport, connections


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_sip_tcp_frames_messages_however_the_bytes_arrive(chunk: int) -> None:
    received: list[tuple[bytes, Flow]] = []
    protocol, _, connections = make_tcp(received)
    stream = OPTIONS + OPTIONS
    for start in range(0, len(stream), chunk):
        protocol.dataReceived(stream[start : start + chunk])
    flow = Flow("tcp", "127.0.0.1", 5060, "127.0.0.3", 40123)
    assert received == [(OPTIONS, flow), (OPTIONS, flow)]
    assert len(connections) == 1


def test_sip_tcp_answers_keepalive_pings_and_routes_replies_by_flow() -> None:
    received: list[tuple[bytes, Flow]] = []
    protocol, transport, connections = make_tcp(received)
    protocol.dataReceived(b"\r\n\r\n\r\n\r\n")
    assert transport.value() == b"\r\n\r\n"
    transport.clear()
    connections.send(b"reply", Flow("tcp", "127.0.0.1", 5060, "127.0.0.3", 40123))
    assert transport.value() == b"reply"


def test_sip_tcp_closes_a_connection_that_cannot_be_framed() -> None:
    received: list[tuple[bytes, Flow]] = []
    protocol, transport, connections = make_tcp(received)
    protocol.dataReceived(b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n")  # no Content-Length
    assert transport.disconnecting
    protocol.connectionLost()
    assert len(connections) == 0 and received == []


class FakeUdpPort:
    def __init__(self, reactor: UdpReactor, port: int) -> None:
        self._reactor = reactor
        self.port = port

    def stopListening(self) -> None:  # noqa: N802
        self._reactor.bound.discard(self.port)


class UdpReactor:
    """Records the RTCP binds (the reactor's); ports in `taken` belong to another program."""

    def __init__(self, taken: frozenset[int] = frozenset()) -> None:
        self.taken = taken
        self.bound: set[int] = set()
        self.transports: dict[int, FakeDatagramTransport] = {}

    def listenUDP(self, port: int, protocol: Any, interface: str = "",  # noqa: N802
                  maxPacketSize: int = 8192) -> FakeUdpPort:  # noqa: N803
        if port in self.taken or port in self.bound:
            raise CannotListenError(interface, port, OSError("in use"))
        self.bound.add(port)
        self.transports[port] = FakeDatagramTransport()
        protocol.makeConnection(self.transports[port])
        return FakeUdpPort(self, port)


def free_port_pairs(count: int) -> int:
    """The first port of `count` consecutive even/odd pairs nobody on 127.0.0.1 holds."""
    for base in range(41000, 60000, 2 * count):
        held = []
        try:
            for port in range(base, base + 2 * count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise RuntimeError("no free ports")


@pytest.fixture
def pool_and_base() -> Iterator[tuple[RtpPortPool, UdpReactor, int]]:
    reactor = UdpReactor()
    base = free_port_pairs(4)
    pool = RtpPortPool(reactor, base, base + 7, lambda *a: None)  # type: ignore[arg-type]
    yield pool, reactor, base
    pool.close()


def test_rtp_pool_binds_even_odd_pairs_and_skips_taken_ports(
    pool_and_base: tuple[RtpPortPool, UdpReactor, int],
) -> None:
    pool, reactor, base = pool_and_base
    reactor.taken = frozenset({base + 1})
    assert pool.allocate("127.0.0.1") == base + 2  # base is free but its RTCP port is not
    assert pool.allocate("127.0.0.1") == base + 4
    assert reactor.bound == {base + 3, base + 5}
    pool.release(base + 2)
    assert reactor.bound == {base + 5} and len(pool) == 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", base + 2))  # the released RTP port is free again


def test_rtp_pool_sweeps_datagrams_with_their_kernel_arrival_times(
    pool_and_base: tuple[RtpPortPool, UdpReactor, int],
) -> None:
    pool, _, _ = pool_and_base
    first, second = pool.allocate("127.0.0.1"), pool.allocate("127.0.0.1")
    assert pool.sweep() == []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        before = time.time()
        for port, data in ((first, b"a1"), (second, b"b1"), (first, b"a2")):
            phone.sendto(data, ("127.0.0.1", port))
        after = time.time()
        received: list[tuple[int, bytes, tuple[str, int], float]] = []
        deadline = time.monotonic() + 5.0
        while len(received) < 3 and time.monotonic() < deadline:  # loopback: at once
            received += pool.sweep()
        source = phone.getsockname()
    assert sorted((port, data) for port, data, _, _ in received) == [
        (first, b"a1"), (first, b"a2"), (second, b"b1")
    ]
    assert [data for port, data, _, _ in received if port == first] == [b"a1", b"a2"]
    assert all(addr == source for _, _, addr, _ in received)
    assert all(before - 0.01 <= at <= after + 0.01 for _, _, _, at in received)


def test_rtp_pool_sends_rtp_and_rtcp_from_their_own_sockets(
    pool_and_base: tuple[RtpPortPool, UdpReactor, int],
) -> None:
    pool, reactor, _ = pool_and_base
    port = pool.allocate("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        phone.settimeout(5.0)
        pool.send_many([(port, b"rtp", phone.getsockname())])
        data, source = phone.recvfrom(100)
    assert (data, source) == (b"rtp", ("127.0.0.1", port))
    pool.send_many([(port + 1, b"rtcp", ("127.0.0.9", 7001))])
    assert reactor.transports[port + 1].written == [(b"rtcp", ("127.0.0.9", 7001))]


def test_rtp_pool_hands_out_released_ports_last_and_reports_exhaustion() -> None:
    base = free_port_pairs(2)
    pool = RtpPortPool(UdpReactor(), base, base + 3, lambda *a: None)  # type: ignore[arg-type]
    try:
        first = pool.allocate("127.0.0.1")
        second = pool.allocate("127.0.0.1")
        with pytest.raises(NoMediaPorts):
            pool.allocate("127.0.0.1")
        pool.release(first)
        assert pool.allocate("127.0.0.1") == first
        assert {first, second} == {base, base + 2}
    finally:
        pool.close()


def _sweep_until(pool: RtpPortPool, count: int) -> list[tuple[int, bytes, tuple[str, int], float]]:
    received: list[tuple[int, bytes, tuple[str, int], float]] = []
    deadline = time.monotonic() + 5.0
    while len(received) < count and time.monotonic() < deadline:  # loopback: at once
        received += pool.sweep()
    return received


def test_rtp_pool_hears_its_peer_and_any_other_source_after_sending(
    pool_and_base: tuple[RtpPortPool, UdpReactor, int],
) -> None:
    """Once RTP went to a destination the port's socket is connected there; packets from
    elsewhere (a caller's NAT moved it) still reach the sweep, in the order they came."""
    pool, _, _ = pool_and_base
    port = pool.allocate("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as moved:
        for sock in (peer, moved):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5.0)
        pool.send_many([(port, b"to peer", peer.getsockname())])
        assert peer.recvfrom(100) == (b"to peer", ("127.0.0.1", port))
        sent = [(peer, b"p1"), (moved, b"m1"), (peer, b"p2"), (moved, b"m2"), (peer, b"p3")]
        for sock, data in sent:
            sock.sendto(data, ("127.0.0.1", port))
        received = _sweep_until(pool, len(sent))
        assert [(data, source) for _, data, source, _ in received] == [
            (data, sock.getsockname()) for sock, data in sent
        ]
        assert [at for *_, at in received] == sorted(at for *_, at in received)
        # The call relatches to the moved address: the next send goes there, from the port.
        pool.send_many([(port, b"to moved", moved.getsockname())])
        assert moved.recvfrom(100) == (b"to moved", ("127.0.0.1", port))
        peer.sendto(b"old", ("127.0.0.1", port))
        moved.sendto(b"new", ("127.0.0.1", port))
        assert sorted(data for _, data, _, _ in _sweep_until(pool, 2)) == [b"new", b"old"]


def test_rtp_pool_send_to_a_closed_port_loses_that_packet_only(
    pool_and_base: tuple[RtpPortPool, UdpReactor, int], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "bridge.net.rtp_udp")
    pool, _, _ = pool_and_base
    port = pool.allocate("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
        gone.bind(("127.0.0.1", 0))
        closed = gone.getsockname()
    # The kernel answers the first packet with "port unreachable": on a connected socket
    # the next send or read reports it. Neither may raise out of the pool.
    for _ in range(3):
        pool.send_many([(port, b"x", closed)])
        pool.sweep()
    assert "Connection refused" in caplog.text
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as back:
        back.bind(("127.0.0.1", 0))
        back.settimeout(5.0)
        pool.send_many([(port, b"again", back.getsockname())])
        assert back.recvfrom(100) == (b"again", ("127.0.0.1", port))


def test_rtp_pools_of_two_bridges_never_share_a_port() -> None:
    """The port's two sockets share it (SO_REUSEPORT); another bridge asking the same must
    still find it taken."""
    base = free_port_pairs(2)
    first = RtpPortPool(UdpReactor(), base, base + 3, lambda *a: None)  # type: ignore[arg-type]
    second = RtpPortPool(UdpReactor(), base, base + 3, lambda *a: None)  # type: ignore[arg-type]
    try:
        assert first.allocate("127.0.0.1") == base
        assert second.allocate("127.0.0.1") == base + 2
        with pytest.raises(NoMediaPorts):
            second.allocate("127.0.0.1")
    finally:
        first.close()
        second.close()


def test_media_clock_tells_time_taken_from_a_tick(caplog: pytest.LogCaptureFixture) -> None:
    """A tick that took 10 ms of which the thread ran 4 (another process had the core)
    is counted apart from ticks that were simply busy."""
    clock = Clock()
    cpu_s = [0.0]
    ticks: list[float] = []

    def tick(now: float) -> None:
        ticks.append(now)
        taken = 0.006 if len(ticks) == 10 else 0.0  # preempted for 6 ms in the tenth
        clock.advance(0.004 + taken)
        cpu_s[0] += 0.004

    media = MediaClock(clock, tick, report_interval_s=1.0, cpu_clock=lambda: cpu_s[0])
    media.start()
    with caplog.at_level(logging.INFO, logger="bridge.net.media_clock"):
        while len(ticks) < 50:
            clock.advance(0.02)
    reports = [r.getMessage() for r in caplog.records if "media clock:" in r.getMessage()]
    assert len(reports) == 1
    assert "max 10.00" in reports[0]  # the tick's work, as the clock saw it
    assert reports[0].endswith("1 of them over 2 ms off the CPU (max 6.00 ms)")
    media.stop()
