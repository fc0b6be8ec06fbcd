"""RTP data packets (RFC 3550 §5.1, §5.3.1) as immutable values, and RTP/RTCP demultiplexing.

This module owns the wire format only: `RtpPacket.parse` checks every length before slicing
and names each fault; `bytes(packet)` is its mirror. It knows nothing of streams, codecs or
payload meaning (see `stream`, `telephone_event`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

RTP_VERSION = 2
RTP_HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
_EXTENSION_HEADER = struct.Struct("!HH")  # profile-defined bits, length in 32-bit words
# A plain header (version 2, no padding, extension or CSRC) after its first octet.
_PLAIN_HEADER_REST = struct.Struct("!BHII")
_PLAIN_FIRST_OCTET = RTP_VERSION << 6

# (payload type, marker, sequence number, timestamp, SSRC, payload)
RtpFields = tuple[int, bool, int, int, int, bytes]


class RtpParseError(ValueError):
    """Bytes that are not a valid RTP packet."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 §5.3.1): 16 profile-defined bits and whole 32-bit words."""

    profile: int
    data: bytes

    def __bytes__(self) -> bytes:
        if len(self.data) % 4:
            raise ValueError("RTP header extension data must be a multiple of 4 bytes")
        return _EXTENSION_HEADER.pack(self.profile, len(self.data) // 4) + self.data


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; `padding` counts the padding octets including the final count octet."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet (RFC 3550 §5.1), raising `RtpParseError` naming the fault."""
        if len(data) < RTP_HEADER.size:
            raise RtpParseError("RTP packet length is less than 12 bytes")
        first, second, sequence_number, timestamp, ssrc = RTP_HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError("RTP packet has invalid version")
        offset = RTP_HEADER.size
        csrc: tuple[int, ...] = ()
        csrc_count = first & 0x0F
        if csrc_count:
            end = offset + 4 * csrc_count
            if len(data) < end:
                raise RtpParseError("RTP packet has truncated CSRC")
            csrc = struct.unpack_from(f"!{csrc_count}I", data, offset)
            offset = end
        extension = None
        if first & 0x10:
            if len(data) < offset + _EXTENSION_HEADER.size:
                raise RtpParseError("RTP packet has truncated extension header")
            profile, length_words = _EXTENSION_HEADER.unpack_from(data, offset)
            offset += _EXTENSION_HEADER.size
            end = offset + 4 * length_words
            if len(data) < end:
                raise RtpParseError("RTP packet has truncated extension")
            extension = RtpExtension(profile, data[offset:end])
            offset = end
        padding = 0
        end = len(data)
        if first & 0x20:
            # RFC 3550 §5.1: the last octet counts the padding octets, itself included.
            if end == offset:
                raise RtpParseError("RTP packet has padding flag but no padding")
            padding = data[-1]
            if padding == 0:
                raise RtpParseError("RTP packet padding length is zero")
            if padding > end - offset:
                raise RtpParseError("RTP packet padding is longer than the payload")
            end -= padding
        # Positional arguments: this runs for every packet, and keywords cost a third more.
        return cls(
            second & 0x7F,
            sequence_number,
            timestamp,
            ssrc,
            data[offset:end],
            bool(second & 0x80),
            csrc,
            extension,
            padding,
        )

    def __bytes__(self) -> bytes:
        """Serialise the packet; padding octets are zeros followed by the count octet."""
        if len(self.csrc) > 15:
            raise ValueError("RTP packet carries at most 15 CSRC")
        if not 0 <= self.payload_type <= 127:
            raise ValueError("RTP payload type must be in 0..127")
        if not 0 <= self.padding <= 255:
            raise ValueError("RTP padding must be in 0..255")
        first = (
            RTP_VERSION << 6
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension is not None else 0)
            | len(self.csrc)
        )
        parts = [
            RTP_HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            parts.append(bytes(self.extension))
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def parse_fields(data: bytes) -> RtpFields:
    """Return the fields of one RTP packet that a receiver acts on, raising `RtpParseError`.

    What a phone sends is almost always a plain 12-byte header: that is read with one
    unpack and no packet object (this runs for every member 50 times a second); anything
    else goes through `RtpPacket.parse`, whose checks it shares.
    """
    if len(data) >= RTP_HEADER.size and data[0] == _PLAIN_FIRST_OCTET:
        second, sequence_number, timestamp, ssrc = _PLAIN_HEADER_REST.unpack_from(data, 1)
        return second & 0x7F, second >= 0x80, sequence_number, timestamp, ssrc, data[12:]
    packet = RtpPacket.parse(data)
    return (packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp,
            packet.ssrc, packet.payload)


@dataclass(frozen=True, slots=True)
class PlainHeaders:
    """The header fields of packets of one size read together, one array per field."""

    plain: NDArray[np.bool_]  # a plain 12-byte header: `parse_fields` reads it the same
    payload_type: NDArray[np.int64]
    sequence_number: NDArray[np.int64]
    timestamp: NDArray[np.int64]
    ssrc: NDArray[np.int64]
    payload: NDArray[np.uint8]  # (packets, packet size - 12): the bytes after the header


def parse_plain_many(data: bytes, packet_size: int) -> PlainHeaders:
    """Read `data`, packets of `packet_size` bytes one after another, as plain RTP packets.

    A sweep's packets from phones are nearly all plain and of one size (G.711 at 20 ms:
    172 bytes); reading them as one array costs less than one `parse_fields` each. Where
    `plain` is False the other fields mean nothing: that packet needs `parse_fields`.
    """
    if packet_size < RTP_HEADER.size or len(data) % packet_size:
        raise ValueError(f"{len(data)} bytes are not packets of {packet_size}")
    layout = np.dtype([("first", "u1"), ("second", "u1"), ("sequence_number", ">u2"),
                       ("timestamp", ">u4"), ("ssrc", ">u4"),
                       ("payload", "u1", (packet_size - RTP_HEADER.size,))])
    packets = np.frombuffer(data, layout)
    second = packets["second"]
    return PlainHeaders(
        plain=packets["first"] == _PLAIN_FIRST_OCTET,
        payload_type=(second & 0x7F).astype(np.int64),
        sequence_number=packets["sequence_number"].astype(np.int64),
        timestamp=packets["timestamp"].astype(np.int64),
        ssrc=packets["ssrc"].astype(np.int64),
        payload=packets["payload"],
    )


def is_rtcp(data: bytes) -> bool:
    """Return whether a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 §4).

    RTCP packet types 192..223 occupy the second octet where RTP has marker and payload
    type; RFC 5761 keeps RTP payload types 64..95 unused so that the ranges never overlap.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223
