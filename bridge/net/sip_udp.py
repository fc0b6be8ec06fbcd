"""SIP over UDP: one DatagramProtocol per listen address."""

from __future__ import annotations

import logging
from collections.abc import Callable

from twisted.internet.interfaces import IListeningPort, IReactorUDP
from twisted.internet.protocol import DatagramProtocol

from bridge.sip.flow import Flow
from bridge.sip.parser import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

# Read whole datagrams: a UDP payload can reach 65,507 bytes over IPv4 (RFC 768, RFC 791)
# and the parser takes up to MAX_MESSAGE_BYTES, but Twisted reads only 8192 bytes unless
# told otherwise and silently drops the rest, so a longer INVITE (a large SDP, a long
# Route set) would arrive cut off and be refused as malformed.
MAX_DATAGRAM_BYTES = MAX_MESSAGE_BYTES


class SipUdpProtocol(DatagramProtocol):
    """Hand every datagram to `on_datagram` with the flow it came on."""

    def __init__(self, host: str, port: int, on_datagram: Callable[[bytes, Flow], None]) -> None:
        self.host = host
        self.port = port
        self._on_datagram = on_datagram

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:  # noqa: N802
        self._on_datagram(datagram, Flow("udp", self.host, self.port, addr[0], addr[1]))

    def send(self, data: bytes, flow: Flow) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, flow.remote)
        except OSError as exc:  # e.g. EHOSTUNREACH: one peer's trouble is not ours
            log.info("sip: cannot send to %s:%d over udp: %s", *flow.remote, exc)


def listen_sip_udp(reactor: IReactorUDP, protocol: SipUdpProtocol) -> IListeningPort:
    """Bind the protocol's address, reading datagrams of up to MAX_DATAGRAM_BYTES whole."""
    return reactor.listenUDP(
        protocol.port, protocol, interface=protocol.host, maxPacketSize=MAX_DATAGRAM_BYTES
    )
