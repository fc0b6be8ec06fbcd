"""SIP, SIPS and tel URIs parse into their parts and print back (RFC 3261 §19.1, §25.1)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sip.errors import SipParseError
from bridge.sip.uri import (
    SipUri,
    check_absolute_uri,
    format_params,
    parse_params,
    split_hostport,
)


def test_full_sip_uri() -> None:
    uri = SipUri.parse("sips:alice:secret@Bridge.Example:5061;transport=TLS;lr?subject=rapat")
    assert uri == SipUri(
        scheme="sips",
        user="alice",
        host="bridge.example",
        port=5061,
        params=(("transport", "TLS"), ("lr", None)),
        headers="subject=rapat",
        password="secret",
    )
    assert uri.transport == "tls"
    assert uri.param("lr") == "" and uri.param("maddr") is None


def test_scheme_is_case_insensitive_and_printed_lower() -> None:
    uri = SipUri.parse("SIP:1000@192.0.2.1")
    assert (uri.scheme, str(uri)) == ("sip", "sip:1000@192.0.2.1")


def test_uri_without_user() -> None:
    uri = SipUri.parse("sip:127.0.0.1:5080")
    assert (uri.user, uri.host, uri.port) == (None, "127.0.0.1", 5080)
    assert uri.transport == "udp"


def test_ipv6_reference_with_and_without_port() -> None:
    assert SipUri.parse("sip:bob@[2001:DB8::9:1]:5070").host == "[2001:db8::9:1]"
    assert SipUri.parse("sip:[::1]").port is None
    assert SipUri.parse("sip:[::ffff:192.0.2.1]:5060").port == 5060


def test_user_part_may_hold_semicolons_question_marks_and_colons() -> None:
    # RFC 4475 §3.1.1.2 and §3.1.1.9: only "@" ends the userinfo.
    weird = SipUri.parse(
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com"
    )
    assert weird.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert weird.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert (weird.host, weird.params, weird.headers) == ("example.com", (), "")
    semi = SipUri.parse("sip:user;par=u%40example.net@example.com;maddr=192.0.2.1")
    assert semi.user == "user;par=u%40example.net"
    assert semi.params == (("maddr", "192.0.2.1"),)


def test_escaped_user_is_decoded_only_for_matching() -> None:
    uri = SipUri.parse("sip:%31%30%30%30@bridge.example")
    assert uri.user == "%31%30%30%30" and uri.user_unescaped == "1000"
    assert str(uri) == "sip:%31%30%30%30@bridge.example"


def test_empty_password_is_kept() -> None:
    uri = SipUri.parse("sip:alice:@example.com")
    assert uri.password == ""
    assert str(uri) == "sip:alice:@example.com"


def test_tel_uri() -> None:
    uri = SipUri.parse("tel:+62-21-555-0100;phone-context=example.com")
    assert (uri.scheme, uri.user, uri.host) == ("tel", "+62-21-555-0100", "")
    assert uri.param("phone-context") == "example.com"
    assert str(uri) == "tel:+62-21-555-0100;phone-context=example.com"


def test_with_params_replaces_them() -> None:
    uri = SipUri.parse("sip:a@b;transport=tcp")
    assert str(uri.with_params((("lr", None),))) == "sip:a@b;lr"


@pytest.mark.parametrize(
    ("text", "message", "status_hint"),
    [
        ("http://example.com/", "unsupported URI scheme: 'http://example.com/'", 416),
        ("urn:service:sos", "unsupported URI scheme: 'urn:service:sos'", 416),
        ("<sip:user@example.com>", "invalid URI: '<sip:user@example.com>'", 400),
        ("sip:user@example.com; lr", "invalid URI: 'sip:user@example.com; lr'", 400),
        ("no scheme here", "invalid URI: 'no scheme here'", 400),
        ("1sip:a@b", "invalid URI: '1sip:a@b'", 400),
        ("sip:", "invalid URI: 'sip:'", 400),
        ("sip:@example.com", "empty user part in URI: 'sip:@example.com'", 400),
        ("sip:a@", "invalid host and port: ''", 400),
        ("sip:a@b:0", "port out of range: 0", 400),
        ("sip:a@b:65536", "port out of range: 65536", 400),
        ("sip:a@b:123456", "invalid host and port: 'b:123456'", 400),
        ("sip:a@b:", "invalid host and port: 'b:'", 400),
        ("sip:a@[2001:db8:::1]", "invalid IPv6 reference: '[2001:db8:::1]'", 400),
        ("sip:a@[::1", "invalid host and port: '[::1'", 400),
        ("sip:a@exa mple.com", "invalid URI: 'sip:a@exa mple.com'", 400),
        ("sip:a@b;;lr", "empty parameter in ';lr'", 400),
        ("sip:a@b;=x", "empty parameter in '=x'", 400),
        ("tel:;x=1", "tel URI without a number", 400),
    ],
)
def test_invalid_uris_have_their_own_message(text: str, message: str, status_hint: int) -> None:
    with pytest.raises(SipParseError) as caught:
        SipUri.parse(text)
    assert (str(caught.value), caught.value.status_hint) == (message, status_hint)


def test_check_absolute_uri_returns_the_scheme() -> None:
    assert check_absolute_uri("nobodyKnowsThisScheme:opaque") == "nobodyknowsthisscheme"
    with pytest.raises(SipParseError):
        check_absolute_uri("sip:a b@c")


def test_split_hostport() -> None:
    assert split_hostport("Example.COM") == ("example.com", None)
    assert split_hostport(" 192.0.2.1:5060 ") == ("192.0.2.1", 5060)
    assert split_hostport("[2001:db8::1]:05060") == ("[2001:db8::1]", 5060)


def test_parse_params_forms() -> None:
    assert parse_params("") == () and parse_params("  ") == ()
    assert parse_params(" Branch = z9hG4bK1 ;rport; Received=192.0.2.1") == (
        ("branch", "z9hG4bK1"),
        ("rport", None),
        ("received", "192.0.2.1"),
    )
    assert parse_params("x=") == (("x", ""),)
    # a trailing ";" is unambiguous and tolerated
    assert parse_params("lr;") == (("lr", None),)


def test_parse_params_keeps_quoted_values_whole() -> None:
    params = parse_params('+sip.instance="<urn:uuid:1;2,3>";expires=60;q="0.5"')
    assert params == (
        ("+sip.instance", '"<urn:uuid:1;2,3>"'),
        ("expires", "60"),
        ("q", '"0.5"'),
    )
    assert format_params(params) == ';+sip.instance="<urn:uuid:1;2,3>";expires=60;q="0.5"'
    assert parse_params('a="say \\"hi\\";now";b') == (("a", '"say \\"hi\\";now"'), ("b", None))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (";;", "empty parameter in ';;'"),
        ("a;;b", "empty parameter in 'a;;b'"),
        ("a b=c", "invalid parameter name: 'a b'"),
        ('a"=1', "invalid parameter name: 'a\"'"),
        ("a=b c", "invalid parameter value: 'b c'"),
        ('a="open', "invalid parameter value: '\"open'"),
        ('a="x"y', "invalid parameter value: '\"x\"y'"),
        ("a=<b>", "invalid parameter value: '<b>'"),
    ],
)
def test_parse_params_errors(text: str, message: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_params(text)
    assert str(caught.value) == message


# user = 1*( unreserved / escaped / user-unreserved ): kept as received, so "%" may appear
_USER = st.text("abcXYZ019-_.!~*'()&=+$,;?/%", min_size=1, max_size=10)
_HOST = st.sampled_from(["example.com", "192.0.2.1", "[2001:db8::1]", "h-1.test", "localhost"])
_PNAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=8)
_PVALUE = st.one_of(
    st.none(), st.text("abcXYZ0123456789-.!%*_+`'~[]:/&$", min_size=0, max_size=8)
)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    user = draw(st.one_of(st.none(), _USER))
    password = draw(st.one_of(st.none(), st.text("abc019-_.!~*&=+$,", max_size=6)))
    if user is None:
        password = None
    return SipUri(
        scheme=draw(st.sampled_from(["sip", "sips"])),
        user=user,
        host=draw(_HOST),
        port=draw(st.one_of(st.none(), st.integers(1, 65535))),
        params=tuple(draw(st.lists(st.tuples(_PNAME, _PVALUE), max_size=4))),
        headers=draw(st.sampled_from(["", "subject=x", "Replaces=a%40b"])),
        password=password,
    )


@settings(max_examples=200, deadline=None)
@given(sip_uris())
def test_generated_uris_round_trip(uri: SipUri) -> None:
    assert SipUri.parse(str(uri)) == uri


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_text_parses_or_raises_sip_parse_error(text: str) -> None:
    try:
        uri = SipUri.parse(text)
    except SipParseError:
        return
    assert SipUri.parse(str(uri)) == uri
