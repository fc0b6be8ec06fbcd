"""SDP offer/answer (RFC 3264) for the one audio stream the bridge carries.

This module decides what we accept from a caller's offer and what we offer ourselves: one
audio codec from our preference list in the caller's payload numbering, telephone-event
(RFC 4733) at that codec's clock rate, the packet time, the direction seen from our side,
the far end's Opus parameters (RFC 7587) and the o= version RFC 3264 §8 asks us to keep.
It reads and builds `SessionDescription`s and knows nothing of dialogs, RTP packets or rooms.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from bridge.sip.errors import LocalProtocolError, SipParseError
from bridge.sip.opus_fmtp import MAX_AVERAGE_BITRATE_BPS, MIN_AVERAGE_BITRATE_BPS, OpusParameters
from bridge.sip.sdp import (
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SdpParseError,
    SessionDescription,
    Timing,
)

__all__ = [
    "SUPPORTED_CODECS",
    "Direction",
    "LocalAudio",
    "NegotiatedAudio",
    "NoCommonCodec",
    "OpusParameters",
    "SdpSession",
    "accept_answer",
    "answer_offer",
    "make_offer",
]

TELEPHONE_EVENT = "telephone-event"
# The events we act on: DTMF 0-9, *, #, A-D (RFC 4733 §3.2). Flash (16) means nothing here.
TELEPHONE_EVENTS_OFFERED = "0-15"
# The payload type nearly every peer uses for telephone-event/8000; dynamic range is 96-127.
TELEPHONE_EVENT_PAYLOAD_TYPE = 101
FIRST_DYNAMIC_PAYLOAD_TYPE = 96
LAST_DYNAMIC_PAYLOAD_TYPE = 127
# RFC 3551 §4.5: 20 ms is the usual packet time; we send it when the peer names none we have.
DEFAULT_PTIME_MS = 20
# What we ask of a far-end Opus encoder (RFC 7587 §6.1): rooms mix mono at 16 kHz, so audio
# above 8 kHz or in stereo would be thrown away; we decode in-band FEC, which hides single
# losses; we take packets up to 60 ms, the longest one Opus frame holds (RFC 6716 §2.1.4).
OPUS_PLAYBACK_RATE_HZ = 16000
OPUS_MAX_PTIME_MS = 60
DEFAULT_OPUS_MAX_BITRATE_BPS = 20000
_ACCEPTED_PROTOS = ("RTP/AVP", "RTP/AVPF")
# RFC 3264 §8.4: an RFC 2543 peer holds a call by setting c= to this address.
_RFC2543_HOLD_ADDRESS = "0.0.0.0"


@dataclass(frozen=True, slots=True)
class _Codec:
    """A codec we can carry, as SDP names it."""

    name: str  # canonical, upper case: what NegotiatedAudio.codec says
    encoding_name: str  # as printed in our a=rtpmap
    clock_rate_hz: int  # the RTP clock, not the sampling rate: G.722 says 8000 (RFC 3551 §4.5.2)
    channels: int
    static_payload_type: int | None
    # RFC 7587 §7: Opus always says /48000/2 whatever it carries, and some peers leave out
    # the /2 (SEMS did); only the name and clock rate identify it.
    channels_must_match: bool = True


_CODECS: dict[str, _Codec] = {
    codec.name: codec
    for codec in (
        _Codec("PCMU", "PCMU", 8000, 1, 0),
        _Codec("PCMA", "PCMA", 8000, 1, 8),
        _Codec("G722", "G722", 8000, 1, 9),
        _Codec("OPUS", "opus", 48000, 2, None, channels_must_match=False),
    )
}
SUPPORTED_CODECS: tuple[str, ...] = tuple(_CODECS)
"""Codec names `LocalAudio.codecs` may list, in canonical upper case."""


class NoCommonCodec(SipParseError):
    """No offered audio stream is one we can take: 488 Not Acceptable Here (RFC 3261 §21.4.26)."""

    def __init__(self, message: str, status_hint: int = 488) -> None:
        super().__init__(message, status_hint)


@dataclass(frozen=True, slots=True)
class LocalAudio:
    """What we offer or accept for one call: codecs in preference order and our RTP address.

    `ptimes_ms` are the packet times we can send; `opus_max_bitrate_bps` and `opus_dtx` go
    into our Opus fmtp as what the far end may send us (see `opus_parameters`).
    """

    codecs: tuple[str, ...]
    host: str
    port: int
    telephone_event: bool = True
    ptimes_ms: tuple[int, ...] = (DEFAULT_PTIME_MS,)
    opus_max_bitrate_bps: int = DEFAULT_OPUS_MAX_BITRATE_BPS
    opus_dtx: bool = True

    def __post_init__(self) -> None:
        if not self.codecs:
            raise ValueError("LocalAudio needs at least one codec")
        unknown = [name for name in self.codecs if name.upper() not in _CODECS]
        if unknown:
            raise ValueError(f"unsupported codecs {unknown}; supported: {SUPPORTED_CODECS}")
        if not self.ptimes_ms or any(ptime_ms <= 0 for ptime_ms in self.ptimes_ms):
            raise ValueError(f"invalid ptimes_ms: {self.ptimes_ms}")
        if not 0 < self.port <= 65_535:
            raise ValueError(f"invalid RTP port: {self.port}")
        if not MIN_AVERAGE_BITRATE_BPS <= self.opus_max_bitrate_bps <= MAX_AVERAGE_BITRATE_BPS:
            raise ValueError(f"invalid opus_max_bitrate_bps: {self.opus_max_bitrate_bps}")

    @property
    def opus_parameters(self) -> OpusParameters:
        """Return our receive-side Opus fmtp: what a far-end encoder should send us."""
        return OpusParameters(
            max_playback_rate_hz=OPUS_PLAYBACK_RATE_HZ,
            sprop_max_capture_rate_hz=OPUS_PLAYBACK_RATE_HZ,
            max_average_bitrate_bps=self.opus_max_bitrate_bps,
            use_inband_fec=True,
            use_dtx=self.opus_dtx,
        )


@dataclass(frozen=True, slots=True)
class NegotiatedAudio:
    """The outcome of one offer/answer exchange for the audio stream."""

    codec: str  # canonical upper-case encoding name: "PCMU", "PCMA", "G722", "OPUS"
    payload_type: int  # the peer's number for it; we send and receive with it
    clock_rate_hz: int  # the RTP clock rate
    telephone_event_pt: int | None  # the peer's RFC 4733 payload type, if both sides do it
    ptime_ms: int  # the packet time we send
    remote_host: str
    remote_port: int
    remote_rtcp_port: int
    direction: Direction  # from OUR side: RECVONLY when the peer holds us with sendonly
    # Opus only: what the far end's decoder asked for (RFC 7587 §6.1). Our encoder keeps to
    # its max_playback_rate_hz, max_average_bitrate_bps, use_inband_fec and use_dtx, and
    # sends mono whatever its stereo says.
    remote_opus: OpusParameters | None = None


class SdpSession:
    """Our o= line across one call: the session id stays, the version moves on each change.

    RFC 3264 §8: each new offer or answer that differs from the last SDP we sent carries
    the version + 1; an identical one keeps it, so peers can skip re-processing it.
    """

    def __init__(self, session_id: int, host: str, username: str = "telerapat") -> None:
        self.session_id = session_id
        self.host = host
        self.username = username
        self.version = 1
        self._last: tuple[Connection, list[MediaDescription]] | None = None

    def describe(self, connection: Connection, media: list[MediaDescription]) -> SessionDescription:
        """Return our SDP for these media, bumping the version only if they changed."""
        if self._last is not None and self._last != (connection, media):
            self.version += 1
        self._last = (connection, copy.deepcopy(media))
        return SessionDescription(
            origin=Origin(
                self.username,
                self.session_id,
                self.version,
                "IN",
                _addrtype(self.host),
                self.host,
            ),
            session_name="-",
            connection=connection,
            timing=[Timing(0, 0)],
            media=media,
        )


def _preferred_codecs(local: LocalAudio) -> list[_Codec]:
    """Return our codecs in preference order, each once."""
    return list({name.upper(): _CODECS[name.upper()] for name in local.codecs}.values())


def _addrtype(host: str) -> str:
    return "IP6" if ":" in host else "IP4"


def _matches(codec: _Codec, rtpmap: RtpMap) -> bool:
    """Whether an offered rtpmap is this codec: same name (any case) and RTP clock rate."""
    return (
        rtpmap.encoding_name.upper() == codec.name
        and rtpmap.clock_rate_hz == codec.clock_rate_hz
        and (not codec.channels_must_match or rtpmap.channels == codec.channels)
    )


def _telephone_event_pt(rtpmaps: dict[int, RtpMap], clock_rate_hz: int) -> int | None:
    """Find telephone-event at the codec's clock rate: RFC 4733 events share the audio's clock."""
    for payload_type, rtpmap in rtpmaps.items():
        if (
            rtpmap.encoding_name.lower() == TELEPHONE_EVENT
            and rtpmap.clock_rate_hz == clock_rate_hz
        ):
            return payload_type
    return None


def _choose_ptime_ms(
    media: MediaDescription, local: LocalAudio, remote_opus: OpusParameters | None
) -> int:
    """Pick the packet time we send, within what the peer said it wants to receive.

    Its a=ptime if we have it, else the longest of ours below it; with no a=ptime, 20 ms
    (RFC 3551 §4.5's default, and the least delay). Always within its a=maxptime (RFC 8866
    §6.4, §6.5) when one of ours fits. Opus peers may say ptime and maxptime in the fmtp
    instead (RFC 7587 §6.1); with both, the a= attribute is read first and the smaller
    maxptime holds. A maxptime below anything we send leaves 20 ms: the peer's limit is
    then its problem, not a reason to refuse the call.
    """
    opus = remote_opus or OpusParameters()
    wanted_ms = media.ptime_ms if media.ptime_ms is not None else opus.ptime_ms
    limits_ms = [limit for limit in (media.maxptime_ms, opus.max_ptime_ms) if limit is not None]
    limit_ms = min(limits_ms, default=None)
    fitting = sorted(p for p in local.ptimes_ms if limit_ms is None or p <= limit_ms)
    if not fitting:
        return DEFAULT_PTIME_MS
    if wanted_ms in fitting:
        return wanted_ms
    if wanted_ms is None:
        return DEFAULT_PTIME_MS if DEFAULT_PTIME_MS in fitting else fitting[-1]
    below = [p for p in fitting if p <= wanted_ms]
    return below[-1] if below else fitting[0]


def _peer_direction(media: MediaDescription, sdp: SessionDescription) -> Direction:
    """Return the stream's direction as its sender means it, with RFC 2543 hold as sendonly.

    RFC 3264 §8.4: c=0.0.0.0 is how RFC 2543 peers said "do not send to me".
    """
    direction = media.direction(sdp)
    if media.connection_address(sdp) == _RFC2543_HOLD_ADDRESS:
        return Direction.from_flags(sends=direction.sends, receives=False)
    return direction


def _remote_host(media: MediaDescription, sdp: SessionDescription) -> str:
    host = media.connection_address(sdp)
    if host is None:
        raise SdpParseError(f"no c= line for the m={media.media} {media.port} stream")
    return host


@dataclass(frozen=True, slots=True)
class _Choice:
    """What we take from one accepted audio stream."""

    codec: _Codec
    payload_type: int
    rtpmap: RtpMap
    telephone_event_pt: int | None
    telephone_event_rtpmap: RtpMap | None


def _choose_codec(media: MediaDescription, local: LocalAudio) -> _Choice | str:
    """Pick our most preferred codec the stream offers, or say why the stream is refused."""
    if media.port == 0:
        return f"m=audio {media.port} {media.proto} is disabled"
    if media.proto.upper() not in _ACCEPTED_PROTOS:
        # RTP/SAVP and the like need SRTP keys we cannot use yet.
        return f"m=audio {media.port} {media.proto}: transport not supported"
    rtpmaps = media.rtpmaps()
    for codec in _preferred_codecs(local):
        for payload_type, rtpmap in rtpmaps.items():
            if _matches(codec, rtpmap):
                event_pt = (
                    _telephone_event_pt(rtpmaps, codec.clock_rate_hz)
                    if local.telephone_event
                    else None
                )
                return _Choice(
                    codec,
                    payload_type,
                    rtpmap,
                    event_pt,
                    rtpmaps[event_pt] if event_pt is not None else None,
                )
    offered = ", ".join(str(rtpmap) for rtpmap in rtpmaps.values()) or " ".join(media.formats)
    wanted = ", ".join(codec.name for codec in _preferred_codecs(local))
    return f"m=audio {media.port} {media.proto}: no common codec in {offered} (we take {wanted})"


def _rejected(media: MediaDescription) -> MediaDescription:
    """Answer a stream we refuse: same media, proto and formats, port 0 (RFC 3264 §6)."""
    return MediaDescription(
        media=media.media, port=0, proto=media.proto, formats=list(media.formats)
    )


def _remote_opus(
    codec: _Codec, media: MediaDescription, payload_type: int
) -> OpusParameters | None:
    """Read the peer's Opus fmtp for the chosen payload type; None for other codecs."""
    if codec.name != "OPUS":
        return None
    return OpusParameters.parse(media.fmtp(payload_type))


def _our_fmtp(codec: _Codec, local: LocalAudio) -> str | None:
    """Return our a=fmtp value for a codec: Opus has one, G.722 and G.711 need none."""
    return str(local.opus_parameters) if codec.name == "OPUS" else None


def _packet_time_attributes(ptime_ms: int, codecs: list[_Codec]) -> list[Attribute]:
    """Return a=ptime, and a=maxptime when Opus is among the codecs (RFC 7587 §7)."""
    attributes: list[Attribute] = [("ptime", str(ptime_ms))]
    if any(codec.name == "OPUS" for codec in codecs):
        attributes.append(("maxptime", str(OPUS_MAX_PTIME_MS)))
    return attributes


def _codec_attributes(payload_type: int, rtpmap: RtpMap, fmtp: str | None) -> list[Attribute]:
    """Return the a=rtpmap and, if any, a=fmtp lines for one payload type."""
    attributes: list[Attribute] = [("rtpmap", f"{payload_type} {rtpmap}")]
    if fmtp:
        attributes.append(("fmtp", f"{payload_type} {fmtp}"))
    return attributes


def answer_offer(
    offer: SessionDescription, local: LocalAudio, session: SdpSession
) -> tuple[SessionDescription, NegotiatedAudio]:
    """Answer a caller's offer with one audio codec and telephone-event (RFC 3264 §6).

    The first audio stream over RTP/AVP or RTP/AVPF that offers one of our codecs is
    accepted in the caller's payload numbering; every other m= line is answered with port 0.
    Raise NoCommonCodec (488) when no stream can be accepted.
    """
    accepted: tuple[int, _Choice] | None = None
    refusals: list[str] = []
    for index, stream in enumerate(offer.media):
        if stream.media.lower() != "audio":
            continue
        choice = _choose_codec(stream, local)
        if isinstance(choice, str):
            refusals.append(choice)
        else:
            accepted = (index, choice)
            break
    if accepted is None:
        if not refusals:
            raise NoCommonCodec("offer has no audio stream")
        raise NoCommonCodec("no acceptable audio stream: " + "; ".join(refusals))
    index, choice = accepted
    offered = offer.media[index]
    remote_host = _remote_host(offered, offer)
    remote_opus = _remote_opus(choice.codec, offered, choice.payload_type)
    ptime_ms = _choose_ptime_ms(offered, local, remote_opus)
    direction = _peer_direction(offered, offer).reversed()

    formats = [str(choice.payload_type)]
    attributes = _codec_attributes(
        choice.payload_type, choice.rtpmap, _our_fmtp(choice.codec, local)
    )
    if choice.telephone_event_pt is not None and choice.telephone_event_rtpmap is not None:
        formats.append(str(choice.telephone_event_pt))
        # The peer's event list (e.g. 0-16) is kept: it says what the peer will accept.
        attributes += _codec_attributes(
            choice.telephone_event_pt,
            choice.telephone_event_rtpmap,
            offered.fmtp(choice.telephone_event_pt),
        )
    attributes += _packet_time_attributes(ptime_ms, [choice.codec])
    attributes.append((direction.value, None))
    answered = MediaDescription(
        media=offered.media,
        port=local.port,
        proto=offered.proto,
        formats=formats,
        attributes=attributes,
    )
    media = [
        answered if position == index else _rejected(other)
        for position, other in enumerate(offer.media)
    ]
    answer = session.describe(Connection("IN", _addrtype(local.host), local.host), media)
    return answer, NegotiatedAudio(
        codec=choice.codec.name,
        payload_type=choice.payload_type,
        clock_rate_hz=choice.codec.clock_rate_hz,
        telephone_event_pt=choice.telephone_event_pt,
        ptime_ms=ptime_ms,
        remote_host=remote_host,
        remote_port=offered.port,
        remote_rtcp_port=offered.rtcp_port,
        direction=direction,
        remote_opus=remote_opus,
    )


def make_offer(local: LocalAudio, session: SdpSession) -> SessionDescription:
    """Offer all our codecs, sendrecv, for an INVITE that came without SDP (RFC 3261 §13.2.1).

    Static payload types keep their RFC 3551 numbers; others and telephone-event at a
    second clock rate take free dynamic numbers, telephone-event/8000 takes 101.
    """
    codecs = _preferred_codecs(local)
    used = {codec.static_payload_type for codec in codecs} | {TELEPHONE_EVENT_PAYLOAD_TYPE}
    free = (
        payload_type
        for payload_type in range(FIRST_DYNAMIC_PAYLOAD_TYPE, LAST_DYNAMIC_PAYLOAD_TYPE + 1)
        if payload_type not in used
    )
    formats: list[str] = []
    attributes: list[Attribute] = []
    for codec in codecs:
        payload_type = (
            codec.static_payload_type if codec.static_payload_type is not None else next(free)
        )
        formats.append(str(payload_type))
        rtpmap = RtpMap(codec.encoding_name, codec.clock_rate_hz, codec.channels)
        attributes += _codec_attributes(payload_type, rtpmap, _our_fmtp(codec, local))
    if local.telephone_event:
        clock_rates_hz = dict.fromkeys(codec.clock_rate_hz for codec in codecs)
        for clock_rate_hz in clock_rates_hz:
            payload_type = TELEPHONE_EVENT_PAYLOAD_TYPE if clock_rate_hz == 8000 else next(free)
            formats.append(str(payload_type))
            attributes += _codec_attributes(
                payload_type, RtpMap(TELEPHONE_EVENT, clock_rate_hz), TELEPHONE_EVENTS_OFFERED
            )
    attributes += _packet_time_attributes(local.ptimes_ms[0], codecs)
    attributes.append((Direction.SENDRECV.value, None))
    media = MediaDescription(
        media="audio", port=local.port, proto="RTP/AVP", formats=formats, attributes=attributes
    )
    return session.describe(Connection("IN", _addrtype(local.host), local.host), [media])


def _answered_codec(
    rtpmaps: dict[int, RtpMap], offered: list[RtpMap], local: LocalAudio
) -> tuple[int, _Codec] | None:
    """Return the first answered payload type that is one of our codecs we offered."""
    for payload_type, rtpmap in rtpmaps.items():
        for codec in _preferred_codecs(local):
            if _matches(codec, rtpmap) and any(_matches(codec, mine) for mine in offered):
                return payload_type, codec
    return None


def accept_answer(
    offer: SessionDescription, answer: SessionDescription, local: LocalAudio
) -> NegotiatedAudio:
    """Read the caller's answer (in the ACK) to the offer we sent in our 200 (RFC 3264 §7).

    The answer has one m= line per offered one (§6); its audio stream must keep a codec we
    offered, in the answer's payload numbering. Raise NoCommonCodec (488) if it does not.
    """
    index = next(
        (i for i, media in enumerate(offer.media) if media.media == "audio" and media.port),
        None,
    )
    if index is None:
        raise LocalProtocolError("our offer has no audio stream")
    if len(answer.media) != len(offer.media):
        raise SdpParseError(
            f"answer has {len(answer.media)} m= lines for the offer's {len(offer.media)}"
        )
    ours, answered = offer.media[index], answer.media[index]
    if answered.media.lower() != "audio":
        raise SdpParseError(f"answer has m={answered.media} where we offered audio")
    if answered.port == 0:
        raise NoCommonCodec("answer rejected the audio stream")
    rtpmaps = answered.rtpmaps()
    chosen = _answered_codec(rtpmaps, list(ours.rtpmaps().values()), local)
    if chosen is None:
        answered_codecs = ", ".join(str(rtpmap) for rtpmap in rtpmaps.values())
        raise NoCommonCodec(f"answer has no codec we offered: {answered_codecs or 'none'}")
    payload_type, codec = chosen
    remote_opus = _remote_opus(codec, answered, payload_type)
    offered_direction = ours.direction(offer)
    direction = _peer_direction(answered, answer).reversed()
    direction = Direction.from_flags(
        sends=direction.sends and offered_direction.sends,
        receives=direction.receives and offered_direction.receives,
    )
    return NegotiatedAudio(
        codec=codec.name,
        payload_type=payload_type,
        clock_rate_hz=codec.clock_rate_hz,
        telephone_event_pt=(
            _telephone_event_pt(rtpmaps, codec.clock_rate_hz) if local.telephone_event else None
        ),
        ptime_ms=_choose_ptime_ms(answered, local, remote_opus),
        remote_host=_remote_host(answered, answer),
        remote_port=answered.port,
        remote_rtcp_port=answered.rtcp_port,
        direction=direction,
        remote_opus=remote_opus,
    )


def describe_fixed_peer(
    codec: str,
    payload_type: int,
    ptime_ms: int,
    host: str,
    port: int,
    *,
    telephone_event_pt: int | None = None,
) -> SessionDescription:
    """The SDP a peer would send for a stream agreed outside SIP (a plain RTP gateway leg).

    Answered with `answer_offer`, it gives the leg's `NegotiatedAudio` and the SDP of our
    side that tools reading SDP files (FFmpeg, GStreamer) take, through the same code as a
    call's offer.
    """
    known = _CODECS.get(codec.upper())
    if known is None:
        raise ValueError(f"unsupported codec {codec!r}; supported: {SUPPORTED_CODECS}")
    formats = [str(payload_type)]
    channels = f"/{known.channels}" if known.channels > 1 else ""
    lines = [f"a=rtpmap:{payload_type} {known.encoding_name}/{known.clock_rate_hz}{channels}"]
    if telephone_event_pt is not None:
        formats.append(str(telephone_event_pt))
        lines += [
            f"a=rtpmap:{telephone_event_pt} {TELEPHONE_EVENT}/{known.clock_rate_hz}",
            f"a=fmtp:{telephone_event_pt} {TELEPHONE_EVENTS_OFFERED}",
        ]
    address = f"{_addrtype(host)} {host}"
    text = "\r\n".join([
        "v=0", f"o=- 0 0 IN {address}", "s=-", f"c=IN {address}", "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(formats)}", *lines, f"a=ptime:{ptime_ms}",
        "a=sendrecv", "",
    ])
    return SessionDescription.parse(text.encode("ascii"))
