"""SIP messages (RFC 3261 §7) as data: requests, responses, headers and header views.

This module owns the in-memory shape of a message and how it prints; `parser` owns how
bytes become one. Header names are kept in their canonical long form (compact forms such
as `v` and `i` are expanded on the way in); values are kept as received, one entry per
header line, and the views below (`Via`, `NameAddress`, `CSeq`) parse them on demand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache

from bridge.sip.errors import LocalProtocolError, SipParseError
from bridge.sip.uri import (
    SipUri,
    UriParams,
    check_absolute_uri,
    format_params,
    parse_params,
    split_hostport,
)

SIP_VERSION = "SIP/2.0"

# RFC 3261 §25.1:  token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$", re.ASCII)
# display-name = *(token LWS) / quoted-string. UTF-8 outside quotes is tolerated because
# phones send it; "," "<" ";" and quotes are not (RFC 4475 §3.1.2.15, baddn).
_UNQUOTED_DISPLAY = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~ \t\u0080-\U0010ffff]*$")
_DIGITS = re.compile(r"^[0-9]+$", re.ASCII)
# Via: sent-protocol = protocol-name SLASH protocol-version SLASH transport, where
# SLASH = SWS "/" SWS (§25.1), then LWS sent-by *( SEMI via-params ).
_VIA = re.compile(
    r"^([^/\s]+)\s*/\s*([^/\s]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;]*)(?:;(.*))?$",
    re.DOTALL,
)
# What ends a display name: "<" (name-addr), ";" or the end (addr-spec), a stray quote.
_ADDRESS_MARK = re.compile(r'[<;"]')
# COLON = SWS ":" SWS inside sent-by.
_SWS_COLON = re.compile(r"\s*:\s*")

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
_CANONICAL_NAMES = frozenset(_WELL_KNOWN)

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
    if name in _CANONICAL_NAMES:  # the common case: every lookup by a known name
        return name
    lowered = name.lower()
    if lowered in COMPACT_FORMS:
        return COMPACT_FORMS[lowered]
    if lowered in _CANONICAL:
        return _CANONICAL[lowered]
    return _capitalized(name)


@lru_cache(maxsize=1024)  # bounded: a peer can send any number of distinct names
def _capitalized(name: str) -> str:
    """`x-asterisk-hangupcause` -> `X-Asterisk-Hangupcause`, for names we do not know."""
    return "-".join(part.capitalize() for part in name.split("-"))


def split_header_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas in quotes or angle brackets.

    RFC 3261 §7.3.1: `Via: a, b` is the same as two Via lines.
    """
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        return [item for item in (part.strip() for part in value.split(",")) if item]
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


def _unquote(text: str, value: str) -> tuple[str, int]:
    """Decode the quoted-string at the start of `text`; return it and the index after it.

    RFC 3261 §25.1: quoted-pair = "\\" (%x00-09 / %x0B-0C / %x0E-7F); any escaped
    character stands for itself.
    """
    end = text.find('"', 1)
    if end > 0 and "\\" not in text[1:end]:
        return text[1:end], end + 1
    chars: list[str] = []
    i = 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            chars.append(text[i + 1])
            i += 2
        elif char == '"':
            return "".join(chars), i + 1
        else:
            chars.append(char)
            i += 1
    raise SipParseError(f"unterminated quoted string: {value[:60]!r}")


def _quote_content(text: str) -> str:
    """Escape text for a quoted-string; CR and LF cannot be escaped and become spaces."""
    out: list[str] = []
    for char in text:
        if char in "\r\n":
            out.append(" ")
        elif char in '"\\\x7f' or (char < " " and char != "\t"):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _checked_uri(uri: str, value: str) -> str:
    """Return `uri` stripped, raising unless it is an absolute URI (§25.1 addr-spec)."""
    uri = uri.strip()
    if not uri:
        raise SipParseError(f"empty URI in address: {value[:60]!r}")
    try:
        check_absolute_uri(uri)
    except SipParseError:
        raise SipParseError(f"invalid URI in address: {value[:60]!r}") from None
    return uri


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
        """Parse one via-parm, allowing LWS around "/" and ":" (RFC 4475 §3.1.1.1)."""
        match = _VIA.match(value.strip())
        if match is None or match.group(1).upper() != "SIP" or match.group(2) != "2.0":
            raise SipParseError(f"invalid Via protocol: {value[:60]!r}")
        _, _, transport, sent_by, param_text = match.groups()
        sent_by = sent_by.rstrip()
        if " " in sent_by or "\t" in sent_by:
            sent_by = _SWS_COLON.sub(":", sent_by)
        host, port = split_hostport(sent_by)
        return cls(transport.upper(), host, port, parse_params(param_text or ""))

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
        """Parse `"Display" <uri>;params`, `Display <uri>;params` or `uri;params`.

        Quoted display names are unescaped (RFC 3261 §25.1 quoted-pair); a `<` or `,`
        inside quotes belongs to the name. In the addr-spec form the parameters after
        the URI are header parameters (§20.10).
        """
        text = value.strip()
        display: str | None = None
        if text.startswith('"'):
            display, end = _unquote(text, value)
            rest = text[end:].lstrip()
            if not rest.startswith("<"):
                raise SipParseError(f"expected '<' after display name: {value[:60]!r}")
        else:
            mark = _ADDRESS_MARK.search(text)
            if mark is not None and mark.group() == '"':
                raise SipParseError(f"unexpected quote in address: {value[:60]!r}")
            if mark is None or mark.group() == ";":
                uri, _, param_text = text.partition(";")
                return cls(_checked_uri(uri, value), None, parse_params(param_text))
            index = mark.start()
            name = text[:index].strip()
            if not _UNQUOTED_DISPLAY.match(name):
                raise SipParseError(f"invalid display name: {name[:40]!r}")
            display = name or None
            rest = text[index:]
        uri, closed, after = rest[1:].partition(">")
        if not closed:
            raise SipParseError(f"unclosed '<' in address: {value[:60]!r}")
        after = after.strip()
        if after and not after.startswith(";"):
            raise SipParseError(f"unexpected text after address: {after[:40]!r}")
        return cls(_checked_uri(uri, value), display, parse_params(after[1:]))

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
            display = f'"{_quote_content(self.display_name)}" '
        return f"{display}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header (RFC 3261 §20.16): a sequence number and a method."""

    number: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        """Parse `number method`; RFC 3261 §8.1.1.5 caps the number below 2**31."""
        parts = value.split()
        if len(parts) != 2 or not _DIGITS.match(parts[0]) or len(parts[0]) > 10:
            raise SipParseError(f"invalid CSeq: {value[:40]!r}")
        if not TOKEN.match(parts[1]):
            raise SipParseError(f"invalid CSeq method: {parts[1][:20]!r}")
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
        """Print the message with a Content-Length that matches the body (§18.3).

        A CR or LF in the start line or a header would inject header lines of its
        own, so it raises `LocalProtocolError` instead.
        """
        headers = self.headers.copy()
        headers.set("Content-Length", str(len(self.body)))
        lines = [start_line] + [f"{name}: {value}" for name, value in headers]
        if any("\r" in line or "\n" in line for line in lines):
            raise LocalProtocolError("line break inside a start line or header value")
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
    UAS must not change an existing tag) or the status is 100. The To value is
    otherwise copied as received, so a peer comparing it as text still matches. A 100
    also copies Timestamp (§8.2.6.1). Record-Route copying is the dialog layer's job.
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
            if all(name != "tag" for name, _ in to.params):
                to_value = f"{to_value.rstrip().rstrip(';').rstrip()};tag={to_tag}"
        copied.add("To", to_value)
    names = ("Call-ID", "CSeq", "Timestamp") if status == 100 else ("Call-ID", "CSeq")
    for name in names:
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
