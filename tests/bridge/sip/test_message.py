"""Headers, header views (Via, NameAddress, CSeq) and response_to follow RFC 3261 §7, §20."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sip.errors import LocalProtocolError, SipParseError
from bridge.sip.message import (
    CSeq,
    Headers,
    NameAddress,
    Request,
    Response,
    Via,
    canonical_name,
    make_request,
    response_to,
    split_header_list,
)
from bridge.sip.parser import parse_message
from tests.conftest import load_fixture


def invite(
    to: str = "<sip:1000@bridge.example>", extra: tuple[tuple[str, str], ...] = ()
) -> Request:
    return make_request(
        "INVITE",
        "sip:1000@bridge.example",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK-b;received=192.0.2.99"),
            ("Via", "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-a"),
            ("From", '"Alice" <sip:alice@example.com>;tag=a1'),
            ("To", to),
            ("Call-ID", "c1@192.0.2.7"),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:alice@192.0.2.7>"),
            ("Max-Forwards", "70"),
            *extra,
        ],
        b"v=0\r\n",
    )


# ---- Headers ---------------------------------------------------------------------------


def test_canonical_names() -> None:
    assert canonical_name("i") == "Call-ID"
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("MaX-fOrWaRdS") == "Max-Forwards"
    assert canonical_name("x-asterisk-hangupcause") == "X-Asterisk-Hangupcause"
    assert canonical_name("L") == "Content-Length"


def test_headers_compare_names_case_insensitively_and_keep_order() -> None:
    headers = Headers([("via", "a"), ("v", "b"), ("Subject", "")])
    assert headers.get_all("VIA") == ["a", "b"]
    assert headers.get("subject") == "" and "s" in headers
    assert "Contact" not in headers and 3 not in headers
    headers.add("m", "<sip:x@y>")
    headers.set("Via", "c")
    assert list(headers) == [("Via", "c"), ("Subject", ""), ("Contact", "<sip:x@y>")]
    headers.remove("subject")
    assert len(headers) == 2
    copy = headers.copy()
    copy.add("Via", "d")
    assert copy != headers and headers.get_all("Via") == ["c"]


def test_get_list_splits_every_line() -> None:
    headers = Headers([("Allow", "INVITE, ACK"), ("Allow", "BYE,CANCEL ,, OPTIONS")])
    assert headers.get_list("Allow") == ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"]


def test_split_header_list_ignores_commas_in_quotes_and_angle_brackets() -> None:
    value = '"Doe, John" <sip:j@x;a=1,2>;q=0.5, "Say \\"a,b\\"" <sip:k@y>, sip:l@z'
    assert split_header_list(value) == [
        '"Doe, John" <sip:j@x;a=1,2>;q=0.5',
        '"Say \\"a,b\\"" <sip:k@y>',
        "sip:l@z",
    ]


# ---- Via -------------------------------------------------------------------------------


def test_via_with_port_and_params() -> None:
    via = Via.parse("SIP/2.0/UDP 127.0.0.1:5111;branch=z9hG4bK61d3;rport")
    assert via == Via("UDP", "127.0.0.1", 5111, (("branch", "z9hG4bK61d3"), ("rport", None)))
    assert via.branch == "z9hG4bK61d3" and via.param("rport") == ""
    assert str(via) == "SIP/2.0/UDP 127.0.0.1:5111;branch=z9hG4bK61d3;rport"


def test_via_with_lws_everywhere_the_grammar_allows() -> None:
    # RFC 4475 §3.1.1.1 after unfolding; SLASH, COLON, SEMI and EQUAL all allow LWS.
    via = Via.parse("SIP  /   2.0 /UDP   192.0.2.2 : 5060 ;  branch  =  z9hG4bK9  ;rport")
    assert via == Via("UDP", "192.0.2.2", 5060, (("branch", "z9hG4bK9"), ("rport", None)))
    assert Via.parse("sip/2.0/tcp host").transport == "TCP"


def test_via_ipv6_sent_by_and_received() -> None:
    via = Via.parse("SIP/2.0/TCP [2001:DB8::1]:5070;received=2001:db8::2;branch=z9hG4bKx")
    assert (via.host, via.port, via.param("received")) == ("[2001:db8::1]", 5070, "2001:db8::2")
    assert Via.parse("SIP/2.0/UDP [::1];rport=5060").param("rport") == "5060"


def test_via_with_param_replaces_in_place_or_appends() -> None:
    via = Via.parse("SIP/2.0/UDP h;rport;branch=z9hG4bKq")
    assert str(via.with_param("rport", "5062")) == "SIP/2.0/UDP h;rport=5062;branch=z9hG4bKq"
    assert str(via.with_param("received", "192.0.2.1")).endswith(";received=192.0.2.1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("SIP/3.0/UDP host", "invalid Via protocol: 'SIP/3.0/UDP host'"),
        ("HTTP/2.0/UDP host", "invalid Via protocol: 'HTTP/2.0/UDP host'"),
        ("SIP/2.0/UDP", "invalid Via protocol: 'SIP/2.0/UDP'"),
        ("SIP/2.0 host", "invalid Via protocol: 'SIP/2.0 host'"),
        ("SIP/2.0/UDPhost", "invalid Via protocol: 'SIP/2.0/UDPhost'"),
        ("SIP/2.0/UDP host port", "invalid host and port: 'host port'"),
        ("SIP/2.0/UDP host:70000", "port out of range: 70000"),
        ("SIP/2.0/UDP 192.0.2.15;;", "empty parameter in ';'"),
        ("SIP/2.0/UDP [fe80::1%eth0]", "invalid host and port: '[fe80::1%eth0]'"),
        (";", "invalid Via protocol: ';'"),
    ],
)
def test_invalid_via(value: str, message: str) -> None:
    with pytest.raises(SipParseError) as caught:
        Via.parse(value)
    assert str(caught.value) == message


# ---- NameAddress -------------------------------------------------------------------------


def test_name_addr_with_quoted_display_name_holding_angle_and_comma() -> None:
    address = NameAddress.parse('"Rapat <Koordinasi>, Jakarta" <sip:1000@bridge.example>;tag=x')
    assert address.display_name == "Rapat <Koordinasi>, Jakarta"
    assert (address.uri, address.tag) == ("sip:1000@bridge.example", "x")


def test_quoted_pairs_are_unescaped() -> None:
    address = NameAddress.parse(r'"J Rosenberg \\\"" <sip:jdrosen@example.com>')
    assert address.display_name == 'J Rosenberg \\"'
    assert NameAddress.parse(r'"\a\b" <sip:x@y>').display_name == "ab"
    assert str(address) == r'"J Rosenberg \\\"" <sip:jdrosen@example.com>'


def test_utf8_display_names_quoted_or_not() -> None:
    assert NameAddress.parse('"Dinas Kesehatan – Ruang 2" <sip:d@x>').display_name == (
        "Dinas Kesehatan – Ruang 2"
    )
    assert NameAddress.parse("Übermensch Zoë <sip:z@x>").display_name == "Übermensch Zoë"
    assert NameAddress.parse("   <sip:z@x>").display_name is None


def test_addr_spec_parameters_belong_to_the_header() -> None:
    # RFC 3261 §20.10: without <>, ";tag" is a header parameter, not a URI parameter.
    address = NameAddress.parse("sip:j.user@example.com;tag=43251j3j324;expires=5")
    assert address.uri == "sip:j.user@example.com"
    assert address.params == (("tag", "43251j3j324"), ("expires", "5"))
    assert address.sip_uri.params == ()


def test_name_addr_uri_parameters_stay_in_the_uri() -> None:
    address = NameAddress.parse("<sip:alice@192.0.2.7;transport=tcp>;expires=60")
    assert address.sip_uri.transport == "tcp" and address.params == (("expires", "60"),)


def test_quoted_header_parameter_may_hold_angle_brackets() -> None:
    value = '<sip:alice@127.0.0.1:5151>;+sip.instance="<urn:uuid:CD6E79CA>"'
    assert NameAddress.parse(value).params == (("+sip.instance", '"<urn:uuid:CD6E79CA>"'),)
    addr_spec = 'sip:alice@127.0.0.1;+sip.instance="<urn:uuid:CD6E79CA>"'
    assert NameAddress.parse(addr_spec).uri == "sip:alice@127.0.0.1"


def test_ipv6_and_non_sip_uris_in_addresses() -> None:
    assert NameAddress.parse("<sip:bob@[2001:db8::9:1]:5070>").sip_uri.port == 5070
    tel = NameAddress.parse("<tel:+62215550100>;tag=t")
    assert tel.sip_uri.user == "+62215550100"
    mailto = NameAddress.parse("<mailto:a@b>")
    with pytest.raises(SipParseError):
        mailto.sip_uri  # noqa: B018 - the view refuses a scheme it does not know


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"Mr. J. User <sip:j@x>', "unterminated quoted string: '\"Mr. J. User <sip:j@x>'"),
        ("Bell, Alexander <sip:a.g.bell@example.com>", "invalid display name: 'Bell, Alexander'"),
        ('"Joe" sip:joe@x', "expected '<' after display name: '\"Joe\" sip:joe@x'"),
        ('Joe "Q" <sip:joe@x>', "unexpected quote in address: 'Joe \"Q\" <sip:joe@x>'"),
        ("<sip:joe@example.org", "unclosed '<' in address: '<sip:joe@example.org'"),
        ("<sip:joe@example.org> x", "unexpected text after address: 'x'"),
        ("<>", "empty URI in address: '<>'"),
        ("", "empty URI in address: ''"),
        ("< sip:a b@c >", "invalid URI in address: '< sip:a b@c >'"),
        ("joe", "invalid URI in address: 'joe'"),
        ('"Joe" <sip:joe@example.org>;;;;', "empty parameter in ';;;'"),
    ],
)
def test_invalid_addresses(value: str, message: str) -> None:
    with pytest.raises(SipParseError) as caught:
        NameAddress.parse(value)
    assert str(caught.value) == message


def test_whitespace_inside_angle_brackets_is_tolerated() -> None:
    # RFC 4475 §3.1.2.14 lets an element be liberal here; nothing is ambiguous.
    assert NameAddress.parse("< sip:t.watson@example.org >").uri == "sip:t.watson@example.org"


def test_with_tag_replaces_an_existing_tag() -> None:
    address = NameAddress.parse("<sip:a@b>;tag=1;x")
    assert address.with_tag("2").params == (("x", None), ("tag", "2"))


def test_printing_escapes_quotes_controls_and_drops_line_breaks() -> None:
    address = NameAddress("sip:a@b", 'say "hi"\\\x00\r\nnow')
    assert str(address) == '"say \\"hi\\"\\\\\\\x00  now" <sip:a@b>'
    assert NameAddress.parse(str(address)).display_name == 'say "hi"\\\x00  now'


_DISPLAY = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                   min_size=1, max_size=20)
_PARAM = st.tuples(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=6),
    st.one_of(st.none(), st.text("abcXYZ0123456789-.", max_size=6)),
)


@settings(max_examples=200, deadline=None)
@given(
    display=st.one_of(st.none(), _DISPLAY),
    user=st.text("abc019-_.!~*'()&=+$,;?/", min_size=1, max_size=8),
    host=st.sampled_from(["example.com", "[2001:db8::1]:5070", "192.0.2.1"]),
    params=st.lists(_PARAM, max_size=3),
)
def test_generated_addresses_round_trip(
    display: str | None, user: str, host: str, params: list[tuple[str, str | None]]
) -> None:
    address = NameAddress(f"sip:{user}@{host}", display, tuple(params))
    assert NameAddress.parse(str(address)) == address


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_as_an_address_parses_or_raises_sip_parse_error(text: str) -> None:
    try:
        NameAddress.parse(text)
    except SipParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_as_a_via_parses_or_raises_sip_parse_error(text: str) -> None:
    try:
        via = Via.parse(text)
    except SipParseError:
        return
    assert Via.parse(str(via)) == via


# ---- CSeq ---------------------------------------------------------------------------------


def test_cseq_forms() -> None:
    assert CSeq.parse("0009 \t INVITE") == CSeq(9, "INVITE")
    assert CSeq.parse(" 2147483647 RE%47IST%45R ") == CSeq(2**31 - 1, "RE%47IST%45R")
    assert str(CSeq(4, "BYE")) == "4 BYE"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2147483648 INVITE", "CSeq number out of range: 2147483648"),
        ("36893488147419103232 REGISTER", "invalid CSeq: '36893488147419103232 REGISTER'"),
        ("² INVITE", "invalid CSeq: '² INVITE'"),
        ("-1 INVITE", "invalid CSeq: '-1 INVITE'"),
        ("1", "invalid CSeq: '1'"),
        ("1 INVITE BYE", "invalid CSeq: '1 INVITE BYE'"),
        ("1 IN<VITE", "invalid CSeq method: 'IN<VITE'"),
    ],
)
def test_invalid_cseq(value: str, message: str) -> None:
    with pytest.raises(SipParseError) as caught:
        CSeq.parse(value)
    assert str(caught.value) == message


# ---- Message views and printing -------------------------------------------------------------


def test_message_views() -> None:
    request = invite(extra=(("Content-Type", "Application/SDP ; charset=utf-8"),))
    assert request.call_id == "c1@192.0.2.7"
    assert request.cseq == CSeq(1, "INVITE")
    assert [v.branch for v in request.vias] == ["z9hG4bK-b", "z9hG4bK-a"]
    assert request.top_via.host == "192.0.2.9"
    assert request.from_address.display_name == "Alice"
    assert request.contacts[0].sip_uri.host == "192.0.2.7"
    assert request.content_type == "application/sdp"
    assert Request().content_type == ""


def test_missing_header_views_raise() -> None:
    with pytest.raises(SipParseError) as caught:
        Request().call_id  # noqa: B018
    assert str(caught.value) == "missing Call-ID header"
    with pytest.raises(SipParseError) as caught:
        Request().top_via  # noqa: B018
    assert str(caught.value) == "missing Via header"


def test_bytes_sets_content_length_from_the_body() -> None:
    request = invite(extra=(("Content-Length", "999"),))
    data = bytes(request)
    assert b"\r\nContent-Length: 5\r\n\r\nv=0\r\n" in data
    assert data.startswith(b"INVITE sip:1000@bridge.example SIP/2.0\r\nVia: ")
    assert request.headers.get("Content-Length") == "999"  # printing does not mutate


def test_bytes_refuses_header_injection() -> None:
    request = invite(extra=(("Subject", "hi\r\nContact: <sip:evil@x>"),))
    with pytest.raises(LocalProtocolError):
        bytes(request)
    with pytest.raises(LocalProtocolError):
        bytes(Response(status=200, reason="OK\nX: y"))


# ---- response_to ----------------------------------------------------------------------------


def test_response_to_copies_the_headers_rfc_3261_names() -> None:
    request = invite()
    response = response_to(request, 180, to_tag="b7", headers=[("Contact", "<sip:1000@192.0.2.1>")])
    assert (response.status, response.reason) == (180, "Ringing")
    assert list(response.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bK-b;received=192.0.2.99"),
        ("Via", "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-a"),
        ("From", '"Alice" <sip:alice@example.com>;tag=a1'),
        ("To", "<sip:1000@bridge.example>;tag=b7"),
        ("Call-ID", "c1@192.0.2.7"),
        ("CSeq", "1 INVITE"),
        ("Contact", "<sip:1000@192.0.2.1>"),
    ]
    assert response.body == b""
    assert parse_message(bytes(response)) == Response(
        headers=Headers([*response.headers, ("Content-Length", "0")]), status=180, reason="Ringing"
    )


def test_response_to_adds_the_tag_once() -> None:
    request = invite()
    first = response_to(request, 200, to_tag="b7")
    assert first.to_address.tag == "b7"
    tagged = make_request("ACK", request.uri, [*request.headers], b"")
    tagged.headers.set("To", first.headers.get("To") or "")
    again = response_to(tagged, 200, to_tag="other")
    assert again.headers.get("To") == "<sip:1000@bridge.example>;tag=b7"
    flag = response_to(invite("<sip:1000@bridge.example>;tag"), 200, to_tag="b7")
    assert flag.headers.get("To") == "<sip:1000@bridge.example>;tag"


def test_response_to_keeps_the_to_text_and_handles_addr_spec_form() -> None:
    # The tag is appended to the To as received, so a peer comparing text still matches.
    quirky = invite('"Bridge \\"1\\"" <sip:1000@bridge.example> ;x=1 ;')
    assert response_to(quirky, 486, to_tag="t").headers.get("To") == (
        '"Bridge \\"1\\"" <sip:1000@bridge.example> ;x=1;tag=t'
    )
    addr_spec = invite("sip:1000@bridge.example")
    to = response_to(addr_spec, 200, to_tag="t").to_address
    assert (to.uri, to.tag) == ("sip:1000@bridge.example", "t")


def test_response_to_100_has_no_tag_and_copies_timestamp() -> None:
    request = invite(extra=(("Timestamp", "54.2"),))
    trying = response_to(request, 100, to_tag="b7")
    assert trying.headers.get("To") == "<sip:1000@bridge.example>"
    assert trying.headers.get("Timestamp") == "54.2"
    assert "Timestamp" not in response_to(request, 200, to_tag="b7").headers


def test_response_to_reason_defaults() -> None:
    request = invite()
    assert response_to(request, 487).reason == "Request Terminated"
    assert response_to(request, 299).reason == "Unknown"
    assert response_to(request, 200, "Answering").reason == "Answering"


def test_response_to_real_peer_requests_parses_back() -> None:
    for name in ("invite_pyvoip", "invite_sipp", "invite_baresip", "rfc4475_wsinv"):
        request = parse_message(load_fixture(f"sip/{name}.sip"))
        assert isinstance(request, Request)
        response = parse_message(bytes(response_to(request, 486, to_tag="z9")))
        assert isinstance(response, Response)
        assert response.to_address.tag == (request.to_address.tag or "z9")
        assert response.vias == request.vias
        assert response.cseq == request.cseq and response.call_id == request.call_id
