"""RFC 4733 events become one DigitStarted and one DigitEnded per key press; a dial string
becomes the event packets of one key press after another."""

import random
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.rtp.packet import RtpPacket
from bridge.rtp.sender import SendStream
from bridge.rtp.stream import ReceiveStatus, ReceiveStream
from bridge.rtp.telephone_event import (
    END_REPEATS,
    EVENT_CHARACTERS,
    GAP_FRAMES,
    PAUSE_FRAMES,
    TONE_FRAMES,
    DigitEnded,
    DigitSender,
    DigitStarted,
    EventFrame,
    TelephoneEvent,
    TelephoneEventParseError,
    TelephoneEventReceiver,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rtp"
# Debian's sip-tester ships one RFC 2833 capture per key, all from one call.
SIPP_PCAPS = Path("/usr/share/sip-tester")
PCAP_DIGITS = {**{f"dtmf_2833_{d}.pcap": d for d in "0123456789"},
               "dtmf_2833_star.pcap": "*", "dtmf_2833_pound.pcap": "#"}
needs_sipp_pcaps = pytest.mark.skipif(
    not SIPP_PCAPS.is_dir(), reason="the sip-tester package (make system-packages) is missing"
)


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def udp_payloads(pcap: Path) -> list[tuple[float, bytes]]:
    """Return (capture time, UDP payload) of each IPv4/UDP frame of an Ethernet pcap."""
    data = pcap.read_bytes()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    assert linktype == 1, "Ethernet captures only"
    frames = []
    offset = 24
    while offset < len(data):
        seconds, micros, captured, _ = struct.unpack_from(endian + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:  # IPv4, UDP
            continue
        udp_at = 14 + (frame[14] & 0x0F) * 4
        frames.append((seconds + micros / 1e6, frame[udp_at + 8 :]))
    return frames


def digits_of(packets: list[bytes]) -> list[DigitStarted | DigitEnded]:
    receiver = TelephoneEventReceiver()
    events = []
    for data in packets:
        packet = RtpPacket.parse(data)
        event = receiver.receive(packet.payload, packet.timestamp, packet.marker)
        if event is not None:
            events.append(event)
    return events


def packet(event: int, end: bool, duration: int, timestamp: int, marker: bool = False) -> bytes:
    return bytes(
        RtpPacket(101, 1, timestamp, 1, bytes(TelephoneEvent(event, end, 10, duration)), marker)
    )


def test_event_characters_follow_rfc_4733() -> None:
    assert "".join(EVENT_CHARACTERS[code] for code in range(17)) == "0123456789*#ABCDX"


def test_end_packet_from_sipp_parses_and_round_trips() -> None:
    rtp = RtpPacket.parse(load("telephone_event_5_end.bin"))
    assert rtp.payload_type == 101
    event = TelephoneEvent.parse(rtp.payload)
    assert event == TelephoneEvent(event=5, end=True, volume=10, duration=2240)
    assert bytes(event) == rtp.payload


def test_truncated_event_payload_is_rejected_and_ignored() -> None:
    rtp = RtpPacket.parse(load("telephone_event_5_end_truncated.bin"))
    with pytest.raises(TelephoneEventParseError) as error:
        TelephoneEvent.parse(rtp.payload)
    assert str(error.value) == "telephone event payload is shorter than 4 bytes"
    assert TelephoneEventReceiver().receive(rtp.payload, rtp.timestamp, rtp.marker) is None


def test_reserved_bit_is_ignored() -> None:
    assert TelephoneEvent.parse(b"\x05\x4a\x00\xa0") == TelephoneEvent(5, False, 10, 160)


@needs_sipp_pcaps
@pytest.mark.parametrize(("name", "digit"), PCAP_DIGITS.items())
def test_sipp_capture_gives_one_digit(name: str, digit: str) -> None:
    packets = [data for _, data in udp_payloads(SIPP_PCAPS / name)]
    timestamp = RtpPacket.parse(packets[0]).timestamp
    # 7 updates, then the end packet three times (RFC 4733 §2.5.1.4).
    assert digits_of(packets) == [
        DigitStarted(digit, timestamp),
        DigitEnded(digit, 2240, timestamp),
    ]


@needs_sipp_pcaps
def test_sipp_call_through_stream_and_receiver() -> None:
    """Keys 1-9, * and # were captured from one call: each key once, in time order.

    (The capture of key 0 comes from another stream: its own SSRC sequence and timestamps.)
    """
    names = [name for name in PCAP_DIGITS if name != "dtmf_2833_0.pcap"]
    frames = sorted(frame for name in names for frame in udp_payloads(SIPP_PCAPS / name))
    stream = ReceiveStream(8000)
    receiver = TelephoneEventReceiver()
    started = []
    for arrival, data in frames:
        rtp = RtpPacket.parse(data)
        status = stream.receive(
            rtp.sequence_number, rtp.timestamp, rtp.ssrc, len(rtp.payload), arrival
        )
        if status in (ReceiveStatus.DUPLICATE, ReceiveStatus.OUT_OF_ORDER_TOO_OLD):
            continue
        event = receiver.receive(rtp.payload, rtp.timestamp, rtp.marker)
        if isinstance(event, DigitStarted):
            started.append(event.digit)
    assert "".join(started) == "123456789*#"
    stats = stream.statistics()
    # sipp repeats the end packet with the same sequence number: the stream drops two.
    assert stats.duplicates == 2 * 11
    assert stats.packets_received == 8 * 11
    assert stats.ssrc_changes == 0


@needs_sipp_pcaps
def test_lost_start_still_counts_the_digit_once() -> None:
    packets = [data for _, data in udp_payloads(SIPP_PCAPS / "dtmf_2833_7.pcap")]
    timestamp = RtpPacket.parse(packets[0]).timestamp
    assert digits_of(packets[-3:]) == [
        DigitStarted("7", timestamp),
        DigitEnded("7", 2240, timestamp),
    ]


def test_single_surviving_end_packet_starts_the_digit() -> None:
    assert digits_of([packet(3, True, 800, 5000)]) == [DigitStarted("3", 5000)]


def test_packets_of_an_older_event_are_ignored() -> None:
    events = digits_of(
        [
            packet(1, False, 160, 1000, marker=True),
            packet(1, True, 800, 1000),
            packet(2, False, 160, 3000, marker=True),
            packet(1, True, 800, 1000),  # a late retransmission of the first key
            packet(1, False, 160, 1000, marker=True),
        ]
    )
    assert events == [DigitStarted("1", 1000), DigitEnded("1", 800, 1000), DigitStarted("2", 3000)]


def test_marker_starts_a_new_event_even_if_timestamps_went_back() -> None:
    # A new SSRC after a transfer brings a new random timestamp base.
    events = digits_of([packet(1, True, 800, 900_000), packet(4, False, 160, 1000, marker=True)])
    assert events == [DigitStarted("1", 900_000), DigitStarted("4", 1000)]


def test_same_key_twice_is_two_digits() -> None:
    events = digits_of(
        [
            packet(9, False, 160, 1000, marker=True),
            packet(9, True, 480, 1000),
            packet(9, False, 160, 2000, marker=True),
            packet(9, True, 480, 2000),
        ]
    )
    assert [type(e).__name__ for e in events] == ["DigitStarted", "DigitEnded"] * 2


def test_non_dtmf_events_are_ignored() -> None:
    assert digits_of([packet(32, False, 160, 1000, marker=True)]) == []  # ANS tone (RFC 4734)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=8))
def test_any_payload_parses_or_raises_telephone_event_parse_error(data: bytes) -> None:
    try:
        event = TelephoneEvent.parse(data)
    except TelephoneEventParseError:
        return
    assert bytes(event) == bytes([data[0], data[1] & 0xBF]) + data[2:4]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 20), st.booleans(), st.sampled_from([1000, 2000, 3000]), st.booleans()
        ),
        max_size=30,
    )
)
def test_every_ended_digit_was_started_once(
    reports: list[tuple[int, bool, int, bool]],
) -> None:
    receiver = TelephoneEventReceiver()
    started: list[tuple[str, int]] = []
    ended: list[tuple[str, int]] = []
    for event, end, timestamp, marker in reports:
        result = receiver.receive(bytes(TelephoneEvent(event, end, 10, 160)), timestamp, marker)
        if isinstance(result, DigitStarted):
            started.append((result.digit, result.timestamp))
        elif isinstance(result, DigitEnded):
            assert started and started[-1] == (result.digit, result.timestamp)
            assert (result.digit, result.timestamp) not in ended[-1:]
            ended.append((result.digit, result.timestamp))


# -- sending ---------------------------------------------------------------------------

def _sent_events(sender: DigitSender) -> list[EventFrame | None]:
    frames = []
    while not sender.done:
        frames.append(sender.next_frame())
    return frames


def test_digit_sender_plays_each_digit_then_its_end_three_times_then_a_gap() -> None:
    frames = _sent_events(DigitSender("5#", 160))
    per_digit = TONE_FRAMES + END_REPEATS + GAP_FRAMES
    assert len(frames) == 2 * per_digit
    first = frames[:per_digit]
    assert [f.report.event for f in first[:TONE_FRAMES + END_REPEATS] if f] == [5] * 8
    assert [f.starts for f in first[:TONE_FRAMES] if f] == [True, False, False, False, False]
    assert [f.report.duration for f in first[:TONE_FRAMES] if f] == [160, 320, 480, 640, 800]
    ends = first[TONE_FRAMES:TONE_FRAMES + END_REPEATS]
    assert all(f is not None and f.report.end and f.report.duration == 800 for f in ends)
    assert first[TONE_FRAMES + END_REPEATS:] == [None] * GAP_FRAMES
    assert frames[per_digit] is not None and frames[per_digit].report.event == 11


def test_digit_sender_pauses_on_commas() -> None:
    frames = _sent_events(DigitSender(",1", 160))
    assert frames[:PAUSE_FRAMES] == [None] * PAUSE_FRAMES
    assert frames[PAUSE_FRAMES] is not None and frames[PAUSE_FRAMES].starts


def test_digit_sender_refuses_what_it_cannot_send() -> None:
    with pytest.raises(ValueError, match="'x'"):
        DigitSender("12x", 160)
    with pytest.raises(ValueError):
        DigitSender("1", 0)


def test_sent_digits_round_trip_through_the_receiver() -> None:
    """Our own receiver (which real phones' packets pin down) reads each digit once."""
    stream = SendStream(101, 8000, random.Random(4))
    sender = DigitSender("1*9#", 160)
    receiver = TelephoneEventReceiver()
    started = []
    while not sender.done:
        frame = sender.next_frame()
        if frame is None:
            stream.packet(b"\xff" * 160, 160)
            continue
        data = stream.event_packet(101, bytes(frame.report), 160, starts=frame.starts)
        packet = RtpPacket.parse(data)
        assert packet.marker == frame.starts
        event = receiver.receive(packet.payload, packet.timestamp, packet.marker)
        if isinstance(event, DigitStarted):
            started.append(event.digit)
    assert started == ["1", "*", "9", "#"]


def test_event_packets_share_the_start_timestamp_and_the_clock_moves_on() -> None:
    stream = SendStream(0, 8000, random.Random(5))
    first = RtpPacket.parse(stream.packet(b"\xff" * 160, 160))
    events = [
        RtpPacket.parse(stream.event_packet(101, b"\x01\x0a\x00\xa0", 160, starts=index == 0))
        for index in range(3)
    ]
    after = RtpPacket.parse(stream.packet(b"\xff" * 160, 160))
    assert {p.timestamp for p in events} == {(first.timestamp + 160) & 0xFFFFFFFF}
    assert [p.payload_type for p in events] == [101] * 3
    assert after.timestamp == (first.timestamp + 4 * 160) & 0xFFFFFFFF
    assert after.sequence_number == (first.sequence_number + 4) & 0xFFFF
    assert after.marker  # the audio after an event starts a new talk spurt


def test_digit_sender_keeps_its_timing_at_longer_packets() -> None:
    frames = _sent_events(DigitSender("1,", 320, frame_ms=40))
    tones = [f for f in frames if f is not None and not f.report.end]
    assert len(tones) == 3  # 100 ms in 40 ms frames, rounded up
    assert tones[-1].report.duration == 960
    assert frames.count(None) == 3 + 25  # the gap, then one second
