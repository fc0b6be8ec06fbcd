"""RTCP compound packets parse, validate (RFC 3550 §6.1, A.2) and round-trip; our report."""

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.rtp.rtcp import (
    ReportBlock,
    RtcpBye,
    RtcpParseError,
    RtcpReceiverReport,
    RtcpSdes,
    RtcpSenderReport,
    RtcpUnknown,
    SdesChunk,
    SdesItem,
    build_report,
    ntp_from_unix,
    ntp_middle32,
    parse_rtcp,
)
from bridge.rtp.sender import SendStream
from bridge.rtp.stream import ReceiveStream

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rtp"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def rtcp(count: int, packet_type: int, body: bytes, padded: bool = False) -> bytes:
    first = 0x80 | (0x20 if padded else 0) | count
    return struct.pack("!BBH", first, packet_type, len(body) // 4) + body


NOT_SR_OR_RR = "RTCP compound packet does not start with SR or RR"
RR_EMPTY = rtcp(0, 201, struct.pack("!I", 0x42))  # an RR without blocks opens a compound


def test_baresip_sender_report_parses() -> None:
    sr, sdes = parse_rtcp(load("rtcp_sr_baresip.bin"))
    assert isinstance(sr, RtcpSenderReport)
    assert sr.ssrc == 0xBF25DA45
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (43213, 250, 40000)
    assert sr.reports == (
        ReportBlock(
            ssrc=0x52E6B438,
            fraction_lost=0,
            cumulative_lost=0,
            extended_highest_seq=42908,
            jitter_ts=14,
            lsr=0,
            dlsr=0,
        ),
    )
    assert isinstance(sdes, RtcpSdes)
    assert [chunk.cname for chunk in sdes.chunks] == ["sip:capture@127.0.0.1"]


def test_baresip_sender_report_round_trips() -> None:
    data = load("rtcp_sr_baresip.bin")
    assert b"".join(map(bytes, parse_rtcp(data))) == data


def test_bye_after_a_receiver_report_round_trips() -> None:
    # baresip sends its BYE as the first packet; after an RR it is a valid compound packet.
    bye_and_sdes = load("rtcp_bye_baresip.bin")
    data = RR_EMPTY + bye_and_sdes
    packets = parse_rtcp(data)
    assert packets[1] == RtcpBye((0xBF25DA45,), b"Adjo")
    assert b"".join(map(bytes, packets)) == data


def test_unknown_packet_types_are_kept_whole() -> None:
    data = RR_EMPTY + load("rtcp_app_pingpong_baresip.bin")
    packets = parse_rtcp(data)
    assert packets[1] == RtcpUnknown(204, 0, bytes.fromhex("bf25da4550494e47504f4e47"))
    assert b"".join(map(bytes, packets)) == data


def test_padding_on_the_last_packet_is_removed() -> None:
    data = RR_EMPTY + rtcp(1, 203, struct.pack("!I", 7) + b"\x00\x00\x00\x04", padded=True)
    assert parse_rtcp(data)[1] == RtcpBye((7,))


def test_negative_cumulative_loss_round_trips() -> None:
    block = ReportBlock(1, 0, -5, 70000, 3, 0xAABBCCDD, 65536)
    assert ReportBlock.parse(bytes(block)) == block
    assert bytes(block)[4:8] == b"\x00\xff\xff\xfb"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTCP packet is empty"),
        (load("rtcp_sr_baresip_truncated.bin"), "RTCP packet is truncated"),
        (load("rtcp_sr_baresip_invalid.bin"), "RTCP packet has invalid version"),
        # baresip opens with an APP "PINGPONG" alone and sends BYE first: not compound.
        (load("rtcp_app_pingpong_baresip.bin"), NOT_SR_OR_RR),
        (load("rtcp_bye_baresip.bin"), NOT_SR_OR_RR),
        (RR_EMPTY + b"\x81\xca", "RTCP packet header is truncated"),
        (rtcp(1, 200, bytes(28)), "RTCP sender report length is invalid"),
        (rtcp(1, 201, bytes(24)), "RTCP receiver report length is invalid"),
        (RR_EMPTY + rtcp(2, 202, bytes(8)), "RTCP SDES chunk is truncated"),
        (RR_EMPTY + rtcp(1, 202, bytes(4) + b"\x01\x09abcdef"), "RTCP SDES item is truncated"),
        (RR_EMPTY + rtcp(1, 202, bytes(4) + b"\x01\x02ab"), "RTCP SDES chunk is not terminated"),
        (RR_EMPTY + rtcp(2, 203, bytes(4)), "RTCP BYE length is invalid"),
        (RR_EMPTY + rtcp(1, 203, bytes(4) + b"\x09abc"), "RTCP BYE reason is truncated"),
        (
            rtcp(0, 201, bytes(4), padded=True) + RR_EMPTY,
            "RTCP padding is only allowed in the last packet",
        ),
        (rtcp(0, 201, bytes(7) + b"\x09", padded=True), "RTCP padding length is invalid"),
        (rtcp(0, 201, bytes(8), padded=True), "RTCP padding length is invalid"),
    ],
)
def test_malformed_compound_is_rejected_with_its_own_message(data: bytes, message: str) -> None:
    with pytest.raises(RtcpParseError) as error:
        parse_rtcp(data)
    assert str(error.value) == message


def test_ntp_from_unix() -> None:
    assert ntp_from_unix(0.0) == 2_208_988_800 << 32
    assert ntp_from_unix(1.5) == (2_208_988_801 << 32) | 0x80000000
    assert ntp_middle32(ntp_from_unix(1.5)) == (2_208_988_801 & 0xFFFF) << 16 | 0x8000


def test_receiver_report_round_trips_through_parse_rtcp() -> None:
    report = RtcpReceiverReport(
        0x11223344,
        (
            ReportBlock(0xBF25DA45, 12, 40, 65536 + 17, 80, 0x12345678, 0x00028000),
            ReportBlock(7, 0, -1, 1, 0, 0, 0),
        ),
    )
    sdes = RtcpSdes((SdesChunk(0x11223344, (SdesItem(1, b"telerapat"), SdesItem(2, b"x"))),))
    assert parse_rtcp(bytes(report) + bytes(sdes)) == [report, sdes]


def test_report_is_rr_until_we_send_then_sr_for_two_intervals() -> None:
    sender = SendStream(0, 8000, random.Random(1))
    first = parse_rtcp(build_report(sender, None, now=0.0))
    assert first == [
        RtcpReceiverReport(sender.ssrc),
        RtcpSdes((SdesChunk(sender.ssrc, (SdesItem(1, sender.cname.encode()),)),)),
    ]
    sender.packet(bytes(160), 160)
    kinds = [type(parse_rtcp(build_report(sender, None, now))[0]) for now in (5.0, 10.0, 15.0)]
    # RFC 3550 §6.4: an SR while we sent since the report before last.
    assert kinds == [RtcpSenderReport, RtcpSenderReport, RtcpReceiverReport]


def test_sender_report_carries_counts_and_a_block_about_the_member() -> None:
    sender = SendStream(0, 8000, random.Random(2))
    receiver = ReceiveStream(8000)
    for i in range(3):
        receiver.receive(100 + i, 1000 + 160 * i, 0xCAFE, 160, now=0.02 * i)
        sender.packet(bytes(160), 160)
    sr, sdes = parse_rtcp(build_report(sender, receiver, now=1.25))
    assert isinstance(sr, RtcpSenderReport)
    assert sr.ntp_timestamp == ntp_from_unix(1.25)
    assert (sr.packet_count, sr.octet_count) == (3, 480)
    assert [block.ssrc for block in sr.reports] == [0xCAFE]
    assert sr.reports[0].extended_highest_seq == 102
    assert isinstance(sdes, RtcpSdes) and sdes.chunks[0].cname == sender.cname


def test_lsr_and_dlsr_give_the_round_trip_time() -> None:
    """A sends an SR at 0 s, B holds it 0.75 s, A gets B's RR at 1 s: RTT 0.25 s (§6.4.1)."""
    a_sender = SendStream(0, 8000, random.Random(3))
    a_sender.packet(bytes(160), 160)
    b_sender = SendStream(0, 8000, random.Random(4))
    b_receiver = ReceiveStream(8000)
    b_receiver.receive(1, 0, a_sender.ssrc, 160, now=100.0)

    (sr, _) = parse_rtcp(build_report(a_sender, None, now=0.0))
    assert isinstance(sr, RtcpSenderReport)
    b_receiver.on_sender_report(sr.ntp_timestamp, now=100.125)  # B's clock is its own
    (rr, _) = parse_rtcp(build_report(b_sender, b_receiver, now=100.875))
    assert isinstance(rr, RtcpReceiverReport)
    block = rr.reports[0]
    assert block.lsr == ntp_middle32(sr.ntp_timestamp)
    assert block.dlsr == int(0.75 * 65536)
    round_trip = ntp_middle32(ntp_from_unix(1.0)) - block.lsr - block.dlsr
    assert round_trip == 65536 // 4


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_any_bytes_parse_or_raise_rtcp_parse_error(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except RtcpParseError:
        return
    assert packets


@st.composite
def framed_compounds(draw: st.DrawFn) -> bytes:
    """Compound packets whose headers are well formed but whose bodies are arbitrary."""
    count = draw(st.integers(0, 3))
    packet_type = draw(st.sampled_from([200, 201]))
    size = (24 if packet_type == 200 else 4) + 24 * count
    parts = [rtcp(count, packet_type, draw(st.binary(min_size=size, max_size=size)))]
    for _ in range(draw(st.integers(0, 3))):
        words = draw(st.integers(0, 12))
        parts.append(
            rtcp(
                draw(st.integers(0, 31)),
                draw(st.sampled_from([200, 201, 202, 203, 204, 206])),
                draw(st.binary(min_size=4 * words, max_size=4 * words)),
            )
        )
    return b"".join(parts)


@settings(max_examples=200, deadline=None)
@given(framed_compounds())
def test_framed_garbage_parses_or_raises_rtcp_parse_error(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except RtcpParseError:
        return
    for packet in packets:
        assert parse_rtcp(RR_EMPTY + bytes(packet))[1:] == [packet]
