"""RTP packets parse and serialise symmetrically, and every malformed packet has its own error."""

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.rtp.packet import RtpExtension, RtpPacket, RtpParseError, is_rtcp, parse_fields

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rtp"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def header(first: int, second: int = 0, seq: int = 1, ts: int = 160, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", first, second, seq, ts, ssrc)


def test_pcmu_from_baresip_parses() -> None:
    packet = RtpPacket.parse(load("pcmu.bin"))
    assert packet.payload_type == 0
    assert packet.sequence_number == 24103
    assert packet.timestamp == 3253
    assert packet.ssrc == 0xBF25DA45
    assert packet.marker is True  # baresip marks the first packet of the call
    assert len(packet.payload) == 160
    assert packet.csrc == () and packet.extension is None and packet.padding == 0


def test_pcmu_round_trips() -> None:
    data = load("pcmu.bin")
    assert bytes(RtpPacket.parse(data)) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (load("pcmu_truncated.bin"), "RTP packet length is less than 12 bytes"),
        (load("pcmu_invalid.bin"), "RTP packet has invalid version"),
        (header(0x82) + b"\x00\x00\x00\x01", "RTP packet has truncated CSRC"),
        (header(0x90) + b"\xbe\xde", "RTP packet has truncated extension header"),
        (header(0x90) + b"\xbe\xde\x00\x02" + bytes(4), "RTP packet has truncated extension"),
        (header(0xA0), "RTP packet has padding flag but no padding"),
        (header(0xA0) + b"\xff\x00", "RTP packet padding length is zero"),
        (header(0xA0) + b"\xff\x03", "RTP packet padding is longer than the payload"),
    ],
)
def test_malformed_packet_is_rejected_with_its_own_message(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError) as error:
        RtpPacket.parse(data)
    assert str(error.value) == message


def test_csrc_and_extension_round_trip() -> None:
    data = (
        header(0x92, 0x80 | 96, seq=7, ts=99, ssrc=5)
        + struct.pack("!II", 11, 22)
        + b"\xbe\xde\x00\x01\x10\xaa\x00\x00"
        + b"opus"
    )
    packet = RtpPacket.parse(data)
    assert packet.csrc == (11, 22)
    assert packet.extension == RtpExtension(0xBEDE, b"\x10\xaa\x00\x00")
    assert packet.marker and packet.payload_type == 96
    assert packet.payload == b"opus"
    assert bytes(packet) == data


def test_padding_is_stripped_from_the_payload_and_restored() -> None:
    data = header(0xA0) + b"abcd" + b"\x00\x00\x00\x04"
    packet = RtpPacket.parse(data)
    assert packet.payload == b"abcd"
    assert packet.padding == 4
    assert bytes(packet) == data


def test_serialising_impossible_fields_raises() -> None:
    with pytest.raises(ValueError, match="at most 15 CSRC"):
        bytes(RtpPacket(0, 1, 2, 3, b"", csrc=tuple(range(16))))
    with pytest.raises(ValueError, match="payload type"):
        bytes(RtpPacket(128, 1, 2, 3, b""))
    with pytest.raises(ValueError, match="multiple of 4"):
        bytes(RtpPacket(0, 1, 2, 3, b"", extension=RtpExtension(1, b"abc")))


def test_is_rtcp_tells_muxed_rtcp_from_rtp() -> None:
    assert is_rtcp(load("rtcp_sr_baresip.bin"))
    assert not is_rtcp(load("pcmu.bin"))
    assert not is_rtcp(load("telephone_event_5_end.bin"))
    assert not is_rtcp(b"\x80")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_parse_or_raise_rtp_parse_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        return
    assert packet.payload in data


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        RtpPacket,
        payload_type=st.integers(0, 127),
        sequence_number=st.integers(0, 0xFFFF),
        timestamp=st.integers(0, 0xFFFFFFFF),
        ssrc=st.integers(0, 0xFFFFFFFF),
        payload=st.binary(max_size=40),
        marker=st.booleans(),
        csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
        extension=st.none()
        | st.builds(
            RtpExtension,
            st.integers(0, 0xFFFF),
            st.integers(0, 4).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
        ),
        padding=st.integers(0, 255),
    )
)
def test_generated_packets_round_trip(packet: RtpPacket) -> None:
    assert RtpPacket.parse(bytes(packet)) == packet


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 0xFF))
def test_parse_fields_reads_what_parse_reads_or_raises_the_same(tail: bytes, first: int) -> None:
    """The plain-header shortcut and the full parser agree on every input, plain or not."""
    data = bytes((first,)) + tail
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError as exc:
        with pytest.raises(RtpParseError, match=str(exc)):
            parse_fields(data)
        return
    assert parse_fields(data) == (packet.payload_type, packet.marker, packet.sequence_number,
                                  packet.timestamp, packet.ssrc, packet.payload)


def test_parse_fields_of_a_plain_packet_and_one_with_csrc() -> None:
    plain = RtpPacket(0, 7, 160, 0x1234, b"\xff" * 160, marker=True)
    assert parse_fields(bytes(plain)) == (0, True, 7, 160, 0x1234, b"\xff" * 160)
    mixed = RtpPacket(8, 8, 320, 0x1234, b"\xd5" * 160, csrc=(1, 2))
    assert parse_fields(bytes(mixed)) == (8, False, 8, 320, 0x1234, b"\xd5" * 160)
