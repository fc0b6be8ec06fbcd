"""Digest authentication, client side: answering 401/407 challenges (RFC 3261 §22, RFC 7616)."""

from __future__ import annotations

import hashlib
import random

import pytest

from bridge.sip.auth import (
    AccountSecrets,
    Authenticated,
    Authenticator,
    Challenge,
    ClientCredentials,
    answer_challenge,
    compute_ha1,
    parse_challenges,
    parse_credentials,
    select_challenge,
)
from bridge.sip.message import Request, Response, make_request, response_to

REALM = "telerapat.local"
SECRET = b"0123456789abcdef0123456789abcdef"
REGISTER_URI = "sip:telerapat.local"
DINKES = ClientCredentials("dinkes", "rahasia")

# RFC 7616 §3.9.1 (an HTTP example, the same digest arithmetic).
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
MUFASA_7616 = ClientCredentials("Mufasa", "Circle of Life")


def server(algorithms: tuple[str, ...] = ("MD5",)) -> Authenticator:
    account = AccountSecrets(
        "dinkes",
        compute_ha1("dinkes", REALM, "rahasia", "MD5"),
        compute_ha1("dinkes", REALM, "rahasia", "SHA-256"),
    )
    return Authenticator(
        REALM, {"dinkes": account}, SECRET, algorithms=algorithms, rng=random.Random(3)
    )


def register(headers: tuple[tuple[str, str], ...] = (), cseq: int = 1) -> Request:
    return make_request(
        "REGISTER",
        REGISTER_URI,
        [
            ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1"),
            ("From", "<sip:dinkes@telerapat.local>;tag=a1"),
            ("To", "<sip:dinkes@telerapat.local>"),
            ("Call-ID", "call-1"),
            ("CSeq", f"{cseq} REGISTER"),
            *headers,
        ],
    )


def challenged(status: int, *values: str) -> Response:
    """A response to a REGISTER carrying the given challenge header lines."""
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    return response_to(register(), status, headers=[(name, value) for value in values])


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# -- round trips with our own server side -------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "expected_algorithm"),
    [(("MD5",), "MD5"), (("SHA-256",), "SHA-256"), (("MD5", "SHA-256"), "SHA-256")],
)
def test_answer_is_accepted_by_the_authenticator(
    offered: tuple[str, ...], expected_algorithm: str
) -> None:
    auth = server(offered)
    outcome = auth.authenticate(register(), 0.0)
    assert isinstance(outcome, Challenge)
    response = response_to(register(), outcome.status, headers=outcome.headers)
    header = answer_challenge(response, "REGISTER", REGISTER_URI, DINKES, cnonce="c0ffee")
    assert header is not None
    assert header[0] == "Authorization"
    assert parse_credentials(header[1]).algorithm == expected_algorithm
    assert auth.authenticate(register((header,), cseq=2), 1.0) == Authenticated("dinkes")


def test_proxy_challenge_is_answered_with_proxy_authorization() -> None:
    auth = server(("SHA-256", "MD5"))
    outcome = auth.authenticate(register(), 0.0, proxy=True)
    assert isinstance(outcome, Challenge) and outcome.status == 407
    response = response_to(register(), 407, headers=outcome.headers)
    header = answer_challenge(response, "REGISTER", REGISTER_URI, DINKES, cnonce="c0ffee")
    assert header is not None and header[0] == "Proxy-Authorization"
    request = register((header,), cseq=2)
    assert auth.authenticate(request, 1.0, proxy=True) == Authenticated("dinkes")


def test_nonce_reuse_with_increasing_count_is_accepted() -> None:
    auth = server()
    outcome = auth.authenticate(register(), 0.0)
    assert isinstance(outcome, Challenge)
    response = response_to(register(), 401, headers=outcome.headers)
    for count in (1, 2):
        header = answer_challenge(
            response, "REGISTER", REGISTER_URI, DINKES, cnonce=f"c{count}", nonce_count=count
        )
        assert header is not None
        assert auth.authenticate(register((header,), cseq=count + 1), 1.0) == Authenticated(
            "dinkes"
        )


def test_wrong_password_is_refused_by_the_authenticator() -> None:
    auth = server()
    outcome = auth.authenticate(register(), 0.0)
    assert isinstance(outcome, Challenge)
    response = response_to(register(), 401, headers=outcome.headers)
    wrong = ClientCredentials("dinkes", "salah")
    header = answer_challenge(response, "REGISTER", REGISTER_URI, wrong, cnonce="c0ffee")
    assert header is not None
    assert isinstance(auth.authenticate(register((header,), cseq=2), 1.0), Challenge)


# -- known answers --------------------------------------------------------------------------


def test_rfc_7616_example_prefers_sha256_and_matches_the_published_answer() -> None:
    response = challenged(
        401,
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
    )
    header = answer_challenge(
        response, "GET", "/dir/index.html", MUFASA_7616, cnonce=RFC7616_CNONCE
    )
    assert header == (
        "Authorization",
        f'Digest username="Mufasa", realm="http-auth@example.org", nonce="{RFC7616_NONCE}", '
        'uri="/dir/index.html", '
        'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        f'algorithm=SHA-256, cnonce="{RFC7616_CNONCE}", qop=auth, nc=00000001, '
        f'opaque="{RFC7616_OPAQUE}"',
    )


def test_rfc_7616_example_md5_alone() -> None:
    response = challenged(
        401,
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
    )
    header = answer_challenge(
        response, "GET", "/dir/index.html", MUFASA_7616, cnonce=RFC7616_CNONCE
    )
    assert header is not None
    credentials = parse_credentials(header[1])
    assert credentials.response == "8ca523f5e9506fed4657c9700eebdbec"
    assert credentials.algorithm == "MD5"


def test_rfc_2617_section_3_5_example() -> None:
    response = challenged(
        401,
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    )
    mufasa = ClientCredentials("Mufasa", "Circle Of Life")
    header = answer_challenge(response, "GET", "/dir/index.html", mufasa, cnonce="0a4f113b")
    assert header is not None
    credentials = parse_credentials(header[1])
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert (credentials.qop, credentials.nc, credentials.cnonce) == ("auth", "00000001", "0a4f113b")
    assert credentials.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert "algorithm" not in header[1]  # the challenge named none, so none is echoed


def test_kamailio_style_challenge_without_algorithm() -> None:
    nonce = "Z3xY8mc3enKmN2hsYWJ0ZXJjZWJhbmtzAAAAAA=="
    response = challenged(401, f'Digest realm="127.0.0.1", nonce="{nonce}", qop="auth"')
    uri = "sip:127.0.0.1:5070"
    credentials = ClientCredentials("telerapat", "rahasia")
    header = answer_challenge(response, "REGISTER", uri, credentials, cnonce="3b1d")
    assert header is not None
    ha1 = md5("telerapat:127.0.0.1:rahasia")
    ha2 = md5(f"REGISTER:{uri}")
    expected = md5(f"{ha1}:{nonce}:00000001:3b1d:auth:{ha2}")
    assert header == (
        "Authorization",
        f'Digest username="telerapat", realm="127.0.0.1", nonce="{nonce}", uri="{uri}", '
        f'response="{expected}", cnonce="3b1d", qop=auth, nc=00000001',
    )


def test_challenge_without_qop_is_answered_rfc_2069_style() -> None:
    response = challenged(401, 'Digest realm="asterisk", nonce="4f2a", algorithm=MD5')
    header = answer_challenge(response, "INVITE", "sip:1000@pbx", DINKES, cnonce="unused")
    assert header is not None
    ha1 = md5("dinkes:asterisk:rahasia")
    expected = md5(f"{ha1}:4f2a:{md5('INVITE:sip:1000@pbx')}")
    assert header[1] == (
        f'Digest username="dinkes", realm="asterisk", nonce="4f2a", uri="sip:1000@pbx", '
        f'response="{expected}", algorithm=MD5'
    )


def test_sess_algorithm_is_answered_with_its_session_key() -> None:
    response = challenged(401, 'Digest realm="r", nonce="n1", algorithm=MD5-sess, qop="auth"')
    header = answer_challenge(response, "REGISTER", "sip:r", DINKES, cnonce="cn")
    assert header is not None
    ha1 = md5(f"{md5('dinkes:r:rahasia')}:n1:cn")
    expected = md5(f"{ha1}:n1:00000001:cn:auth:{md5('REGISTER:sip:r')}")
    assert parse_credentials(header[1]).response == expected
    assert "algorithm=MD5-sess" in header[1]


# -- choosing among challenges --------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        ('Digest realm="r", nonce="n", qop="auth-int"',),
        ('Basic realm="r"',),
        ('Digest realm="r", nonce="n", algorithm=SHA-512-256, qop="auth"',),
        ('Digest realm="r", nonce="n", algorithm=MD5-sess',),  # -sess needs a cnonce: qop
        ('Digest realm="r", qop="auth"',),  # no nonce
        ('Digest realm="r, nonce="n"',),  # unterminated quote
        ("Digest",),
    ],
)
def test_challenges_we_cannot_answer_give_none(values: tuple[str, ...]) -> None:
    assert (
        answer_challenge(challenged(401, *values), "REGISTER", "sip:r", DINKES, cnonce="c") is None
    )


def test_other_statuses_have_no_challenge() -> None:
    response = response_to(
        register(), 403, headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n"')]
    )
    assert parse_challenges(response) == []
    assert answer_challenge(response, "REGISTER", "sip:r", DINKES, cnonce="c") is None


def test_several_challenges_on_one_line_are_split() -> None:
    response = challenged(
        401,
        'Basic realm="r", Digest realm="r", nonce="n1", algorithm=MD5, qop="auth", '
        'Negotiate abc==, Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth,auth-int"',
    )
    challenges = parse_challenges(response)
    assert [(c.nonce, c.algorithm, c.qop_options) for c in challenges] == [
        ("n1", "MD5", ("auth",)),
        ("n2", "SHA-256", ("auth", "auth-int")),
    ]
    chosen = select_challenge(response)
    assert chosen is not None and chosen.nonce == "n2"


def test_unknown_algorithm_is_skipped_for_one_we_know() -> None:
    response = challenged(
        401,
        'Digest realm="r", nonce="n1", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="n2", algorithm=MD5, qop="auth"',
    )
    header = answer_challenge(response, "REGISTER", "sip:r", DINKES, cnonce="c")
    assert header is not None and 'nonce="n2"' in header[1]


def test_equal_algorithms_pick_the_first_and_bad_ones_are_skipped() -> None:
    response = challenged(
        407,
        'Digest realm="r", nonce="n0", nonce="again"',  # duplicate parameter
        'Digest realm="r", nonce="n1", qop="auth"',
        'Digest realm="r2", nonce="n2", qop="auth"',
    )
    chosen = select_challenge(response)
    assert chosen is not None
    assert (chosen.realm, chosen.nonce, chosen.proxy) == ("r", "n1", True)
    assert chosen.answer_header == "Proxy-Authorization"


def test_stale_and_opaque_are_read() -> None:
    response = challenged(
        401, 'Digest realm="r", nonce="n", opaque="o\\"x", stale=TRUE, algorithm=md5'
    )
    (challenge,) = parse_challenges(response)
    assert challenge.stale
    assert challenge.opaque == 'o"x'
    assert (challenge.algorithm, challenge.algorithm_text) == ("MD5", "md5")
    header = answer_challenge(response, "REGISTER", "sip:r", DINKES, cnonce="c")
    assert header is not None
    assert 'opaque="o\\"x"' in header[1] and "algorithm=md5" in header[1]


def test_quoted_values_are_escaped_and_read_back() -> None:
    response = challenged(401, 'Digest realm="a \\"b\\" c", nonce="n", qop="auth"')
    odd = ClientCredentials('us"er\\x', "pw")
    header = answer_challenge(response, "REGISTER", "sip:r", odd, cnonce="c")
    assert header is not None
    credentials = parse_credentials(header[1])
    assert (credentials.username, credentials.realm) == ('us"er\\x', 'a "b" c')


def test_nonce_count_is_eight_hex_digits_and_bounded() -> None:
    response = challenged(401, 'Digest realm="r", nonce="n", qop="auth"')
    header = answer_challenge(response, "REGISTER", "sip:r", DINKES, cnonce="c", nonce_count=26)
    assert header is not None and parse_credentials(header[1]).nc == "0000001a"
    for count in (0, 2**32):
        with pytest.raises(ValueError, match="nonce_count out of range"):
            answer_challenge(response, "REGISTER", "sip:r", DINKES, cnonce="c", nonce_count=count)


def test_credentials_refuse_an_empty_or_multi_line_username() -> None:
    for username in ("", "a\r\nVia: x"):
        with pytest.raises(ValueError, match="username"):
            ClientCredentials(username, "pw")


def test_text_that_is_no_challenge_takes_its_parameters_with_it() -> None:
    response = challenged(
        401,
        'realm="stray", "junk", nonce="n0", Digest realm="r", nonce="n1", "junk", nonce="n2"',
    )
    assert [(c.realm, c.nonce) for c in parse_challenges(response)] == [("r", "n1")]
