"""parse_message and StreamFramer accept real peers' messages and RFC 4475 torture tests."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sip.errors import SipParseError
from bridge.sip.message import Headers, Request, Response, SipUri
from bridge.sip.parser import (
    MAX_MESSAGE_BYTES,
    PartialMessage,
    StreamFramer,
    parse_message,
)
from tests.conftest import FIXTURES, load_fixture

SIP_FIXTURES = sorted(path.stem for path in (FIXTURES / "sip").glob("*.sip"))
VALID = [name for name in SIP_FIXTURES if not name.endswith(("_invalid", "_truncated"))]
BROKEN = [name for name in SIP_FIXTURES if name.endswith(("_invalid", "_truncated"))]

# Fixtures that `bytes(parse_message(x))` does not reproduce byte for byte, and why.
NORMALISED = {
    "invite_baresip": "the empty `Supported:` is printed as `Supported: `",
    "invite_sipp": "SIPp pads `Content-Length:   129`",
    "options_200_baresip": "the empty `Supported:` is printed as `Supported: `",
    "rfc4475_dblreq": "the INVITE after the REGISTER's empty body is dropped (§18.3)",
    "rfc4475_esc01": "compact forms `i:` and `C:` are printed long, the Contact unfolded",
    "rfc4475_esc02": "`l:` is printed as Content-Length",
    "rfc4475_escnull": "`L:0` is printed as `Content-Length: 0`",
    "rfc4475_intmeth": "the extension header name is capitalised, `:` gains a space",
    "rfc4475_longreq": "compact and odd-case Via, From and l names are printed long",
    "rfc4475_lwsdisp": "`l:` is printed as Content-Length",
    "rfc4475_semiuri": "the folded Accept is joined, `l:` is printed long",
    "rfc4475_transports": "`l:` is printed long, the Call-ID loses its extra space",
    "rfc4475_wsinv": "every header is unfolded, renamed to its long form, respaced",
}

# name: (exact message, status_hint, whether the head parsed into PartialMessage.partial)
EXPECTED_ERRORS: dict[str, tuple[str, int, bool]] = {
    "ack_baresip_487_invalid": ("conflicting Content-Length headers", 400, True),
    "ack_baresip_invalid": (
        "unclosed '<' in address: '<sip:1000@127.0.0.1:5110;tag=srv80ec2fc1'",
        400,
        True,
    ),
    "ack_pyvoip_invalid": ("invalid CSeq: 'x ACK'", 400, True),
    "ack_sipp_invalid": ("missing CSeq header", 400, True),
    "bye_baresip_invalid": ("port out of range: 99999", 400, True),
    "bye_pyvoip_invalid": (
        "unterminated quoted string: '\"alice <sip:alice@127.0.0.1>;tag=9832d788'",
        400,
        True,
    ),
    "bye_pyvoip_uas_invalid": ("bare CR in message head", 400, False),
    "bye_sipp_invalid": ("missing Via header", 400, True),
    "cancel_baresip_invalid": ("invalid Call-ID: ''", 400, True),
    "cancel_sipp_invalid": ("unsupported SIP version: SIP/3.0", 505, True),
    "invite_180_baresip_invalid": ("response without CSeq header", 400, False),
    "invite_180_pyvoip_invalid": ("status code out of range: 99", 400, False),
    "invite_200_baresip_truncated": ("Content-Length 305 exceeds the 10 body bytes", 400, False),
    "invite_200_pyvoip_invalid": ("unsupported SIP version: SIP/2.1", 505, False),
    "invite_baresip_invalid": ("invalid Content-Length: '343x'", 400, True),
    "invite_baresip_truncated": ("Content-Length 343 exceeds the 200 body bytes", 400, True),
    "invite_pyvoip_truncated": ("Content-Length 222 exceeds the 221 body bytes", 400, True),
    "invite_sipp_truncated": ("Content-Length 129 exceeds the 60 body bytes", 400, True),
    "options_200_baresip_truncated": ("Content-Length 325 exceeds the 100 body bytes", 400, False),
    "options_baresip_invalid": ("invalid header line: 'Accept application/sdp'", 400, False),
    "options_sipp_invalid": ("missing Call-ID header", 400, True),
    "register_baresip_auth_truncated": (
        "message head is not terminated by an empty line",
        400,
        False,
    ),
    "register_baresip_invalid": ("empty parameter in ';expires=60'", 400, True),
    "register_pyvoip_auth_truncated": (
        "message head is not terminated by an empty line",
        400,
        False,
    ),
    "register_pyvoip_invalid": (
        "invalid parameter value: '\"<urn:uuid:CD6E79CA-435A-4236-8552-FFEEC'",
        400,
        True,
    ),
    "register_sipp_auth_truncated": ("message head is not terminated by an empty line", 400, False),
    "register_sipp_invalid": ("CSeq method does not match the request method", 400, True),
    "rfc4475_baddn_invalid": ("invalid display name: 'Bell, Alexander'", 400, True),
    "rfc4475_badinv01_invalid": ("empty parameter in ';'", 400, True),
    "rfc4475_badvers_invalid": ("unsupported SIP version: SIP/7.0", 505, True),
    "rfc4475_bigcode_invalid": (
        "invalid start line: 'SIP/2.0 4294967301 better not break the receiver'",
        400,
        False,
    ),
    "rfc4475_clerr_invalid": ("Content-Length 9999 exceeds the 154 body bytes", 400, True),
    "rfc4475_dblreq_invalid": ("Content-Length 1000 exceeds the 446 body bytes", 400, True),
    "rfc4475_esc01_invalid": (
        "unsupported URI scheme: 'sipx:sips%3Auser%40example.com@example.n'",
        416,
        True,
    ),
    "rfc4475_esc02_invalid": ("invalid method: 'RE<47IST%45R'", 400, False),
    "rfc4475_escnull_invalid": ("invalid host and port: 'host5.example.com:'", 400, True),
    "rfc4475_intmeth_invalid": ("message head is not UTF-8", 400, False),
    "rfc4475_longreq_invalid": ("invalid IPv6 reference: '[2001:db8:::1]'", 400, True),
    "rfc4475_ltgtruri_invalid": ("invalid URI: '<sip:user@example.com>'", 400, True),
    "rfc4475_lwsdisp_invalid": ("invalid display name: 'call@er'", 400, True),
    "rfc4475_lwsruri_invalid": (
        "invalid start line: 'INVITE sip:user@example.com; lr SIP/2.0'",
        400,
        False,
    ),
    "rfc4475_lwsstart_invalid": (
        "invalid start line: 'INVITE  sip:user@example.com  SIP/2.0'",
        400,
        False,
    ),
    "rfc4475_mismatch01_invalid": ("CSeq method does not match the request method", 400, True),
    "rfc4475_mismatch02_invalid": ("CSeq method does not match the request method", 400, True),
    "rfc4475_ncl_invalid": ("invalid Content-Length: '-999'", 400, True),
    "rfc4475_noreason_invalid": ("response without Via header", 400, False),
    "rfc4475_quotbal_invalid": (
        "unterminated quoted string: '\"Mr. J. User <sip:j.user@example.com>'",
        400,
        True,
    ),
    "rfc4475_scalar02_invalid": ("invalid CSeq: '36893488147419103232 REGISTER'", 400, True),
    "rfc4475_scalarlg_invalid": ("invalid CSeq: '9292394834772304023312 OPTIONS'", 400, False),
    "rfc4475_semiuri_invalid": ("message starts with a continuation line", 400, False),
    "rfc4475_transports_invalid": (
        "invalid Via protocol: 'SIP/3.0/UDP t1.example.com;branch=z9hG4bKkdjuw'",
        400,
        True,
    ),
    "rfc4475_trws_invalid": (
        "invalid start line: 'OPTIONS sip:remote-target@example.com SIP/2.0  '",
        400,
        False,
    ),
    "rfc4475_unkscm_invalid": (
        "unsupported URI scheme: 'nobodyKnowsThisScheme:totallyopaqueconte'",
        416,
        True,
    ),
    "rfc4475_unreason_truncated": ("Content-Length 154 exceeds the 153 body bytes", 400, False),
    "rfc4475_wsinv_truncated": ("Content-Length 150 exceeds the 149 body bytes", 400, True),
}


def sip(name: str) -> bytes:
    return load_fixture(f"sip/{name}.sip")


def parse(name: str) -> Request | Response:
    return parse_message(sip(name))


def request(name: str) -> Request:
    message = parse(name)
    assert isinstance(message, Request)
    return message


def response(name: str) -> Response:
    message = parse(name)
    assert isinstance(message, Response)
    return message


def minimal(method: str = "OPTIONS", extra: str = "", body: bytes = b"") -> bytes:
    """A small valid request to vary one thing at a time."""
    head = (
        f"{method} sip:1000@bridge.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK-1\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:1000@bridge.example>\r\n"
        "Call-ID: c1@192.0.2.7\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# ---- the fixture corpus --------------------------------------------------------------


def test_fixture_corpus_has_a_broken_sibling_for_every_valid_fixture() -> None:
    assert len(VALID) >= 38
    for name in VALID:
        assert any(b.startswith(name + "_") and b[len(name) + 1 :] in ("invalid", "truncated")
                   for b in BROKEN), name
    assert sorted(EXPECTED_ERRORS) == BROKEN
    assert set(NORMALISED) <= set(VALID)


def test_fixtures_keep_crlf_line_ends() -> None:
    for name in VALID:
        head = sip(name).partition(b"\r\n\r\n")[0]
        assert b"\r\n" in head and b"\n" not in head.replace(b"\r\n", b""), name


@pytest.mark.parametrize("name", VALID)
def test_valid_fixture_round_trips_after_one_normalisation(name: str) -> None:
    first = parse(name)
    second = parse_message(bytes(first))
    assert parse_message(bytes(second)) == second
    assert bytes(second) == bytes(first)
    assert second.body == first.body

    def without_length(message: Request | Response) -> list[tuple[str, str]]:
        return [(n, v) for n, v in message.headers if n != "Content-Length"]

    assert without_length(second) == without_length(first)


@pytest.mark.parametrize("name", VALID)
def test_valid_fixture_prints_back_exactly_unless_normalised(name: str) -> None:
    data = sip(name)
    if name in NORMALISED:
        assert bytes(parse_message(data)) != data
    else:
        assert bytes(parse_message(data)) == data


@pytest.mark.parametrize("name", VALID)
def test_valid_fixture_views_all_parse(name: str) -> None:
    message = parse(name)
    assert message.call_id
    assert message.vias and message.top_via == message.vias[0]
    assert message.from_address.sip_uri.host
    assert message.to_address.sip_uri.host
    if isinstance(message, Request):
        assert message.cseq.method == message.method
        SipUri.parse(message.uri)


@pytest.mark.parametrize("name", BROKEN)
def test_broken_fixture_raises_its_own_error(name: str) -> None:
    text, status_hint, has_partial = EXPECTED_ERRORS[name]
    with pytest.raises(SipParseError) as caught:
        parse_message(sip(name))
    assert str(caught.value) == text
    assert caught.value.status_hint == status_hint
    assert isinstance(caught.value, PartialMessage) is has_partial
    if isinstance(caught.value, PartialMessage):
        partial = caught.value.partial
        assert isinstance(partial, Request)
        assert partial.uri and partial.headers.get("From") is not None


# ---- what real peers send ---------------------------------------------------------------


def test_invite_baresip_carries_an_sdp_offer_and_an_empty_supported() -> None:
    invite = request("invite_baresip")
    assert invite.method == "INVITE"
    assert invite.content_type == "application/sdp"
    assert len(invite.body) == 343 and invite.body.startswith(b"v=0\r\n")
    assert invite.headers.get("Supported") == ""
    assert "Supported" in invite.headers and invite.headers.get_list("Supported") == []
    assert invite.top_via.param("rport") == ""  # RFC 3581 flag without a value
    assert invite.top_via.branch == "z9hG4bK61d36dba5b79d036"
    assert invite.cseq.number == 6907
    assert invite.contacts[0].sip_uri.user == "alice-0x558dbe660cc0"


def test_invite_sipp_pads_content_length_and_uses_addr_spec_contact() -> None:
    invite = request("invite_sipp")
    assert invite.headers.get("Content-Length") == "129"
    assert len(invite.body) == 129
    contact = invite.contacts[0]
    assert contact.display_name is None and contact.uri == "sip:sipp@127.0.0.1:5071"
    assert invite.to_address.display_name == "1000"  # unquoted token display name


def test_pyvoip_bye_reuses_the_invite_branch() -> None:
    # pyVoIP 1.6.8 quirk: its BYE is not a new transaction as far as Via is concerned.
    assert request("bye_pyvoip").top_via.branch == request("invite_pyvoip").top_via.branch


def test_pyvoip_ack_carries_its_own_to_tag() -> None:
    # PEERS.md: the ACK's To-tag is fresh, not the 200's (srv41126b6c in the BYE).
    assert request("ack_pyvoip").to_address.tag == "6ca3d6c5"
    assert request("bye_pyvoip").to_address.tag == "srv41126b6c"


def test_pyvoip_register_contact_has_a_quoted_instance_id() -> None:
    contact = request("register_pyvoip").contacts[0]
    assert contact.sip_uri.param("transport") == "UDP"
    instance = '"<urn:uuid:CD6E79CA-435A-4236-8552-FFEECEDEFC12>"'
    assert contact.params == (("+sip.instance", instance),)


def test_register_with_authorization_from_each_peer() -> None:
    for name in ("register_sipp_auth", "register_baresip_auth", "register_pyvoip_auth"):
        register = request(name)
        assert register.method == "REGISTER"
        authorization = register.headers.get("Authorization")
        assert authorization is not None and authorization.startswith("Digest username=")
        assert 'realm="telerapat.local"' in authorization
    for name in ("register_sipp", "register_baresip", "register_pyvoip"):
        assert "Authorization" not in request(name).headers


def test_baresip_cancel_and_ack_of_487_share_the_invite_branch() -> None:
    # RFC 3261 §9.1 (CANCEL) and §17.1.1.3 (ACK for a non-2xx) both reuse it.
    cancel, ack = request("cancel_baresip"), request("ack_baresip_487")
    assert cancel.top_via.branch == ack.top_via.branch == "z9hG4bKe752922be67ce32c"
    assert cancel.cseq.number == ack.cseq.number == 61459


def test_baresip_responses_carry_received_and_rport() -> None:
    ok = response("options_200_baresip")
    assert (ok.status, ok.reason) == (200, "OK")
    assert ok.top_via.param("received") == "127.0.0.1" and ok.top_via.param("rport") == "5130"
    ringing = response("invite_180_baresip")
    answer = response("invite_200_baresip")
    assert (ringing.status, answer.status, answer.reason) == (180, 200, "Answering")
    assert ringing.to_address.tag == answer.to_address.tag == "c0328a61db28f882"


# ---- RFC 4475 valid messages, checked field by field -------------------------------------


def test_rfc4475_wsinv_short_tortuous_invite() -> None:
    invite = request("rfc4475_wsinv")
    assert invite.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert invite.to_address.uri == "sip:vivekg@chair-dnrc.example.com"
    assert invite.to_address.tag == "1918181833n"
    assert invite.from_address.display_name == 'J Rosenberg \\"'
    assert invite.from_address.tag == "98asjd8"
    assert invite.headers.get("Max-Forwards") == "0068"
    assert (invite.cseq.number, invite.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in invite.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert invite.headers.get("Subject") == ""
    assert invite.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert invite.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = invite.headers.get("Route")
    assert route == "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    contact = invite.contacts[0]
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert len(invite.body) == 150


def test_rfc4475_intmeth_wide_range_of_valid_characters() -> None:
    message = request("rfc4475_intmeth")
    assert message.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = SipUri.parse(message.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert message.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert message.to_address.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert message.to_address.sip_uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    sender = message.from_address
    assert sender.display_name == "token1~` token2'+_ token3*%!.-"
    assert sender.params == (("fromparam''~+*_!.-%", '"работающий"'), ("tag", "_token~1'+`*%!-."))
    assert message.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_rfc4475_esc01_and_escnull_escapes_decode_for_matching() -> None:
    invite = request("rfc4475_esc01")
    assert SipUri.parse(invite.uri).user_unescaped == "sips:user@example.com"
    assert invite.to_address.sip_uri.user_unescaped == "user"
    assert invite.from_address.sip_uri.user_unescaped == "I have spaces"
    contact_uri = invite.contacts[0].sip_uri
    assert contact_uri.params == (("%6c%72", None), ("n%61me", "v%61lue%25%34%31"))
    register = request("rfc4475_escnull")
    assert [c.sip_uri.user_unescaped for c in register.contacts] == ["\x00", "\x00\x00"]


def test_rfc4475_esc02_percent_is_not_an_escape_in_tokens() -> None:
    message = request("rfc4475_esc02")
    assert message.method == "RE%47IST%45R" and message.cseq.method == "RE%47IST%45R"
    assert message.from_address.display_name == "%Z%45"
    assert [c.sip_uri.user for c in message.contacts] == ["alias1", "alias3"]
    assert message.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_rfc4475_lwsdisp_display_name_without_space_before_angle() -> None:
    assert request("rfc4475_lwsdisp").from_address.display_name == "caller"


def test_rfc4475_longreq_long_values_and_34_vias_in_odd_spellings() -> None:
    invite = request("rfc4475_longreq")
    assert len(invite.vias) == 34
    assert invite.top_via.host == "sip33.example.com"
    assert invite.vias[-1].param("received") == "192.0.2.5"
    to = invite.to_address
    assert to.display_name == "I have a user name of " + "extreme" * 10 + " proportion"
    assert to.sip_uri.port == 6000 and len(to.sip_uri.params) == 3
    assert invite.from_address.tag == "12" + "982" * 50 + "424"
    assert invite.call_id == "longreq.one" + "really" * 20 + "longcallid"


def test_rfc4475_dblreq_ignores_octets_after_the_body() -> None:
    register = request("rfc4475_dblreq")
    assert register.method == "REGISTER" and register.body == b""


def test_rfc4475_semiuri_user_part_with_parameters() -> None:
    options = request("rfc4475_semiuri")
    assert SipUri.parse(options.uri).user == "user;par=u%40example.net"
    assert SipUri.parse(options.uri).host == "example.com"
    assert options.headers.get_list("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_rfc4475_transports_unknown_transport_is_kept() -> None:
    options = request("rfc4475_transports")
    assert [v.transport for v in options.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_rfc4475_unreason_and_noreason_reason_phrases() -> None:
    unusual = response("rfc4475_unreason")
    assert unusual.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    empty = response("rfc4475_noreason")
    assert (empty.status, empty.reason) == (100, "")
    assert bytes(empty).startswith(b"SIP/2.0 100 \r\n")


# ---- leniency and limits, one property at a time -------------------------------------------


def test_crlf_before_start_line_is_ignored() -> None:
    assert parse_message(b"\r\n\r\n" + minimal()) == parse_message(minimal())


def test_lf_only_and_mixed_line_ends_are_accepted() -> None:
    crlf = minimal(body=b"v=0")
    assert parse_message(crlf.replace(b"\r\n", b"\n")) == parse_message(crlf)
    mixed = minimal().replace(b"Call-ID: c1@192.0.2.7\r\n", b"Call-ID: c1@192.0.2.7\n")
    assert parse_message(mixed) == parse_message(minimal())


def test_blank_line_in_the_body_does_not_end_the_head_twice() -> None:
    body = b"first\r\n\r\nsecond"
    assert parse_message(minimal(body=body)).body == body


def test_sip_version_is_case_insensitive() -> None:
    lower = minimal().replace(b" SIP/2.0\r\n", b" sip/2.0\r\n", 1)
    assert parse_message(lower) == parse_message(minimal())


def test_header_names_with_odd_case_and_space_before_colon() -> None:
    data = minimal(extra="mAx-FoRwArDs   :   70\r\nx-custom-thing\t: a\r\n")
    message = parse_message(data)
    assert message.headers.get("Max-Forwards") == "70"
    assert ("Max-Forwards", "70") in list(message.headers)
    assert message.headers.get("X-Custom-Thing") == "a"


def test_empty_header_value_is_kept() -> None:
    message = parse_message(minimal(extra="Subject:\r\nOrganization:   \r\n"))
    assert message.headers.get("Subject") == "" and message.headers.get("Organization") == ""


def test_via_in_one_line_equals_via_in_several_lines() -> None:
    second = b"SIP/2.0/TCP [2001:db8::1]:5070;branch=x"
    one = parse_message(minimal().replace(b"z9hG4bK-1\r\n", b"z9hG4bK-1, " + second + b"\r\n"))
    two = parse_message(minimal().replace(b"z9hG4bK-1\r\n", b"z9hG4bK-1\r\nv: " + second + b"\r\n"))
    assert one.vias == two.vias
    assert two.vias[1].host == "[2001:db8::1]" and two.vias[1].port == 5070
    assert len(one.headers.get_all("Via")) == 1 and len(two.headers.get_all("Via")) == 2


def test_compact_forms_are_expanded() -> None:
    data = (
        b"BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKq\r\nf: <sip:x@y>;tag=1\r\n"
        b"t: <sip:a@b>;tag=2\r\ni: call-1\r\nCSeq: 2 BYE\r\nm: <sip:x@h>\r\nl: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert [name for name, _ in message.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length",
    ]


def test_shorter_content_length_cuts_the_datagram_body() -> None:
    data = minimal(body=b"abc") + b"trailing noise"
    assert parse_message(data).body == b"abc"


def test_missing_content_length_takes_the_whole_datagram_but_not_on_a_stream() -> None:
    data = minimal().replace(b"Content-Length: 0\r\n", b"") + b"body"
    assert parse_message(data).body == b"body"
    with pytest.raises(PartialMessage) as caught:
        parse_message(data, stream=True)
    assert str(caught.value) == "Content-Length is required on a stream transport"


def test_repeated_equal_content_length_is_accepted() -> None:
    data = minimal(extra="Content-Length: 03\r\n", body=b"abc")
    assert parse_message(data).body == b"abc"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("²", "invalid Content-Length: '²'"),  # int() would take it: not an ASCII digit
        ("١٢", "invalid Content-Length: '١٢'"),
        ("1234567890", "invalid Content-Length: '1234567890'"),
        ("", "invalid Content-Length: ''"),
        ("+3", "invalid Content-Length: '+3'"),
    ],
)
def test_content_length_must_be_ascii_digits(value: str, text: str) -> None:
    data = minimal().replace(b"Content-Length: 0", f"Content-Length: {value}".encode())
    with pytest.raises(PartialMessage) as caught:
        parse_message(data)
    assert (str(caught.value), caught.value.status_hint) == (text, 400)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", "empty message"),
        (b"\r\n\r\n", "empty message"),
        (bytes(range(256)), "message head is not terminated by an empty line"),
        (b"\x80\x00\x12\x34" * 8 + b"\r\n\r\n", "message head is not UTF-8"),
        # a STUN binding request (RFC 5389 magic cookie) sent to the SIP port
        (
            b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12),
            "message head is not terminated by an empty line",
        ),
        (b"\x00\x01 \x02 SIP/2.0\r\n\r\n", "invalid method: '\\x00\\x01'"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "invalid start line: 'GET / HTTP/1.1'"),
        (b"\xff" * 40, "message head is not terminated by an empty line"),
    ],
)
def test_garbage_bytes_raise_without_partial(data: bytes, text: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert str(caught.value) == text
    assert caught.value.status_hint == 400
    assert not isinstance(caught.value, PartialMessage)


def test_100_kb_header_is_too_large() -> None:
    data = minimal(extra="X-Padding: " + "a" * 100_000 + "\r\n")
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert str(caught.value) == f"message too large ({len(data)} bytes)"
    assert caught.value.status_hint == 513


def test_too_many_header_lines() -> None:
    data = minimal(extra="X-A: 1\r\n" * 200)
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert (str(caught.value), caught.value.status_hint) == ("too many header lines (206)", 413)


def test_overlong_request_line() -> None:
    data = minimal().replace(b"sip:1000@bridge.example SIP", b"sip:" + b"1" * 4100 + b"@b SIP", 1)
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert (str(caught.value), caught.value.status_hint) == ("start line too long", 414)


def test_unknown_sip_version_keeps_the_head_for_a_505() -> None:
    data = minimal().replace(b" SIP/2.0\r\n", b" SIP/3.0\r\n", 1)
    with pytest.raises(PartialMessage) as caught:
        parse_message(data)
    assert str(caught.value) == "unsupported SIP version: SIP/3.0"
    assert caught.value.status_hint == 505
    assert caught.value.partial.headers.get("Call-ID") == "c1@192.0.2.7"


@pytest.mark.parametrize("name", ["Call-ID", "CSeq", "Via", "From", "To"])
def test_missing_required_header_keeps_the_head(name: str) -> None:
    lines = [line for line in minimal().split(b"\r\n") if not line.startswith(name.encode() + b":")]
    with pytest.raises(PartialMessage) as caught:
        parse_message(b"\r\n".join(lines))
    assert str(caught.value) == f"missing {name} header"
    partial = caught.value.partial
    assert isinstance(partial, Request) and partial.method == "OPTIONS"
    assert name not in partial.headers and len(partial.headers) == 5


def test_cseq_method_mismatch() -> None:
    data = minimal().replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    with pytest.raises(PartialMessage) as caught:
        parse_message(data)
    assert str(caught.value) == "CSeq method does not match the request method"


def test_request_uri_of_another_scheme_is_a_416() -> None:
    data = minimal().replace(b"sip:1000@bridge.example SIP", b"urn:service:sos SIP", 1)
    with pytest.raises(PartialMessage) as caught:
        parse_message(data)
    assert caught.value.status_hint == 416
    assert str(caught.value) == "unsupported URI scheme: 'urn:service:sos'"


def test_tel_request_uri_is_accepted() -> None:
    data = minimal().replace(b"sip:1000@bridge.example SIP", b"tel:+62-21-555-1000 SIP", 1)
    message = parse_message(data)
    assert isinstance(message, Request)
    assert SipUri.parse(message.uri).user == "+62-21-555-1000"


def test_malformed_contact_is_rejected() -> None:
    data = minimal(extra="Contact: <sip:alice@192.0.2.7\r\n")
    with pytest.raises(PartialMessage) as caught:
        parse_message(data)
    assert str(caught.value) == "unclosed '<' in address: '<sip:alice@192.0.2.7'"


def test_contact_star_is_accepted() -> None:
    message = parse_message(minimal("REGISTER", extra="Contact: *\r\nExpires: 0\r\n"))
    assert message.contacts == [] and message.headers.get("Contact") == "*"


# ---- property tests ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1500))
def test_any_bytes_parse_or_raise_sip_parse_error(data: bytes) -> None:
    try:
        parse_message(data)
    except SipParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(VALID),
    edits=st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 3), st.binary(min_size=0, max_size=3)),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_fixtures_parse_or_raise_sip_parse_error(
    name: str, edits: list[tuple[int, int, bytes]]
) -> None:
    data = bytearray(sip(name))
    for position, deleted, inserted in edits:
        at = position % (len(data) + 1)
        data[at : at + deleted] = inserted
    try:
        message = parse_message(bytes(data))
    except SipParseError:
        return
    assert parse_message(bytes(message)) == parse_message(bytes(parse_message(bytes(message))))


_LINE_PIECES = st.sampled_from(
    ["Via", "v", "From", "To", "Call-ID", "CSeq", "Contact", "l", "Content-Length", ":", " ",
     "\t", ";", ",", '"', "<", ">", "\\", "=", "@", "sip:", "SIP/2.0/UDP", "[::1]", "1",
     "99999", "tag", "branch", "INVITE", "é", "\x00", "%"]
)


@settings(max_examples=200, deadline=None)
@given(
    start=st.sampled_from(["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "ACK sip:a@b SIP/2.0"]),
    lines=st.lists(st.lists(_LINE_PIECES, max_size=12).map("".join), max_size=12),
    body=st.binary(max_size=20),
)
def test_sip_like_heads_parse_or_raise_sip_parse_error(
    start: str, lines: list[str], body: bytes
) -> None:
    data = ("\r\n".join([start, *lines]) + "\r\n\r\n").encode() + body
    try:
        parse_message(data)
    except SipParseError:
        pass


_TOKENS = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
                  min_size=1, max_size=12)
_VALUE_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30
).map(str.strip)


@st.composite
def generated_messages(draw: st.DrawFn) -> Request | Response:
    """Messages whose headers are already in printed form, so one round trip is exact."""
    method = draw(st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"]))
    host = draw(st.sampled_from(["192.0.2.1", "[2001:db8::7]", "bridge.example", "h-1.test"]))
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    sent_by = host + (f":{port}" if port is not None else "")
    branch = "z9hG4bK" + draw(_TOKENS)
    display = draw(st.one_of(st.none(), _VALUE_TEXT.filter(bool)))
    sender = f"<sip:{draw(_TOKENS)}@{host}>;tag={draw(_TOKENS)}"
    if display is not None:
        sender = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '" ' + sender
    body = draw(st.binary(max_size=60))
    headers = [
        ("Via", f"SIP/2.0/{draw(st.sampled_from(['UDP', 'TCP']))} {sent_by};branch={branch}"),
        ("From", sender),
        ("To", f"<sip:{draw(_TOKENS)}@{host}>"),
        ("Call-ID", draw(_TOKENS) + "@" + draw(_TOKENS)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
    ]
    extra_names = st.sampled_from(["X-Room", "X-Pin", "Subject", "User-Agent", "Allow"])
    for _ in range(draw(st.integers(0, 4))):
        headers.insert(draw(st.integers(0, len(headers))), (draw(extra_names), draw(_VALUE_TEXT)))
    headers.insert(draw(st.integers(0, len(headers))), ("Content-Length", str(len(body))))
    if draw(st.booleans()):
        return Request(headers=Headers(headers), body=body, method=method, uri=f"sip:1000@{host}")
    status = draw(st.integers(100, 699))
    return Response(headers=Headers(headers), body=body, status=status, reason=draw(_VALUE_TEXT))


@settings(max_examples=200, deadline=None)
@given(generated_messages())
def test_generated_messages_round_trip_exactly(message: Request | Response) -> None:
    assert parse_message(bytes(message)) == message
    assert parse_message(bytes(message), stream=True) == message


# ---- StreamFramer ----------------------------------------------------------------------------


def frame_all(chunks: list[bytes]) -> tuple[list[bytes], int, StreamFramer]:
    framer = StreamFramer()
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out, framer.pings, framer


STREAM_MESSAGES = [sip(name) for name in ("invite_baresip", "ack_baresip", "bye_baresip",
                                          "register_pyvoip_auth", "options_200_baresip")]


def test_framer_cuts_concatenated_messages_fed_whole() -> None:
    data = b"".join(STREAM_MESSAGES)
    messages, pings, _ = frame_all([data])
    assert messages == STREAM_MESSAGES and pings == 0
    for framed in messages:
        parse_message(framed, stream=True)


def test_framer_byte_by_byte_gives_the_same_messages() -> None:
    data = b"\r\n\r\n".join(STREAM_MESSAGES)
    whole = frame_all([data])
    one_by_one = frame_all([data[i : i + 1] for i in range(len(data))])
    assert one_by_one[:2] == whole[:2] == (STREAM_MESSAGES, len(STREAM_MESSAGES) - 1)


def test_framer_keeps_trailing_data_for_the_next_feed() -> None:
    data = b"".join(STREAM_MESSAGES)
    messages, _, framer = frame_all([data + STREAM_MESSAGES[0][:50]])
    assert messages == STREAM_MESSAGES
    assert framer.feed(STREAM_MESSAGES[0][50:]) == [STREAM_MESSAGES[0]]


def test_framer_counts_each_double_crlf_ping_and_skips_single_crlfs() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n\r\n\r\n") == []
    assert framer.pings == 2
    assert framer.feed(b"\r\n") == []  # maybe half a ping: wait
    assert framer.feed(STREAM_MESSAGES[1]) == [STREAM_MESSAGES[1]]
    assert framer.pings == 2
    assert framer.feed(b"\r\n") == [] and framer.feed(b"\r\n") == []
    assert framer.pings == 3


def test_framer_accepts_lf_only_heads() -> None:
    message = minimal(body=b"abc").replace(b"\r\n", b"\n")
    assert frame_all([message + message])[0] == [message, message]


def test_framer_uses_folded_and_compact_content_length() -> None:
    message = minimal(body=b"abcd").replace(b"Content-Length: 4", b"l:\r\n 4")
    assert frame_all([message + b"tail"])[0] == [message]


def test_framer_requires_content_length() -> None:
    with pytest.raises(SipParseError) as caught:
        StreamFramer().feed(minimal().replace(b"Content-Length: 0\r\n", b""))
    assert str(caught.value) == "Content-Length is required on a stream transport"


def test_framer_refuses_conflicting_content_length() -> None:
    data = minimal(extra="Content-Length: 5\r\n")
    with pytest.raises(SipParseError) as caught:
        StreamFramer().feed(data)
    assert str(caught.value) == "conflicting Content-Length headers"


def test_framer_refuses_an_oversized_head_before_it_ends() -> None:
    framer = StreamFramer(max_message_bytes=1_000)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * 150)
    with pytest.raises(SipParseError) as caught:
        framer.feed(b"X: y\r\n" * 20)
    assert (str(caught.value), caught.value.status_hint) == ("message head too large", 513)


def test_framer_refuses_an_oversized_body_from_its_content_length() -> None:
    framer = StreamFramer()
    head = minimal().replace(b"Content-Length: 0", f"Content-Length: {MAX_MESSAGE_BYTES}".encode())
    with pytest.raises(SipParseError) as caught:
        framer.feed(head)
    assert str(caught.value) == f"message too large ({len(head) + MAX_MESSAGE_BYTES} bytes)"
    assert caught.value.status_hint == 513


@settings(max_examples=100, deadline=None)
@given(
    picks=st.lists(st.sampled_from(range(len(STREAM_MESSAGES))), min_size=1, max_size=5),
    pings=st.lists(st.sampled_from([b"", b"\r\n", b"\r\n\r\n", b"\r\n\r\n\r\n\r\n"]),
                   min_size=5, max_size=5),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
    tail=st.integers(0, 80),
)
def test_framer_output_does_not_depend_on_segmentation(
    picks: list[int], pings: list[bytes], cuts: list[int], tail: int
) -> None:
    expected = [STREAM_MESSAGES[i] for i in picks]
    data = b"".join(pings[n] + message for n, message in enumerate(expected))
    trailing = STREAM_MESSAGES[0][:tail]
    stream = data + trailing
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    whole = frame_all([stream])
    split = frame_all(chunks)
    assert whole[0] == split[0] == expected
    assert whole[1] == split[1] == sum(p.count(b"\r\n\r\n") for p in pings[: len(expected)])
    remainder = STREAM_MESSAGES[0][tail:]
    assert split[2].feed(remainder) == [STREAM_MESSAGES[0]]

