"""answer_offer, make_offer and accept_answer negotiate one audio stream with real peers' SDP."""

import re

import pytest

# pyVoIP.SIP imports only after pyVoIP.VoIP (a circular import inside pyVoIP 1.6.8).
import pyVoIP.VoIP  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st
from pyVoIP import RTP, SIP

from bridge.sip.errors import LocalProtocolError, SipParseError
from bridge.sip.offer_answer import (
    SUPPORTED_CODECS,
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
from bridge.sip.sdp import Connection, RtpMap, SdpParseError, SessionDescription
from tests.conftest import load_fixture

G711 = ("PCMU", "PCMA")
BRIDGE_HOST = "192.0.2.50"
BRIDGE_PORT = 40000
# What we ask of an Opus sender by default: 16 kHz mono, at most 24 kbit/s, FEC and DTX.
OUR_OPUS_FMTP = (
    "maxplaybackrate=16000;sprop-maxcapturerate=16000;maxaveragebitrate=20000;"
    "useinbandfec=1;usedtx=1;stereo=0"
)


def parse(name: str) -> SessionDescription:
    return SessionDescription.parse(load_fixture(f"sip/{name}.txt"))


def local(
    *codecs: str, telephone_event: bool = True, ptimes_ms: tuple[int, ...] = (20,)
) -> LocalAudio:
    return LocalAudio(codecs or G711, BRIDGE_HOST, BRIDGE_PORT, telephone_event, ptimes_ms)


def answer(
    offer: SessionDescription, audio: LocalAudio | None = None, session: SdpSession | None = None
) -> tuple[SessionDescription, NegotiatedAudio]:
    return answer_offer(offer, audio or local(), session or SdpSession(7, BRIDGE_HOST))


def sdp_text(*lines: str) -> str:
    return "".join(line + "\r\n" for line in lines)


def offer_of(*media_lines: str) -> SessionDescription:
    return SessionDescription.parse(
        sdp_text(
            "v=0", "o=- 1 1 IN IP4 192.0.2.9", "s=-", "c=IN IP4 192.0.2.9", "t=0 0", *media_lines
        )
    )


# fixture: (our codecs, codec, payload type, telephone-event pt, ptime, direction, host, port, rtcp)
NEGOTIATED = {
    "sdp_baresip": (G711, "PCMU", 0, 101, 20, Direction.SENDRECV, "127.0.0.1", 41058, 41059),
    "sdp_baresip_hold": (G711, "PCMU", 0, 101, 20, Direction.RECVONLY, "127.0.0.1", 41058, 41059),
    "sdp_baresip_resume": (G711, "PCMU", 0, 101, 20, Direction.SENDRECV, "127.0.0.1", 41058, 41059),
    "sdp_baresip_video": (
        ("PCMA",), "PCMA", 8, 101, 20, Direction.SENDRECV, "127.0.0.1", 41058, 41059
    ),
    "sdp_sipp": (G711, "PCMU", 0, None, 20, Direction.SENDRECV, "127.0.0.1", 6100, 6101),
    "sdp_pyvoip": (G711, "PCMU", 0, 101, 20, Direction.SENDRECV, "127.0.0.1", 42016, 42017),
    "sdp_linphone": (G711, "PCMU", 0, 100, 20, Direction.SENDRECV, "198.51.100.7", 60109, 41059),
    "sdp_freeswitch": (G711, "PCMU", 0, 101, 20, Direction.SENDRECV, "192.168.50.50", 26060, 26061),
    "sdp_asterisk": (G711, "PCMU", 0, 101, 20, Direction.SENDRECV, "172.17.0.2", 14028, 14029),
    "sdp_asterisk_video": (G711, "PCMU", 0, 101, 20, Direction.SENDRECV, "10.5.4.2", 18822, 18823),
    "sdp_pjsua_inactive": (
        G711, "PCMU", 0, 121, 20, Direction.INACTIVE, "192.168.245.142", 4000, 4001
    ),
    "sdp_rfc2543_hold": (G711, "PCMU", 0, 101, 20, Direction.RECVONLY, "0.0.0.0", 1024, 1025),
    "sdp_rfc3264_offer": (
        G711, "PCMU", 0, None, 20, Direction.SENDRECV, "host.atlanta.example.com", 49170, 49171
    ),
    "sdp_rfc4566": (G711, "PCMU", 0, None, 20, Direction.SENDONLY, "224.2.17.12", 49170, 49171),
    "sdp_freeswitch_opus": (
        ("OPUS", "PCMU"), "OPUS", 96, 101, 20, Direction.SENDRECV, "198.51.100.20", 26402, 26403
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NEGOTIATED))
def test_offer_from_real_peer_is_negotiated(name: str) -> None:
    codecs, codec, pt, event_pt, ptime_ms, direction, host, port, rtcp = NEGOTIATED[name]
    _, negotiated = answer(parse(name), local(*codecs))
    assert negotiated == NegotiatedAudio(
        codec=codec,
        payload_type=pt,
        clock_rate_hz=48000 if codec == "OPUS" else 8000,
        telephone_event_pt=event_pt,
        ptime_ms=ptime_ms,
        remote_host=host,
        remote_port=port,
        remote_rtcp_port=rtcp,
        direction=direction,
        # FreeSWITCH's fmtp says useinbandfec=1 and nothing else.
        remote_opus=OpusParameters(use_inband_fec=True) if codec == "OPUS" else None,
    )


@pytest.mark.parametrize("name", sorted(NEGOTIATED))
def test_answer_has_one_codec_and_one_line_per_offered_stream(name: str) -> None:
    offer = parse(name)
    codecs, codec, pt, event_pt, ptime_ms, direction, *_ = NEGOTIATED[name]
    sdp, _ = answer(offer, local(*codecs))
    assert SessionDescription.parse(bytes(sdp)) == sdp
    assert len(sdp.media) == len(offer.media)
    accepted = [media for media in sdp.media if media.port != 0]
    assert len(accepted) == 1
    (audio,) = accepted
    assert (audio.media, audio.port, audio.proto) == ("audio", BRIDGE_PORT, "RTP/AVP")
    assert audio.formats == [str(pt)] + ([str(event_pt)] if event_pt is not None else [])
    assert audio.rtpmaps()[pt].encoding_name.upper() == codec
    assert audio.ptime_ms == ptime_ms
    assert audio.direction(sdp) is direction
    assert audio.connection_address(sdp) == BRIDGE_HOST
    for offered, answered in zip(offer.media, sdp.media, strict=True):
        if answered is not audio:
            # RFC 3264 §6: a refused stream keeps its media, proto and formats, port 0.
            assert (answered.media, answered.port, answered.proto, answered.formats) == (
                offered.media,
                0,
                offered.proto,
                offered.formats,
            )
            assert answered.attributes == []


def test_baresip_answer_is_exactly_what_we_send() -> None:
    sdp, _ = answer(parse("sdp_baresip"))
    assert str(sdp) == sdp_text(
        "v=0",
        "o=telerapat 7 1 IN IP4 192.0.2.50",
        "s=-",
        "c=IN IP4 192.0.2.50",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    )


def test_video_stream_is_refused_with_port_zero() -> None:
    sdp, _ = answer(parse("sdp_baresip_video"))
    assert str(sdp).endswith("a=sendrecv\r\nm=video 0 RTP/AVP 96\r\n")


def test_telephone_event_keeps_the_offered_event_list() -> None:
    asterisk, _ = answer(parse("sdp_asterisk"))
    assert asterisk.media[0].fmtp(101) == "0-16"
    # Linphone offers no a=fmtp for its events, so the answer has none either.
    linphone, _ = answer(parse("sdp_linphone"))
    assert linphone.media[0].fmtp(100) is None
    assert linphone.media[0].rtpmaps()[100] == RtpMap("telephone-event", 8000)


def test_our_preference_beats_the_offer_order() -> None:
    # FreeSWITCH lists PCMA first.
    assert answer(parse("sdp_freeswitch"), local("PCMU", "PCMA"))[1].codec == "PCMU"
    assert answer(parse("sdp_freeswitch"), local("PCMA", "PCMU"))[1].codec == "PCMA"
    assert answer(parse("sdp_baresip"), local("G722", "PCMU"))[1].payload_type == 9


def test_g722_is_matched_at_its_8000_rtp_clock() -> None:
    _, negotiated = answer(parse("sdp_baresip"), local("G722"))
    assert (negotiated.codec, negotiated.clock_rate_hz, negotiated.telephone_event_pt) == (
        "G722",
        8000,
        101,
    )
    wrong_clock = offer_of("m=audio 5000 RTP/AVP 96 0", "a=rtpmap:96 G722/16000")
    assert answer(wrong_clock, local("G722", "PCMU"))[1].codec == "PCMU"


def test_codec_names_match_in_any_case_with_the_callers_numbers() -> None:
    _, negotiated = answer(offer_of("m=audio 5000 RTP/AVP 97", "a=rtpmap:97 pcma/8000"))
    assert (negotiated.codec, negotiated.payload_type) == ("PCMA", 97)


def test_opus_takes_telephone_event_at_48000_only() -> None:
    _, freeswitch = answer(parse("sdp_freeswitch_opus"), local("OPUS"))
    assert freeswitch.telephone_event_pt == 101
    # baresip offers telephone-event/8000 only: no events at Opus's clock.
    sdp, baresip = answer(parse("sdp_baresip"), local("OPUS"))
    assert (baresip.payload_type, baresip.telephone_event_pt) == (96, None)
    assert sdp.media[0].formats == ["96"]
    assert sdp.media[0].rtpmaps() == {96: RtpMap("opus", 48000, 2)}
    assert sdp.media[0].fmtp(96) == OUR_OPUS_FMTP


def test_opus_without_channel_count_still_matches() -> None:
    # SEMS once offered opus/48000, without the /2 RFC 7587 asks for.
    _, negotiated = answer(
        offer_of("m=audio 5000 RTP/AVP 102", "a=rtpmap:102 opus/48000"), local("OPUS")
    )
    assert negotiated.payload_type == 102


def test_freeswitch_opus_answer_is_exactly_what_we_send() -> None:
    sdp, _ = answer(parse("sdp_freeswitch_opus"), local("OPUS", "PCMU"))
    assert str(sdp) == sdp_text(
        "v=0",
        "o=telerapat 7 1 IN IP4 192.0.2.50",
        "s=-",
        "c=IN IP4 192.0.2.50",
        "t=0 0",
        "m=audio 40000 RTP/AVP 96 101",
        "a=rtpmap:96 opus/48000/2",
        f"a=fmtp:96 {OUR_OPUS_FMTP}",
        "a=rtpmap:101 telephone-event/48000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=maxptime:60",
        "a=sendrecv",
    )


def test_opus_fmtp_follows_our_bitrate_and_dtx() -> None:
    audio = LocalAudio(
        ("OPUS",), BRIDGE_HOST, BRIDGE_PORT, opus_max_bitrate_bps=32000, opus_dtx=False
    )
    sdp, _ = answer(parse("sdp_freeswitch_opus"), audio)
    assert sdp.media[0].fmtp(96) == (
        "maxplaybackrate=16000;sprop-maxcapturerate=16000;maxaveragebitrate=32000;"
        "useinbandfec=1;usedtx=0;stereo=0"
    )
    assert audio.opus_parameters == OpusParameters.parse(sdp.media[0].fmtp(96))


def test_baresip_opus_parameters_are_what_it_said() -> None:
    # baresip 1.0.0 offers stereo=1;sprop-stereo=1: it could take stereo; we send mono anyway.
    _, negotiated = answer(parse("sdp_baresip"), local("OPUS"))
    assert negotiated.remote_opus == OpusParameters(stereo=True, sprop_stereo=True)
    assert negotiated.remote_opus.max_playback_rate_hz == 48000
    assert negotiated.remote_opus.max_average_bitrate_bps is None


def test_remote_opus_is_only_for_opus() -> None:
    assert answer(parse("sdp_baresip"), local("G722"))[1].remote_opus is None
    assert answer(parse("sdp_baresip"), local("PCMU"))[1].remote_opus is None


def test_opus_without_fmtp_has_the_rfc_defaults() -> None:
    _, negotiated = answer(
        offer_of("m=audio 5000 RTP/AVP 111", "a=rtpmap:111 opus/48000/2"), local("OPUS")
    )
    assert negotiated.remote_opus == OpusParameters()
    assert negotiated.remote_opus.use_inband_fec is False


def test_opus_fmtp_of_another_payload_type_is_not_read() -> None:
    offer = offer_of(
        "m=audio 5000 RTP/AVP 111 112",
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:112 opus/48000/2",
        "a=fmtp:112 maxplaybackrate=8000",
    )
    _, negotiated = answer(offer, local("OPUS"))
    assert (negotiated.payload_type, negotiated.remote_opus) == (111, OpusParameters())


@pytest.mark.parametrize(
    ("offered_lines", "expected_ms"),
    [
        # A maxptime alone does not ask for long packets: 20 ms, the least delay.
        (("a=fmtp:111 maxptime=40",), 20),
        (("a=fmtp:111 maxptime=60",), 20),
        (("a=fmtp:111 ptime=60",), 60),
        (("a=fmtp:111 ptime=30;maxptime=50",), 20),
        (("a=fmtp:111 ptime=50;maxptime=60",), 40),
        # The smaller of the two maxptimes holds.
        (("a=fmtp:111 ptime=60;maxptime=60", "a=maxptime:40"), 40),
        (("a=fmtp:111 maxptime=20", "a=maxptime:60"), 20),
        # a=ptime is read before the fmtp's.
        (("a=fmtp:111 ptime=60", "a=ptime:40"), 40),
        (("a=fmtp:111 useinbandfec=1",), 20),
    ],
)
def test_opus_fmtp_ptime_and_maxptime_choose_our_packet_time(
    offered_lines: tuple[str, ...], expected_ms: int
) -> None:
    offer = offer_of("m=audio 5000 RTP/AVP 111", "a=rtpmap:111 opus/48000/2", *offered_lines)
    sdp, negotiated = answer(offer, local("OPUS", ptimes_ms=(20, 40, 60)))
    assert negotiated.ptime_ms == expected_ms
    assert sdp.media[0].ptime_ms == expected_ms
    assert sdp.media[0].maxptime_ms == 60


def test_maxptime_is_announced_only_with_opus() -> None:
    for codecs in (("PCMU",), ("PCMA",), ("G722",)):
        sdp, _ = answer(parse("sdp_baresip"), local(*codecs, ptimes_ms=(20, 40, 60)))
        assert sdp.media[0].maxptime_ms is None
        assert sdp.media[0].attribute("fmtp") == "101 0-15"


def test_stereo_g711_is_not_ours() -> None:
    with pytest.raises(NoCommonCodec):
        answer(offer_of("m=audio 5000 RTP/AVP 96", "a=rtpmap:96 PCMU/8000/2"))


def test_telephone_event_can_be_left_out() -> None:
    sdp, negotiated = answer(parse("sdp_baresip"), local("PCMU", telephone_event=False))
    assert negotiated.telephone_event_pt is None
    assert sdp.media[0].formats == ["0"]


@pytest.mark.parametrize(
    ("offered_lines", "ptimes_ms", "expected_ms"),
    [
        (("a=ptime:30",), (20, 30), 30),
        (("a=ptime:30",), (20,), 20),
        (("a=ptime:10", "a=maxptime:20"), (30, 20), 20),
        (("a=maxptime:10",), (30, 20), 20),
        # Nothing said: 20 ms, the RFC 3551 §4.5 default, not our first choice.
        ((), (30, 20), 20),
        (("a=ptime:40",), (20, 40, 60), 40),
        (("a=ptime:60",), (20, 40, 60), 60),
        (("a=ptime:30",), (20, 40, 60), 20),
        (("a=ptime:30", "a=maxptime:60"), (20, 40, 60), 20),
        (("a=ptime:50", "a=maxptime:60"), (20, 40, 60), 40),
        (("a=maxptime:50",), (20, 40, 60), 20),
        (("a=maxptime:50",), (60, 40), 40),
        (("a=maxptime:150",), (20, 40), 20),
        (("a=ptime:60", "a=maxptime:40"), (20, 40), 40),
        (("a=ptime:20.0",), (20, 40, 60), 20),
    ],
)
def test_ptime_follows_the_offer_when_we_can(
    offered_lines: tuple[str, ...], ptimes_ms: tuple[int, ...], expected_ms: int
) -> None:
    sdp, negotiated = answer(
        offer_of("m=audio 5000 RTP/AVP 0", *offered_lines), local("PCMU", ptimes_ms=ptimes_ms)
    )
    assert negotiated.ptime_ms == expected_ms
    assert sdp.media[0].ptime_ms == expected_ms


@pytest.mark.parametrize(
    ("offered", "address", "answered"),
    [
        ("sendrecv", "192.0.2.9", Direction.SENDRECV),
        ("sendonly", "192.0.2.9", Direction.RECVONLY),
        ("recvonly", "192.0.2.9", Direction.SENDONLY),
        ("inactive", "192.0.2.9", Direction.INACTIVE),
        # RFC 3264 §8.4: c=0.0.0.0 (RFC 2543 hold) means "do not send to me".
        ("sendrecv", "0.0.0.0", Direction.RECVONLY),
        ("sendonly", "0.0.0.0", Direction.RECVONLY),
        ("recvonly", "0.0.0.0", Direction.INACTIVE),
        ("inactive", "0.0.0.0", Direction.INACTIVE),
    ],
)
def test_answer_direction_reverses_the_offer(
    offered: str, address: str, answered: Direction
) -> None:
    offer = offer_of("m=audio 5000 RTP/AVP 0", f"c=IN IP4 {address}", f"a={offered}")
    sdp, negotiated = answer(offer)
    assert negotiated.direction is answered
    assert sdp.media[0].direction(sdp) is answered


def test_avpf_is_answered_as_offered() -> None:
    sdp, _ = answer(offer_of("m=audio 5000 RTP/AVPF 0", "a=rtcp-fb:* nack"))
    assert sdp.media[0].proto == "RTP/AVPF"


def test_srtp_offer_is_refused_with_488() -> None:
    with pytest.raises(NoCommonCodec) as caught:
        answer(parse("sdp_baresip_srtp"))
    assert str(caught.value) == (
        "no acceptable audio stream: m=audio 41034 RTP/SAVP: transport not supported"
    )
    assert caught.value.status_hint == 488
    assert isinstance(caught.value, SipParseError)


def test_g729_only_offer_is_refused_with_488() -> None:
    with pytest.raises(NoCommonCodec) as caught:
        answer(parse("sdp_freeswitch_g729"))
    assert str(caught.value) == (
        "no acceptable audio stream: m=audio 19240 RTP/AVP: no common codec in "
        "G729/8000, telephone-event/8000 (we take PCMU, PCMA)"
    )
    assert caught.value.status_hint == 488


def test_opus_only_offer_is_refused_without_opus() -> None:
    with pytest.raises(NoCommonCodec):
        answer(parse("sdp_freeswitch_opus"))


def test_dynamic_types_without_rtpmap_are_not_guessed() -> None:
    with pytest.raises(NoCommonCodec) as caught:
        answer(offer_of("m=audio 5000 RTP/AVP 96 97"))
    assert str(caught.value).endswith("no common codec in 96 97 (we take PCMU, PCMA)")


def test_offer_without_audio_is_refused() -> None:
    with pytest.raises(NoCommonCodec) as caught:
        answer(offer_of("m=video 5002 RTP/AVP 31"))
    assert str(caught.value) == "offer has no audio stream"


def test_best_effort_srtp_takes_the_plain_rtp_stream() -> None:
    offer = offer_of(
        "m=audio 5000 RTP/SAVP 0",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WnD7c1ksDGs+dq5PI6rV/1Pj8+eSRCZQ8JWaGaQA",
        "m=audio 5002 RTP/AVP 0",
    )
    sdp, negotiated = answer(offer)
    assert negotiated.remote_port == 5002
    assert [(media.port, media.proto) for media in sdp.media] == [
        (0, "RTP/SAVP"),
        (BRIDGE_PORT, "RTP/AVP"),
    ]


def test_only_the_first_acceptable_audio_stream_is_taken() -> None:
    offer = offer_of("m=audio 0 RTP/AVP 0", "m=audio 5002 RTP/AVP 0", "m=audio 5004 RTP/AVP 8")
    sdp, negotiated = answer(offer)
    assert negotiated.remote_port == 5002
    assert [media.port for media in sdp.media] == [0, BRIDGE_PORT, 0]


def test_accepted_stream_without_connection_address_is_a_bad_request() -> None:
    offer = SessionDescription.parse(
        sdp_text("v=0", "o=- 1 1 IN IP4 192.0.2.9", "s=-", "t=0 0", "m=audio 5000 RTP/AVP 0")
    )
    with pytest.raises(SdpParseError) as caught:
        answer(offer)
    assert str(caught.value) == "no c= line for the m=audio 5000 stream"
    assert caught.value.status_hint == 400


def test_version_moves_only_when_the_answer_changes() -> None:
    """RFC 3264 §8: the o= version goes up by one for each changed SDP, never otherwise."""
    session = SdpSession(4711, BRIDGE_HOST)
    audio = local()
    versions = []
    for name in ("sdp_baresip", "sdp_baresip", "sdp_baresip_hold", "sdp_baresip_resume"):
        sdp, _ = answer_offer(parse(name), audio, session)
        assert (sdp.origin.username, sdp.origin.session_id) == ("telerapat", 4711)
        versions.append(sdp.origin.session_version)
    assert versions == [1, 1, 2, 3]
    # A session refresh that repeats the offer gets the same answer and version.
    again, _ = answer_offer(parse("sdp_baresip_resume"), audio, session)
    assert again.origin.session_version == 3
    assert session.version == 3


def test_answers_to_ipv6_offers_say_ip6() -> None:
    sdp, _ = answer_offer(
        parse("sdp_sipp"), LocalAudio(G711, "2001:db8::5", 40000), SdpSession(1, "2001:db8::5")
    )
    assert sdp.connection == Connection("IN", "IP6", "2001:db8::5")
    assert (sdp.origin.addrtype, sdp.origin.address) == ("IP6", "2001:db8::5")


def test_pyvoip_reads_our_answer() -> None:
    """pyVoIP 1.6.8 parses the 200 OK we send and maps its payload types as its call does."""
    sdp, _ = answer(parse("sdp_pyvoip"))
    body = bytes(sdp)
    response = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
        b"From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:1000@127.0.0.1>;tag=2\r\n"
        b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    parsed = SIP.SIPMessage(response).body
    (media,) = parsed["m"]
    assert (media["port"], media["methods"]) == (BRIDGE_PORT, ["0", "101"])
    # VoIPCall.answered(): the number if pyVoIP knows it, else the rtpmap's name.
    payload_types = []
    for pt in media["methods"]:
        try:
            payload_types.append(RTP.PayloadType(int(pt)))
        except ValueError:
            payload_types.append(RTP.PayloadType(media["attributes"][pt]["rtpmap"]["name"]))
    assert payload_types == [RTP.PayloadType.PCMU, RTP.PayloadType.EVENT]
    assert parsed["c"][0]["address"] == BRIDGE_HOST
    assert parsed["a"]["transmit_type"] is RTP.TransmitType.SENDRECV


# -- make_offer and accept_answer ---------------------------------------------------------


def test_offer_lists_our_codecs_and_telephone_event() -> None:
    offer = make_offer(local(), SdpSession(9, BRIDGE_HOST))
    assert str(offer) == sdp_text(
        "v=0",
        "o=telerapat 9 1 IN IP4 192.0.2.50",
        "s=-",
        "c=IN IP4 192.0.2.50",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    )


def test_offer_with_opus_gives_events_at_each_clock_rate() -> None:
    offer = make_offer(local("OPUS", "G722", "PCMU", "pcmu"), SdpSession(9, BRIDGE_HOST))
    (audio,) = offer.media
    assert audio.formats == ["96", "9", "0", "97", "101"]
    assert audio.rtpmaps() == {
        96: RtpMap("opus", 48000, 2),
        9: RtpMap("G722", 8000),
        0: RtpMap("PCMU", 8000),
        97: RtpMap("telephone-event", 48000),
        101: RtpMap("telephone-event", 8000),
    }
    assert SessionDescription.parse(bytes(offer)) == offer


@pytest.mark.parametrize(
    "codecs", [("PCMU",), ("PCMA", "PCMU"), ("G722", "PCMA"), ("OPUS", "PCMU")]
)
def test_our_offer_answered_by_ourselves_agrees(codecs: tuple[str, ...]) -> None:
    caller = LocalAudio(codecs, "192.0.2.60", 42000)
    offer = make_offer(caller, SdpSession(1, "192.0.2.60"))
    sdp, theirs = answer_offer(offer, local(*codecs), SdpSession(2, BRIDGE_HOST))
    ours = accept_answer(offer, sdp, caller)
    assert ours.codec == theirs.codec == codecs[0]
    assert ours.payload_type == theirs.payload_type
    assert ours.telephone_event_pt == theirs.telephone_event_pt is not None
    if codecs[0] == "OPUS":
        # Each side reads what the other asked of its encoder.
        assert theirs.remote_opus == caller.opus_parameters
        assert ours.remote_opus == local(*codecs).opus_parameters
    else:
        assert ours.remote_opus is theirs.remote_opus is None
    assert (ours.remote_host, ours.remote_port) == (BRIDGE_HOST, BRIDGE_PORT)
    assert (theirs.remote_host, theirs.remote_port) == ("192.0.2.60", 42000)


def test_offer_with_opus_carries_our_fmtp_and_maxptime() -> None:
    offer = make_offer(local("OPUS", "PCMU", ptimes_ms=(20, 40, 60)), SdpSession(9, BRIDGE_HOST))
    (audio,) = offer.media
    assert audio.fmtp(96) == OUR_OPUS_FMTP
    assert (audio.ptime_ms, audio.maxptime_ms) == (20, 60)
    assert audio.fmtp(0) is None


def test_opus_answer_in_the_ack_gives_its_parameters_and_packet_time() -> None:
    caller = local("OPUS", "PCMU", ptimes_ms=(20, 40, 60))
    offer = make_offer(caller, SdpSession(5, BRIDGE_HOST))
    negotiated = accept_answer(
        offer,
        answer_of(
            "m=audio 5000 RTP/AVP 96",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 maxplaybackrate=8000; MaxAverageBitrate=12000; usedtx=1; ptime=40; "
            "maxptime=40",
        ),
        caller,
    )
    assert (negotiated.codec, negotiated.payload_type, negotiated.ptime_ms) == ("OPUS", 96, 40)
    assert negotiated.remote_opus == OpusParameters(
        max_playback_rate_hz=8000, ptime_ms=40, max_ptime_ms=40,
        max_average_bitrate_bps=12000, use_dtx=True,
    )


def test_pcmu_answer_in_the_ack_has_no_opus_parameters() -> None:
    caller = local("OPUS", "PCMU")
    offer = make_offer(caller, SdpSession(5, BRIDGE_HOST))
    negotiated = accept_answer(offer, answer_of("m=audio 5000 RTP/AVP 0"), caller)
    assert (negotiated.codec, negotiated.remote_opus) == ("PCMU", None)


def test_offer_after_an_answer_is_a_new_version() -> None:
    session = SdpSession(3, BRIDGE_HOST)
    audio = local()
    answer_offer(parse("sdp_baresip"), audio, session)
    assert make_offer(audio, session).origin.session_version == 2
    assert make_offer(audio, session).origin.session_version == 2


# answer fixture: (codec, pt, telephone-event pt, our direction, host, port, rtcp port)
ACCEPTED = {
    "sdp_baresip_answer": ("PCMU", 0, 101, Direction.SENDRECV, "127.0.0.1", 41092, 41093),
    "sdp_baresip_answer_recvonly": ("PCMU", 0, 101, Direction.SENDONLY, "127.0.0.1", 41098, 41099),
    "sdp_pyvoip_answer": ("PCMU", 0, 101, Direction.SENDRECV, "127.0.0.1", 42275, 42276),
    "sdp_freeswitch_answer": ("PCMU", 0, 101, Direction.SENDRECV, "203.0.113.5", 56434, 56435),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_answer_from_real_peer_is_accepted(name: str) -> None:
    codec, pt, event_pt, direction, host, port, rtcp = ACCEPTED[name]
    offer = make_offer(local(), SdpSession(5, BRIDGE_HOST))
    assert accept_answer(offer, parse(name), local()) == NegotiatedAudio(
        codec=codec,
        payload_type=pt,
        clock_rate_hz=8000,
        telephone_event_pt=event_pt,
        ptime_ms=20,
        remote_host=host,
        remote_port=port,
        remote_rtcp_port=rtcp,
        direction=direction,
    )


def answer_of(*media_lines: str) -> SessionDescription:
    return offer_of(*media_lines)


def test_answer_that_refuses_audio_is_488() -> None:
    offer = make_offer(local(), SdpSession(5, BRIDGE_HOST))
    with pytest.raises(NoCommonCodec) as caught:
        accept_answer(offer, answer_of("m=audio 0 RTP/AVP 0"), local())
    assert str(caught.value) == "answer rejected the audio stream"
    assert caught.value.status_hint == 488


def test_answer_with_a_codec_we_did_not_offer_is_488() -> None:
    offer = make_offer(local("PCMU"), SdpSession(5, BRIDGE_HOST))
    with pytest.raises(NoCommonCodec) as caught:
        accept_answer(offer, answer_of("m=audio 5000 RTP/AVP 8 18"), local("PCMU", "PCMA"))
    assert str(caught.value) == "answer has no codec we offered: PCMA/8000, G729/8000"


def test_answer_must_have_one_line_per_offered_stream() -> None:
    offer = make_offer(local(), SdpSession(5, BRIDGE_HOST))
    with pytest.raises(SdpParseError) as caught:
        accept_answer(offer, answer_of("m=audio 5000 RTP/AVP 0", "m=video 0 RTP/AVP 31"), local())
    assert str(caught.value) == "answer has 2 m= lines for the offer's 1"
    with pytest.raises(SdpParseError) as caught:
        accept_answer(offer, answer_of("m=video 5000 RTP/AVP 31"), local())
    assert str(caught.value) == "answer has m=video where we offered audio"


def test_answer_takes_the_answerers_first_codec_and_ptime() -> None:
    offer = make_offer(local(ptimes_ms=(20, 30)), SdpSession(5, BRIDGE_HOST))
    negotiated = accept_answer(
        offer, answer_of("m=audio 5000 RTP/AVP 8 0 101", "a=ptime:30"), local(ptimes_ms=(20, 30))
    )
    assert (negotiated.codec, negotiated.ptime_ms, negotiated.telephone_event_pt) == (
        "PCMA",
        30,
        None,
    )


def test_accept_answer_needs_an_audio_offer() -> None:
    with pytest.raises(LocalProtocolError):
        accept_answer(
            offer_of("m=video 5000 RTP/AVP 31"), answer_of("m=video 5000 RTP/AVP 31"), local()
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"codecs": ()}, "LocalAudio needs at least one codec"),
        ({"codecs": ("G729",)}, "unsupported codecs ['G729']"),
        ({"ptimes_ms": ()}, "invalid ptimes_ms: ()"),
        ({"ptimes_ms": (0,)}, "invalid ptimes_ms: (0,)"),
        ({"port": 0}, "invalid RTP port: 0"),
        ({"opus_max_bitrate_bps": 5999}, "invalid opus_max_bitrate_bps: 5999"),
        ({"opus_max_bitrate_bps": 510_001}, "invalid opus_max_bitrate_bps: 510001"),
    ],
)
def test_local_audio_rejects_what_we_cannot_do(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"codecs": G711, "host": BRIDGE_HOST, "port": BRIDGE_PORT}
    arguments.update(options)
    with pytest.raises(ValueError, match=re.escape(message)):
        LocalAudio(**arguments)  # type: ignore[arg-type]


def test_supported_codecs_are_the_canonical_names() -> None:
    assert SUPPORTED_CODECS == ("PCMU", "PCMA", "G722", "OPUS")


# -- property: any offer gets a well-formed answer or a typed refusal ----------------------

_OFFERED_CODECS = [
    "0",
    "8",
    "9",
    "18",
    "96 opus/48000/2",
    "97 telephone-event/8000",
    "98 telephone-event/48000",
    "99 PCMA/8000",
    "100 G722/16000",
    "101 iLBC/8000",
]


_OPUS_FMTP_PARAMETERS = [
    "maxplaybackrate", "sprop-maxcapturerate", "maxptime", "ptime", "minptime",
    "maxaveragebitrate", "stereo", "sprop-stereo", "cbr", "useinbandfec", "usedtx", "x-google",
]
_OPUS_FMTPS = st.lists(
    st.tuples(
        st.sampled_from(_OPUS_FMTP_PARAMETERS),
        st.one_of(st.integers(-1, 600_000).map(str), st.sampled_from(["", "yes", "1.5"])),
    ),
    max_size=6,
).map(lambda pairs: ";".join(f"{name}={value}" for name, value in pairs))


@st.composite
def _offers(draw: st.DrawFn) -> SessionDescription:
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        media = draw(st.sampled_from(["audio", "audio", "video"]))
        proto = draw(st.sampled_from(["RTP/AVP", "RTP/AVP", "RTP/AVPF", "RTP/SAVP"]))
        port = draw(st.sampled_from([0, 5000, 5002]))
        chosen = draw(
            st.lists(st.sampled_from(_OFFERED_CODECS), min_size=1, max_size=5, unique=True)
        )
        lines.append(f"m={media} {port} {proto} " + " ".join(entry.split()[0] for entry in chosen))
        lines += [f"a=rtpmap:{entry}" for entry in chosen if " " in entry]
        if "96 opus/48000/2" in chosen and draw(st.booleans()):
            lines.append(f"a=fmtp:96 {draw(_OPUS_FMTPS)}")
        direction = draw(st.sampled_from(["", "sendrecv", "sendonly", "recvonly", "inactive"]))
        if direction:
            lines.append(f"a={direction}")
        if draw(st.booleans()):
            lines.append(f"a=ptime:{draw(st.sampled_from([10, 20, 30, 40, 60]))}")
        if draw(st.booleans()):
            lines.append(f"a=maxptime:{draw(st.sampled_from([10, 20, 40, 50, 60, 120]))}")
    return offer_of(*lines)


@settings(max_examples=200, deadline=None)
@given(
    _offers(),
    st.lists(st.sampled_from(SUPPORTED_CODECS), min_size=1, max_size=4, unique=True),
    st.booleans(),
    st.sampled_from([(20,), (20, 40, 60), (60, 40)]),
)
def test_any_offer_gets_a_consistent_answer_or_488(
    offer: SessionDescription,
    codecs: list[str],
    telephone_event: bool,
    ptimes_ms: tuple[int, ...],
) -> None:
    audio = LocalAudio(tuple(codecs), BRIDGE_HOST, BRIDGE_PORT, telephone_event, ptimes_ms)
    try:
        sdp, negotiated = answer_offer(offer, audio, SdpSession(1, BRIDGE_HOST))
    except NoCommonCodec:
        return
    assert SessionDescription.parse(bytes(sdp)) == sdp
    assert len(sdp.media) == len(offer.media)
    (index,) = [i for i, media in enumerate(sdp.media) if media.port != 0]
    offered, answered = offer.media[index], sdp.media[index]
    assert offered.media == "audio" and offered.proto in ("RTP/AVP", "RTP/AVPF")
    assert negotiated.codec in codecs
    assert offered.rtpmaps()[negotiated.payload_type] == answered.rtpmaps()[negotiated.payload_type]
    assert len(answered.formats) == (1 if negotiated.telephone_event_pt is None else 2)
    assert answered.direction(sdp) is negotiated.direction is offered.direction(offer).reversed()
    # Nothing we prefer more was offered in the accepted stream.
    preferred = codecs[: codecs.index(negotiated.codec)]
    names = {rtpmap.encoding_name.upper() for rtpmap in offered.rtpmaps().values()}
    assert not ({"PCMU", "PCMA"} & set(preferred) & names)
    # Opus parameters come with Opus only; the packet time is ours or the 20 ms default.
    assert (negotiated.remote_opus is not None) == (negotiated.codec == "OPUS")
    assert negotiated.ptime_ms in (*ptimes_ms, 20)
    assert answered.ptime_ms == negotiated.ptime_ms
    assert (answered.maxptime_ms == 60) == (negotiated.codec == "OPUS")


# -- fixed peers (plain RTP gateway legs) -------------------------------------------------

@pytest.mark.parametrize(("codec", "pt", "rate"), [
    ("PCMU", 0, 8000), ("pcma", 8, 8000), ("G722", 9, 8000), ("OPUS", 111, 48000),
])
def test_a_fixed_peer_is_answered_in_its_own_numbering(codec: str, pt: int, rate: int) -> None:
    offer = describe_fixed_peer(codec, pt, 20, "192.0.2.9", 20000, telephone_event_pt=126)
    local = LocalAudio(codecs=(codec.upper(),), host="192.0.2.1", port=40000)
    answer, negotiated = answer_offer(offer, local, SdpSession(7, "192.0.2.1"))
    assert (negotiated.codec, negotiated.payload_type) == (codec.upper(), pt)
    assert negotiated.clock_rate_hz == rate and negotiated.telephone_event_pt == 126
    assert (negotiated.remote_host, negotiated.remote_port) == ("192.0.2.9", 20000)
    assert negotiated.direction is Direction.SENDRECV
    text = bytes(answer).decode()
    assert "m=audio 40000 RTP/AVP " + str(pt) in text and "c=IN IP4 192.0.2.1" in text


def test_a_fixed_peer_on_ipv6_and_without_events() -> None:
    offer = describe_fixed_peer("PCMU", 0, 40, "2001:db8::5", 30000)
    local = LocalAudio(codecs=("PCMU",), host="2001:db8::1", port=40002, ptimes_ms=(20, 40))
    _, negotiated = answer_offer(offer, local, SdpSession(7, "2001:db8::1"))
    assert negotiated.remote_host == "2001:db8::5" and negotiated.telephone_event_pt is None
    assert negotiated.ptime_ms == 40


def test_a_fixed_peer_with_an_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="GSM"):
        describe_fixed_peer("GSM", 3, 20, "192.0.2.9", 20000)
