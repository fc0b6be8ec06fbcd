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
import heapq
import ipaddress
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from bridge.conference.adaptation import LinkAdapter
from bridge.conference.gateway import GatewayLeg, LegState, LegStatus
from bridge.conference.media import (
    STATELESS_CODECS,
    EncodeJob,
    OutgoingPacket,
    PayloadBatch,
    RoomEncoder,
    gather_rooms,
    playout_bank,
)
from bridge.conference.prompts import PromptLibrary
from bridge.conference.room import (
    TALKER_FLOOR_RMS,
    DigitHeard,
    FloorGiven,
    HandChanged,
    HangUp,
    MeetingEnded,
    MemberJoined,
    MuteChanged,
    OperatorConnected,
    PinRejected,
    PreparedTick,
    RecordingChanged,
    ReportEnded,
    ReportStarted,
    Room,
    RoomEmptied,
    RoomLockChanged,
    RoomStarted,
    TalkingChanged,
    TransferToRoom,
)
from bridge.config import Config, GatewayConfig, RtpLegConfig
from bridge.dialplan import Dialplan
from bridge.rtp.packet import RTP_HEADER, RtpParseError, parse_fields, parse_plain_many
from bridge.rtp.rtcp import (
    ReportBlock,
    RtcpParseError,
    RtcpReceiverReport,
    RtcpSenderReport,
    build_report,
    parse_rtcp,
)
from bridge.rtp.sender import SendBank, SendStream
from bridge.rtp.stream import BANK_MAX_AHEAD, ReceiveBank, ReceiveStatus, ReceiveStream
from bridge.rtp.telephone_event import DigitSender, DigitStarted, TelephoneEventReceiver
from bridge.sip.auth import AccountSecrets, Authenticator, Challenge, ClientCredentials
from bridge.sip.core import SipCore
from bridge.sip.errors import SipParseError
from bridge.sip.events import (
    AckTimedOut,
    ByeReceived,
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallProgress,
    CallRef,
    InviteReceived,
    MessageDropped,
    ReinviteReceived,
    RequestReceived,
    ResponseReceived,
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
    describe_fixed_peer,
    make_offer,
)
from bridge.sip.registrar import Registrar
from bridge.sip.registration import RegistrationState
from bridge.sip.sdp import SessionDescription
from bridge.sip.uri import SipUri
from bridge.trunks import Trunks, next_hop
from dsp.codecs.base import EncoderSettings

log = logging.getLogger(__name__)

_Part = TypeVar("_Part")  # a room's input to a shared stage of the tick
_Done = TypeVar("_Done")  # and what the stage made of it

# An RTP datagram as the sockets give it: (local port, bytes, source, arrival in seconds).
ReceivedRtp = tuple[int, bytes, tuple[str, int], float]
# Where a packet goes: (local port, the leg's send stream, destination).
_Recipient = tuple[int, SendStream, tuple[str, int]]
RTCP_INTERVAL_S = 5.0  # RFC 3550 §6.2 minimum; a server's legs are few per peer
# Each interval is RTCP_INTERVAL_S times a random factor in this range (RFC 3550 §6.3.1),
# so legs that started together (a plenary's first minute, a load test) do not report in
# the same tick: a report costs ~7 us of Python (its send counts taken out of the SendBank
# included), 1.4 ms at once for 200 legs. No timer reconsideration (§6.3.3), so no
# e - 3/2 compensation: the mean stays RTCP_INTERVAL_S.
RTCP_INTERVAL_SPREAD = (0.5, 1.5)
TIMEOUT_CHECK_INTERVAL_S = 1.0
TICK_FAILURE_LOG_S = 60.0  # a room whose tick keeps failing is logged once a minute
# After a stage the rooms share failed (`_together`: the detectors, the encodes), rooms go
# through the stages one by one (so a fault stays in its room) until this long has passed
# without a room failing there.
ROOMS_ALONE_S = 60.0
# Packets in a row from a new source address before RTP re-latches to it: a NAT
# rebinding moves the stream for good, a stray or spoofed packet does not.
RELATCH_PACKETS = 5
# 20 ms of G.711 (160 bytes) behind a plain header: what nearly every phone in a big room
# sends, and what `_receive_steady` takes together (`STATELESS_CODECS`: G.711).
_STEADY_PAYLOAD_BYTES = 160
_STEADY_PACKET_BYTES = RTP_HEADER.size + _STEADY_PAYLOAD_BYTES
# A payload going to this many members or more has their headers made together
# (`SendBank.packets`); below it, one by one costs less than the arrays' set-up.
SEND_BANK_MIN_STREAMS = 64
# RFC 4733 event codes carried in SIP INFO bodies (application/dtmf-relay "Signal=").
_INFO_SIGNALS = {str(d): str(d) for d in range(10)} | {"*": "*", "#": "#", "10": "*", "11": "#"}
_INFO_SIGNALS |= {c: c for c in "ABCD"}
# A dial-out leg's far end that rings this long without answering is given up (CANCEL)
# and dialled again later: a SIP gateway may ring for ever (no INVITE timer runs after 1xx).
DIAL_ANSWER_TIMEOUT_S = 60.0
# A plain RTP leg that cannot start (its remote_sdp unreadable, no port) tries again after
# this long, doubling: the file may be written later.
RTP_LEG_RETRY_MIN_S = 5.0
RTP_LEG_RETRY_MAX_S = 60.0
# Where a plain RTP leg that answers to where packets come from says its peer is, in the
# SDP that describes our side before any packet came (the discard port, RFC 863).
_UNKNOWN_PEER = ("127.0.0.1", 9)


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
class GatewayLegRun:
    """A room's leg to a video meeting: its config, life, and the call or stream carrying it."""

    config: GatewayConfig
    room: Room
    life: GatewayLeg
    port: int | None = None  # a plain RTP leg's port, bound for the bridge's lifetime
    sdp: bytes = b""  # a plain RTP leg's own side, for its sdp_file
    call: Call | None = None  # the live attempt, if any
    answer_by: float | None = None  # a dial-out ringing: CANCEL it if not answered by then

    @property
    def log_prefix(self) -> str:
        return f"room={self.room.config.id} gateway={self.config.id}"


# Slots: read by every tick, member by member (see `MemberMedia`).
@dataclass(eq=False, slots=True)
class Call:
    """One caller or gateway leg: its SIP dialog (none for plain RTP), room membership and
    RTP state."""

    ref: CallRef
    member_id: int
    room: Room
    flow: Flow | None  # None for a plain RTP leg
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
    highest_seq: int | None = None  # of the RTP received, for losses right before a packet
    link: LinkAdapter | None = None  # Opus members: bitrate and FEC from their reports
    ending: bool = False
    gateway: GatewayLegRun | None = None  # set for a leg to a video meeting
    digits: DigitSender | None = None  # a dial-out leg's meeting ID / passcode being sent
    digits_at: float = 0.0  # when to start sending them

    @property
    def log_prefix(self) -> str:
        return f"call={self.ref.call_id} room={self.room.config.id} member={self.member_id}"


def _in_rounds(
    ports: list[int], steady: list[tuple[int, Call]], left: list[int]
) -> list[list[tuple[int, Call]]]:
    """`steady`'s packets in rounds, each port's n-th in the n-th; those of a port that
    come after one of its packets in `left` join `left` (each depends on the one before)."""
    failed_from: dict[int, int] = {}  # port -> index of its first packet in `left`
    for index in left:  # in order
        failed_from.setdefault(ports[index], index)
    next_round: dict[int, int] = {}
    rounds: list[list[tuple[int, Call]]] = []
    for index, call in steady:
        port = ports[index]
        if index > failed_from.get(port, index):
            left.append(index)
            continue
        round_ = next_round.get(port, 0)
        next_round[port] = round_ + 1
        if round_ == len(rounds):
            rounds.append([])
        rounds[round_].append((index, call))
    return rounds


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
        resolve_host: Callable[[str], str] | None = None,
        read_file: Callable[[Path], bytes] | None = None,
    ) -> None:
        """`wall_clock` gives local time for hotline operator hours (None: not enforced).

        `resolve_host` turns a trunk's or a video gateway's host name into an address
        (None: IP addresses only); `read_file` reads a plain RTP leg's `remote_sdp` (None:
        such legs cannot start).
        """
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
        # One playout bank for every room's G.711 members: a sweep's packets, whatever
        # their rooms, go in with one push (`PayloadBatch`).
        shared_bank = playout_bank()
        self._rooms = {
            room.id: Room(room, prompts, wall_clock=wall_clock, jitter_bank=shared_bank)
            for room in config.rooms
        }
        self._calls: dict[CallRef, Call] = {}
        self._by_port: dict[int, Call] = {}
        self._by_member: dict[int, Call] = {}
        # (when its next RTCP report is due, member id) for every member: a tick reads
        # those due, not all members (each reports every RTCP_INTERVAL_S, on average).
        self._rtcp_due: list[tuple[float, int]] = []
        self._rtcp_waiting: list[int] = []  # due, with no streams or RTCP address yet
        self._receive_bank = ReceiveBank()
        self._send_bank = SendBank()
        self._next_member_id = 1
        self._rtp_out: list[tuple[int, bytes, tuple[str, int]]] = []
        self._next_timeout_check = 0.0
        self._tick_failure_logged: dict[str, float] = {}  # room id -> next time to log
        self._rooms_alone_until = 0.0  # see ROOMS_ALONE_S
        self._resolve_host = resolve_host or _ip_address_only
        self._read_file = read_file
        udp = [a for a in config.sip.listen if a.transport == "udp"]
        # Requests we send (REGISTER, dial-out INVITEs) leave from the first UDP listener.
        self._udp_local = (udp[0].host, udp[0].port) if udp else None
        self._trunks = Trunks(config, self._udp_local, self._resolve_host, rng=rng)
        self._legs = [
            GatewayLegRun(leg, self._rooms[room.id], GatewayLeg(
                room.id, leg.id,
                retry_min_s=leg.sip.redial_min_s if leg.sip else RTP_LEG_RETRY_MIN_S,
                retry_max_s=leg.sip.redial_max_s if leg.sip else RTP_LEG_RETRY_MAX_S,
            ))
            for room in config.rooms for leg in room.gateways
        ]

    # -- SIP ------------------------------------------------------------------------

    def receive_sip(self, data: bytes, flow: Flow, now: float) -> None:
        """Feed one UDP datagram or one framed TCP message."""
        self._core.receive_datagram(data, flow, now)
        self._drain_sip_events(now)

    def start(self, now: float) -> None:
        """Bind the plain RTP legs' ports (their SDP is then in `gateway_sdp_files`) and
        register to the trunks."""
        for run in self._legs:
            if run.config.rtp is not None:
                self._bind_rtp_leg(run)
        self._trunks.start(now, self._core.send_request)

    def gateway_sdp_files(self) -> list[tuple[Path, bytes]]:
        """The SDP of our side of each plain RTP leg that names an `sdp_file`."""
        return [
            (run.config.rtp.sdp_file, run.sdp) for run in self._legs
            if run.config.rtp is not None and run.config.rtp.sdp_file is not None and run.sdp
        ]

    def gateway_statuses(self) -> list[LegStatus]:
        """Every gateway leg's state and why, for the operator (logs now, an API later)."""
        return [run.life.status for run in self._legs]

    def trunk_states(self) -> Mapping[str, RegistrationState]:
        """Each trunk's registration state, by trunk id."""
        return self._trunks.states()

    def handle_timer(self, now: float) -> None:
        self._core.handle_timer(now)
        self._drain_sip_events(now)
        for run in self._legs:
            if run.answer_by is not None and now >= run.answer_by and run.call is not None:
                run.answer_by = None
                self._hang_up(run.call, f"no answer in {DIAL_ANSWER_TIMEOUT_S:g} s", now)
            if run.life.due(now):
                self._connect_leg(run, now)
        self._trunks.handle_timer(now, self._core.send_request)

    def next_deadline(self) -> float | None:
        deadlines = [self._core.next_deadline(), self._trunks.next_deadline()]
        for run in self._legs:
            deadlines += [run.life.next_deadline(), run.answer_by]
        return min((d for d in deadlines if d is not None), default=None)

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
        """End every call with a BYE, every leg and registration, and finish every
        recording (graceful shutdown)."""
        for run in self._legs:
            if run.life.room_ended("bridge shutting down", now) and run.call is not None:
                self._hang_up(run.call, "bridge shutting down", now)
        for call in list(self._calls.values()):
            self._hang_up(call, "bridge shutting down", now)
        self._trunks.stop(now, self._core.send_request)
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
            elif isinstance(event, CallAnswered):
                self._on_leg_answered(event.call, event.response.body, now)
            elif isinstance(event, CallProgress):
                call = self._calls.get(event.call)
                if call is not None and call.gateway is not None:
                    log.info("%s: %d", call.gateway.log_prefix, event.status)
            elif isinstance(event, ResponseReceived):
                self._trunks.receive_response(event.branch, event.response, now,
                                              self._core.send_request)
            elif isinstance(event, MessageDropped):
                log.info("sip: dropped message from %s:%d (%s): %s", event.flow.remote_host,
                         event.flow.remote_port, event.flow.transport, event.reason)

    def _on_invite(self, ref: CallRef, request: Request, flow: Flow, now: float) -> None:
        prefix = f"call={ref.call_id}"
        if not self._trunks.allows(flow.remote_host):
            log.info("%s: refused: %s is not in sip.allow_from", prefix, flow.remote_host)
            self._core.respond_invite(ref, 403, now)
            return
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
        # A trunk's calls are the PSTN's: its address vouches for them, not an account.
        if room.config.access == "accounts" and not self._trunks.is_trunk(flow.remote_host):
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
        self._schedule_first_report(call, now)
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
        if call.digits is not None and previous is not None and (
            previous.telephone_event_pt, previous.clock_rate_hz, previous.ptime_ms,
        ) != (negotiated.telephone_event_pt, negotiated.clock_rate_hz, negotiated.ptime_ms):
            log.warning("%s: the far end changed the stream; digits not sent", call.log_prefix)
            call.digits = None
        if previous is None or previous.clock_rate_hz != negotiated.clock_rate_hz:
            # G.711 packets are what `_receive_steady` takes together; other codecs' streams
            # stay out of the bank, which would only cost them a hand-over per packet.
            call.receive = ReceiveStream(
                negotiated.clock_rate_hz,
                bank=self._receive_bank if negotiated.codec in STATELESS_CODECS else None)
            call.highest_seq = None
        if previous is None or previous.payload_type != negotiated.payload_type:
            call.send = SendStream(negotiated.payload_type, negotiated.clock_rate_hz, self._rng,
                                   bank=self._send_bank)
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
            if not self._trunks.allows(event.flow.remote_host):
                response = response_to(request, 403)
            else:
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
        if call.gateway is not None:
            self._leg_dropped(call.gateway, call, reason, now)

    def _hang_up(self, call: Call, reason: str, now: float) -> None:
        if call.ending:
            return
        call.ending = True
        log.info("%s: hanging up: %s", call.log_prefix, reason)
        if call.flow is None:  # a plain RTP leg: no dialog, the stream just stops
            assert call.gateway is not None
            self._stop_rtp_leg(call.gateway, reason, now)
            return
        self._core.hangup(call.ref, now)
        self._drain_sip_events(now)

    # -- gateway legs ---------------------------------------------------------------------

    def _log_leg(self, run: GatewayLegRun) -> None:
        status = run.life.status
        retry = ""
        if status.next_attempt_at is not None:
            retry = f"; re-dial in {status.next_attempt_at - status.since:.1f} s"
        level = logging.WARNING if status.state is LegState.WAITING else logging.INFO
        log.log(level, "%s: leg %s (%s)%s", run.log_prefix, status.state.value, status.reason,
                retry)

    def _rooms_legs_start(self, room: Room, now: float) -> None:
        for run in self._legs:
            if run.room is room and run.life.room_started(now):
                self._connect_leg(run, now)

    def _rooms_legs_stop(self, room: Room, reason: str, now: float) -> None:
        for run in self._legs:
            if run.room is not room:
                continue
            if run.life.room_ended(reason, now) and run.call is not None:
                self._hang_up(run.call, reason, now)
            self._log_leg(run)

    def _connect_leg(self, run: GatewayLegRun, now: float) -> None:
        self._log_leg(run)
        if run.config.rtp is not None:
            self._start_rtp_leg(run, now)
        else:
            self._dial(run, now)

    def _leg_dropped(self, run: GatewayLegRun, call: Call, reason: str, now: float) -> None:
        if run.call is call:
            run.call = None
            run.answer_by = None
            run.life.dropped(reason, now)
            self._log_leg(run)

    def _new_leg_call(
        self, run: GatewayLegRun, ref: CallRef, flow: Flow | None, port: int,
        local_audio: LocalAudio, session: SdpSession, uri: str, now: float,
    ) -> Call:
        call = Call(
            ref=ref, member_id=self._next_member_id, room=run.room, flow=flow,
            label=f"gateway {run.config.id}", caller_uri=uri, local_port=port,
            local_audio=local_audio, sdp_session=session, last_media_at=now, gateway=run,
        )
        self._next_member_id += 1
        self._by_port[port] = call
        self._by_member[call.member_id] = call
        self._schedule_first_report(call, now)
        run.call = call
        return call

    def _leg_audio(self, run: GatewayLegRun, host: str, port: int) -> LocalAudio:
        rtp, sip = run.config.rtp, run.config.sip
        return LocalAudio(
            codecs=(rtp.codec,) if rtp else (sip.codecs if sip and sip.codecs
                                               else run.room.config.codecs),
            host=host, port=port,
            ptimes_ms=(rtp.ptime_ms,) if rtp else self._config.ptimes_ms,
            opus_max_bitrate_bps=self._config.opus.max_bitrate_bps,
            opus_dtx=self._config.opus.dtx,
        )

    def _advertised(self, local_host: str) -> str:
        return self._config.sip.external_address or local_host

    def _leg_host(self) -> str:
        """Where plain RTP legs bind: the first SIP listen address (the bridge's own)."""
        return self._config.sip.listen[0].host

    def _bind_rtp_leg(self, run: GatewayLegRun) -> None:
        """Bind a plain RTP leg's port once, and describe our side of it for its sdp_file."""
        rtp = run.config.rtp
        assert rtp is not None
        try:
            run.port = self._media_ports.allocate(self._leg_host())
        except NoMediaPorts:
            log.error("%s: no free RTP port for the leg", run.log_prefix)
            return
        host = self._advertised(self._leg_host())
        answer, _ = answer_offer(_configured_peer(rtp), self._leg_audio(run, host, run.port),
                                 SdpSession(self._rng.getrandbits(31), host))
        run.sdp = bytes(answer)
        log.info("%s: plain RTP leg on port %d, %s pt %d", run.log_prefix, run.port,
                 rtp.codec, rtp.payload_type)

    def _peer_of_rtp_leg(self, run: GatewayLegRun) -> SessionDescription:
        """The far side as this start of the leg finds it: its SDP file, or the config."""
        rtp = run.config.rtp
        assert rtp is not None
        if rtp.remote_sdp is not None:
            if self._read_file is None:
                raise OSError("no file reader to read remote_sdp with")
            return SessionDescription.parse(self._read_file(rtp.remote_sdp))
        return _configured_peer(rtp)

    def _start_rtp_leg(self, run: GatewayLegRun, now: float) -> None:
        rtp = run.config.rtp
        assert rtp is not None
        if run.port is None:
            self._bind_rtp_leg(run)
        if run.port is None:
            run.life.dropped("no free RTP port", now)
            self._log_leg(run)
            return
        host = self._advertised(self._leg_host())
        local_audio = self._leg_audio(run, host, run.port)
        session = SdpSession(self._rng.getrandbits(31), host)
        try:
            _, negotiated = answer_offer(self._peer_of_rtp_leg(run), local_audio, session)
        except (OSError, SipParseError) as exc:
            # A retry later may find the file written; the room goes on without the leg.
            run.life.dropped(f"remote SDP unusable: {exc}", now)
            self._log_leg(run)
            return
        ref = CallRef(f"gateway-{run.room.config.id}-{run.config.id}-{self._next_member_id}", "")
        call = self._new_leg_call(run, ref, None, run.port, local_audio, session,
                                  f"rtp:{negotiated.remote_host}:{negotiated.remote_port}", now)
        self._apply_media(call, negotiated)
        if rtp.remote is None and rtp.remote_sdp is None:
            # Symmetric RTP: we answer to wherever the far side's packets come from.
            call.remote_rtp = call.remote_rtcp = None
        self._join_leg(call, negotiated, now)
        run.life.connected(now, "stream started")
        self._log_leg(run)

    def _stop_rtp_leg(self, run: GatewayLegRun, reason: str, now: float) -> None:
        call = run.call
        if call is None:
            return
        self._by_port.pop(call.local_port, None)
        self._by_member.pop(call.member_id, None)
        call.room.remove_member(call.member_id)
        if call.receive is not None:
            stats = call.receive.statistics()
            log.info("%s: ended (%s); received %d packets, lost %d, jitter %.1f ms",
                     call.log_prefix, reason, stats.packets_received, stats.cumulative_lost,
                     stats.jitter_ms)
        self._leg_dropped(run, call, reason, now)

    def _join_leg(self, call: Call, negotiated: NegotiatedAudio, now: float) -> None:
        settings = call.link.settings() if call.link else self._encoder_settings(negotiated)
        call.room.add_member(call.member_id, call.label, negotiated.codec, now, settings,
                             gateway=True)
        call.room.set_on_hold(call.member_id, negotiated.direction is not Direction.SENDRECV)
        self._drain_room_actions(call.room, now)

    def _dial(self, run: GatewayLegRun, now: float) -> None:
        """Call the video meeting's SIP address with our offer (RFC 3261 §13.2.1)."""
        sip = run.config.sip
        assert sip is not None
        if self._udp_local is None:  # the config refuses this; kept for a clear log
            run.life.dropped("no udp entry in sip.listen to dial from", now)
            self._log_leg(run)
            return
        try:
            remote = next_hop(sip.proxy or sip.uri, self._resolve_host)
        except (OSError, ValueError, SipParseError) as exc:
            run.life.dropped(f"cannot reach {sip.proxy or sip.uri}: {exc}", now)
            self._log_leg(run)
            return
        local_host, local_port = self._udp_local
        try:
            port = self._media_ports.allocate(local_host)
        except NoMediaPorts:
            run.life.dropped("no free RTP port", now)
            self._log_leg(run)
            return
        flow = Flow("udp", local_host, local_port, remote[0], remote[1])
        host = self._advertised(local_host)
        local_audio = self._leg_audio(run, host, port)
        session = SdpSession(self._rng.getrandbits(31), host)
        offer = make_offer(local_audio, session)
        credentials = (
            ClientCredentials(sip.username, sip.password)
            if sip.username is not None and sip.password is not None else None
        )
        domain = self._config.sip.domain
        domain = f"[{domain}]" if ":" in domain else domain
        try:
            ref = self._core.invite(
                request_uri=sip.uri,
                from_uri=f"sip:{sip.from_user}@{domain}",
                from_display=run.room.config.name or run.room.config.id,
                flow=flow, body=bytes(offer), now=now, credentials=credentials,
                route=(_loose_route(sip.proxy),) if sip.proxy else (),
                contact_user=sip.from_user,
            )
        except ValueError as exc:  # SipParseError included; the config should prevent it
            self._media_ports.release(port)
            run.life.dropped(f"cannot call {sip.uri}: {exc}", now)
            self._log_leg(run)
            return
        call = self._new_leg_call(run, ref, flow, port, local_audio, session, sip.uri, now)
        call.pending_offer = offer
        self._calls[ref] = call
        run.answer_by = now + DIAL_ANSWER_TIMEOUT_S
        log.info("%s: dialling %s via %s:%d, rtp port %d", call.log_prefix, sip.uri, *remote,
                 port)

    def _on_leg_answered(self, ref: CallRef, body: bytes, now: float) -> None:
        call = self._calls.get(ref)
        if call is None or call.gateway is None or call.pending_offer is None:
            return
        run = call.gateway
        run.answer_by = None
        offer, call.pending_offer = call.pending_offer, None
        try:
            negotiated = accept_answer(offer, SessionDescription.parse(body), call.local_audio)
        except SipParseError as exc:  # NoCommonCodec included
            self._hang_up(call, f"no usable SDP answer: {exc}", now)
            return
        self._apply_media(call, negotiated)
        call.last_media_at = now  # RTP is owed from the answer on, not from the dial
        if run.life.state is not LegState.CONNECTING or run.call is not call:
            self._hang_up(call, "answered after the room ended", now)
            return
        self._join_leg(call, negotiated, now)
        run.life.connected(now)
        self._log_leg(run)
        sip = run.config.sip
        if sip is not None and sip.digits:
            if negotiated.telephone_event_pt is None:
                log.warning("%s: the far end takes no telephone-event; digits %r not sent",
                            run.log_prefix, sip.digits)
            else:
                frame_ts = negotiated.clock_rate_hz * negotiated.ptime_ms // 1000
                call.digits = DigitSender(sip.digits, frame_ts, frame_ms=negotiated.ptime_ms)
                call.digits_at = now + sip.digits_delay_s

    # -- RTP --------------------------------------------------------------------------

    def receive_rtp(
        self, local_port: int, data: bytes, source: tuple[str, int], now: float
    ) -> None:
        """One RTP datagram that arrived on `local_port` from `source`."""
        self.receive_rtp_many([(local_port, data, source, now)])

    def receive_rtp_many(self, datagrams: Iterable[ReceivedRtp]) -> None:
        """RTP datagrams (local port, bytes, source, arrival), oldest first per port: those
        that follow on from their call's last packet checked and counted together
        (`_receive_steady`), the others in turn; then their audio decoded and placed
        together (`PayloadBatch`). A datagram that fails is logged and dropped, never the
        others."""
        batch = PayloadBatch()
        for local_port, data, source, now in self._receive_steady(list(datagrams), batch):
            try:
                self._receive_rtp(local_port, data, source, now, batch)
            except Exception:  # noqa: BLE001 - one packet's fault must not stop the clock
                # Raising here would end the media clock for every room; the packet is
                # dropped and the others go on (logged with its traceback, for the fix).
                log.exception("rtp: packet from %s:%d on port %d dropped", *source, local_port)
        try:
            batch.push()
        except Exception:  # noqa: BLE001 - the media clock must go on for every room
            log.exception("rtp: a sweep's audio dropped")

    def _receive_steady(
        self, datagrams: list[ReceivedRtp], batch: PayloadBatch
    ) -> list[ReceivedRtp]:
        """Take the sweep's packets that are the next of their call's stream, in a few
        array operations for all of them (`ReceiveBank.accept_many`), and queue their audio;
        return the others for `_receive_rtp`, each port's in order.

        Nearly every packet of a phone in a big room is such a packet: G.711 at 20 ms, a
        plain header with the call's payload type, from the latched address, the next
        sequence number from the trusted source (or, on a lossy uplink, one a few ahead:
        G.711 has nothing to rebuild for the gap). `_receive_rtp` would accept it and play
        it in line; here it is counted and queued as it would be, without ~15 us of
        per-packet Python. A port's packets are taken in rounds, its first of the sweep in
        the first (each depends on the one before): after a stall, when two or three wait
        on every port, catching up costs little more than keeping up.
        """
        by_port = self._by_port
        left: list[int] = []  # indices of the packets for `_receive_rtp`
        steady: list[tuple[int, Call]] = []  # (index into `datagrams`, its call)
        for index, (port, data, source, _) in enumerate(datagrams):
            call = by_port.get(port)
            if (call is None or len(data) != _STEADY_PACKET_BYTES
                    or call.media is None or call.receive is None or call.highest_seq is None
                    or source != call.remote_rtp or call.relatch_count):
                left.append(index)
            else:
                steady.append((index, call))
        if not steady:
            return datagrams
        ports = [datagram[0] for datagram in datagrams]
        rounds = ([steady] if len(set(ports)) == len(ports)  # a packet a port: one round
                  else _in_rounds(ports, steady, left))
        given_up: set[int] = set()  # ports with a packet not taken: the rest one by one
        for entries in rounds:
            if given_up:
                left.extend(k for k, _ in entries if datagrams[k][0] in given_up)
                entries = [entry for entry in entries if datagrams[entry[0]][0] not in given_up]
                if not entries:
                    continue
            packets = [datagrams[k] for k, _ in entries]
            try:
                taken = self._accept_steady(packets, [call for _, call in entries], batch)
            except Exception:  # noqa: BLE001 - the media clock must go on for every room
                log.exception("rtp: %d packets could not be taken together", len(packets))
                taken = np.zeros(len(packets), np.bool_)
            for k in np.flatnonzero(~taken).tolist():
                left.append(entries[k][0])
                given_up.add(packets[k][0])
        left.sort()
        return [datagrams[k] for k in left]

    def _accept_steady(
        self, steady: list[ReceivedRtp], calls: list[Call], batch: PayloadBatch,
    ) -> NDArray[np.bool_]:
        """`_receive_steady`'s checks, counts and queueing for packets of different ports;
        which of `steady` it took."""
        count = len(steady)
        headers = parse_plain_many(b"".join([datagram[1] for datagram in steady]),
                                   _STEADY_PACKET_BYTES)
        sequence_numbers = headers.sequence_number
        arrivals = np.array([datagram[3] for datagram in steady], np.float64)
        # Media, stream and highest sequence number are there: `_receive_steady` checked.
        payload_types = [call.media.payload_type if call.media else -1 for call in calls]
        highest = [-1 if call.highest_seq is None else call.highest_seq for call in calls]
        missing = (sequence_numbers - np.array(highest, np.int64) - 1) & 0xFFFF  # before it
        eligible = (
            headers.plain
            & (headers.payload_type == np.array(payload_types, np.int64))
            & (missing < BANK_MAX_AHEAD)
        )
        # After a gap (a packet lost on the uplink), G.711 has nothing to rebuild: the
        # packet is counted and placed as the next would be (the playout buffer conceals
        # the hole). Another codec's goes to `_receive_rtp`, for its FEC or concealment.
        if missing.any():
            for k in np.flatnonzero(eligible & (missing > 0)).tolist():
                media = calls[k].media
                if media is None or media.codec not in STATELESS_CODECS:
                    eligible[k] = False
        accepted = self._receive_bank.accept_many(
            [call.receive for call in calls if call.receive is not None], sequence_numbers,
            headers.timestamp, headers.ssrc, np.full(count, _STEADY_PAYLOAD_BYTES, np.int64),
            arrivals, eligible)
        taken = np.flatnonzero(accepted).tolist()
        seqs, stamps = sequence_numbers.tolist(), headers.timestamp.tolist()
        times = arrivals.tolist()
        for k in taken:  # what `_receive_rtp` sets for a packet next in line
            call = calls[k]
            call.last_media_at = times[k]
            call.highest_seq = seqs[k]
        rooms = [calls[k].room for k in taken]
        if taken and len(taken) == count and rooms.count(rooms[0]) == count:
            # Nearly every sweep of a big room: all taken, all one room's.
            rooms[0].queue_frames(batch, [call.member_id for call in calls], stamps,
                                  headers.payload, times)
            return accepted
        by_room: dict[Room, list[int]] = {}
        for k, room in zip(taken, rooms, strict=True):
            by_room.setdefault(room, []).append(k)
        for room, rows in by_room.items():
            room.queue_frames(
                batch, [calls[k].member_id for k in rows], [stamps[k] for k in rows],
                headers.payload[rows], [times[k] for k in rows])
        return accepted

    def _receive_rtp(
        self, local_port: int, data: bytes, source: tuple[str, int], now: float,
        batch: PayloadBatch,
    ) -> None:
        call = self._by_port.get(local_port)
        if call is None or call.media is None or call.receive is None:
            return
        try:
            payload_type, marker, sequence_number, timestamp, ssrc, payload = parse_fields(data)
        except RtpParseError as exc:
            log.debug("%s: bad RTP from %s:%d: %s", call.log_prefix, *source, exc)
            return
        media = call.media
        if payload_type != media.payload_type and payload_type != media.telephone_event_pt:
            return  # comfort noise and codecs we did not agree on are not ours to play
        status = call.receive.receive(sequence_number, timestamp, ssrc, len(payload), now)
        if status is ReceiveStatus.DUPLICATE or status is ReceiveStatus.OUT_OF_ORDER_TOO_OLD:
            return
        if source != call.remote_rtp or call.relatch_count:
            self._latch(call, source)
        call.last_media_at = now
        order = self._follow_sequence(call, sequence_number, status)
        if payload_type == media.payload_type:
            call.room.queue_audio(batch, call.member_id, timestamp, payload,
                                  lost_before=order is _Order.AFTER_GAP,
                                  late=order is _Order.LATE, arrival_s=now)
        else:
            event = call.events.receive(payload, timestamp, marker)
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
        """Mix every room once (called every 20 ms by the media clock): the rooms' members
        through the detectors together (`gather_rooms`: a stage costs nearly the same for
        one small meeting as for forty), each room's talkers and mix, all rooms' encodes
        together (`RoomEncoder.encode_rooms`), then each room's packets. A room whose
        tick fails is logged and skipped; the others go on."""
        prepared: list[tuple[Room, PreparedTick | None]] = []
        for room in self._rooms.values():
            if not room.member_ids:
                continue
            try:
                prepared.append((room, room.prepare_tick(now)))
            except Exception:  # noqa: BLE001 - one room's fault must not stop the clock
                self._room_failed(room, now)
        gathered = self._together(
            "detector", lambda frames: gather_rooms(frames, TALKER_FLOOR_RMS),
            [(room, tick.frames) for room, tick in prepared if tick is not None], now)
        jobs: list[tuple[Room, EncodeJob | None]] = []
        for room, tick in prepared:
            try:
                if tick is None:  # nobody left to mix: timers and actions only
                    jobs.append((room, None))
                elif room in gathered:
                    jobs.append((room, room.finish_tick(now, tick, gathered[room])))
            except Exception:  # noqa: BLE001 - one room's fault must not stop the clock
                self._room_failed(room, now)
        packets = self._together(
            "encode", RoomEncoder.encode_rooms,
            [(room, job) for room, job in jobs if job is not None], now)
        for room, job in jobs:
            try:
                if job is None:
                    self._tick_room(room, {}, now)
                elif room in packets:
                    self._tick_room(room, packets[room], now)
            except Exception:  # noqa: BLE001 - one room's fault must not stop the clock
                self._room_failed(room, now)
        self._send_rtcp(now)
        if now >= self._next_timeout_check:
            self._next_timeout_check = now + TIMEOUT_CHECK_INTERVAL_S
            self._remove_silent_members(now)

    def _together(
        self, stage: str, run: Callable[[list[_Part]], list[_Done]],
        parts: list[tuple[Room, _Part]], now: float,
    ) -> dict[Room, _Done]:
        """A stage of the tick (`gather_rooms`, `RoomEncoder.encode_rooms`) for all the
        rooms at once; room by room for a while after that failed (one member's broken
        state must not keep silencing every room), and for the rooms that then fail
        alone, nothing (they are logged and skip the tick)."""
        if now >= self._rooms_alone_until:
            try:
                done = run([part for _, part in parts])
                return {room: result for (room, _), result in zip(parts, done, strict=True)}
            except Exception:  # noqa: BLE001 - the media clock must go on for every room
                # This tick's work is partly done: every room skips it, then they go alone.
                log.exception("rooms: the shared %s stage failed; rooms go one by one", stage)
                self._rooms_alone_until = now + ROOMS_ALONE_S
                return {}
        done_alone = {}
        for room, part in parts:
            try:
                done_alone[room] = run([part])[0]
            except Exception:  # noqa: BLE001 - one room's fault must not stop the clock
                self._rooms_alone_until = now + ROOMS_ALONE_S
                self._room_failed(room, now)
        return done_alone

    def _room_failed(self, room: Room, now: float) -> None:
        # An exception here would end the media clock and silence every room; log it with
        # its traceback (once a minute per room, not 50 times a second) and go on.
        if now >= self._tick_failure_logged.get(room.config.id, -TICK_FAILURE_LOG_S):
            self._tick_failure_logged[room.config.id] = now + TICK_FAILURE_LOG_S
            log.exception("room=%s: tick failed", room.config.id)

    def _tick_room(self, room: Room, packets: dict[int, OutgoingPacket], now: float) -> None:
        """Send each member of a room the packet its tick made, and act on what the room
        says."""
        by_member = self._by_member
        # Enum members looked up once, not per member: 100 ns a time in Python 3.11.
        sendrecv, sendonly = Direction.SENDRECV, Direction.SENDONLY
        # Members hearing the same mix get the very same OutgoingPacket: by its id, the
        # packet and (local port, stream, destination) of everyone it goes to.
        recipients: dict[int, tuple[OutgoingPacket, list[_Recipient]]] = {}
        for member_id, packet in packets.items():
            call = by_member.get(member_id)
            if call is None:
                continue
            send, destination, media = call.send, call.remote_rtp, call.media
            if send is None or destination is None or media is None:
                continue
            payload, step = packet
            direction = media.direction  # the directions we send media in
            if direction is not sendrecv and direction is not sendonly:
                send.skip(step)  # on hold: the clock moves on
            elif call.digits is not None and now >= call.digits_at and (
                self._send_digit(call, step)
            ):
                continue
            elif payload is not None:
                shared = recipients.get(id(packet))
                if shared is None:
                    recipients[id(packet)] = (packet, [(call.local_port, send, destination)])
                else:
                    shared[1].append((call.local_port, send, destination))
            else:  # the codec is silent (Opus DTX): the clock moves on
                send.skip(step)
        for packet, to in recipients.values():
            self._send_packets(packet, to)
        # Actions first: a recording or report that started this tick must be open for
        # this tick's audio (one that ended this tick had its last audio before).
        self._drain_room_actions(room, now)
        self._record(room, room.pop_recorded())
        self._record_reports(room.pop_captured())

    def _send_packets(self, packet: OutgoingPacket, recipients: list[_Recipient]) -> None:
        """Queue `packet`'s payload to each recipient under its own RTP header: many at
        once from the SendBank (a big room's listeners), a few one by one."""
        payload, step = packet
        assert payload is not None
        rtp_out = self._rtp_out
        if len(recipients) < SEND_BANK_MIN_STREAMS:
            for port, send, destination in recipients:
                rtp_out.append((port, send.packet(payload, step), destination))
            return
        data = self._send_bank.packets([send for _, send, _ in recipients], payload, step)
        size = len(data) // len(recipients)
        rtp_out.extend(
            (port, data[start : start + size], destination)
            for start, (port, _, destination) in zip(
                range(0, len(data), size), recipients, strict=True)
        )

    def _send_digit(self, call: Call, timestamp_step: int) -> bool:
        """Send this frame's RFC 4733 report of a dial-out leg's digits in place of audio;
        False when this frame is audio (a gap between digits)."""
        media, digits = call.media, call.digits
        if digits is None or media is None or media.telephone_event_pt is None or (
            call.send is None or call.remote_rtp is None
        ):
            return False
        frame = digits.next_frame()
        if digits.done:
            call.digits = None
            log.info("%s: digits sent", call.log_prefix)
        if frame is None:
            return False
        self._rtp_out.append((call.local_port, call.send.event_packet(
            media.telephone_event_pt, bytes(frame.report), timestamp_step, starts=frame.starts,
        ), call.remote_rtp))
        return True

    def _schedule_first_report(self, call: Call, now: float) -> None:
        # RFC 3550 §6.2: the first report goes out after half the minimum interval.
        heapq.heappush(self._rtcp_due, (now + self._rtcp_interval() / 2, call.member_id))

    def _rtcp_interval(self) -> float:
        return RTCP_INTERVAL_S * self._rng.uniform(*RTCP_INTERVAL_SPREAD)

    def _send_rtcp(self, now: float) -> None:
        due, by_member = self._rtcp_due, self._by_member
        ready, self._rtcp_waiting = self._rtcp_waiting, []
        while due and due[0][0] <= now:
            ready.append(heapq.heappop(due)[1])
        for member_id in ready:
            call = by_member.get(member_id)
            if call is None:  # gone
                continue
            if call.receive is None or call.send is None or call.remote_rtcp is None:
                self._rtcp_waiting.append(member_id)
                continue
            heapq.heappush(due, (now + self._rtcp_interval(), member_id))
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
            if isinstance(action, RoomStarted):
                self._rooms_legs_start(room, now)
                continue
            if isinstance(action, RoomEmptied):
                self._rooms_legs_stop(room, action.reason, now)
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


def _configured_peer(rtp: RtpLegConfig) -> SessionDescription:
    """A plain RTP leg's far side as its config states it (see `describe_fixed_peer`)."""
    return describe_fixed_peer(rtp.codec, rtp.payload_type, rtp.ptime_ms,
                               *(rtp.remote or _UNKNOWN_PEER),
                               telephone_event_pt=rtp.telephone_event_pt)


def _ip_address_only(host: str) -> str:
    """The resolver when none is given: IP addresses pass, names are refused."""
    ipaddress.ip_address(host)  # ValueError for a name
    return host


def _loose_route(uri: str) -> str:
    """A Route header value for an outbound proxy, with `lr` (RFC 3261 §16.12.1.1)."""
    return f"<{uri}>" if ";lr" in uri.lower() else f"<{uri};lr>"


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
