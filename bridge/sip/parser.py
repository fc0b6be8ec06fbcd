"""Bytes to SIP messages (RFC 3261 §7, §18.3): parse one datagram, or frame a TCP stream.

Rule: every malformed input raises `SipParseError` and nothing else. When the start line
and headers were readable but the message is still unacceptable (missing Call-ID, bad
Content-Length), the error carries them as `partial` so the core can still answer 400.
Limits keep a hostile peer from making us hold or scan unbounded input.
"""

from __future__ import annotations

import re

from bridge.sip.errors import SipParseError
from bridge.sip.message import SIP_VERSION, CSeq, Headers, Request, Response, canonical_name

MAX_MESSAGE_BYTES = 65_535  # a UDP datagram's payload cannot be larger
MAX_HEADER_LINES = 200
MAX_START_LINE_BYTES = 4_096

# RFC 3261 §25.1:  token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
# Request-Line = Method SP Request-URI SP SIP-Version CRLF
_REQUEST_LINE = re.compile(r"^([^ ]+) ([^ ]+) (SIP/\d+\.\d+)$")
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
_STATUS_LINE = re.compile(r"^(SIP/\d+\.\d+) (\d{3})(?: (.*))?$")

_REQUIRED_REQUEST_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")


class PartialMessage(SipParseError):
    """A message whose head parsed but which is still invalid; `partial` holds the head."""

    def __init__(self, message: str, partial: Request | Response, status_hint: int = 400) -> None:
        super().__init__(message, status_hint)
        self.partial = partial


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line; accept bare LF line ends from sloppy peers."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = data.find(separator)
        if index >= 0:
            return data[:index], data[index + len(separator) :]
    return data, b""


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
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            raise SipParseError(f"invalid header line: {line[:60]!r}")
        headers.add(canonical_name(name), value.strip())
    return headers


def _parse_start_line(line: str) -> Request | Response:
    if len(line) > MAX_START_LINE_BYTES:
        raise SipParseError("start line too long", status_hint=414)
    status_match = _STATUS_LINE.match(line)
    if status_match is not None:
        version, code, reason = status_match.groups()
        if version != SIP_VERSION:
            raise SipParseError(f"unsupported SIP version: {version}", status_hint=505)
        status = int(code)
        if not 100 <= status <= 699:
            raise SipParseError(f"status code out of range: {status}")
        return Response(status=status, reason=reason or "")
    request_match = _REQUEST_LINE.match(line)
    if request_match is None:
        raise SipParseError(f"invalid start line: {line[:60]!r}")
    method, uri, version = request_match.groups()
    if not _TOKEN.match(method):
        raise SipParseError(f"invalid method: {method[:20]!r}")
    if version != SIP_VERSION:
        raise SipParseError(f"unsupported SIP version: {version}", status_hint=505)
    return Request(method=method, uri=uri)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 9:
        raise SipParseError(f"invalid Content-Length: {value[:20]!r}")
    return int(value)


def _validate(message: Request | Response) -> None:
    """Check what every transaction layer relies on (RFC 3261 §8.2.1, §16.3)."""
    if isinstance(message, Request):
        for name in _REQUIRED_REQUEST_HEADERS:
            if message.headers.get(name) is None:
                raise PartialMessage(f"missing {name} header", message)
        cseq = CSeq.parse(message.headers.get("CSeq") or "")
        if cseq.method != message.method:
            raise PartialMessage("CSeq method does not match the request method", message)
    else:
        for name in ("Via", "CSeq", "Call-ID"):
            if message.headers.get(name) is None:
                raise SipParseError(f"response without {name} header")
        CSeq.parse(message.headers.get("CSeq") or "")
    message.top_via  # noqa: B018 - parses the top Via, raising on a malformed one
    message.from_address  # noqa: B018
    message.to_address  # noqa: B018


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one whole SIP message.

    On a datagram (`stream=False`) the body is what follows the head, cut to
    Content-Length when that is shorter (RFC 3261 §18.3); a Content-Length larger than
    the body is an error. On a stream the caller has framed the message already.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message too large ({len(data)} bytes)", status_hint=513)
    head_bytes, body = _split_head(data)
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("message head is not UTF-8") from exc
    lines = _unfold(head.lstrip("\r\n"))
    if not lines or not lines[0]:
        raise SipParseError("empty message")
    message = _parse_start_line(lines[0])
    message.headers = _parse_headers(lines[1:])
    try:
        length = _content_length(message.headers)
        if length is None:
            if stream:
                raise SipParseError("Content-Length is required on a stream transport")
            length = len(body)
        if length > len(body):
            raise SipParseError(f"Content-Length {length} exceeds the {len(body)} body bytes")
    except SipParseError as exc:
        if isinstance(message, Request):
            raise PartialMessage(str(exc), message) from exc
        raise
    message.body = body[:length]
    try:
        _validate(message)
    except PartialMessage:
        raise
    except SipParseError as exc:
        if isinstance(message, Request):
            raise PartialMessage(str(exc), message, exc.status_hint) from exc
        raise
    return message


class StreamFramer:
    """Cut a TCP byte stream into whole SIP messages by Content-Length (RFC 3261 §18.3).

    `feed()` returns the complete messages seen so far, as bytes for `parse_message(...,
    stream=True)`. Keep-alive CRLFs between messages (RFC 5626 §3.5.1) are skipped and
    reported through `pings`, so the edge can answer a double CRLF with a single one.
    An unframeable stream raises `SipParseError`; the connection must then be closed.
    """

    def __init__(self, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_message_bytes
        self.pings = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while True:
            stripped = self._buffer.lstrip(b"\r\n")
            if len(stripped) != len(self._buffer):
                if self._buffer.startswith(b"\r\n\r\n"):
                    self.pings += 1
                del self._buffer[: len(self._buffer) - len(stripped)]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self._max:
                    raise SipParseError("message head too large", status_hint=513)
                return messages
            head = bytes(self._buffer[:end])
            length = self._head_content_length(head)
            total = end + 4 + length
            if total > self._max:
                raise SipParseError(f"message too large ({total} bytes)", status_hint=513)
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]

    @staticmethod
    def _head_content_length(head: bytes) -> int:
        for line in head.split(b"\r\n")[1:]:
            name, colon, value = line.partition(b":")
            if colon and name.strip().lower() in (b"content-length", b"l"):
                text = value.strip()
                if not text.isdigit() or len(text) > 9:
                    raise SipParseError(f"invalid Content-Length: {text[:20]!r}")
                return int(text)
        raise SipParseError("Content-Length is required on a stream transport")
