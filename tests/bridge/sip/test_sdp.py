"""SessionDescription parses real peers' SDP, prints it back, and rejects what we cannot use."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.sip.errors import SipParseError
from bridge.sip.sdp import (
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SdpParseError,
    SessionDescription,
    Timing,
    parse_rtpmap,
)
from tests.conftest import FIXTURES, load_fixture

SDP_FIXTURES = sorted(path.stem for path in (FIXTURES / "sip").glob("sdp_*.txt"))
VALID = [name for name in SDP_FIXTURES if not name.endswith(("_invalid", "_truncated"))]
BROKEN = [name for name in SDP_FIXTURES if name.endswith(("_invalid", "_truncated"))]

# Where each valid fixture comes from. Captured ones were recorded on 127.0.0.1 from the
# program itself; the others are copied from public logs and code (public addresses replaced
# by documentation addresses) or from RFC examples.
SOURCES = {
    "sdp_asterisk": "Asterisk 13.38.3 chan_sip offer (public test code)",
    "sdp_asterisk_video": "Asterisk 1.6.2 (FreePBX 2.9) audio+video offer (public test code)",
    "sdp_baresip": "captured: baresip 1.0.0 INVITE, opus/G722/g711 modules",
    "sdp_baresip_answer": "captured: baresip 1.0.0 200 OK answer (invite_200_baresip.sip)",
    "sdp_baresip_answer_recvonly": "captured: baresip 1.0.0 answer to a sendonly re-INVITE",
    "sdp_baresip_hold": "captured: baresip 1.0.0 re-INVITE after /hold",
    "sdp_baresip_resume": "captured: baresip 1.0.0 re-INVITE after /resume",
    "sdp_baresip_srtp": "captured: baresip 1.0.0 INVITE with mediaenc=srtp-mand",
    "sdp_baresip_video": "captured: baresip 1.0.0 INVITE with vp8 + fakevideo",
    "sdp_freeswitch": "FreeSWITCH 1.8.5 offer, logged by an ESP32 SIP client",
    "sdp_freeswitch_answer": "FreeSWITCH 1.10.12 200 OK answer (public call-flow notes)",
    "sdp_freeswitch_g729": "FreeSWITCH offer with G.729 only (rtpengine-client example)",
    "sdp_freeswitch_opus": "FreeSWITCH 1.10.12 local SDP, Opus only (mod_sofia log)",
    "sdp_linphone": "liblinphone offer as logged by FreeSWITCH 1.10.12 (Remote SDP)",
    "sdp_pjsua_inactive": "pjsua 2.x layout (pjproject#3348 trace), hold of a held call",
    "sdp_pyvoip": "captured: pyVoIP 1.6.8 INVITE (invite_pyvoip.sip)",
    "sdp_pyvoip_answer": "captured: pyVoIP 1.6.8 200 OK answer (invite_200_pyvoip.sip)",
    "sdp_rfc2543_hold": "carrier switch INVITE on hold with c=0.0.0.0 (rtpengine#702)",
    "sdp_rfc3264_offer": "RFC 3264 §10.1 offer",
    "sdp_rfc4566": "RFC 4566 §5 example",
    "sdp_sipp": "captured: SIPp 3.6.1 built-in uac scenario",
}

# name: exact message (every one of these is answered 400)
EXPECTED_ERRORS = {
    "sdp_asterisk_invalid": "unsupported SDP version: '1'",
    "sdp_asterisk_video_invalid": "invalid b= line: 'CT384'",
    "sdp_baresip_answer_invalid": "t= line inside a media description",
    "sdp_baresip_answer_recvonly_invalid": (
        "SDP does not start with v=: 'o=- 1888407393 1985254270 IN IP4 127.0.0.1'"
    ),
    "sdp_baresip_hold_truncated": "invalid o= line: '- 279657912 17976'",
    "sdp_baresip_resume_invalid": "invalid a= line: ' sendrecv'",
    "sdp_baresip_srtp_invalid": "control character in SDP line: 'a=tool:baresip 1.0.0\\r'",
    "sdp_baresip_truncated": "invalid m= line: 'audio 41058'",
    "sdp_baresip_video_invalid": "invalid port in m= line: '41020/0'",
    "sdp_freeswitch_answer_invalid": "m= line has no formats: 'audio 56434 RTP/AVP'",
    "sdp_freeswitch_g729_truncated": "missing t= line",
    "sdp_freeswitch_invalid": "invalid rtpmap: '102 telephone-event'",
    "sdp_freeswitch_opus_invalid": "duplicate o= line",
    "sdp_linphone_invalid": "invalid rtcp attribute: '410590'",
    "sdp_pjsua_inactive_invalid": "invalid payload type in rtpmap: '196 speex/16000'",
    "sdp_pyvoip_answer_invalid": "SDP is not UTF-8",
    "sdp_pyvoip_invalid": "invalid RTP payload type in m= line: '128'",
    "sdp_rfc2543_hold_invalid": "invalid c= line: 'IN IP4'",
    "sdp_rfc3264_offer_invalid": "missing o= line",
    "sdp_rfc4566_invalid": "invalid t= line: '2873397496'",
    "sdp_sipp_invalid": "invalid port in m= line: '99999'",
    "sdp_sipp_truncated": "missing s= line",
}


def load(name: str) -> bytes:
    return load_fixture(f"sip/{name}.txt")


def parse(name: str) -> SessionDescription:
    return SessionDescription.parse(load(name))


def sdp_text(*lines: str) -> str:
    return "".join(line + "\r\n" for line in lines)


HEAD = ("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0")


def test_every_fixture_is_accounted_for() -> None:
    assert sorted(SOURCES) == VALID
    assert sorted(EXPECTED_ERRORS) == BROKEN


@pytest.mark.parametrize("name", VALID)
def test_fixture_prints_back_byte_for_byte(name: str) -> None:
    data = load(name)
    assert bytes(SessionDescription.parse(data)) == data


@pytest.mark.parametrize("name", VALID)
def test_fixture_round_trips_as_an_object(name: str) -> None:
    sdp = parse(name)
    assert SessionDescription.parse(bytes(sdp)) == sdp
    assert SessionDescription.parse(str(sdp)) == sdp


@pytest.mark.parametrize("name", VALID)
def test_fixture_parses_the_same_with_lf_line_ends(name: str) -> None:
    assert SessionDescription.parse(load(name).replace(b"\r\n", b"\n")) == parse(name)


@pytest.mark.parametrize("name", BROKEN)
def test_broken_fixture_raises_its_own_error(name: str) -> None:
    with pytest.raises(SdpParseError) as caught:
        SessionDescription.parse(load(name))
    assert str(caught.value) == EXPECTED_ERRORS[name]
    assert caught.value.status_hint == 400
    assert isinstance(caught.value, SipParseError)


def test_baresip_offer_reads_every_codec_and_parameter() -> None:
    sdp = parse("sdp_baresip")
    assert sdp.origin == Origin("-", 279657912, 1797660647, "IN", "IP4", "127.0.0.1")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("IN", "IP4", "127.0.0.1")
    assert sdp.timing == [Timing(0, 0)]
    assert sdp.attributes == [("tool", "baresip 1.0.0")]
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.port_count, audio.proto) == (
        "audio",
        41058,
        None,
        "RTP/AVP",
    )
    assert audio.formats == ["96", "9", "0", "8", "101"]
    assert audio.rtpmaps() == {
        96: RtpMap("opus", 48000, 2),
        9: RtpMap("G722", 8000),
        0: RtpMap("PCMU", 8000),
        8: RtpMap("PCMA", 8000),
        101: RtpMap("telephone-event", 8000),
    }
    assert list(audio.rtpmaps()) == [96, 9, 0, 8, 101]
    assert audio.fmtp(96) == "stereo=1;sprop-stereo=1"
    assert audio.fmtp(101) == "0-15"
    assert audio.fmtp(0) is None
    assert audio.ptime_ms == 20
    assert audio.maxptime_ms is None
    assert audio.direction(sdp) is Direction.SENDRECV
    assert audio.rtcp_port == 41059
    assert audio.connection_address(sdp) == "127.0.0.1"
    assert audio.attribute("ssrc") == "2737952121 cname:sip:alice@127.0.0.1:5111"
    assert ("rtcp-rsize", None) in audio.attributes


def test_baresip_hold_is_sendonly() -> None:
    sdp = parse("sdp_baresip_hold")
    assert sdp.media[0].direction(sdp) is Direction.SENDONLY
    assert sdp.origin.session_version == parse("sdp_baresip").origin.session_version + 1


def test_sipp_offer_has_only_pcmu_and_no_direction() -> None:
    sdp = parse("sdp_sipp")
    (audio,) = sdp.media
    assert audio.rtpmaps() == {0: RtpMap("PCMU", 8000)}
    assert audio.direction(sdp) is Direction.SENDRECV
    assert audio.ptime_ms is None


def test_pyvoip_offer_has_ptime_and_maxptime() -> None:
    sdp = parse("sdp_pyvoip")
    (audio,) = sdp.media
    assert sdp.session_name == "pyVoIP 1.6.8"
    assert (audio.ptime_ms, audio.maxptime_ms) == (20, 150)
    assert audio.rtpmaps() == {0: RtpMap("PCMU", 8000), 101: RtpMap("telephone-event", 8000)}


def test_linphone_offer_uses_static_g729_and_its_own_rtcp_port() -> None:
    sdp = parse("sdp_linphone")
    (audio,) = sdp.media
    rtpmaps = audio.rtpmaps()
    # 18 has an a=fmtp but no a=rtpmap: RFC 3551's table names it.
    assert rtpmaps[18] == RtpMap("G729", 8000)
    assert audio.fmtp(18) == "annexb=yes"
    assert [pt for pt, rtpmap in rtpmaps.items() if rtpmap.encoding_name == "telephone-event"] == [
        101,
        99,
        100,
    ]
    assert rtpmaps[100] == RtpMap("telephone-event", 8000)
    assert audio.rtcp_port == 41059
    assert sdp.attribute("record") == "off"
    assert [value for name, value in audio.attributes if name == "rtcp-fb"] == [
        "* trr-int 1000",
        "* ccm tmmbr",
    ]


def test_freeswitch_opus_rtcp_attribute_carries_an_address() -> None:
    (audio,) = parse("sdp_freeswitch_opus").media
    assert audio.rtcp_port == 26403
    assert audio.rtpmaps()[101] == RtpMap("telephone-event", 48000)


def test_pjsua_media_level_connection_and_bandwidth() -> None:
    sdp = parse("sdp_pjsua_inactive")
    (audio,) = sdp.media
    assert sdp.connection is None
    assert audio.connection == Connection("IN", "IP4", "192.168.245.142")
    assert audio.connection_address(sdp) == "192.168.245.142"
    assert sdp.bandwidths == [Bandwidth("AS", 84)]
    assert audio.bandwidths == [Bandwidth("TIAS", 64000)]
    assert audio.rtcp_port == 4001
    assert audio.direction(sdp) is Direction.INACTIVE
    assert sdp.attributes == [("X-nat", "0")]


def test_rfc2543_hold_offer_is_read_from_the_static_table() -> None:
    sdp = parse("sdp_rfc2543_hold")
    (audio,) = sdp.media
    assert audio.connection_address(sdp) == "0.0.0.0"
    assert audio.rtpmaps() == {
        0: RtpMap("PCMU", 8000),
        18: RtpMap("G729", 8000),
        101: RtpMap("telephone-event", 8000),
    }


def test_rfc4566_example_keeps_every_session_line() -> None:
    sdp = parse("sdp_rfc4566")
    assert sdp.other_lines == [
        ("i", "A Seminar on the session description protocol"),
        ("u", "http://www.example.com/seminars/sdp.pdf"),
        ("e", "j.doe@example.com (Jane Doe)"),
    ]
    assert sdp.connection == Connection("IN", "IP4", "224.2.17.12/127")
    assert sdp.timing == [Timing(2873397496, 2873404696)]
    audio, video = sdp.media
    # The session-level a=recvonly is every stream's default (RFC 4566 §6).
    assert audio.direction(sdp) is Direction.RECVONLY
    assert audio.connection_address(sdp) == "224.2.17.12"
    assert audio.attributes == []
    assert video.rtpmaps() == {99: RtpMap("h263-1998", 90000)}


def test_rfc3264_offer_has_an_empty_session_name_and_a_host_name() -> None:
    sdp = parse("sdp_rfc3264_offer")
    assert sdp.session_name == ""
    assert sdp.media[0].connection_address(sdp) == "host.atlanta.example.com"
    assert sdp.media[0].rtpmaps()[97] == RtpMap("iLBC", 8000)
    assert [media.media for media in sdp.media] == ["audio", "video"]


def test_asterisk_video_offer_has_session_bandwidth_and_a_video_stream() -> None:
    sdp = parse("sdp_asterisk_video")
    assert sdp.bandwidths == [Bandwidth("CT", 384)]
    video = sdp.media[1]
    assert video.rtpmaps() == {
        31: RtpMap("H261", 90000),
        34: RtpMap("H263", 90000),
        98: RtpMap("h263-1998", 90000),
    }


def test_srtp_offer_keeps_its_crypto_attribute() -> None:
    (audio,) = parse("sdp_baresip_srtp").media
    assert audio.proto == "RTP/SAVP"
    assert audio.is_rtp
    assert audio.attribute("crypto") == (
        "1 AES_CM_128_HMAC_SHA1_80 inline:SSjB+UrbHtCXUQIdoFaG3GJKpuYhBXuEqoF6XHXj"
    )


def test_unknown_lines_are_kept_and_printed_back() -> None:
    text = sdp_text(*HEAD, "m=video 6000 RTP/AVP 96", "a=rtpmap:96 PS/90000", "y=0100000001")
    sdp = SessionDescription.parse(text)
    assert sdp.media[0].other_lines == [("y", "0100000001")]
    assert str(sdp) == text


def test_lines_out_of_order_are_printed_in_rfc_order() -> None:
    sdp = SessionDescription.parse(
        sdp_text("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "a=x", "c=IN IP4 192.0.2.1")
    )
    assert str(sdp) == sdp_text(*HEAD, "a=x")


def test_repeat_times_time_zones_and_keys_round_trip() -> None:
    text = sdp_text(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "t=3034423619 3042462419",
        "r=604800 3600 0 90000",
        "r=7d 1h 0 25h",
        "t=0 0",
        "z=2882844526 -1h 2898848070 0",
        "k=prompt",
        "m=audio 49170/2 RTP/AVP 0",
        "i=main audio",
    )
    sdp = SessionDescription.parse(text)
    assert sdp.timing == [
        Timing(3034423619, 3042462419, ("604800 3600 0 90000", "7d 1h 0 25h")),
        Timing(0, 0),
    ]
    assert sdp.media[0].port_count == 2
    assert str(sdp) == text


def test_trailing_blanks_and_blank_lines_are_tolerated() -> None:
    padded = (
        "v=0 \r\n\r\no=- 1 1 IN IP4 192.0.2.1 \r\ns=-\t\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0 \r\n"
    )
    assert str(SessionDescription.parse(padded)) == sdp_text(
        "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio 5000 RTP/AVP 0"
    )


def test_ipv6_connection_is_read() -> None:
    sdp = SessionDescription.parse(
        sdp_text(
            "v=0",
            "o=- 1 1 IN IP6 2001:db8::1",
            "s=-",
            "c=IN IP6 2001:db8::1",
            "t=0 0",
            "m=audio 5000 RTP/AVP 0",
        )
    )
    assert sdp.media[0].connection_address(sdp) == "2001:db8::1"


def test_rtpmap_overrides_the_static_table_and_dynamic_types_need_one() -> None:
    (audio,) = SessionDescription.parse(
        sdp_text(
            *HEAD, "m=audio 5000 RTP/AVP 0 97 98", "a=rtpmap:0 PCMA/8000", "a=rtpmap:98 L16/16000/2"
        )
    ).media
    assert audio.rtpmaps() == {0: RtpMap("PCMA", 8000), 98: RtpMap("L16", 16000, 2)}


def test_rtpmap_for_a_type_not_in_the_m_line_is_ignored() -> None:
    (audio,) = SessionDescription.parse(
        sdp_text(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtpmap:97 iLBC/8000")
    ).media
    assert audio.rtpmaps() == {0: RtpMap("PCMU", 8000)}


def test_non_rtp_media_has_free_formats_and_no_rtpmaps() -> None:
    sdp = SessionDescription.parse(
        sdp_text(*HEAD, "m=image 5004 udptl t38", "m=message 7394 TCP/MSRP *")
    )
    image, message = sdp.media
    assert image.formats == ["t38"] and not image.is_rtp
    assert image.rtpmaps() == {}
    assert message.formats == ["*"]


def test_rejected_stream_without_formats_is_tolerated() -> None:
    sdp = SessionDescription.parse(sdp_text(*HEAD, "m=video 0 RTP/AVP"))
    assert sdp.media[0].formats == []
    assert str(sdp) == sdp_text(*HEAD, "m=video 0 RTP/AVP")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("20", 20), ("30", 30), ("20.0", 20), (" 40 ", 40), ("0", None), ("-20", None), ("x", None)],
)
def test_ptime_is_a_hint_and_nonsense_counts_as_absent(value: str, expected: int | None) -> None:
    (audio,) = SessionDescription.parse(
        sdp_text(*HEAD, "m=audio 5000 RTP/AVP 0", f"a=ptime:{value.strip()}", f"a=maxptime:{value}")
    ).media
    assert audio.ptime_ms == expected
    assert audio.maxptime_ms == expected


def test_media_direction_wins_over_the_session_one() -> None:
    sdp = SessionDescription.parse(
        sdp_text(
            *HEAD, "a=sendonly", "m=audio 5000 RTP/AVP 0", "a=inactive", "m=audio 5002 RTP/AVP 0"
        )
    )
    assert sdp.media[0].direction(sdp) is Direction.INACTIVE
    assert sdp.media[1].direction(sdp) is Direction.SENDONLY


def test_attribute_with_empty_value_differs_from_one_without() -> None:
    sdp = SessionDescription.parse(sdp_text(*HEAD, "a=label:", "a=label"))
    assert sdp.attributes == [("label", ""), ("label", None)]
    assert str(sdp) == sdp_text(*HEAD, "a=label:", "a=label")


@pytest.mark.parametrize(
    ("direction", "reversed_direction", "sends", "receives"),
    [
        (Direction.SENDRECV, Direction.SENDRECV, True, True),
        (Direction.SENDONLY, Direction.RECVONLY, True, False),
        (Direction.RECVONLY, Direction.SENDONLY, False, True),
        (Direction.INACTIVE, Direction.INACTIVE, False, False),
    ],
)
def test_direction_table(
    direction: Direction, reversed_direction: Direction, sends: bool, receives: bool
) -> None:
    assert direction.reversed() is reversed_direction
    assert (direction.sends, direction.receives) == (sends, receives)
    assert Direction.from_flags(sends, receives) is direction


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "SDP is empty"),
        ("\r\n\r\n", "SDP is empty"),
        (sdp_text("v=0", "v=0"), "duplicate v= line"),
        (sdp_text(*HEAD, "s=again"), "duplicate s= line"),
        (sdp_text(*HEAD, "c=IN IP4 192.0.2.2"), "duplicate c= line at session level"),
        (
            sdp_text(*HEAD, "m=audio 5000 RTP/AVP 0", "c=IN IP4 192.0.2.2", "c=IN IP4 192.0.2.3"),
            "duplicate c= line in a media description",
        ),
        (
            sdp_text("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "r=1 2 3"),
            "r= line before any t= line",
        ),
        (sdp_text(*HEAD, "a=rtpmap:0 PCMU/8000", "x"), "invalid SDP line: 'x'"),
        (sdp_text(*HEAD, "A=sendrecv"), "invalid SDP line: 'A=sendrecv'"),
        (
            sdp_text(*HEAD, "m=audio 5000 RTP/AVP PCMU"),
            "invalid RTP payload type in m= line: 'PCMU'",
        ),
        (
            sdp_text(*HEAD, "m=audio 5000 RTP/AVPF 0128"),
            "invalid RTP payload type in m= line: '0128'",
        ),
        (sdp_text(*HEAD, "m=audio -1 RTP/AVP 0"), "invalid port in m= line: '-1'"),
        (sdp_text(*HEAD, "m=audio 65536 RTP/AVP 0"), "invalid port in m= line: '65536'"),
        (
            sdp_text(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU/0"),
            "invalid rtpmap: '0 PCMU/0'",
        ),
        (
            sdp_text(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000/0"),
            "invalid rtpmap: '0 PCMU/8000/0'",
        ),
        (sdp_text(*HEAD, "m=image 5000 udptl t38", "a=rtcp:x"), "invalid rtcp attribute: 'x'"),
        (
            sdp_text(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtcp:70000"),
            "invalid rtcp attribute: '70000'",
        ),
        (
            sdp_text(*HEAD, "m=audio 5000 RTP/AVP 0", "o=- 1 1 IN IP4 x"),
            "o= line inside a media description",
        ),
        (
            sdp_text("v=0", "o=- x 1 IN IP4 192.0.2.1", "s=-", "t=0 0"),
            "invalid o= line: '- x 1 IN IP4 192.0.2.1'",
        ),
        (sdp_text("v=0", "o=- 1 1 IN IP4 192.0.2.1", "t=0 0"), "missing s= line"),
        (
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=\x00\r\nt=0 0\r\n",
            "control character in SDP line: 's=\\x00'",
        ),
    ],
)
def test_malformed_sdp_raises_its_own_error(text: str, message: str) -> None:
    with pytest.raises(SdpParseError) as caught:
        SessionDescription.parse(text)
    assert str(caught.value) == message
    assert caught.value.status_hint == 400


HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            sdp_text("v=0", f"o=- {HUGE} 1 IN IP4 192.0.2.1", "s=-", "t=0 0"),
            f"invalid o= line: '- {HUGE[:58]}'",
        ),
        (sdp_text(*HEAD, f"b=AS:{HUGE}"), f"invalid b= line: 'AS:{HUGE[:57]}'"),
        (sdp_text(*HEAD, f"t=0 {HUGE}"), f"invalid t= line: '0 {HUGE[:58]}'"),
        (
            sdp_text(*HEAD, f"m=audio 5000 RTP/AVP {HUGE}"),
            f"invalid RTP payload type in m= line: '{HUGE[:60]}'",
        ),
    ],
)
def test_huge_numbers_are_refused_not_crashed_on(text: str, message: str) -> None:
    """Python refuses int() on over 4300 digits; such numbers must end as SdpParseError."""
    with pytest.raises(SdpParseError) as caught:
        SessionDescription.parse(text)
    assert str(caught.value) == message


def test_parse_rtpmap_reads_channels() -> None:
    assert parse_rtpmap("96 opus/48000/2") == (96, RtpMap("opus", 48000, 2))
    assert str(RtpMap("opus", 48000, 2)) == "opus/48000/2"
    assert str(RtpMap("PCMU", 8000)) == "PCMU/8000"


# -- properties -------------------------------------------------------------------------------


def _views_work(sdp: SessionDescription) -> None:
    """Every view of a parsed body answers without raising: parse() checked what they read."""
    for media in sdp.media:
        media.rtpmaps()
        media.direction(sdp)
        media.connection_address(sdp)
        _ = (media.ptime_ms, media.maxptime_ms, media.rtcp_port)
        for fmt in media.formats:
            if fmt.isdigit():
                media.fmtp(int(fmt))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_parses_or_raises_sdp_parse_error(text: str) -> None:
    try:
        _views_work(SessionDescription.parse(text))
    except SdpParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_any_bytes_parse_or_raise_sdp_parse_error(data: bytes) -> None:
    try:
        _views_work(SessionDescription.parse(data))
    except SdpParseError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID),
    st.integers(min_value=0, max_value=2_000),
    st.integers(min_value=0, max_value=40),
    st.binary(max_size=12) | st.sampled_from([b"", b"\r\n", b"=", b" ", b"/", b":", b"\n\n"]),
)
def test_damaged_fixtures_parse_or_raise_sdp_parse_error(
    name: str, start: int, length: int, replacement: bytes
) -> None:
    data = load(name)
    start %= len(data) + 1
    damaged = data[:start] + replacement + data[start + length :]
    try:
        sdp = SessionDescription.parse(damaged)
    except SdpParseError:
        return
    _views_work(sdp)
    assert SessionDescription.parse(bytes(sdp)) == sdp


_TOKENS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,7}", fullmatch=True)
_FREE_TEXT = st.text(
    alphabet=st.characters(exclude_characters="\r\n\x00", exclude_categories=("Cs",)),
    max_size=20,
).filter(lambda text: text == text.rstrip(" \t"))
_SESSION_RANK = "iuepzkxy"
_MEDIA_RANK = "ikuxy"


def _canonical(lines: list[tuple[str, str]], order: str) -> list[tuple[str, str]]:
    """Other lines as the printer orders them, so that a round trip can compare equal."""
    return sorted(lines, key=lambda line: order.index(line[0]))


def _other_lines(kinds: str, order: str) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(st.tuples(st.sampled_from(kinds), _FREE_TEXT), max_size=3).map(
        lambda lines: _canonical(lines, order)
    )


_ATTRIBUTES = st.lists(
    st.tuples(
        _TOKENS.filter(lambda name: name.lower() not in ("rtpmap", "rtcp")),
        st.none() | _FREE_TEXT,
    ),
    max_size=4,
)
_CONNECTIONS = st.none() | st.builds(
    Connection, st.just("IN"), st.sampled_from(["IP4", "IP6"]), _TOKENS
)
_BANDWIDTHS = st.lists(st.builds(Bandwidth, _TOKENS, st.integers(0, 10**9)), max_size=2)


@st.composite
def _media(draw: st.DrawFn) -> MediaDescription:
    proto = draw(st.sampled_from(["RTP/AVP", "RTP/AVPF", "RTP/SAVP", "udptl", "TCP/MSRP"]))
    if "RTP/" in proto:
        payload_types = draw(st.lists(st.integers(0, 127), min_size=1, max_size=5))
        formats = [str(pt) for pt in payload_types]
        rtpmaps = [
            ("rtpmap", f"{pt} {draw(_TOKENS)}/{draw(st.integers(1, 96000))}")
            for pt in payload_types
            if draw(st.booleans())
        ]
    else:
        formats, rtpmaps = draw(st.lists(_TOKENS, min_size=1, max_size=3)), []
    rtcp = [("rtcp", str(draw(st.integers(0, 65535))))] if draw(st.booleans()) else []
    return MediaDescription(
        media=draw(st.sampled_from(["audio", "video", "image", "application"])),
        port=draw(st.integers(0, 65535)),
        port_count=draw(st.none() | st.integers(1, 65535)),
        proto=proto,
        formats=formats,
        connection=draw(_CONNECTIONS),
        bandwidths=draw(_BANDWIDTHS),
        attributes=rtpmaps + rtcp + draw(_ATTRIBUTES),
        other_lines=draw(_other_lines(_MEDIA_RANK, _MEDIA_RANK)),
    )


_SESSIONS = st.builds(
    SessionDescription,
    origin=st.builds(
        Origin,
        _TOKENS,
        st.integers(0, 2**64),
        st.integers(0, 2**64),
        st.just("IN"),
        st.sampled_from(["IP4", "IP6"]),
        _TOKENS,
    ),
    session_name=_FREE_TEXT,
    connection=_CONNECTIONS,
    bandwidths=_BANDWIDTHS,
    timing=st.lists(
        st.builds(
            Timing,
            st.integers(0, 2**40),
            st.integers(0, 2**40),
            st.lists(_TOKENS, max_size=2).map(tuple),
        ),
        min_size=1,
        max_size=2,
    ),
    attributes=_ATTRIBUTES,
    media=st.lists(_media(), max_size=3),
    other_lines=_other_lines(_SESSION_RANK, _SESSION_RANK),
)


@settings(max_examples=200, deadline=None)
@given(_SESSIONS)
def test_generated_session_descriptions_round_trip(sdp: SessionDescription) -> None:
    data = bytes(sdp)
    assert SessionDescription.parse(data) == sdp
    assert bytes(SessionDescription.parse(data)) == data
