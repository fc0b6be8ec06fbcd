"""Session descriptions (RFC 8866, which replaced RFC 4566) as data: parse one, print one.

This module owns the shape of an SDP body and how it prints; `offer_answer` owns what we
offer and answer. It knows nothing of dialogs, RTP packets or rooms. Parsing is tolerant
where real peers differ harmlessly (LF line ends, trailing blanks, lines out of order, unknown
lines and attributes, which are kept and printed back) and strict where a mistake would send
media to the wrong place or in the wrong format: the m= line, ports, RTP payload types, and
the rtpmap and rtcp attributes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from bridge.sip.errors import SipParseError

SDP_VERSION = 0
CRLF = "\r\n"

# RFC 8866 §9: token = 1*(token-char); used for attribute names and b= types.
_TOKEN = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+$", re.ASCII)
# Numbers in o=, t= and b= lines. 40 digits is twice what any peer sends (64-bit ids) and
# keeps int() far from Python's limit on digit strings.
_NUMBER = re.compile(r"^[0-9]{1,40}$", re.ASCII)
_LINE = re.compile(r"^([a-z])=(.*)$", re.ASCII | re.DOTALL)
# m=<media> <port>[/<number of ports>] <proto> <fmt> ...
_PORT = re.compile(r"^([0-9]{1,5})(?:/([0-9]{1,5}))?$", re.ASCII)
# a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
_RTPMAP = re.compile(r"^([0-9]{1,3})\s+([^\s/]+)/([0-9]{1,9})(?:/([0-9]{1,3}))?$", re.ASCII)
# a=rtcp:<port> [<nettype> <addrtype> <connection-address>]  (RFC 3605 §2.1)
_RTCP = re.compile(r"^([0-9]{1,5})(?:\s+\S+\s+\S+\s+\S+)?$", re.ASCII)
_BANDWIDTH = re.compile(r"^([^:\s]+):([0-9]{1,40})$", re.ASCII)

MAX_PORT = 65_535
MAX_PAYLOAD_TYPE = 127  # the RTP header's PT field is 7 bits (RFC 3550 §5.1)

# Where each line type goes when printed (RFC 8866 §5): session, then media descriptions.
_SESSION_ORDER = "vosiuepcbtzka"
_MEDIA_ORDER = "micbka"
# Lines that only make sense once per session; seeing one inside a media section means the
# body is not SDP as we understand it.
_SESSION_ONLY = "vost"

Attribute = tuple[str, str | None]
"""An a= line: its name and its value (None for a property attribute such as a=sendrecv)."""


class SdpParseError(SipParseError):
    """An SDP body we cannot use (RFC 8866 §5); the INVITE is answered with `status_hint`."""


class Direction(enum.Enum):
    """The media direction attributes (RFC 8866 §6.7, RFC 3264 §5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def from_flags(cls, sends: bool, receives: bool) -> Direction:
        """Return the direction that sends and receives as asked."""
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reversed(self) -> Direction:
        """Return the direction the other end sees: sendonly answers recvonly (RFC 3264 §6.1)."""
        return Direction.from_flags(sends=self.receives, receives=self.sends)


@dataclass(frozen=True, slots=True)
class Origin:
    """The o= line (RFC 8866 §5.2): who made the session and which version of it this is."""

    username: str
    session_id: int
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """A c= line (RFC 8866 §5.7); `address` keeps any multicast /ttl/count suffix."""

    nettype: str
    addrtype: str
    address: str

    @property
    def host(self) -> str:
        """Return the address without the multicast TTL and address count."""
        return self.address.split("/", 1)[0]

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """A b= line (RFC 8866 §5.8): kbit/s for CT and AS, bit/s for TIAS (RFC 3890)."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(frozen=True, slots=True)
class Timing:
    """A t= line and the r= lines after it (RFC 8866 §5.9, §5.10); r= values are kept raw."""

    start_time: int = 0
    stop_time: int = 0
    repeat_times: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RtpMap:
    """What a payload type carries (a=rtpmap, RFC 8866 §6.6, or RFC 3551's static table)."""

    encoding_name: str
    clock_rate_hz: int
    channels: int = 1

    def __str__(self) -> str:
        text = f"{self.encoding_name}/{self.clock_rate_hz}"
        return text if self.channels == 1 else f"{text}/{self.channels}"


# RFC 3551 §6, Tables 4 and 5: payload types that mean the same codec without an a=rtpmap.
# G.722's RTP clock is 8000 although it samples at 16000 (RFC 3551 §4.5.2).
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap("PCMU", 8000),
    3: RtpMap("GSM", 8000),
    4: RtpMap("G723", 8000),
    5: RtpMap("DVI4", 8000),
    6: RtpMap("DVI4", 16000),
    7: RtpMap("LPC", 8000),
    8: RtpMap("PCMA", 8000),
    9: RtpMap("G722", 8000),
    10: RtpMap("L16", 44100, 2),
    11: RtpMap("L16", 44100),
    12: RtpMap("QCELP", 8000),
    13: RtpMap("CN", 8000),
    14: RtpMap("MPA", 90000),
    15: RtpMap("G728", 8000),
    16: RtpMap("DVI4", 11025),
    17: RtpMap("DVI4", 22050),
    18: RtpMap("G729", 8000),
    25: RtpMap("CelB", 90000),
    26: RtpMap("JPEG", 90000),
    28: RtpMap("nv", 90000),
    31: RtpMap("H261", 90000),
    32: RtpMap("MPV", 90000),
    33: RtpMap("MP2T", 90000),
    34: RtpMap("H263", 90000),
}


def _clip(text: str) -> str:
    """Keep error messages short whatever the peer sent."""
    return repr(text[:60])


def parse_rtpmap(value: str) -> tuple[int, RtpMap]:
    """Parse an a=rtpmap value such as `101 telephone-event/8000` (RFC 8866 §6.6)."""
    match = _RTPMAP.match(value.strip())
    if match is None:
        raise SdpParseError(f"invalid rtpmap: {_clip(value)}")
    payload_type, clock_rate_hz = int(match[1]), int(match[3])
    channels = int(match[4]) if match[4] is not None else 1
    if payload_type > MAX_PAYLOAD_TYPE:
        raise SdpParseError(f"invalid payload type in rtpmap: {_clip(value)}")
    if clock_rate_hz == 0 or channels == 0:
        raise SdpParseError(f"invalid rtpmap: {_clip(value)}")
    return payload_type, RtpMap(match[2], clock_rate_hz, channels)


def _parse_rtcp_port(value: str) -> int:
    """Return the port of an a=rtcp value (RFC 3605 §2.1)."""
    match = _RTCP.match(value.strip())
    if match is None or int(match[1]) > MAX_PORT:
        raise SdpParseError(f"invalid rtcp attribute: {_clip(value)}")
    return int(match[1])


def _parse_milliseconds(value: str | None) -> int | None:
    """Read a=ptime or a=maxptime; they are hints, so nonsense counts as absent.

    Some phones write `20.0`; a value that is not a positive number is ignored.
    """
    if value is None:
        return None
    try:
        milliseconds = round(float(value.strip()))
    except (ValueError, OverflowError):
        return None
    return milliseconds if milliseconds > 0 else None


def _first_value(attributes: list[Attribute], name: str) -> str | None:
    for attribute_name, value in attributes:
        if attribute_name.lower() == name:
            return value
    return None


def _direction_in(attributes: list[Attribute]) -> Direction | None:
    for name, value in attributes:
        if value is None:
            try:
                return Direction(name.lower())
            except ValueError:
                continue
    return None


def _attribute_line(attribute: Attribute) -> str:
    name, value = attribute
    return f"a={name}" if value is None else f"a={name}:{value}"


def _ordered(lines: list[tuple[str, str]], order: str) -> Iterator[str]:
    """Yield the lines of (type, line) pairs sorted by type into `order`.

    The sort is stable, so lines of one type keep their order; unknown types go last.
    """
    ranks = {kind: rank for rank, kind in enumerate(order)}
    for _, line in sorted(lines, key=lambda pair: ranks.get(pair[0], len(order))):
        yield line


def _other(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(kind, f"{kind}={value}") for kind, value in lines]


@dataclass(slots=True, kw_only=True)
class MediaDescription:
    """One m= section (RFC 8866 §5.14) with its c=, b= and a= lines.

    `other_lines` keeps every other line (i=, k=, unknown types) as (type, value) so that
    the section prints back whole.
    """

    media: str
    port: int
    port_count: int | None = None
    proto: str
    formats: list[str]
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_rtp(self) -> bool:
        """Whether the formats are RTP payload types (RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/...)."""
        return "RTP/" in self.proto.upper()

    def attribute(self, name: str) -> str | None:
        """Return the value of the first a=`name` line, or None."""
        return _first_value(self.attributes, name)

    def rtpmaps(self) -> dict[int, RtpMap]:
        """Map each offered payload type to its codec, in the m= line's order.

        An a=rtpmap wins; without one, RFC 3551's static table applies (0 is PCMU/8000).
        Dynamic payload types without an a=rtpmap are left out: nobody can know them.
        """
        if not self.is_rtp:
            return {}
        declared: dict[int, RtpMap] = {}
        for name, value in self.attributes:
            if name.lower() == "rtpmap" and value is not None:
                payload_type, rtpmap = parse_rtpmap(value)
                declared.setdefault(payload_type, rtpmap)
        mapped: dict[int, RtpMap] = {}
        for fmt in self.formats:
            payload_type = _payload_type(fmt)
            known = declared.get(payload_type) or STATIC_PAYLOAD_TYPES.get(payload_type)
            if known is not None:
                mapped.setdefault(payload_type, known)
        return mapped

    def fmtp(self, payload_type: int) -> str | None:
        """Return the format parameters of a=fmtp:`payload_type` (RFC 8866 §6.15), or None."""
        for name, value in self.attributes:
            if name.lower() == "fmtp" and value is not None:
                fmt, _, parameters = value.strip().partition(" ")
                if fmt == str(payload_type):
                    return parameters.strip()
        return None

    @property
    def ptime_ms(self) -> int | None:
        """The packet time the peer wants to receive (a=ptime, RFC 8866 §6.4)."""
        return _parse_milliseconds(self.attribute("ptime"))

    @property
    def maxptime_ms(self) -> int | None:
        """The longest packet time the peer accepts (a=maxptime, RFC 8866 §6.5)."""
        return _parse_milliseconds(self.attribute("maxptime"))

    @property
    def rtcp_port(self) -> int:
        """Where RTCP goes: a=rtcp when given (RFC 3605), else the RTP port + 1 (RFC 3550 §11)."""
        value = self.attribute("rtcp")
        return self.port + 1 if value is None else _parse_rtcp_port(value)

    def direction(self, session: SessionDescription) -> Direction:
        """Return this stream's direction: its own attribute, else the session's, else sendrecv.

        RFC 8866 §6.7: a session-level direction is the default for every media section.
        """
        return (
            _direction_in(self.attributes)
            or _direction_in(session.attributes)
            or Direction.SENDRECV
        )

    def connection_address(self, session: SessionDescription) -> str | None:
        """Return where this stream's media goes: its own c=, else the session's (RFC 8866 §5.7)."""
        connection = self.connection or session.connection
        return connection.host if connection is not None else None

    def lines(self) -> Iterator[str]:
        """Yield this section's lines in RFC 8866 order, without line ends."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        typed = [("m", "m=" + " ".join([self.media, port, self.proto, *self.formats]))]
        if self.connection is not None:
            typed.append(("c", f"c={self.connection}"))
        typed += [("b", f"b={bandwidth}") for bandwidth in self.bandwidths]
        typed += [("a", _attribute_line(attribute)) for attribute in self.attributes]
        yield from _ordered(typed + _other(self.other_lines), _MEDIA_ORDER)


@dataclass(slots=True, kw_only=True)
class SessionDescription:
    """A whole SDP body (RFC 8866 §5): session-level lines, then the media descriptions.

    `other_lines` keeps i=, u=, e=, p=, z=, k= and unknown session-level lines as
    (type, value), printed back in their RFC 8866 place.
    """

    version: int = SDP_VERSION
    origin: Origin
    session_name: str
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timing: list[Timing] = field(default_factory=lambda: [Timing()])
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body; raise SdpParseError with a message of its own for each fault."""
        return _Parser(data).parse()

    def attribute(self, name: str) -> str | None:
        """Return the value of the first session-level a=`name` line, or None."""
        return _first_value(self.attributes, name)

    def lines(self) -> Iterator[str]:
        """Yield every line in RFC 8866 order, without line ends."""
        typed = [
            ("v", f"v={self.version}"),
            ("o", f"o={self.origin}"),
            ("s", f"s={self.session_name}"),
        ]
        if self.connection is not None:
            typed.append(("c", f"c={self.connection}"))
        typed += [("b", f"b={bandwidth}") for bandwidth in self.bandwidths]
        for timing in self.timing:
            typed.append(("t", f"t={timing.start_time} {timing.stop_time}"))
            # r= lines belong to the t= before them, so they sort as "t" to stay with it.
            typed += [("t", f"r={repeat}") for repeat in timing.repeat_times]
        typed += [("a", _attribute_line(attribute)) for attribute in self.attributes]
        yield from _ordered(typed + _other(self.other_lines), _SESSION_ORDER)
        for media in self.media:
            yield from media.lines()

    def __str__(self) -> str:
        return "".join(line + CRLF for line in self.lines())

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")


def _payload_type(fmt: str) -> int:
    """Read an RTP format as a payload type, 0 to 127 (RFC 3551 §6)."""
    if not fmt.isascii() or not fmt.isdigit() or len(fmt) > 3 or int(fmt) > MAX_PAYLOAD_TYPE:
        raise SdpParseError(f"invalid RTP payload type in m= line: {_clip(fmt)}")
    return int(fmt)


def _parse_origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6 or not (_NUMBER.match(parts[1]) and _NUMBER.match(parts[2])):
        raise SdpParseError(f"invalid o= line: {_clip(value)}")
    return Origin(parts[0], int(parts[1]), int(parts[2]), parts[3], parts[4], parts[5])


def _parse_connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpParseError(f"invalid c= line: {_clip(value)}")
    return Connection(parts[0], parts[1], parts[2])


def _parse_bandwidth(value: str) -> Bandwidth:
    match = _BANDWIDTH.match(value.strip())
    if match is None or not _TOKEN.match(match[1]):
        raise SdpParseError(f"invalid b= line: {_clip(value)}")
    return Bandwidth(match[1], int(match[2]))


def _parse_timing(value: str) -> Timing:
    parts = value.split()
    if len(parts) != 2 or not all(_NUMBER.match(part) for part in parts):
        raise SdpParseError(f"invalid t= line: {_clip(value)}")
    return Timing(int(parts[0]), int(parts[1]))


def _parse_attribute(value: str) -> Attribute:
    name, colon, attribute_value = value.partition(":")
    if not _TOKEN.match(name):
        raise SdpParseError(f"invalid a= line: {_clip(value)}")
    return (name, attribute_value if colon else None)


def _parse_media(value: str) -> MediaDescription:
    """Parse an m= line (RFC 8866 §5.14) strictly: it decides where media goes and how."""
    parts = value.split()
    if len(parts) < 3 or not _TOKEN.match(parts[0]):
        raise SdpParseError(f"invalid m= line: {_clip(value)}")
    media, port_text, proto, formats = parts[0], parts[1], parts[2], parts[3:]
    match = _PORT.match(port_text)
    if match is None or int(match[1]) > MAX_PORT or (match[2] is not None and int(match[2]) == 0):
        raise SdpParseError(f"invalid port in m= line: {_clip(port_text)}")
    port = int(match[1])
    # A stream rejected with port 0 still needs a format (RFC 3264 §6), but an empty list
    # there harms nobody; anywhere else nothing could be sent.
    if not formats and port != 0:
        raise SdpParseError(f"m= line has no formats: {_clip(value)}")
    description = MediaDescription(
        media=media,
        port=port,
        port_count=int(match[2]) if match[2] is not None else None,
        proto=proto,
        formats=formats,
    )
    if description.is_rtp:
        for fmt in formats:
            _payload_type(fmt)
    return description


class _Parser:
    """One pass over the lines of one body."""

    def __init__(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise SdpParseError("SDP is not UTF-8") from None
        self._text = data

    def _lines(self) -> Iterator[tuple[str, str]]:
        """Yield (type, value) per non-empty line; CRLF or bare LF both end a line."""
        for raw in self._text.split("\n"):
            line = raw[:-1] if raw.endswith("\r") else raw
            if "\r" in line or "\x00" in line:
                raise SdpParseError(f"control character in SDP line: {_clip(line)}")
            # Trailing blanks are an interop quirk (seen from Asterisk 11); values never end in one.
            line = line.rstrip(" \t")
            if not line:
                continue
            match = _LINE.match(line)
            if match is None:
                raise SdpParseError(f"invalid SDP line: {_clip(line)}")
            yield match[1], match[2]

    def parse(self) -> SessionDescription:
        lines = self._lines()
        first = next(lines, None)
        if first is None:
            raise SdpParseError("SDP is empty")
        if first[0] != "v":
            raise SdpParseError(f"SDP does not start with v=: {_clip(first[0] + '=' + first[1])}")
        if first[1].strip() != str(SDP_VERSION):
            raise SdpParseError(f"unsupported SDP version: {_clip(first[1])}")
        origin: Origin | None = None
        session_name: str | None = None
        connection: Connection | None = None
        bandwidths: list[Bandwidth] = []
        timing: list[Timing] = []
        attributes: list[Attribute] = []
        other_lines: list[tuple[str, str]] = []
        media: list[MediaDescription] = []
        for kind, value in lines:
            if kind == "m":
                media.append(_parse_media(value))
            elif media:
                self._add_media_line(media[-1], kind, value)
            elif kind == "v":
                raise SdpParseError("duplicate v= line")
            elif kind == "o":
                if origin is not None:
                    raise SdpParseError("duplicate o= line")
                origin = _parse_origin(value)
            elif kind == "s":
                if session_name is not None:
                    raise SdpParseError("duplicate s= line")
                session_name = value
            elif kind == "c":
                if connection is not None:
                    raise SdpParseError("duplicate c= line at session level")
                connection = _parse_connection(value)
            elif kind == "b":
                bandwidths.append(_parse_bandwidth(value))
            elif kind == "t":
                timing.append(_parse_timing(value))
            elif kind == "r":
                if not timing:
                    raise SdpParseError("r= line before any t= line")
                last = timing[-1]
                timing[-1] = Timing(last.start_time, last.stop_time, (*last.repeat_times, value))
            elif kind == "a":
                attributes.append(_parse_attribute(value))
            else:
                other_lines.append((kind, value))
        if origin is None:
            raise SdpParseError("missing o= line")
        if session_name is None:
            raise SdpParseError("missing s= line")
        if not timing:
            raise SdpParseError("missing t= line")
        return SessionDescription(
            origin=origin,
            session_name=session_name,
            connection=connection,
            bandwidths=bandwidths,
            timing=timing,
            attributes=attributes,
            media=media,
            other_lines=other_lines,
        )

    @staticmethod
    def _add_media_line(media: MediaDescription, kind: str, value: str) -> None:
        if kind in _SESSION_ONLY:
            raise SdpParseError(f"{kind}= line inside a media description")
        if kind == "c":
            if media.connection is not None:
                raise SdpParseError("duplicate c= line in a media description")
            media.connection = _parse_connection(value)
        elif kind == "b":
            media.bandwidths.append(_parse_bandwidth(value))
        elif kind == "a":
            attribute = _parse_attribute(value)
            name, attribute_value = attribute
            # What decides codecs and addresses is checked now, so that the views cannot fail.
            if attribute_value is not None:
                if name.lower() == "rtpmap" and media.is_rtp:
                    parse_rtpmap(attribute_value)
                elif name.lower() == "rtcp":
                    _parse_rtcp_port(attribute_value)
            media.attributes.append(attribute)
        else:
            media.other_lines.append((kind, value))
