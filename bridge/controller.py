"""The call controller: SIP calls become room members, RTP becomes their audio.

Sans-I/O glue between the SIP core, the dialplan, the rooms and per-call RTP state.
Inputs: SIP bytes with their `Flow`, RTP/RTCP bytes with the local port they arrived
on, the 20 ms `tick`, timers; each with `now`. Outputs: SIP datagrams, RTP/RTCP
datagrams (local port, bytes, destination), and the next deadline. It binds no socket:
RTP ports come from an injected `MediaPorts` (the edge binds them).

One log line per call event, carrying call-id, room and member.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from bridge.conference.adaptation import LinkAdapter
from bridge.conference.prompts import PromptLibrary
from bridge.conference.room import (
    DigitHeard,
    FloorGiven,
    HandChanged,
    HangUp,
    MeetingEnded,
    MemberJoined,
    MuteChanged,
    OperatorConnected,
    PinRejected,
    RecordingChanged,
    ReportEnded,
    ReportStarted,
    Room,
    RoomLockChanged,
    TalkingChanged,
    TransferToRoom,
)
from bridge.config import Config
from bridge.dialplan import Dialplan
from bridge.rtp.packet import RtpPacket, RtpParseError
from bridge.rtp.rtcp import (
    ReportBlock,
    RtcpParseError,
    RtcpReceiverReport,
    RtcpSenderReport,
    build_report,
    parse_rtcp,
)
from bridge.rtp.sender import SendStream
from bridge.rtp.stream import ReceiveStatus, ReceiveStream
from bridge.rtp.telephone_event import DigitStarted, TelephoneEventReceiver
from bridge.sip.auth import AccountSecrets, Authenticator, Challenge
from bridge.sip.core import SipCore
from bridge.sip.errors import SipParseError
from bridge.sip.events import (
    AckTimedOut,
    ByeReceived,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallRef,
    InviteReceived,
    MessageDropped,
    ReinviteReceived,
    RequestReceived,
)
from bridge.sip.flow import Flow
from bridge.sip.message import NameAddress, Request, response_to
from bridge.sip.offer_answer import (
    Direction,
    LocalAudio,
    NegotiatedAudio,
    NoCommonCodec,
    OpusParameters,
    SdpSession,
    accept_answer,
    answer_offer,
    make_offer,
)
from bridge.sip.registrar import Registrar
from bridge.sip.sdp import SessionDescription
from bridge.sip.uri import SipUri
from dsp.codecs.base import EncoderSettings

log = logging.getLogger(__name__)

RTCP_INTERVAL_S = 5.0  # RFC 3550 §6.2 minimum; a server's legs are few per peer
TIMEOUT_CHECK_INTERVAL_S = 1.0
TICK_FAILURE_LOG_S = 60.0  # a room whose tick keeps failing is logged once a minute
# Packets in a row from a new source address before RTP re-latches to it: a NAT
# rebinding moves the stream for good, a stray or spoofed packet does not.
RELATCH_PACKETS = 5
# RFC 4733 event codes carried in SIP INFO bodies (application/dtmf-relay "Signal=").
_INFO_SIGNALS = {str(d): str(d) for d in range(10)} | {"*": "*", "#": "#", "10": "*", "11": "#"}
_INFO_SIGNALS |= {c: c for c in "ABCD"}


class NoMediaPorts(Exception):
    """The configured RTP port range is exhausted."""


class MediaPorts(Protocol):
    """Binds RTP/RTCP port pairs; implemented by `bridge.net.rtp_udp`."""

    def allocate(self, host: str) -> int:
        """Bind an even RTP port and the odd RTCP port above it on `host`; return RTP's."""
        ...

    def release(self, port: int) -> None:
        """Close the pair that `allocate` returned."""
        ...


class RoomRecording(Protocol):
    """One recording of a room's mix in progress (the edge owns the file and the wall
    clock that dates it)."""

    def write(self, samples: NDArray[np.float32]) -> None:
        """Append mix samples at 16 kHz."""
        ...

    def note(self, key: str, value: str) -> None:
        """Add to its metadata what is known only at the end."""
        ...

    def close(self) -> object:
        """Finish the file; what it returns (where it is) is logged."""
        ...


class Recorders(Protocol):
    """Opens recordings; implemented in `bridge.app` with `bridge.recording`."""

    def start(self, room_id: str, room_name: str | None) -> RoomRecording:
        """A recording of a room's mix at 16 kHz."""
        ...

    def start_report(self, rate_hz: int, metadata: Mapping[str, str]) -> RoomRecording:
        """A hotline caller's report, as they said it, at their line's rate."""
        ...


class _Order(enum.Enum):
    """Where an RTP packet falls in its stream's sequence."""

    NEXT = enum.auto()
    AFTER_GAP = enum.auto()  # packets before it are missing: FEC may rebuild the last
    LATE = enum.auto()  # behind the highest seen: reordered or a retransmitted duplicate


@dataclass(eq=False)
class Call:
    """One caller: their SIP dialog, room membership and RTP state."""

    ref: CallRef
    member_id: int
    room: Room
    flow: Flow
    label: str
    caller_uri: str
    local_port: int
    local_audio: LocalAudio
    sdp_session: SdpSession
    last_media_at: float
    pending_offer: SessionDescription | None = None  # our offer awaiting the answer in ACK
    media: NegotiatedAudio | None = None
    receive: ReceiveStream | None = None
    send: SendStream | None = None
    events: TelephoneEventReceiver = field(default_factory=TelephoneEventReceiver)
    remote_rtp: tuple[str, int] | None = None
    remote_rtcp: tuple[str, int] | None = None
    relatch_source: tuple[str, int] | None = None
    relatch_count: int = 0
    next_rtcp_at: float = 0.0
    highest_seq: int | None = None  # of the RTP received, for losses right before a packet
    link: LinkAdapter | None = None  # Opus members: bitrate and FEC from their reports
    ending: bool = False

    @property
    def log_prefix(self) -> str:
        return f"call={self.ref.call_id} room={self.room.config.id} member={self.member_id}"


class CallController:
    """Route SIP calls into rooms and carry their media."""

    def __init__(
        self,
        config: Config,
        prompts: PromptLibrary,
        media_ports: MediaPorts,
        *,
        rng: random.Random,
        secret: bytes,
        recorders: Recorders | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`wall_clock` gives local time for hotline operator hours (None: not enforced)."""
        self._config = config
        self._recorders = recorders
        self._recordings: dict[str, RoomRecording] = {}  # room id -> the one in progress
        self._reports: dict[int, RoomRecording] = {}  # member id -> their report
        self._rng = rng
        self._media_ports = media_ports
        self._core = SipCore(
            rng=rng,
            user_agent=config.sip.user_agent,
            external_address=config.sip.external_address,
        )
        self._dialplan = Dialplan(config.rooms)
        accounts = {
            a.username: AccountSecrets(a.username, a.ha1_md5, a.ha1_sha256)
            for a in config.accounts
        }
        # pyVoIP 1.6.8 signs `sip:<server>` instead of the Request-URI; accepting that
        # costs little with single-use nonces (see bridge.sip.auth) and lets it register.
        self._auth = Authenticator(
            config.sip.domain,
            accounts,
            secret,
            rng=rng,
            algorithms=config.sip.digest_algorithms,
            accept_host_only_digest_uri=True,
        )
        self._registrar = Registrar(self._auth, config.sip.domain)
        self._rooms = {
            room.id: Room(room, prompts, wall_clock=wall_clock) for room in config.rooms
        }
        self._calls: dict[CallRef, Call] = {}
        self._by_port: dict[int, Call] = {}
        self._by_member: dict[int, Call] = {}
        self._next_member_id = 1
        self._rtp_out: list[tuple[int, bytes, tuple[str, int]]] = []
        self._next_timeout_check = 0.0
        self._tick_failure_logged: dict[str, float] = {}  # room id -> next time to log

    # -- SIP ------------------------------------------------------------------------

    def receive_sip(self, data: bytes, flow: Flow, now: float) -> None:
        """Feed one UDP datagram or one framed TCP message."""
        self._core.receive_datagram(data, flow, now)
        self._drain_sip_events(now)

    def handle_timer(self, now: float) -> None:
        self._core.handle_timer(now)
        self._drain_sip_events(now)

    def next_deadline(self) -> float | None:
        return self._core.next_deadline()

    def sip_datagrams(self) -> list[tuple[bytes, Flow]]:
        return self._core.datagrams_to_send()

    def rtp_datagrams(self) -> list[tuple[int, bytes, tuple[str, int]]]:
        """Drain `(local port, bytes, destination)` for RTP and RTCP sockets."""
        out, self._rtp_out = self._rtp_out, []
        return out

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def hang_up_all(self, now: float) -> None:
        """End every call with a BYE and finish every recording (graceful shutdown)."""
        for call in list(self._calls.values()):
            self._hang_up(call, "bridge shutting down", now)
        for room_id in list(self._recordings):
            self._stop_recording(self._rooms[room_id])
        for room in self._rooms.values():  # a report is finished as itself, not "a crash"
            self._record_reports(room.pop_captured())
        for member_id in list(self._reports):
            self._finish_report(member_id, "shutdown")

    def _drain_sip_events(self, now: float) -> None:
        while (event := self._core.next_event()) is not None:
            if isinstance(event, InviteReceived):
                self._on_invite(event.call, event.request, event.flow, now)
            elif isinstance(event, CallConfirmed):
                self._on_ack(event.call, event.ack, now)
            elif isinstance(event, ReinviteReceived):
                self._on_reinvite(event.call, event.request, now)
            elif isinstance(event, RequestReceived):
                self._on_request(event, now)
            elif isinstance(event, AckTimedOut):
                call = self._calls.get(event.call)
                if call is not None:
                    self._hang_up(call, "no ACK for our 200 OK", now)
            elif isinstance(event, ByeReceived | CallCancelled):
                call = self._calls.get(event.call)
                if call is not None:
                    log.info("%s: caller %s", call.log_prefix,
                             "hung up" if isinstance(event, ByeReceived) else "cancelled")
            elif isinstance(event, CallEnded):
                self._on_call_ended(event.call, event.reason, now)
            elif isinstance(event, MessageDropped):
                log.info("sip: dropped message from %s:%d (%s): %s", event.flow.remote_host,
                         event.flow.remote_port, event.flow.transport, event.reason)

    def _on_invite(self, ref: CallRef, request: Request, flow: Flow, now: float) -> None:
        prefix = f"call={ref.call_id}"
        try:
            request_user = SipUri.parse(request.uri).user_unescaped
            to_user = request.to_address.sip_uri.user_unescaped
        except SipParseError as exc:
            log.info("%s: rejected: %s", prefix, exc)
            self._core.respond_invite(ref, exc.status_hint, now, reason=str(exc))
            return
        route = self._dialplan.match(request_user, to_user)
        if route is None:
            log.info("%s: rejected: no room at extension %r", prefix, request_user)
            self._core.respond_invite(ref, 404, now)
            return
        room = self._rooms[route.room_id]
        label = _caller_label(request)
        if room.config.access == "accounts":
            outcome = self._auth.authenticate(request, now)
            if isinstance(outcome, Challenge):
                log.info("%s room=%s: challenged %s", prefix, room.config.id, label)
                self._core.respond_invite(ref, outcome.status, now, headers=outcome.headers)
                return
            label = outcome.username
        try:
            offer = SessionDescription.parse(request.body) if request.body else None
        except SipParseError as exc:
            log.info("%s: rejected: bad SDP: %s", prefix, exc)
            self._core.respond_invite(ref, 400, now, reason="Bad SDP")
            return
        try:
            local_port = self._media_ports.allocate(flow.local_host)
        except NoMediaPorts:
            log.warning("%s: rejected: no free RTP port", prefix)
            self._core.respond_invite(ref, 503, now, headers=[("Retry-After", "30")])
            return
        advertised = self._config.sip.external_address or flow.local_host
        local_audio = LocalAudio(
            codecs=room.config.codecs, host=advertised, port=local_port,
            ptimes_ms=self._config.ptimes_ms,
            opus_max_bitrate_bps=self._config.opus.max_bitrate_bps,
            opus_dtx=self._config.opus.dtx,
        )
        call = Call(
            ref=ref,
            member_id=self._next_member_id,
            room=room,
            flow=flow,
            label=label,
            caller_uri=_caller_uri(request),
            local_port=local_port,
            local_audio=local_audio,
            sdp_session=SdpSession(self._rng.getrandbits(31), advertised),
            last_media_at=now,
            # RFC 3550 §6.2: the first report goes out after half the minimum interval.
            next_rtcp_at=now + RTCP_INTERVAL_S / 2,
        )
        try:
            if offer is None:
                call.pending_offer = make_offer(local_audio, call.sdp_session)
                body = bytes(call.pending_offer)
            else:
                answer, negotiated = answer_offer(offer, local_audio, call.sdp_session)
                self._apply_media(call, negotiated)
                body = bytes(answer)
        except NoCommonCodec as exc:
            log.info("%s: rejected: %s", prefix, exc)
            self._media_ports.release(local_port)
            self._core.respond_invite(ref, 488, now)
            return
        self._next_member_id += 1
        self._calls[ref] = call
        self._by_port[local_port] = call
        self._by_member[call.member_id] = call
        self._core.respond_invite(ref, 200, now, body=body)
        codec = call.media.codec if call.media else room.config.codecs[0]
        settings = self._encoder_settings(call.media) if call.media else None
        room.add_member(call.member_id, label, codec, now, settings, operator=route.operator)
        if call.media is not None:
            room.set_on_hold(call.member_id, call.media.direction is not Direction.SENDRECV)
        log.info("%s: answered %s from %s:%d over %s, codec %s, rtp port %d",
                 call.log_prefix, label, flow.remote_host, flow.remote_port, flow.transport,
                 codec if call.media else "(offered in 200)", local_port)
        self._drain_room_actions(room, now)

    def _apply_media(self, call: Call, negotiated: NegotiatedAudio) -> None:
        """Start or update RTP for a negotiated session (initial, re-INVITE, or ACK)."""
        previous = call.media
        call.media = negotiated
        if previous is None or previous.clock_rate_hz != negotiated.clock_rate_hz:
            call.receive = ReceiveStream(negotiated.clock_rate_hz)
            call.highest_seq = None
        if previous is None or previous.payload_type != negotiated.payload_type:
            call.send = SendStream(negotiated.payload_type, negotiated.clock_rate_hz, self._rng)
        settings = self._encoder_settings(negotiated)
        if negotiated.codec != "OPUS":
            call.link = None
        elif call.link is None or call.link.base != settings:
            call.link = LinkAdapter(settings, self._config.opus.min_bitrate_bps,
                                    self._opus_bitrate_cap(negotiated))
        if call.link is not None:
            settings = call.link.settings()  # a refresh or hold keeps what the link needs
        # A no-op for a first offer (the member joins the room after this) and for a
        # re-INVITE that changes nothing; an answer in the ACK or a new offer apply here.
        call.room.set_codec(call.member_id, negotiated.codec, settings)
        remote = (negotiated.remote_host, negotiated.remote_port)
        if previous is None or (previous.remote_host, previous.remote_port) != remote:
            # A new offer may move the stream; latching follows the packets again.
            call.remote_rtp = remote
            call.remote_rtcp = (negotiated.remote_host, negotiated.remote_rtcp_port)
        call.room.set_on_hold(call.member_id, negotiated.direction is not Direction.SENDRECV)

    def _encoder_settings(self, negotiated: NegotiatedAudio) -> EncoderSettings:
        """How to encode what a member hears: its packet time, and for Opus what the far
        decoder said it takes (RFC 7587 §6.1) within what the config allows."""
        if negotiated.codec != "OPUS":
            return EncoderSettings(ptime_ms=negotiated.ptime_ms)
        opus = self._config.opus
        remote = negotiated.remote_opus or OpusParameters()
        return EncoderSettings(
            ptime_ms=negotiated.ptime_ms,
            bitrate_bps=min(opus.bitrate_bps, self._opus_bitrate_cap(negotiated)),
            fec=opus.fec and remote.use_inband_fec,
            dtx=opus.dtx and remote.use_dtx,
            # Audio bandwidth is half the playback rate; we mix at 16 kHz, so 8 kHz at most.
            max_audio_bandwidth_hz=min(8000, remote.max_playback_rate_hz // 2),
        )

    def _opus_bitrate_cap(self, negotiated: NegotiatedAudio) -> int:
        """The most we may send: our config's maximum, and the far end's maxaveragebitrate."""
        opus = self._config.opus
        remote = negotiated.remote_opus or OpusParameters()
        if remote.max_average_bitrate_bps is None:
            return opus.max_bitrate_bps
        # RFC 7587 §6.1: the far end's limit holds even below our own configured minimum.
        return min(opus.max_bitrate_bps, remote.max_average_bitrate_bps)

    def _on_ack(self, ref: CallRef, ack: Request, now: float) -> None:
        call = self._calls.get(ref)
        if call is None or call.pending_offer is None:
            return
        offer, call.pending_offer = call.pending_offer, None
        try:
            negotiated = accept_answer(offer, SessionDescription.parse(ack.body), call.local_audio)
        except SipParseError as exc:
            # RFC 3261 §13.3.1.4: the session cannot start without an answer.
            log.info("%s: no usable SDP answer in ACK: %s", call.log_prefix, exc)
            self._hang_up(call, "no usable SDP answer in ACK", now)
            return
        self._apply_media(call, negotiated)
        log.info("%s: media from ACK: %s pt %d", call.log_prefix, negotiated.codec,
                 negotiated.payload_type)

    def _on_reinvite(self, ref: CallRef, request: Request, now: float) -> None:
        call = self._calls.get(ref)
        if call is None:
            self._core.respond_invite(ref, 481, now)
            return
        if not request.body:
            call.pending_offer = make_offer(call.local_audio, call.sdp_session)
            self._core.respond_invite(ref, 200, now, body=bytes(call.pending_offer))
            return
        try:
            offer = SessionDescription.parse(request.body)
            answer, negotiated = answer_offer(offer, call.local_audio, call.sdp_session)
        except NoCommonCodec as exc:
            log.info("%s: re-INVITE refused: %s", call.log_prefix, exc)
            self._core.respond_invite(ref, 488, now)
            return
        except SipParseError as exc:
            log.info("%s: re-INVITE with bad SDP: %s", call.log_prefix, exc)
            self._core.respond_invite(ref, 400, now, reason="Bad SDP")
            return
        self._apply_media(call, negotiated)
        self._core.respond_invite(ref, 200, now, body=bytes(answer))
        log.info("%s: re-INVITE: %s pt %d, %s, remote %s:%d", call.log_prefix, negotiated.codec,
                 negotiated.payload_type, negotiated.direction.value, negotiated.remote_host,
                 negotiated.remote_port)

    def _on_request(self, event: RequestReceived, now: float) -> None:
        request = event.request
        if request.method == "REGISTER":
            response = self._registrar.handle(request, event.flow, now)
            log.info("register: %s from %s:%d -> %d", request.to_address.uri,
                     event.flow.remote_host, event.flow.remote_port, response.status)
            self._core.respond(event.key, response, now)
            return
        if request.method == "INFO":
            call = self._calls.get(event.call) if event.call is not None else None
            if call is None:
                self._core.respond(event.key, response_to(request, 481), now)
                return
            digit = _info_digit(request)
            if digit is None and request.body:
                self._core.respond(event.key, response_to(request, 415), now)
                return
            self._core.respond(event.key, response_to(request, 200), now)
            if digit is not None:
                self._press(call, digit, "SIP INFO", now)
            return
        self._core.respond(event.key, response_to(request, 405, headers=[
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER")]), now)

    def _on_call_ended(self, ref: CallRef, reason: str, now: float) -> None:
        call = self._calls.pop(ref, None)
        if call is None:
            return
        self._by_port.pop(call.local_port, None)
        self._by_member.pop(call.member_id, None)
        if call.member_id in call.room:
            media = call.room.member(call.member_id).media
            playout = media.jitter.statistics()
            log.info("%s: playout delay %.0f ms (target %.0f ms); concealed %d frames, "
                     "stretched %d, shortened %d; echo canceller %s",
                     call.log_prefix, media.jitter.delay_ms, media.jitter.target_ms,
                     playout.concealed_frames, playout.stretched_frames,
                     playout.compressed_frames,
                     "off" if media.echo is None else f"on at {media.echo.delay_ms} ms")
        call.room.remove_member(call.member_id)
        self._drain_room_actions(call.room, now)  # a report to finish, a caller requeued
        self._media_ports.release(call.local_port)
        stats = call.receive.statistics() if call.receive is not None else None
        if stats is not None:
            log.info("%s: ended (%s); received %d packets, lost %d, jitter %.1f ms",
                     call.log_prefix, reason, stats.packets_received, stats.cumulative_lost,
                     stats.jitter_ms)
        else:
            log.info("%s: ended (%s)", call.log_prefix, reason)

    def _hang_up(self, call: Call, reason: str, now: float) -> None:
        if call.ending:
            return
        call.ending = True
        log.info("%s: hanging up: %s", call.log_prefix, reason)
        self._core.hangup(call.ref, now)
        self._drain_sip_events(now)

    # -- RTP --------------------------------------------------------------------------

    def receive_rtp(
        self, local_port: int, data: bytes, source: tuple[str, int], now: float
    ) -> None:
        """One RTP datagram that arrived on `local_port` from `source`."""
        call = self._by_port.get(local_port)
        if call is None or call.media is None or call.receive is None:
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError as exc:
            log.debug("%s: bad RTP from %s:%d: %s", call.log_prefix, *source, exc)
            return
        media = call.media
        if packet.payload_type not in (media.payload_type, media.telephone_event_pt):
            return  # comfort noise and codecs we did not agree on are not ours to play
        status = call.receive.receive(
            packet.sequence_number, packet.timestamp, packet.ssrc, len(packet.payload), now
        )
        if status in (ReceiveStatus.DUPLICATE, ReceiveStatus.OUT_OF_ORDER_TOO_OLD):
            return
        self._latch(call, source)
        call.last_media_at = now
        order = self._follow_sequence(call, packet.sequence_number, status)
        if packet.payload_type == media.payload_type:
            call.room.push_audio(call.member_id, packet.timestamp, packet.payload,
                                 lost_before=order is _Order.AFTER_GAP,
                                 late=order is _Order.LATE, arrival_s=now)
        else:
            event = call.events.receive(packet.payload, packet.timestamp, packet.marker)
            if isinstance(event, DigitStarted):
                self._press(call, event.digit, "RFC 4733", now)

    @staticmethod
    def _follow_sequence(call: Call, sequence_number: int, status: ReceiveStatus) -> _Order:
        """Track the highest sequence number (audio and telephone-events share it) and say
        where this packet falls: next in line, after a gap, or late (behind the highest)."""
        if call.highest_seq is None or status in (
            ReceiveStatus.NEW_SOURCE, ReceiveStatus.RESTARTED
        ):
            call.highest_seq = sequence_number  # a new timeline: nothing before it is owed
            return _Order.NEXT
        if status is ReceiveStatus.BAD_SEQUENCE:
            return _Order.NEXT  # a stray jump; the stream's own numbering stays the reference
        ahead = (sequence_number - call.highest_seq) & 0xFFFF
        if ahead >= 0x8000:
            return _Order.LATE
        call.highest_seq = sequence_number
        return _Order.AFTER_GAP if ahead > 1 else _Order.NEXT

    def _latch(self, call: Call, source: tuple[str, int]) -> None:
        """Symmetric RTP: send to where the packets really come from (NAT)."""
        if source == call.remote_rtp:
            call.relatch_count = 0
            return
        if source == call.relatch_source:
            call.relatch_count += 1
        else:
            call.relatch_source, call.relatch_count = source, 1
        first_packet = call.receive is not None and call.receive.statistics().packets_received <= 1
        if first_packet or call.relatch_count >= RELATCH_PACKETS:
            log.info("%s: RTP latched to %s:%d", call.log_prefix, *source)
            call.remote_rtp = source
            call.remote_rtcp = (source[0], source[1] + 1)
            call.relatch_source, call.relatch_count = None, 0

    def receive_rtcp(
        self, local_port: int, data: bytes, source: tuple[str, int], now: float
    ) -> None:
        """One RTCP datagram that arrived on `local_port` (the odd port of a pair)."""
        call = self._by_port.get(local_port - 1)
        if call is None or call.receive is None:
            return
        try:
            packets = parse_rtcp(data)
        except RtcpParseError as exc:
            log.debug("%s: bad RTCP from %s:%d: %s", call.log_prefix, *source, exc)
            return
        call.remote_rtcp = source
        call.last_media_at = now
        for packet in packets:
            if isinstance(packet, RtcpSenderReport):
                call.receive.on_sender_report(packet.ntp_timestamp, now)
            if isinstance(packet, RtcpSenderReport | RtcpReceiverReport):
                self._adapt_to_link(call, packet.reports)

    def _adapt_to_link(self, call: Call, reports: tuple[ReportBlock, ...]) -> None:
        """Follow what the member's receiver says of our stream to it."""
        if call.link is None or call.send is None:
            return
        for block in reports:
            if block.ssrc != call.send.ssrc:
                continue
            settings = call.link.on_report(block.fraction_lost)
            if settings is not None:
                log.info("%s: link: %.1f %% lost, sending %d bit/s with %d %% FEC protection",
                         call.log_prefix, 100 * block.fraction_lost / 256,
                         settings.bitrate_bps, settings.expected_loss_percent)
                call.room.set_send_settings(call.member_id, settings)

    def _press(self, call: Call, digit: str, via: str, now: float) -> None:
        log.info("%s: digit %s (%s)", call.log_prefix, digit, via)
        call.room.press(call.member_id, digit, now)
        self._drain_room_actions(call.room, now)

    # -- the media clock -----------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Mix every room once (called every 20 ms by the media clock)."""
        for room in self._rooms.values():
            if not room.member_ids:
                continue
            try:
                packets = room.tick(now)
            except Exception:  # noqa: BLE001 - one room's fault must not stop the clock
                # An exception here would end the media clock's LoopingCall and silence
                # every room; log it with its traceback (once a minute per room, not 50
                # times a second) and let the other rooms go on.
                if now >= self._tick_failure_logged.get(room.config.id, -TICK_FAILURE_LOG_S):
                    self._tick_failure_logged[room.config.id] = now + TICK_FAILURE_LOG_S
                    log.exception("room=%s: tick failed", room.config.id)
                continue
            for member_id, packet in packets.items():
                call = self._by_member.get(member_id)
                if call is None or call.send is None or call.remote_rtp is None:
                    continue
                assert call.media is not None
                sending = call.media.direction in (Direction.SENDRECV, Direction.SENDONLY)
                if sending and packet.payload is not None:
                    self._rtp_out.append((
                        call.local_port,
                        call.send.packet(packet.payload, packet.timestamp_step),
                        call.remote_rtp,
                    ))
                else:  # on hold, or the codec is silent (Opus DTX): the clock moves on
                    call.send.skip(packet.timestamp_step)
            # Actions first: a recording or report that started this tick must be open
            # for this tick's audio (one that ended this tick had its last audio before).
            self._drain_room_actions(room, now)
            self._record(room, room.pop_recorded())
            self._record_reports(room.pop_captured())
        self._send_rtcp(now)
        if now >= self._next_timeout_check:
            self._next_timeout_check = now + TIMEOUT_CHECK_INTERVAL_S
            self._remove_silent_members(now)

    def _send_rtcp(self, now: float) -> None:
        for call in self._calls.values():
            if call.receive is None or call.send is None or call.remote_rtcp is None:
                continue
            if now < call.next_rtcp_at:
                continue
            call.next_rtcp_at = now + RTCP_INTERVAL_S
            report = build_report(call.send, call.receive, now)
            self._rtp_out.append((call.local_port + 1, report, call.remote_rtcp))

    def _remove_silent_members(self, now: float) -> None:
        timeout_s = self._config.rtp.timeout_s
        for call in list(self._calls.values()):
            if call.ending or call.media is None:
                continue
            # A member who put us on hold with `inactive`, or who only listens
            # (`recvonly` on their side), owes us no RTP.
            if call.media.direction in (Direction.INACTIVE, Direction.SENDONLY):
                continue
            if now - call.last_media_at >= timeout_s:
                self._hang_up(call, f"no RTP for {timeout_s:g} s", now)

    def _drain_room_actions(self, room: Room, now: float) -> None:
        for action in room.pop_actions():
            if isinstance(action, RecordingChanged):
                if action.recording:
                    self._start_recording(room, action.member_id)
                else:
                    self._stop_recording(room)
                continue
            if isinstance(action, MeetingEnded):
                log.info("room=%s: meeting %s", room.config.id, action.reason)
                continue
            if isinstance(action, ReportEnded):
                # Its last audio first: what was still in the playout buffer at hang-up.
                self._record_reports(room.pop_captured())
                self._finish_report(action.member_id, action.ended_by)
                continue
            call = self._by_member.get(action.member_id)
            if call is None:
                continue
            if isinstance(action, ReportStarted):
                self._start_report(call, action.rate_hz)
                continue
            if isinstance(action, TransferToRoom):
                self._transfer(call, action.room_id, now)
                continue
            if isinstance(action, HangUp):
                self._hang_up(call, action.reason, now)
            elif isinstance(action, MemberJoined):
                log.info("%s: joined as %s (%d present)", call.log_prefix, action.role.value,
                         room.present_count)
            elif isinstance(action, MuteChanged):
                log.info("%s: mute: %s", call.log_prefix, action.state.value.replace("_", " "))
            elif isinstance(action, DigitHeard):
                log.info("%s: digit %s (in-band)", call.log_prefix, action.digit)
            elif isinstance(action, TalkingChanged):
                log.debug("%s: %s", call.log_prefix,
                          "talking" if action.talking else "stopped talking")
            elif isinstance(action, PinRejected):
                log.info("%s: wrong PIN (try %d)", call.log_prefix, action.attempts)
            elif isinstance(action, HandChanged):
                log.info("%s: hand %s", call.log_prefix,
                         f"raised ({action.position} in queue)" if action.raised else "lowered")
            elif isinstance(action, FloorGiven):
                log.info("%s: gave the floor to member %d", call.log_prefix, action.to_member)
            elif isinstance(action, RoomLockChanged):
                log.info("%s: room %s", call.log_prefix,
                         "locked" if action.locked else "unlocked")
            elif isinstance(action, OperatorConnected):
                log.info("%s: operator %s", call.log_prefix,
                         f"talks to member {action.caller}" if action.caller else "is free")

    def _transfer(self, call: Call, room_id: str, now: float) -> None:
        """Move a hotline caller into a conference room (an operator vouched for them)."""
        target = self._rooms.get(room_id)
        if target is None or call.media is None:
            return
        source = call.room
        source.remove_member(call.member_id)
        call.room = target
        settings = call.link.settings() if call.link else self._encoder_settings(call.media)
        target.add_member(call.member_id, call.label, call.media.codec, now, settings,
                          vouched=True)
        target.set_on_hold(call.member_id, call.media.direction is not Direction.SENDRECV)
        log.info("%s: brought over from room %s by its operator", call.log_prefix,
                 source.config.id)
        self._drain_room_actions(target, now)

    def _start_report(self, call: Call, rate_hz: int) -> None:
        if self._recorders is None:
            return
        metadata = {"room": call.room.config.id, "caller": call.label,
                    "caller_uri": call.caller_uri, "call_id": call.ref.call_id}
        try:
            self._reports[call.member_id] = self._recorders.start_report(rate_hz, metadata)
        except OSError as exc:
            log.error("%s: cannot record the report: %s", call.log_prefix, exc)
            return
        log.info("%s: recording a report", call.log_prefix)

    def _record_reports(self, captured: dict[int, list[NDArray[np.float32]]]) -> None:
        for member_id, frames in captured.items():
            report = self._reports.get(member_id)
            if report is None:
                continue
            try:
                for frame in frames:
                    report.write(frame)
            except (OSError, OverflowError) as exc:  # what was said so far stays on disk
                log.error("member=%d: report stopped: %s", member_id, exc)
                self._finish_report(member_id, "error")

    def _finish_report(self, member_id: int, ended_by: str) -> None:
        report = self._reports.pop(member_id, None)
        if report is None:
            return
        report.note("ended_by", ended_by)
        try:
            where = report.close()
        except OSError as exc:
            log.error("member=%d: report could not be finished: %s", member_id, exc)
            return
        log.info("member=%d: report saved (%s): %s", member_id, ended_by, where)

    def _start_recording(self, room: Room, member_id: int) -> None:
        if room.config.id in self._recordings:
            return
        if self._recorders is None:
            log.error("room=%s: cannot record: no recordings here", room.config.id)
            room.recording_failed(member_id)
            return
        try:
            recording = self._recorders.start(room.config.id, room.config.name)
        except OSError as exc:  # a full disk or a bad folder must not stop the meeting
            log.error("room=%s: cannot start recording: %s", room.config.id, exc)
            room.recording_failed(member_id)
            return
        self._recordings[room.config.id] = recording
        log.info("room=%s: recording started", room.config.id)

    def _record(self, room: Room, frames: list[NDArray[np.float32]]) -> None:
        recording = self._recordings.get(room.config.id)
        if recording is None:
            return
        try:
            for frame in frames:
                recording.write(frame)
        except (OSError, OverflowError) as exc:  # what was written so far stays on disk
            log.error("room=%s: recording stopped: %s", room.config.id, exc)
            self._stop_recording(room)
            room.recording_failed(0)

    def _stop_recording(self, room: Room) -> None:
        recording = self._recordings.pop(room.config.id, None)
        if recording is None:
            return
        try:
            where = recording.close()
        except OSError as exc:
            log.error("room=%s: recording could not be finished: %s", room.config.id, exc)
            return
        log.info("room=%s: recording stopped: %s", room.config.id, where)


def _caller_label(request: Request) -> str:
    """A short name for logs: the display name, else the From user."""
    try:
        sender: NameAddress = request.from_address
        if sender.display_name:
            return sender.display_name
        user = sender.sip_uri.user
        return user if user else sender.uri
    except SipParseError:
        return "unknown"


def _caller_uri(request: Request) -> str:
    """The From URI, kept with a hotline report to call the reporter back."""
    try:
        return request.from_address.uri
    except SipParseError:
        return "unknown"


def _info_digit(request: Request) -> str | None:
    """The digit in a SIP INFO (application/dtmf-relay `Signal=5`, or application/dtmf)."""
    body = request.body.decode("utf-8", "replace").strip()
    if request.content_type == "application/dtmf-relay":
        for line in body.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                return _INFO_SIGNALS.get(value.strip().upper())
        return None
    if request.content_type == "application/dtmf":
        return _INFO_SIGNALS.get(body.upper())
    return None
