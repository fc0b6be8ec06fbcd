"""The load generator's SIP user agent client: many calls into one room over UDP.

A deliberately small, hand-rolled UAC that shares no code with the bridge (so the bridge's
parser cannot hide its own mistakes). It sends INVITE with a PCMU + telephone-event offer,
retransmits it on RFC 3261 Timer A, ACKs every final response, answers whatever the bridge
sends inside a dialog with 200, and sends BYE at the end with Timer E retransmissions.
Sans-I/O: datagrams come in with `now`, and what to send and what happened come back out
(`datagrams_to_send`, `next_event`); the caller owns the socket and the clock. It assumes
no proxy in between (no Route sets) and one UDP flow to the bridge.
"""

from __future__ import annotations

import enum
import random
import re
from collections import deque
from dataclasses import dataclass, field

# RFC 3261 §17.1.1.1 and Table 4.
T1_S = 0.5
T2_S = 4.0
TIMEOUT_S = 64 * T1_S  # Timers B and F
MAGIC_COOKIE = "z9hG4bK"  # §8.1.1.7
PCMU_PAYLOAD_TYPE = 0  # RFC 3551 §6
TELEPHONE_EVENT_PAYLOAD_TYPE = 101  # dynamic (RFC 4733 §7.1.1); any free number will do

# §7.3.3 compact header forms, mapped to the long names we look up by.
_COMPACT_NAMES = {
    "i": "call-id", "v": "via", "f": "from", "t": "to", "m": "contact",
    "l": "content-length", "c": "content-type",
}
_BRACKETED_URI = re.compile(r"<([^>]*)>")

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class SipMessage:
    """A parsed request or response: the start line, headers in order, and the body."""

    start_line: str
    headers: tuple[tuple[str, str], ...]  # (lower-case long name, value)
    body: bytes

    def header(self, name: str) -> str | None:
        """Return the first value of `name` (lower-case long form), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def all_headers(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def status(self) -> int | None:
        """The status code of a response; None for a request."""
        if not self.start_line.startswith("SIP/2.0 "):
            return None
        return int(self.start_line.split(" ", 2)[1])

    @property
    def method(self) -> str:
        """The method of a request, or of the request a response answers (from CSeq)."""
        if self.status is None:
            return self.start_line.split(" ", 1)[0]
        parts = (self.header("cseq") or "").split()
        return parts[-1] if parts else ""


def parse_sip(data: bytes) -> SipMessage:
    """Parse one SIP datagram (RFC 3261 §7); raise ValueError when it is not one."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError("SIP message has no blank line after its headers")
    lines = head.decode("utf-8", "replace").split("\r\n")
    start_line, folded = lines[0], lines[1:]
    if not (start_line.startswith("SIP/2.0 ") or start_line.endswith(" SIP/2.0")):
        raise ValueError(f"not a SIP start line: {start_line[:60]!r}")
    headers: list[tuple[str, str]] = []
    for line in folded:
        if line[:1] in (" ", "\t") and headers:  # §7.3.1 line folding
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"SIP header line has no colon: {line[:60]!r}")
        name = name.strip().lower()
        headers.append((_COMPACT_NAMES.get(name, name), value.strip()))
    message = SipMessage(start_line, tuple(headers), body)
    length = message.header("content-length")
    if length is not None:
        message = SipMessage(start_line, tuple(headers), body[: int(length)])
    return message


def parse_sdp_address(body: bytes) -> Address | None:
    """Return the (address, port) of the first audio stream in an SDP body (RFC 4566).

    A media-level c= overrides the session-level one. None when there is no audio stream,
    no address, or the stream is refused (port 0, RFC 3264 §6).
    """
    session_host: str | None = None
    media_host: str | None = None
    port: int | None = None
    in_audio = False
    for raw in body.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if port is not None:
                break  # only the first audio stream
            fields = line[2:].split()
            in_audio = bool(fields) and fields[0] == "audio"
            if in_audio and len(fields) > 1:
                port_text = fields[1].split("/")[0]
                port = int(port_text) if port_text.isdigit() else 0
        elif line.startswith("c="):
            fields = line[2:].split()
            host = fields[2].split("/")[0] if len(fields) >= 3 else None
            if port is None and not in_audio:
                session_host = host
            elif in_audio:
                media_host = host
    host = media_host or session_host
    if port is None or port == 0 or host is None or host == "0.0.0.0":
        return None
    return host, port


def make_offer(host: str, rtp_port: int, session_id: int) -> bytes:
    """Return our SDP: PCMU/8000 and telephone-event, 20 ms, sendrecv (RFC 3264 §5)."""
    lines = (
        "v=0",
        f"o=loadgen {session_id} 1 IN IP4 {host}",
        "s=-",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {rtp_port} RTP/AVP {PCMU_PAYLOAD_TYPE} {TELEPHONE_EVENT_PAYLOAD_TYPE}",
        f"a=rtpmap:{PCMU_PAYLOAD_TYPE} PCMU/8000",
        f"a=rtpmap:{TELEPHONE_EVENT_PAYLOAD_TYPE} telephone-event/8000",
        f"a=fmtp:{TELEPHONE_EVENT_PAYLOAD_TYPE} 0-16",
        "a=ptime:20",
        "a=sendrecv",
    )
    return ("\r\n".join(lines) + "\r\n").encode()


class LegState(enum.Enum):
    """Where one call stands, from our side."""

    CALLING = "INVITE sent, no response yet: Timer A retransmits it"
    PROCEEDING = "a provisional response came: no more retransmissions (§17.1.1.2)"
    CONFIRMED = "2xx received and acknowledged"
    FAILED = "a final non-2xx, or no final response in time"
    ENDED = "the bridge hung up (its BYE answered)"
    TERMINATING = "our BYE is in flight: Timer E retransmits it"
    TERMINATED = "our BYE was answered or timed out"


@dataclass(frozen=True, slots=True)
class CallJoined:
    """A 2xx to our INVITE carried the bridge's RTP address; the ACK is on its way."""

    index: int
    remote_rtp: Address


@dataclass(frozen=True, slots=True)
class CallFailed:
    index: int
    reason: str  # the status code, "timeout", or "no audio in answer"


@dataclass(frozen=True, slots=True)
class MediaMoved:
    """A re-INVITE (or the ACK after an offerless one) moved the bridge's RTP address."""

    index: int
    remote_rtp: Address


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The bridge sent BYE; we answered 200."""

    index: int


@dataclass(frozen=True, slots=True)
class ByeCompleted:
    index: int
    status: int | None  # None: Timer F fired


Event = CallJoined | CallFailed | MediaMoved | CallEnded | ByeCompleted


@dataclass(slots=True)
class _Leg:
    index: int
    call_id: str
    from_header: str
    offer: bytes
    invite: bytes
    invite_branch: str
    state: LegState
    retransmit_at: float
    interval_s: float
    give_up_at: float
    to_header: str | None = None  # the bridge's To, with its tag (§12.1.2)
    remote_target: str | None = None
    ack: bytes | None = None
    bye: bytes | None = None
    remote_rtp: Address | None = None


@dataclass
class Uac:
    """The calls of one load generator process, all through one UDP socket.

    `local` is that socket's address (our Via and Contact); `bridge` is where INVITEs go.
    """

    local: Address
    bridge: Address
    request_uri: str
    rng: random.Random
    _legs: dict[str, _Leg] = field(default_factory=dict)
    _by_index: dict[int, _Leg] = field(default_factory=dict)
    _timed: set[str] = field(default_factory=set)  # Call-IDs of legs with a timer running
    _out: list[tuple[bytes, Address]] = field(default_factory=list)
    _events: deque[Event] = field(default_factory=deque)

    @property
    def in_flight(self) -> int:
        """INVITEs and BYEs still waiting for their final response."""
        return len(self._timed)

    def invite(self, index: int, rtp_port: int, now: float) -> None:
        """Start call `index` offering RTP at our `rtp_port` (RFC 3261 §8.1.1, §13.2.1)."""
        host = self.local[0]
        call_id = f"{self.rng.getrandbits(64):016x}-{index}@{host}"
        from_header = f"<sip:load{index}@{host}>;tag={self.rng.getrandbits(32):08x}"
        offer = make_offer(host, rtp_port, self.rng.getrandbits(31))
        branch = self._new_branch()
        invite = self._request(
            "INVITE", self.request_uri, branch, from_header, f"<{self.request_uri}>",
            call_id, 1, offer,
        )
        leg = _Leg(
            index=index, call_id=call_id, from_header=from_header, offer=offer, invite=invite,
            invite_branch=branch, state=LegState.CALLING, retransmit_at=now + T1_S,
            interval_s=T1_S, give_up_at=now + TIMEOUT_S,
        )
        self._legs[call_id] = leg
        self._by_index[index] = leg
        self._timed.add(call_id)
        self._out.append((invite, self.bridge))

    def hang_up(self, index: int, now: float) -> bool:
        """Send BYE on a confirmed call (§15.1.1); False when there is no call to end."""
        leg = self._by_index.get(index)
        if leg is None or leg.state is not LegState.CONFIRMED:
            return False
        assert leg.to_header is not None and leg.remote_target is not None
        leg.bye = self._request(
            "BYE", leg.remote_target, self._new_branch(), leg.from_header, leg.to_header,
            leg.call_id, 2, b"",
        )
        leg.state = LegState.TERMINATING
        leg.retransmit_at, leg.interval_s, leg.give_up_at = now + T1_S, T1_S, now + TIMEOUT_S
        self._timed.add(leg.call_id)
        self._out.append((leg.bye, self.bridge))
        return True

    def handle_timers(self, now: float) -> None:
        """Retransmit and time out: Timers A/B for INVITE (§17.1.1.2), E/F for BYE (§17.1.2.2).

        A call still without a final response after 64*T1 counts as failed whatever its
        state; a 2xx that comes later is ACKed and ended with BYE.
        """
        for call_id in list(self._timed):
            leg = self._legs[call_id]
            if now >= leg.give_up_at:
                self._timed.discard(call_id)
                if leg.state is LegState.TERMINATING:
                    leg.state = LegState.TERMINATED
                    self._events.append(ByeCompleted(leg.index, None))
                else:
                    leg.state = LegState.FAILED
                    self._events.append(CallFailed(leg.index, "timeout"))
            elif now >= leg.retransmit_at and leg.state is not LegState.PROCEEDING:
                message = leg.invite if leg.state is LegState.CALLING else leg.bye
                assert message is not None
                self._out.append((message, self.bridge))
                # INVITE doubles without cap; non-INVITE doubles up to T2.
                cap = TIMEOUT_S if leg.state is LegState.CALLING else T2_S
                leg.interval_s = min(2 * leg.interval_s, cap)
                leg.retransmit_at = now + leg.interval_s

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """Take one datagram from the bridge; raises ValueError for one that is not SIP."""
        message = parse_sip(data)
        if message.status is None:
            self._receive_request(message, source, now)
        else:
            self._receive_response(message, now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # -- responses ------------------------------------------------------------------------

    def _receive_response(self, response: SipMessage, now: float) -> None:
        leg = self._legs.get(response.header("call-id") or "")
        if leg is None:
            return
        status = response.status
        assert status is not None
        if response.method == "INVITE":
            self._invite_response(leg, response, status, now)
        elif response.method == "BYE" and leg.state is LegState.TERMINATING:
            if status < 200:
                leg.interval_s = T2_S  # §17.1.2.2: Proceeding retransmits every T2
                return
            self._timed.discard(leg.call_id)
            leg.state = LegState.TERMINATED
            self._events.append(ByeCompleted(leg.index, status))

    def _invite_response(self, leg: _Leg, response: SipMessage, status: int, now: float) -> None:
        if response.body:
            leg.remote_rtp = parse_sdp_address(response.body) or leg.remote_rtp
        if status < 200:
            if leg.state is LegState.CALLING:
                leg.state = LegState.PROCEEDING
            return
        if leg.ack is not None:
            # A retransmitted final response: our ACK was lost (§13.2.2.4, §17.1.1.2).
            self._out.append((leg.ack, self.bridge))
            return
        to_header = response.header("to") or ""
        if status >= 300:
            # §17.1.1.3: the ACK for a non-2xx belongs to the INVITE transaction.
            leg.ack = self._request(
                "ACK", self.request_uri, leg.invite_branch, leg.from_header, to_header,
                leg.call_id, 1, b"",
            )
            self._out.append((leg.ack, self.bridge))
            if leg.state in (LegState.CALLING, LegState.PROCEEDING):
                self._timed.discard(leg.call_id)
                leg.state = LegState.FAILED
                self._events.append(CallFailed(leg.index, str(status)))
            return
        # §13.2.2.4: a 2xx is ACKed end to end, in a transaction of its own, to the
        # Contact of the answer (our bridge puts no Record-Route).
        leg.to_header = to_header
        leg.remote_target = _uri_of(response.header("contact") or "") or self.request_uri
        leg.ack = self._request(
            "ACK", leg.remote_target, self._new_branch(), leg.from_header, to_header,
            leg.call_id, 1, b"",
        )
        self._out.append((leg.ack, self.bridge))
        late = leg.state is LegState.FAILED  # answered after we had given up
        self._timed.discard(leg.call_id)
        leg.state = LegState.CONFIRMED
        if late:
            self.hang_up(leg.index, now)
        elif leg.remote_rtp is None:
            self.hang_up(leg.index, now)
            self._events.append(CallFailed(leg.index, "no audio in answer"))
        else:
            self._events.append(CallJoined(leg.index, leg.remote_rtp))

    # -- requests from the bridge -----------------------------------------------------------

    def _receive_request(self, request: SipMessage, source: Address, now: float) -> None:
        method = request.method
        leg = self._legs.get(request.header("call-id") or "")
        if method == "ACK":
            # The ACK of our 200 to an offerless re-INVITE carries the bridge's answer.
            if leg is not None and request.body:
                self._take_new_address(leg, request.body)
            return
        if leg is None:
            status = 200 if method == "OPTIONS" else 481  # §11.2; §12.2.2
            self._out.append((self._response(request, status, b""), source))
            return
        body = b""
        if method == "INVITE":
            # A re-INVITE: answer with the same session (RFC 3264 §8: unchanged, so the
            # same o= version); with an offer inside it may move the stream.
            body = leg.offer
            if request.body:
                self._take_new_address(leg, request.body)
        self._out.append((self._response(request, 200, body), source))
        if method == "BYE" and leg.state in (LegState.CONFIRMED, LegState.TERMINATING):
            self._timed.discard(leg.call_id)
            leg.state = LegState.ENDED
            self._events.append(CallEnded(leg.index))

    def _take_new_address(self, leg: _Leg, sdp: bytes) -> None:
        address = parse_sdp_address(sdp)
        if address is not None and address != leg.remote_rtp:
            leg.remote_rtp = address
            self._events.append(MediaMoved(leg.index, address))

    def _response(self, request: SipMessage, status: int, body: bytes) -> bytes:
        """Build a response to `request` (§8.2.6.2): Vias, From, To, Call-ID, CSeq copied."""
        reason = {200: "OK", 481: "Call/Transaction Does Not Exist"}[status]
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {via}" for via in request.all_headers("via")]
        for name, label in (("from", "From"), ("to", "To"), ("call-id", "Call-ID"),
                            ("cseq", "CSeq")):
            lines.append(f"{label}: {request.header(name) or ''}")
        if request.method == "INVITE" and status == 200:
            lines.append(f"Contact: <sip:loadgen@{self.local[0]}:{self.local[1]}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _request(
        self, method: str, uri: str, branch: str, from_header: str, to_header: str,
        call_id: str, cseq: int, body: bytes,
    ) -> bytes:
        """Build a request (§8.1.1): rport asks for responses to our source port (RFC 3581)."""
        host, port = self.local
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: {from_header}",
            f"To: {to_header}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
        ]
        if method == "INVITE":
            lines.append(f"Contact: <sip:loadgen@{host}:{port}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _new_branch(self) -> str:
        return f"{MAGIC_COOKIE}{self.rng.getrandbits(64):016x}"


def _uri_of(name_address: str) -> str | None:
    """Return the URI of a Contact value, with or without angle brackets (§20.10)."""
    bracketed = _BRACKETED_URI.search(name_address)
    if bracketed:
        return bracketed.group(1).strip()
    bare = name_address.split(";", 1)[0].strip()
    return bare or None

