"""bench/janus.py against the real Janus: the config loads, the API answers, RTP flows back."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.janus import LOOPBACK, JanusAudioBridge, JanusError, cpu_seconds
from bridge.rtp.packet import RtpPacket

pytestmark = pytest.mark.skipif(
    shutil.which("janus") is None, reason="needs janus (Debian package janus)"
)

ROOM = 42
RTP_PORTS = (41000, 41999)


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[JanusAudioBridge]:
    bridge = JanusAudioBridge(tmp_path, http_port=_free_tcp_port(), rtp_ports=RTP_PORTS)
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.stop()


@pytest.fixture
def phones() -> Iterator[list[socket.socket]]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for sock in sockets:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(5.0)
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_loads_only_the_audiobridge_and_the_http_transport(janus: JanusAudioBridge) -> None:
    log = janus.log_file.read_text()
    assert [line for line in log.splitlines() if line.startswith("Loading ")] == [
        "Loading plugin 'libjanus_audiobridge.so'...",
        "Loading transport plugin 'libjanus_http.so'...",
    ]


def test_member_gets_the_mix_from_its_janus_address_after_its_first_packet(
    janus: JanusAudioBridge, phones: list[socket.socket]
) -> None:
    janus.create_room(ROOM, sampling_rate=8000)
    addresses = janus.join_many(ROOM, [sock.getsockname()[1] for sock in phones])
    assert len(set(addresses)) == len(phones)
    assert all(ip == LOOPBACK and RTP_PORTS[0] <= port <= RTP_PORTS[1] for ip, port in addresses)
    first = RtpPacket(0, 1, 0, 7, bytes([0xFF] * 160), marker=True)
    phones[0].sendto(bytes(first), addresses[0])
    data, source = phones[0].recvfrom(2048)
    assert source == addresses[0]
    answer = RtpPacket.parse(data)
    assert (answer.payload_type, len(answer.payload)) == (0, 160)  # PCMU, 20 ms at 8 kHz


def test_refusals_are_errors(janus: JanusAudioBridge) -> None:
    janus.create_room(ROOM)
    with pytest.raises(JanusError, match="already exists"):
        janus.create_room(ROOM)
    with pytest.raises(JanusError, match="No such room"):
        janus.join_rtp(ROOM + 1, 40000)


def test_stop_ends_the_process_and_may_be_repeated(tmp_path: Path) -> None:
    janus = JanusAudioBridge(tmp_path, http_port=_free_tcp_port(), rtp_ports=RTP_PORTS)
    janus.start()
    assert janus.pid is not None
    assert cpu_seconds(janus.pid) >= 0.0
    janus.stop()
    janus.stop()
    assert not Path(f"/proc/{janus.pid}").exists()
