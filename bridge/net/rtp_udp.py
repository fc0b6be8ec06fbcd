"""RTP/RTCP sockets: a pool of even/odd port pairs from the configured range."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.internet.protocol import DatagramProtocol

from bridge.controller import NoMediaPorts

log = logging.getLogger(__name__)

_MAX_PACKET_BYTES = 8192  # RTP/RTCP on a voice leg stays far below this

PacketHandler = Callable[[int, bytes, tuple[str, int]], None]


class _MediaSocket(DatagramProtocol):
    def __init__(self, port: int, on_packet: PacketHandler) -> None:
        self.port = port
        self._on_packet = on_packet

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        self._on_packet(self.port, datagram, addr)

    def send(self, data: bytes, destination: tuple[str, int]) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, destination)
        except OSError as exc:
            log.debug("rtp: cannot send to %s:%d: %s", *destination, exc)


@dataclass(frozen=True)
class _PortPair:
    rtp: _MediaSocket
    rtcp: _MediaSocket
    listening: tuple[IListeningPort, IListeningPort]


class RtpPortPool:
    """Binds RTP (even) and RTCP (odd) ports; implements `controller.MediaPorts`.

    Ports are handed out round-robin, so a port freed by one call is not reused at
    once and stray packets of the old call do not reach a new one.
    """

    def __init__(
        self,
        reactor: IReactorUDP,
        port_min: int,
        port_max: int,
        on_rtp: PacketHandler,
        on_rtcp: PacketHandler,
    ) -> None:
        self._reactor = reactor
        self._ports = list(range(port_min + port_min % 2, port_max, 2))
        self._cursor = 0
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._listening: dict[int, _PortPair] = {}

    def allocate(self, host: str) -> int:
        for _ in range(len(self._ports)):
            port = self._ports[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._ports)
            if port in self._listening:
                continue
            rtp_socket = _MediaSocket(port, self._on_rtp)
            rtcp_socket = _MediaSocket(port + 1, self._on_rtcp)
            try:
                rtp = self._reactor.listenUDP(port, rtp_socket, host, _MAX_PACKET_BYTES)
            except CannotListenError:
                continue
            try:
                rtcp = self._reactor.listenUDP(port + 1, rtcp_socket, host, _MAX_PACKET_BYTES)
            except CannotListenError:
                rtp.stopListening()
                continue
            self._listening[port] = _PortPair(rtp_socket, rtcp_socket, (rtp, rtcp))
            return port
        raise NoMediaPorts(f"no free RTP port pair in {self._ports[0]}-{self._ports[-1] + 1}")

    def release(self, port: int) -> None:
        pair = self._listening.pop(port, None)
        if pair is not None:
            for listening in pair.listening:
                listening.stopListening()

    def send(self, port: int, data: bytes, destination: tuple[str, int]) -> None:
        pair = self._listening.get(port - port % 2)
        if pair is not None:
            (pair.rtcp if port % 2 else pair.rtp).send(data, destination)

    def __len__(self) -> int:
        return len(self._listening)
