"""SIP messages (RFC 3261 §7) as data: requests, responses, headers and header views.

This module owns the in-memory shape of a message and how it prints; `parser` owns how
bytes become one. Header names are kept in their canonical long form (compact forms such
as `v` and `i` are expanded on the way in); values are kept as received, one entry per
header line, and the views below (`Via`, `NameAddress`, `CSeq`) parse them on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from bridge.sip.errors import SipParseError
from bridge.sip.uri import SipUri, UriParams, format_params, parse_params, split_hostport

SIP_VERSION = "SIP/2.0"

# RFC 3261 §7.3.3 and later RFCs: compact form -> long form.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_WELL_KNOWN = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
    "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To",
    "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE", "Organization",
    "P-Asserted-Identity", "Priority", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By",
    "Reply-To", "Require", "Retry-After", "Route", "RSeq", "Server", "Session-Expires",
    "Subject", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via",
    "Warning", "WWW-Authenticate",
]
_CANONICAL: dict[str, str] = {name.lower(): name for name in _WELL_KNOWN}

# RFC 3261 §21 reason phrases for the codes this bridge sends.
REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 183: "Session Progress",
    200: "OK", 202: "Accepted",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "Version Not Supported", 513: "Message Too Large",
    603: "Decline",
}


def canonical_name(name: str) -> str:
    """Return a header name's canonical long form (`i` -> `Call-ID`, `cseq` -> `CSeq`)."""
    lowered = name.lower()
    if lowered in COMPACT_FORMS:
        return COMPACT_FORMS[lowered]
    if lowered in _CANONICAL:
        return _CANONICAL[lowered]
    return "-".join(part.capitalize() for part in name.split("-"))


def split_header_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes or angle brackets.

    RFC 3261 §7.3.1: `Via: a, b` is the same as two Via lines.
    """
    items: list[str] = []
    depth_angle = 0
    in_quote = False
    escaped = False
    start = 0
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif in_quote and char == "\\":
            escaped = True
        elif char == '"':
            in_quote = not in_quote
        elif not in_quote and char == "<":
            depth_angle += 1
        elif not in_quote and char == ">":
            depth_angle = max(0, depth_angle - 1)
        elif not in_quote and depth_angle == 0 and char == ",":
            items.append(value[start:i].strip())
            start = i + 1
    items.append(value[start:].strip())
    return [item for item in items if item]


class Headers:
    """An ordered multi-map of header lines; names compare case-insensitively."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in items]

    def get(self, name: str) -> str | None:
        """Return the first value of a header, or None."""
        key = canonical_name(name)
        for item_name, value in self._items:
            if item_name == key:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """Return every line's value of a header, in order."""
        key = canonical_name(name)
        return [value for item_name, value in self._items if item_name == key]

    def get_list(self, name: str) -> list[str]:
        """Return every comma-separated element of a header across all its lines."""
        return [item for value in self.get_all(name) for item in split_header_list(value)]

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        self._items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace all lines of a header by one, keeping the first line's position."""
        key = canonical_name(name)
        for i, (item_name, _) in enumerate(self._items):
            if item_name == key:
                self._items[i] = (key, value)
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != key]
                return
        self._items.append((key, value))

    def remove(self, name: str) -> None:
        """Remove all lines of a header."""
        key = canonical_name(name)
        self._items = [item for item in self._items if item[0] != key]

    def copy(self) -> Headers:
        return Headers(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True, slots=True)
class Via:
    """One Via element (RFC 3261 §20.42): `SIP/2.0/UDP host:port;branch=...;rport`."""

    transport: str
    host: str
    port: int | None
    params: UriParams = ()

    @classmethod
    def parse(cls, value: str) -> Via:
        protocol, _, rest = value.strip().partition(" ")
        parts = [p.strip() for p in protocol.split("/")]
        if len(parts) != 3 or parts[0].upper() != "SIP" or parts[1] != "2.0" or not parts[2]:
            raise SipParseError(f"invalid Via protocol: {value[:60]!r}")
        sent_by, _, param_text = rest.strip().partition(";")
        host, port = split_hostport(sent_by)
        return cls(parts[2].upper(), host, port, parse_params(param_text))

    def param(self, name: str) -> str | None:
        """Return a parameter's value (`""` for a flag), or None when absent."""
        for key, value in self.params:
            if key == name:
                return "" if value is None else value
        return None

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    def with_param(self, name: str, value: str | None) -> Via:
        """Return a copy with `name` set (replacing it in place, or appended)."""
        params = list(self.params)
        for i, (key, _) in enumerate(params):
            if key == name:
                params[i] = (name, value)
                break
        else:
            params.append((name, value))
        return replace(self, params=tuple(params))

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class NameAddress:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route, §20)."""

    uri: str
    display_name: str | None = None
    params: UriParams = ()

    @classmethod
    def parse(cls, value: str) -> NameAddress:
        text = value.strip()
        display: str | None = None
        if "<" in text:
            before, _, after = text.partition("<")
            uri, closed, rest = after.partition(">")
            if not closed:
                raise SipParseError(f"unclosed '<' in address: {value[:60]!r}")
            before = before.strip()
            if before.startswith('"') and before.endswith('"') and len(before) >= 2:
                display = before[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            elif before:
                display = before
            _, _, param_text = rest.partition(";")
        else:
            # addr-spec form: parameters after the URI belong to the header (§20.10).
            uri, _, param_text = text.partition(";")
        uri = uri.strip()
        if not uri:
            raise SipParseError(f"empty URI in address: {value[:60]!r}")
        return cls(uri, display, parse_params(param_text))

    @property
    def sip_uri(self) -> SipUri:
        return SipUri.parse(self.uri)

    @property
    def tag(self) -> str | None:
        for key, value in self.params:
            if key == "tag":
                return value
        return None

    def with_tag(self, tag: str) -> NameAddress:
        params = tuple(p for p in self.params if p[0] != "tag") + (("tag", tag),)
        return replace(self, params=params)

    def __str__(self) -> str:
        display = ""
        if self.display_name:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header (RFC 3261 §20.16): a sequence number and a method."""

    number: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
            raise SipParseError(f"invalid CSeq: {value[:40]!r}")
        number = int(parts[0])
        if number >= 2**31:
            raise SipParseError(f"CSeq number out of range: {number}")
        return cls(number, parts[1])

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@dataclass
class Message:
    """What requests and responses share: headers, body, and parsed views of both."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"missing {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self._required("CSeq"))

    @property
    def from_address(self) -> NameAddress:
        return NameAddress.parse(self._required("From"))

    @property
    def to_address(self) -> NameAddress:
        return NameAddress.parse(self._required("To"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_list("Via")]

    @property
    def top_via(self) -> Via:
        vias = self.headers.get_list("Via")
        if not vias:
            raise SipParseError("missing Via header")
        return Via.parse(vias[0])

    @property
    def contacts(self) -> list[NameAddress]:
        return [NameAddress.parse(v) for v in self.headers.get_list("Contact") if v != "*"]

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case; "" when there is no body type."""
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def _serialize(self, start_line: str) -> bytes:
        headers = self.headers.copy()
        headers.set("Content-Length", str(len(self.body)))
        lines = [start_line] + [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class Request(Message):
    """A SIP request (RFC 3261 §7.1). `uri` is the Request-URI as text."""

    method: str = ""
    uri: str = ""

    def __bytes__(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {SIP_VERSION}")


@dataclass
class Response(Message):
    """A SIP response (RFC 3261 §7.2)."""

    status: int = 0
    reason: str = ""

    def __bytes__(self) -> bytes:
        return self._serialize(f"{SIP_VERSION} {self.status} {self.reason}")


def make_request(
    method: str, uri: str, headers: Iterable[tuple[str, str]], body: bytes = b""
) -> Request:
    """Build a request from its parts."""
    return Request(headers=Headers(headers), body=body, method=method, uri=uri)


def response_to(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response that copies Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).

    `to_tag` is added to To unless the request's To already has a tag (§8.2.6.2 says a
    UAS must not change an existing tag). Record-Route copying is the dialog layer's job.
    """
    copied = Headers()
    for via in request.headers.get_all("Via"):
        copied.add("Via", via)
    from_value = request.headers.get("From")
    if from_value is not None:
        copied.add("From", from_value)
    to_value = request.headers.get("To")
    if to_value is not None:
        if to_tag is not None and status > 100:
            to = NameAddress.parse(to_value)
            if to.tag is None:
                to_value = str(to.with_tag(to_tag))
        copied.add("To", to_value)
    for name in ("Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is not None:
            copied.add(name, value)
    for name, value in headers:
        copied.add(name, value)
    return Response(
        headers=copied,
        body=body,
        status=status,
        reason=reason if reason is not None else REASON_PHRASES.get(status, "Unknown"),
    )
