"""Bytes to SIP messages (RFC 3261 §7, §18.3): parse one datagram, or frame a TCP stream.

Rule: every malformed input raises `SipParseError` and nothing else. When the start line
and headers were readable but the message is still unacceptable (missing Call-ID, bad
Content-Length, unsupported version or URI scheme), the error carries them as `partial`
so the core can still answer with `status_hint`. Limits keep a hostile peer from making
us hold or scan unbounded input.
"""

from __future__ import annotations

import re

from bridge.sip.errors import SipParseError
from bridge.sip.message import (
    SIP_VERSION,
    TOKEN,
    Headers,
    Request,
    Response,
    canonical_name,
)
from bridge.sip.uri import SipUri

MAX_MESSAGE_BYTES = 65_535  # a UDP datagram's payload cannot be larger
MAX_HEADER_LINES = 200
MAX_START_LINE_BYTES = 4_096

# Request-Line = Method SP Request-URI SP SIP-Version CRLF  (exactly one SP each:
# RFC 4475 §3.1.2.9 and §3.1.2.10 may be rejected, and we do)
_REQUEST_LINE = re.compile(r"^(\S+) (\S+) (SIP/[0-9]+\.[0-9]+)$", re.ASCII | re.IGNORECASE)
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
_STATUS_LINE = re.compile(r"^(SIP/[0-9]+\.[0-9]+) ([0-9]{3})(?: (.*))?$", re.IGNORECASE)
# message-header = field-name HCOLON field-value, HCOLON = *( SP / HTAB ) ":" SWS
_HEADER_LINE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*:(.*)", re.DOTALL)
_DIGITS = re.compile(r"^[0-9]{1,9}$", re.ASCII)
_CALL_ID = re.compile(r"^\S+$")

_REQUIRED_REQUEST_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
_REQUIRED_RESPONSE_HEADERS = ("Via", "CSeq", "Call-ID")


class PartialMessage(SipParseError):
    """A message whose head parsed but which is still invalid; `partial` holds the head."""

    def __init__(self, message: str, partial: Request | Response, status_hint: int = 400) -> None:
        super().__init__(message, status_hint)
        self.partial = partial


def _find_head_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """Return where the first empty line starts and ends, or None.

    RFC 3261 §7 ends the head with CRLF CRLF; bare LF line ends are accepted from
    sloppy peers, so this is the first LF followed by an optional CR and an LF.
    """
    found = [
        (lf, lf + len(pattern))
        for pattern in (b"\n\n", b"\n\r\n")
        if (lf := data.find(pattern, start)) >= 0
    ]
    if not found:
        return None
    lf, end = min(found)
    return (lf - 1 if lf > 0 and data[lf - 1] == 13 else lf), end


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line, which RFC 3261 §7 requires even without a body."""
    found = _find_head_end(data)
    if found is None:
        raise SipParseError("message head is not terminated by an empty line")
    return data[: found[0]], data[found[1] :]


def _unfold(head: str) -> list[str]:
    """Split the head into lines and join folded continuation lines (RFC 3261 §7.3.1)."""
    lines: list[str] = []
    for raw in head.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t"):
            if not lines:
                raise SipParseError("message starts with a continuation line")
            lines[-1] = lines[-1].rstrip() + " " + raw.strip()
        else:
            lines.append(raw)
    return lines


def _parse_headers(lines: list[str]) -> Headers:
    if len(lines) > MAX_HEADER_LINES:
        raise SipParseError(f"too many header lines ({len(lines)})", status_hint=413)
    headers = Headers()
    for line in lines:
        if not line.strip():
            continue
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            raise SipParseError(f"invalid header line: {line[:60]!r}")
        headers.add(canonical_name(match.group(1)), match.group(2).strip())
    return headers


def _parse_start_line(line: str) -> tuple[Request | Response, str]:
    """Return the message the start line begins and its SIP-Version, upper case."""
    if len(line) > MAX_START_LINE_BYTES:
        raise SipParseError("start line too long", status_hint=414)
    status_match = _STATUS_LINE.match(line)
    if status_match is not None:
        version, code, reason = status_match.groups()
        status = int(code)
        if not 100 <= status <= 699:
            raise SipParseError(f"status code out of range: {status}")
        return Response(status=status, reason=reason or ""), version.upper()
    request_match = _REQUEST_LINE.match(line)
    if request_match is None:
        raise SipParseError(f"invalid start line: {line[:60]!r}")
    method, uri, version = request_match.groups()
    if not TOKEN.match(method):
        raise SipParseError(f"invalid method: {method[:20]!r}")
    return Request(method=method, uri=uri), version.upper()


def _content_length(values: list[str]) -> int | None:
    """Return the Content-Length, refusing conflicting copies (they make framing ambiguous)."""
    if not values:
        return None
    lengths = set()
    for value in values:
        value = value.strip()
        if not _DIGITS.match(value):
            raise SipParseError(f"invalid Content-Length: {value[:20]!r}")
        lengths.add(int(value))
    if len(lengths) > 1:
        raise SipParseError("conflicting Content-Length headers")
    return lengths.pop()


def _validate(message: Request | Response) -> None:
    """Check what every transaction layer relies on (RFC 3261 §8.2.1, §16.3)."""
    if isinstance(message, Request):
        for name in _REQUIRED_REQUEST_HEADERS:
            if message.headers.get(name) is None:
                raise SipParseError(f"missing {name} header")
        SipUri.parse(message.uri)
        if message.cseq.method != message.method:
            raise SipParseError("CSeq method does not match the request method")
    else:
        for name in _REQUIRED_RESPONSE_HEADERS:
            if message.headers.get(name) is None:
                raise SipParseError(f"response without {name} header")
        message.cseq  # noqa: B018 - parses CSeq, raising on a malformed one
    if not _CALL_ID.match(message.call_id):
        raise SipParseError(f"invalid Call-ID: {message.call_id[:40]!r}")
    message.top_via  # noqa: B018 - parses the top Via, raising on a malformed one
    message.from_address  # noqa: B018
    message.to_address  # noqa: B018
    message.contacts  # noqa: B018


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one whole SIP message.

    CRLFs before the start line are ignored (RFC 3261 §7.5). On a datagram
    (`stream=False`) the body is what follows the head, cut to Content-Length when that
    is shorter (RFC 3261 §18.3); a Content-Length larger than the body is an error. On a
    stream the caller has framed the message already.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message too large ({len(data)} bytes)", status_hint=513)
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty message")
    head_bytes, body = _split_head(data)
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("message head is not UTF-8") from exc
    if "\r" in head.replace("\r\n", ""):
        # A lone CR is a line end to some parsers and text to others (§7.3.1 has none).
        raise SipParseError("bare CR in message head")
    lines = _unfold(head)
    message, version = _parse_start_line(lines[0])
    message.headers = _parse_headers(lines[1:])
    try:
        if version != SIP_VERSION:
            raise SipParseError(f"unsupported SIP version: {version}", status_hint=505)
        length = _content_length(message.headers.get_all("Content-Length"))
        if length is None:
            if stream:
                raise SipParseError("Content-Length is required on a stream transport")
            length = len(body)
        if length > len(body):
            raise SipParseError(f"Content-Length {length} exceeds the {len(body)} body bytes")
        message.body = body[:length]
        _validate(message)
    except SipParseError as exc:
        if isinstance(message, Request):
            raise PartialMessage(str(exc), message, exc.status_hint) from exc
        raise
    return message


class StreamFramer:
    """Cut a TCP byte stream into whole SIP messages by Content-Length (RFC 3261 §18.3).

    `feed()` returns the complete messages seen so far, as bytes for `parse_message(...,
    stream=True)`. Keep-alive CRLFs between messages (RFC 5626 §3.5.1) are skipped and
    each double CRLF is counted in `pings`, so the edge can answer it with a single CRLF;
    the count does not depend on how the bytes were split into segments. An unframeable
    stream raises `SipParseError`; the connection must then be closed.
    """

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_message_bytes
        self._scanned = 0  # bytes of the current head already searched for its end
        self.pings = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message they completed, in order."""
        self._buffer += data
        messages: list[bytes] = []
        while self._skip_keepalives():
            end = _find_head_end(self._buffer, max(0, self._scanned - 3))
            if end is None:
                self._scanned = len(self._buffer)
                if len(self._buffer) > self._max:
                    raise SipParseError("message head too large", status_hint=513)
                break
            length = self._head_content_length(bytes(self._buffer[: end[0]]))
            total = end[1] + length
            if total > self._max:
                raise SipParseError(f"message too large ({total} bytes)", status_hint=513)
            if len(self._buffer) < total:
                self._scanned = end[0]
                break
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
            self._scanned = 0
        return messages

    def _skip_keepalives(self) -> bool:
        """Drop CRLFs before a message; False when the buffer holds nothing else yet."""
        while self._buffer and self._buffer[0] in b"\r\n":
            if self._buffer.startswith(b"\r\n\r\n"):
                self.pings += 1
                del self._buffer[:4]
            elif b"\r\n\r\n".startswith(self._buffer):
                return False  # maybe the start of a ping: wait for its other bytes
            else:
                del self._buffer[:1]
        return bool(self._buffer)

    @staticmethod
    def _head_content_length(head: bytes) -> int:
        # latin-1 never fails and keeps ASCII digits; parse_message checks UTF-8 later.
        values = []
        for line in _unfold(head.decode("latin-1"))[1:]:
            name, colon, value = line.partition(":")
            if colon and canonical_name(name.strip()) == "Content-Length":
                values.append(value)
        length = _content_length(values)
        if length is None:
            raise SipParseError("Content-Length is required on a stream transport")
        return length
