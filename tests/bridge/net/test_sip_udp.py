"""SIP over UDP: the listening socket reads whole datagrams, however large SIP allows."""

from __future__ import annotations

from twisted.internet.protocol import DatagramProtocol

from bridge.net.sip_udp import MAX_DATAGRAM_BYTES, SipUdpProtocol, listen_sip_udp
from bridge.sip.parser import MAX_MESSAGE_BYTES

# The largest UDP payload over IPv4: 65,535 minus the IPv4 (20) and UDP (8) headers.
LARGEST_IPV4_UDP_PAYLOAD_BYTES = 65_507
TWISTED_DEFAULT_MAX_PACKET_SIZE = 8192


class RecordingUdpReactor:
    """Records listenUDP calls the way Twisted's reactor receives them."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, DatagramProtocol, str, int]] = []

    def listenUDP(  # noqa: N802 - Twisted's IReactorUDP method name
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "",
        maxPacketSize: int = TWISTED_DEFAULT_MAX_PACKET_SIZE,  # noqa: N803
    ) -> object:
        self.calls.append((port, protocol, interface, maxPacketSize))
        return object()


def test_listen_reads_the_largest_ipv4_udp_payload_whole() -> None:
    reactor = RecordingUdpReactor()
    protocol = SipUdpProtocol("127.0.0.1", 5060, lambda data, flow: None)
    listen_sip_udp(reactor, protocol)  # type: ignore[arg-type]
    assert len(reactor.calls) == 1
    port, listening_protocol, interface, max_packet_size = reactor.calls[0]
    assert (port, listening_protocol, interface) == (5060, protocol, "127.0.0.1")
    assert max_packet_size >= LARGEST_IPV4_UDP_PAYLOAD_BYTES
    assert max_packet_size == MAX_DATAGRAM_BYTES == MAX_MESSAGE_BYTES

