"""RTCP packets (RFC 3550 §6.4-6.6) as immutable values, compound parsing and our own report.

`parse_rtcp` applies the compound-packet validity checks of RFC 3550 §6.1 and Appendix A.2
and names each fault in `RtcpParseError`; every packet's `bytes()` mirrors its parse, so
a compound packet is `b"".join(map(bytes, packets))`. Types we do not interpret (APP,
feedback, XR) are kept whole as `RtcpUnknown`. Statistics come from `stream`/`sender`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from bridge.rtp.sender import SendStream
    from bridge.rtp.stream import ReceiveStream

RTCP_VERSION = 2
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1
# Seconds from the NTP era 0 epoch (1900-01-01) to the Unix epoch (RFC 5905 §6).
NTP_UNIX_OFFSET_S = 2_208_988_800

_HEADER = struct.Struct("!BBH")  # V/P/count, packet type, length in 32-bit words minus one
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!QIII")
_SSRC = struct.Struct("!I")


class RtcpParseError(ValueError):
    """Bytes that are not a valid (compound) RTCP packet."""


def ntp_from_unix(seconds: float) -> int:
    """Return the 64-bit NTP timestamp (RFC 3550 §4) of a time in seconds since 1970.

    RFC 3550 §6.4.1 allows a relative clock (such as a monotonic `now`) in place of
    wallclock time, as long as one sender uses one clock; round-trip times still work.
    """
    whole_s = math.floor(seconds)
    fraction = int((seconds - whole_s) * (1 << 32))
    return (((whole_s + NTP_UNIX_OFFSET_S) << 32) | fraction) & 0xFFFFFFFFFFFFFFFF


def ntp_middle32(ntp: int) -> int:
    """Return the middle 32 bits of a 64-bit NTP timestamp, as used by LSR (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def _header(count: int, packet_type: int, body_length: int) -> bytes:
    if not 0 <= count <= 31:
        raise ValueError("RTCP count field must be in 0..31")
    return _HEADER.pack(RTCP_VERSION << 6 | count, packet_type, body_length // 4)


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception statistics about one source (RFC 3550 §6.4.1); `dlsr` is in 1/65536 s."""

    SIZE: ClassVar[int] = _REPORT_BLOCK.size

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    extended_highest_seq: int
    jitter_ts: int
    lsr: int
    dlsr: int

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        """Parse the 24 octets at `offset`; the caller has checked the length."""
        ssrc, lost, highest, jitter_ts, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        cumulative_lost = lost & 0xFFFFFF
        if cumulative_lost & 0x800000:  # a signed 24-bit field: duplicates can make it negative
            cumulative_lost -= 1 << 24
        return cls(ssrc, lost >> 24, cumulative_lost, highest, jitter_ts, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = (self.fraction_lost & 0xFF) << 24 | (self.cumulative_lost & 0xFFFFFF)
        return _REPORT_BLOCK.pack(
            self.ssrc, lost, self.extended_highest_seq, self.jitter_ts, self.lsr, self.dlsr
        )


def _parse_report_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    return tuple(ReportBlock.parse(body, offset + i * ReportBlock.SIZE) for i in range(count))


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """The sender information section of an SR (RFC 3550 §6.4.1); counts are payload octets."""

    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    """SR (RFC 3550 §6.4.1); `extension` keeps profile-specific octets after the blocks."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    @classmethod
    def parse(cls, count: int, body: bytes) -> RtcpSenderReport:
        """Parse an SR body (after the common header, padding removed)."""
        blocks_at = _SSRC.size + _SENDER_INFO.size
        if len(body) < blocks_at + count * ReportBlock.SIZE:
            raise RtcpParseError("RTCP sender report length is invalid")
        (ssrc,) = _SSRC.unpack_from(body)
        ntp, rtp_timestamp, packet_count, octet_count = _SENDER_INFO.unpack_from(body, 4)
        return cls(
            ssrc,
            ntp,
            rtp_timestamp,
            packet_count,
            octet_count,
            _parse_report_blocks(body, blocks_at, count),
            body[blocks_at + count * ReportBlock.SIZE :],
        )

    def __bytes__(self) -> bytes:
        body = b"".join(
            [
                _SSRC.pack(self.ssrc),
                _SENDER_INFO.pack(
                    self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
                ),
                *map(bytes, self.reports),
                self.extension,
            ]
        )
        return _header(len(self.reports), RTCP_SR, len(body)) + body


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport:
    """RR (RFC 3550 §6.4.2); `extension` keeps profile-specific octets after the blocks."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    @classmethod
    def parse(cls, count: int, body: bytes) -> RtcpReceiverReport:
        """Parse an RR body (after the common header, padding removed)."""
        if len(body) < _SSRC.size + count * ReportBlock.SIZE:
            raise RtcpParseError("RTCP receiver report length is invalid")
        (ssrc,) = _SSRC.unpack_from(body)
        end = _SSRC.size + count * ReportBlock.SIZE
        return cls(ssrc, _parse_report_blocks(body, _SSRC.size, count), body[end:])

    def __bytes__(self) -> bytes:
        body = b"".join([_SSRC.pack(self.ssrc), *map(bytes, self.reports), self.extension])
        return _header(len(self.reports), RTCP_RR, len(body)) + body


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item (RFC 3550 §6.5): type (1 = CNAME) and up to 255 octets of UTF-8."""

    item_type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The SDES items describing one source."""

    ssrc: int
    items: tuple[SdesItem, ...]

    @property
    def cname(self) -> str | None:
        """Return the CNAME (RFC 3550 §6.5.1), the source's persistent name, if present."""
        for item in self.items:
            if item.item_type == SDES_CNAME:
                return item.value.decode("utf-8", errors="replace")
        return None

    def __bytes__(self) -> bytes:
        parts = [_SSRC.pack(self.ssrc)]
        for item in self.items:
            if len(item.value) > 255:
                raise ValueError("RTCP SDES item is longer than 255 octets")
            parts.append(bytes((item.item_type, len(item.value))) + item.value)
        length = sum(map(len, parts))
        # At least one null octet ends the item list, then nulls up to a 32-bit boundary.
        parts.append(bytes(4 - length % 4))
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class RtcpSdes:
    """SDES (RFC 3550 §6.5)."""

    chunks: tuple[SdesChunk, ...]

    @classmethod
    def parse(cls, count: int, body: bytes) -> RtcpSdes:
        """Parse an SDES body; octets after the last of `count` chunks are ignored."""
        chunks = []
        offset = 0
        for _ in range(count):
            if offset + _SSRC.size > len(body):
                raise RtcpParseError("RTCP SDES chunk is truncated")
            (ssrc,) = _SSRC.unpack_from(body, offset)
            offset += _SSRC.size
            items = []
            while True:
                if offset >= len(body):
                    raise RtcpParseError("RTCP SDES chunk is not terminated")
                item_type = body[offset]
                if item_type == 0:
                    offset = (offset + 4) & ~3  # the null octet and the padding after it
                    break
                if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                    raise RtcpParseError("RTCP SDES item is truncated")
                end = offset + 2 + body[offset + 1]
                items.append(SdesItem(item_type, body[offset + 2 : end]))
                offset = end
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def __bytes__(self) -> bytes:
        body = b"".join(map(bytes, self.chunks))
        return _header(len(self.chunks), RTCP_SDES, len(body)) + body


@dataclass(frozen=True, slots=True)
class RtcpBye:
    """BYE (RFC 3550 §6.6): the sources leaving, and an optional reason."""

    sources: tuple[int, ...]
    reason: bytes | None = None

    @classmethod
    def parse(cls, count: int, body: bytes) -> RtcpBye:
        """Parse a BYE body; octets after the reason are padding and ignored."""
        end = 4 * count
        if len(body) < end:
            raise RtcpParseError("RTCP BYE length is invalid")
        sources = struct.unpack_from(f"!{count}I", body)
        reason = None
        if len(body) > end:
            reason_end = end + 1 + body[end]
            if len(body) < reason_end:
                raise RtcpParseError("RTCP BYE reason is truncated")
            reason = body[end + 1 : reason_end]
        return cls(sources, reason)

    def __bytes__(self) -> bytes:
        body = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise ValueError("RTCP BYE reason is longer than 255 octets")
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + bytes(-len(reason) % 4)
        return _header(len(self.sources), RTCP_BYE, len(body)) + body


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """A packet type we do not interpret (APP, RTPFB, PSFB, XR...), kept as received."""

    packet_type: int
    count: int
    body: bytes

    def __bytes__(self) -> bytes:
        if len(self.body) % 4:
            raise ValueError("RTCP packet body must be a multiple of 4 bytes")
        return _header(self.count, self.packet_type, len(self.body)) + self.body


AnyRtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpUnknown


def parse_rtcp(data: bytes) -> list[AnyRtcpPacket]:
    """Parse a compound RTCP packet (RFC 3550 §6.1, A.2), raising `RtcpParseError`.

    Padding is removed from the packet that carries it, so such packets round-trip
    without it.
    """
    if not data:
        raise RtcpParseError("RTCP packet is empty")
    packets: list[AnyRtcpPacket] = []
    offset = 0
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            raise RtcpParseError("RTCP packet header is truncated")
        first, packet_type, length_words = _HEADER.unpack_from(data, offset)
        if first >> 6 != RTCP_VERSION:
            raise RtcpParseError("RTCP packet has invalid version")
        if offset == 0 and packet_type not in (RTCP_SR, RTCP_RR):
            raise RtcpParseError("RTCP compound packet does not start with SR or RR")
        end = offset + 4 * (length_words + 1)
        if end > len(data):
            raise RtcpParseError("RTCP packet is truncated")
        body_end = end
        if first & 0x20:
            # A.2: only the last packet of a compound packet may be padded.
            if end != len(data):
                raise RtcpParseError("RTCP padding is only allowed in the last packet")
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - _HEADER.size:
                raise RtcpParseError("RTCP padding length is invalid")
            body_end -= padding
        body = data[offset + _HEADER.size : body_end]
        count = first & 0x1F
        if packet_type == RTCP_SR:
            packets.append(RtcpSenderReport.parse(count, body))
        elif packet_type == RTCP_RR:
            packets.append(RtcpReceiverReport.parse(count, body))
        elif packet_type == RTCP_SDES:
            packets.append(RtcpSdes.parse(count, body))
        elif packet_type == RTCP_BYE:
            packets.append(RtcpBye.parse(count, body))
        else:
            packets.append(RtcpUnknown(packet_type, count, body))
        offset = end
    return packets


def build_report(sender: SendStream, receiver: ReceiveStream | None, now: float) -> bytes:
    """Return our compound report: SR (or RR if we sent nothing lately) + SDES CNAME.

    RFC 3550 §6.4: an SR if we sent media since the report before last, else an RR; one
    report block about the member's stream once it has sent anything; §6.1: every compound
    packet carries our CNAME. The NTP clock is `now` (a relative clock, §6.4.1), which is
    also the clock `ReceiveStream` measures DLSR with. Servers send on a fixed interval
    (5 s in the controller) rather than the §6.3.1 rule, which only matters for large
    multicast sessions.
    """
    block = receiver.report_block(now) if receiver is not None else None
    reports = (block,) if block is not None else ()
    report: RtcpSenderReport | RtcpReceiverReport
    if sender.we_sent:
        info = sender.sender_info(ntp_from_unix(now))
        report = RtcpSenderReport(
            sender.ssrc,
            info.ntp_timestamp,
            info.rtp_timestamp,
            info.packet_count,
            info.octet_count,
            reports,
        )
    else:
        report = RtcpReceiverReport(sender.ssrc, reports)
    sender.on_report_sent()
    cname = SdesItem(SDES_CNAME, sender.cname.encode())
    return bytes(report) + bytes(RtcpSdes((SdesChunk(sender.ssrc, (cname,)),)))
