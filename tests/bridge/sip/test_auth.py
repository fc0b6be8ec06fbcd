"""Digest authentication: RFC vectors, credential grammar, nonces, replay, client interop."""

from __future__ import annotations

import hashlib
import random
import re

import pytest

# pyVoIP.SIP imports only after pyVoIP.VoIP (a circular import inside pyVoIP 1.6.8).
import pyVoIP.VoIP  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st
from pyVoIP import RTP, SIP

from bridge.sip.auth import (
    AccountSecrets,
    Authenticated,
    Authenticator,
    Challenge,
    DigestCredentials,
    compute_ha1,
    compute_response,
    parse_credentials,
)
from bridge.sip.errors import SipParseError
from bridge.sip.message import Request, make_request, response_to
from bridge.sip.parser import parse_message

REALM = "telerapat.local"
SECRET = b"0123456789abcdef0123456789abcdef"
REGISTER_URI = "sip:telerapat.local"


def account(username: str, password: str, *, sha256: bool = True) -> AccountSecrets:
    return AccountSecrets(
        username,
        compute_ha1(username, REALM, password, "MD5"),
        compute_ha1(username, REALM, password, "SHA-256") if sha256 else None,
    )


ACCOUNTS = {
    "dinkes": account("dinkes", "rahasia"),
    "bpbd": account("bpbd", "siaga", sha256=False),
}


def authenticator(**kwargs: object) -> Authenticator:
    options: dict[str, object] = {"rng": random.Random(7)}
    options.update(kwargs)
    return Authenticator(REALM, ACCOUNTS, SECRET, **options)  # type: ignore[arg-type]


def register(authorization: tuple[str, ...] = (), *, uri: str = REGISTER_URI) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-1"),
        ("From", "<sip:dinkes@telerapat.local>;tag=a1"),
        ("To", "<sip:dinkes@telerapat.local>"),
        ("Call-ID", "call-1"),
        ("CSeq", "1 REGISTER"),
    ]
    headers += [("Authorization", value) for value in authorization]
    return make_request("REGISTER", uri, headers)


def challenge_params(value: str) -> dict[str, str]:
    """Read a WWW-Authenticate value the way a client would (test-side, independent)."""
    assert value.startswith("Digest ")
    pairs = re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', value[len("Digest ") :])
    return {name: quoted or bare for name, quoted, bare in pairs}


def answer(
    challenge_value: str,
    *,
    username: str = "dinkes",
    password: str = "rahasia",
    method: str = "REGISTER",
    uri: str = REGISTER_URI,
    algorithm: str | None = None,
    qop: bool = True,
    nc: int = 1,
    cnonce: str = "0a4f113b",
    realm: str | None = None,
    with_opaque: bool = True,
) -> str:
    """Compute an Authorization value with hashlib alone, as a UA would (RFC 7616 §3.4)."""
    chal = challenge_params(challenge_value)
    algorithm = algorithm or chal.get("algorithm", "MD5")
    realm = realm if realm is not None else chal["realm"]
    base = algorithm.upper().removesuffix("-SESS")
    hash_name = {"MD5": "md5", "SHA-256": "sha256"}[base]

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{chal['nonce']}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    nonce = chal["nonce"]
    parts = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
        f"algorithm={algorithm}",
    ]
    if qop:
        response = h(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
        parts += [f"qop=auth, nc={nc:08x}", f'cnonce="{cnonce}"']
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
    parts.append(f'response="{response}"')
    if with_opaque and "opaque" in chal:
        parts.append(f'opaque="{chal["opaque"]}"')
    return "Digest " + ", ".join(parts)


def first_challenge(auth: Authenticator, now: float = 0.0, request: Request | None = None) -> str:
    outcome = auth.authenticate(request or register(), now)
    assert isinstance(outcome, Challenge)
    return outcome.headers[0][1]


# -- known answers ----------------------------------------------------------------------


def test_ha1_matches_rfc_2617_example() -> None:
    assert (
        compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "MD5")
        == "939e7578ed9e3c518a452acee763bce9"
    )


def test_response_matches_rfc_2617_section_3_5() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "MD5")
    response = compute_response(
        algorithm="MD5",
        ha1=ha1,
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_response_matches_rfc_7616_section_3_9_1(algorithm: str, expected: str) -> None:
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    response = compute_response(
        algorithm=algorithm,
        ha1=ha1,
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert response == expected


def test_compute_ha1_rejects_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unsupported digest algorithm"):
        compute_ha1("a", "b", "c", "SHA-512-256")


# -- credential grammar -------------------------------------------------------------


def test_parse_rfc_7616_example_authorization() -> None:
    value = (
        'Digest username="Mufasa",\r\n realm="http-auth@example.org",'
        ' uri="/dir/index.html", algorithm=sha-256,'
        ' nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001,'
        ' cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth,'
        ' response="753927FA0E85D155564E2E272A28D1802CA10DAF4496794697CF8DB5856CB6C1",'
        ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    assert parse_credentials(value.replace("\r\n", "")) == DigestCredentials(
        username="Mufasa",
        realm="http-auth@example.org",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        uri="/dir/index.html",
        response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        algorithm="SHA-256",
        qop="auth",
        nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
    )


def test_parse_rfc_2069_style_credentials_default_to_md5() -> None:
    credentials = parse_credentials(
        'digest username="a\\"b", realm="r", nonce="n", uri=sip:r, response="00ff"'
    )
    assert credentials.username == 'a"b'
    assert credentials.uri == "sip:r"
    assert (credentials.algorithm, credentials.qop, credentials.nc) == ("MD5", None, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "not Digest credentials: 'Basic QWxhZGRpbjpvcG'"),
        ('Digestusername="a"', "not Digest credentials: 'Digestusername=\"a\"'"),
        (
            'Digest username="a", realm="r", nonce="n", uri="u"',
            "digest credentials without response",
        ),
        ('Digest username="a, realm="r"', "expected ',' after digest parameter 'username'"),
        ('Digest username="a', "unterminated quoted string in digest credentials"),
        ('Digest username="a", username="b"', "duplicate digest parameter 'username'"),
        ("Digest username", "digest parameter 'username' without a value"),
        ("Digest =x", "invalid digest parameter at: '=x'"),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="f", qop=auth,'
            ' cnonce="c"',
            "digest credentials with qop need nc as 8 hex digits",
        ),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="f", qop=auth,'
            " nc=1, cnonce=c",
            "digest credentials with qop need nc as 8 hex digits",
        ),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="f", qop=auth,'
            " nc=00000001",
            "digest credentials with qop need a cnonce",
        ),
    ],
)
def test_parse_credentials_errors(value: str, message: str) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_credentials(value)
    assert str(caught.value) == message
    assert caught.value.status_hint == 400


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.text(max_size=200).map(lambda t: "Digest " + t)))
def test_parse_credentials_raises_only_sip_parse_error(value: str) -> None:
    try:
        parse_credentials(value)
    except SipParseError:
        pass


_QUOTABLE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(username=_QUOTABLE, realm=_QUOTABLE, nonce=_QUOTABLE, uri=_QUOTABLE, cnonce=_QUOTABLE)
def test_parse_credentials_reads_back_quoted_values(
    username: str, realm: str, nonce: str, uri: str, cnonce: str
) -> None:
    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    value = (
        f"Digest username={quote(username)},realm={quote(realm)} , nonce={quote(nonce)},"
        f'uri={quote(uri)},response="abc",qop=AUTH,nc=0000000A,cnonce={quote(cnonce)}'
    )
    credentials = parse_credentials(value)
    assert (credentials.username, credentials.realm, credentials.nonce) == (username, realm, nonce)
    assert (credentials.uri, credentials.cnonce) == (uri, cnonce)
    assert (credentials.qop, credentials.nc) == ("auth", "0000000a")


# -- challenges ---------------------------------------------------------------------


def test_challenge_lists_each_algorithm_strongest_first_with_one_nonce() -> None:
    auth = authenticator(algorithms=("SHA-256", "MD5"))
    outcome = auth.authenticate(register(), 0.0)
    assert isinstance(outcome, Challenge)
    assert outcome.status == 401
    assert [name for name, _ in outcome.headers] == ["WWW-Authenticate", "WWW-Authenticate"]
    lines = [challenge_params(value) for _, value in outcome.headers]
    assert [line["algorithm"] for line in lines] == ["SHA-256", "MD5"]
    for line in lines:
        assert line["realm"] == REALM
        assert line["qop"] == "auth"
        assert "stale" not in line
        assert (line["nonce"], line["opaque"]) == (lines[0]["nonce"], lines[0]["opaque"])


def test_default_challenge_is_md5_only() -> None:
    outcome = authenticator().authenticate(register(), 0.0)
    assert isinstance(outcome, Challenge)
    assert len(outcome.headers) == 1
    assert challenge_params(outcome.headers[0][1])["algorithm"] == "MD5"


def test_proxy_challenge_is_407_with_proxy_authenticate() -> None:
    auth = authenticator()
    outcome = auth.authenticate(register(), 0.0, proxy=True)
    assert isinstance(outcome, Challenge)
    assert outcome.status == 407
    assert outcome.headers[0][0] == "Proxy-Authenticate"
    request = register()
    request.headers.add("Proxy-Authorization", answer(outcome.headers[0][1]))
    assert auth.authenticate(request, 1.0, proxy=True) == Authenticated("dinkes")
    assert isinstance(auth.authenticate(request, 1.0), Challenge)  # not read as Authorization


def test_nonces_differ_and_come_from_the_injected_rng() -> None:
    assert first_challenge(authenticator()) == first_challenge(authenticator())
    auth = authenticator()
    assert first_challenge(auth) != first_challenge(auth)


def test_account_with_only_md5_is_offered_only_md5() -> None:
    auth = authenticator(algorithms=("SHA-256", "MD5"))
    request = register()
    request.headers.set("From", "<sip:bpbd@telerapat.local>;tag=a1")
    outcome = auth.authenticate(request, 0.0)
    assert isinstance(outcome, Challenge)
    assert [challenge_params(v)["algorithm"] for _, v in outcome.headers] == ["MD5"]


# -- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess", "SHA-256-sess"])
def test_round_trip_authenticates(algorithm: str) -> None:
    auth = authenticator(algorithms=("SHA-256", "MD5"))
    challenge = first_challenge(auth)
    request = register((answer(challenge, algorithm=algorithm),))
    assert auth.authenticate(request, 1.0) == Authenticated("dinkes")


def test_client_without_qop_is_accepted_once_per_nonce() -> None:
    auth = authenticator()
    request = register((answer(first_challenge(auth), qop=False, with_opaque=False),))
    assert auth.authenticate(request, 1.0) == Authenticated("dinkes")
    replay = auth.authenticate(request, 2.0)
    assert isinstance(replay, Challenge)
    assert challenge_params(replay.headers[0][1])["stale"] == "true"


def test_nonce_count_must_increase() -> None:
    auth = authenticator()
    challenge = first_challenge(auth)
    assert auth.authenticate(register((answer(challenge, nc=1),)), 1.0) == Authenticated("dinkes")
    replayed = auth.authenticate(register((answer(challenge, nc=1),)), 2.0)
    assert isinstance(replayed, Challenge)
    assert challenge_params(replayed.headers[0][1])["stale"] == "true"
    assert auth.authenticate(register((answer(challenge, nc=3),)), 3.0) == Authenticated("dinkes")
    assert isinstance(auth.authenticate(register((answer(challenge, nc=2),)), 4.0), Challenge)


def test_expired_nonce_with_right_password_is_stale() -> None:
    auth = authenticator(nonce_lifetime_s=300.0)
    challenge = first_challenge(auth, now=10.0)
    assert auth.authenticate(register((answer(challenge),)), 310.0) == Authenticated("dinkes")
    late = auth.authenticate(register((answer(challenge, nc=2),)), 310.001)
    assert isinstance(late, Challenge)
    assert challenge_params(late.headers[0][1])["stale"] == "true"
    fresh = answer(late.headers[0][1])
    assert auth.authenticate(register((fresh,)), 311.0) == Authenticated("dinkes")


def test_expired_nonce_with_wrong_password_is_not_stale() -> None:
    auth = authenticator()
    challenge = first_challenge(auth)
    outcome = auth.authenticate(register((answer(challenge, password="salah"),)), 1000.0)
    assert isinstance(outcome, Challenge)
    assert "stale" not in challenge_params(outcome.headers[0][1])


def _failure_shape(outcome: object) -> list[tuple[str, list[str]]]:
    assert isinstance(outcome, Challenge)
    return [(name, sorted(challenge_params(value))) for name, value in outcome.headers]


def test_wrong_password_and_unknown_user_get_the_same_challenge() -> None:
    auth = authenticator()
    challenge = first_challenge(auth)
    wrong_password = auth.authenticate(register((answer(challenge, password="salah"),)), 1.0)
    unknown_user = auth.authenticate(
        register((answer(challenge, username="nobody", password="rahasia"),)), 1.0
    )
    assert _failure_shape(wrong_password) == _failure_shape(unknown_user)
    assert _failure_shape(wrong_password) == _failure_shape(auth.authenticate(register(), 1.0))
    assert isinstance(wrong_password, Challenge) and wrong_password.status == 401


def test_wrong_realm_is_challenged() -> None:
    auth = authenticator()
    challenge = first_challenge(auth)
    hashed_for_other_realm = answer(challenge, realm="other.example")
    assert isinstance(auth.authenticate(register((hashed_for_other_realm,)), 1.0), Challenge)
    # Even a response hashed with our realm is refused when it names another one.
    relabelled = answer(challenge).replace(f'realm="{REALM}"', 'realm="other.example"')
    assert isinstance(auth.authenticate(register((relabelled,)), 1.0), Challenge)


def test_digest_uri_must_equal_the_request_uri() -> None:
    auth = authenticator()
    challenge = first_challenge(auth)
    signed_elsewhere = register((answer(challenge, uri="sip:1000@telerapat.local"),))
    assert isinstance(auth.authenticate(signed_elsewhere, 1.0), Challenge)
    equivalent_but_different = register((answer(challenge, uri="sip:TELERAPAT.local"),))
    assert isinstance(auth.authenticate(equivalent_but_different, 1.0), Challenge)
    padded = register((answer(challenge, nc=2),), uri=f" {REGISTER_URI} ")
    assert auth.authenticate(padded, 1.0) == Authenticated("dinkes")


def test_host_only_digest_uri_is_accepted_only_when_enabled() -> None:
    invite_uri = "sip:1000@127.0.0.1:5060"
    signed_uri = "sip:127.0.0.1:5060;transport=UDP"
    for enabled, expected in ((False, Challenge), (True, Authenticated)):
        auth = authenticator(accept_host_only_digest_uri=enabled)
        challenge = first_challenge(auth)
        value = answer(challenge, method="INVITE", uri=signed_uri)
        request = register((value,), uri=invite_uri)
        request.method = "INVITE"
        assert isinstance(auth.authenticate(request, 1.0), expected)
    auth = authenticator(accept_host_only_digest_uri=True)
    for other in ("sip:1001@127.0.0.1:5060", "sip:127.0.0.2:5060", "sip:127.0.0.1:5060;lr"):
        value = answer(first_challenge(auth), method="INVITE", uri=other)
        request = register((value,), uri=invite_uri)
        request.method = "INVITE"
        assert isinstance(auth.authenticate(request, 1.0), Challenge), other


def test_sha256_response_fails_for_account_with_only_md5() -> None:
    auth = authenticator(algorithms=("SHA-256", "MD5"))
    challenge = first_challenge(auth)
    sha = answer(challenge, username="bpbd", password="siaga", algorithm="SHA-256")
    assert isinstance(auth.authenticate(register((sha,)), 1.0), Challenge)
    md5 = answer(challenge, username="bpbd", password="siaga", algorithm="MD5", nc=2)
    assert auth.authenticate(register((md5,)), 1.0) == Authenticated("bpbd")


def test_algorithm_not_offered_is_refused() -> None:
    auth = authenticator(algorithms=("SHA-256",))
    value = answer(first_challenge(auth), algorithm="MD5")
    assert isinstance(auth.authenticate(register((value,)), 1.0), Challenge)


def test_several_authorization_lines_are_tried_strongest_first() -> None:
    auth = authenticator(algorithms=("SHA-256", "MD5"))
    challenge = first_challenge(auth)
    wrong_sha = answer(challenge, algorithm="SHA-256", password="salah")
    right_md5 = answer(challenge, algorithm="MD5", nc=2)
    assert auth.authenticate(register((wrong_sha, right_md5)), 1.0) == Authenticated("dinkes")


def test_forged_or_foreign_nonces_are_refused() -> None:
    auth = authenticator()
    challenge = first_challenge(auth)
    nonce = challenge_params(challenge)["nonce"]
    tampered = nonce[:5] + ("A" if nonce[5] != "A" else "B") + nonce[6:]
    forged = answer(challenge.replace(nonce, tampered), with_opaque=False)
    assert isinstance(auth.authenticate(register((forged,)), 1.0), Challenge)
    other_secret = Authenticator(REALM, ACCOUNTS, b"x" * 32, rng=random.Random(7))
    foreign = answer(first_challenge(other_secret), with_opaque=False)
    assert isinstance(auth.authenticate(register((foreign,)), 1.0), Challenge)
    other_realm = Authenticator("elsewhere", ACCOUNTS, SECRET, rng=random.Random(7))
    moved = answer(first_challenge(other_realm), realm=REALM, with_opaque=False)
    assert isinstance(auth.authenticate(register((moved,)), 1.0), Challenge)


def test_opaque_is_optional_but_must_match_when_sent() -> None:
    auth = authenticator()
    challenge = first_challenge(auth)
    opaque = challenge_params(challenge)["opaque"]
    wrong = answer(challenge.replace(opaque, "bogus"))
    assert isinstance(auth.authenticate(register((wrong,)), 1.0), Challenge)
    assert auth.authenticate(register((answer(challenge),)), 1.0) == Authenticated("dinkes")


def test_sess_answer_without_cnonce_is_refused() -> None:
    auth = authenticator()
    value = answer(first_challenge(auth), algorithm="MD5-sess", qop=False)
    value = value.replace("Digest ", 'Digest cnonce="0a4f113b", ', 1)  # hashed with it...
    stripped = value.replace('cnonce="0a4f113b", ', "", 1)  # ...then sent without it
    assert isinstance(auth.authenticate(register((stripped,)), 1.0), Challenge)
    assert auth.authenticate(register((value,)), 1.0) == Authenticated("dinkes")


def test_compute_response_needs_nc_and_cnonce_for_qop() -> None:
    with pytest.raises(ValueError, match="needs nc and cnonce"):
        compute_response(
            algorithm="MD5",
            ha1="0",
            nonce="n",
            method="M",
            uri="u",
            qop="auth",
            nc=None,
            cnonce="c",
        )


def test_unparsable_authorization_is_challenged_not_raised() -> None:
    auth = authenticator()
    outcome = auth.authenticate(register(('Digest username="a', "Basic Zm9vOmJhcg==")), 1.0)
    assert isinstance(outcome, Challenge)


def test_replay_memory_is_bounded_without_reopening_replays() -> None:
    auth = authenticator(max_tracked_nonces=2)
    challenges = [first_challenge(auth, now=float(t)) for t in range(3)]
    for challenge in challenges:
        assert auth.authenticate(register((answer(challenge),)), 5.0) == Authenticated("dinkes")
    # The oldest nonce's count was evicted; its reuse is refused (stale), not accepted.
    evicted = auth.authenticate(register((answer(challenges[0], nc=2),)), 6.0)
    assert isinstance(evicted, Challenge)
    assert challenge_params(evicted.headers[0][1])["stale"] == "true"
    kept = register((answer(challenges[2], nc=2),))
    assert auth.authenticate(kept, 6.0) == Authenticated("dinkes")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithms": ("SHA-512-256",)}, "unsupported digest algorithm"),
        ({"algorithms": ("MD5", "md5")}, "distinct"),
        ({"algorithms": ()}, "distinct"),
        ({"nonce_lifetime_s": 0.0}, "positive"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        authenticator(**kwargs)


def test_constructor_rejects_short_secret_and_quoted_realm() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Authenticator(REALM, ACCOUNTS, b"short")
    with pytest.raises(ValueError, match="without quotes"):
        Authenticator('bad"realm', ACCOUNTS, SECRET)


# -- pyVoIP 1.6.8's own digest code -----------------------------------------------------


def _pyvoip_client() -> SIP.SIPClient:
    return SIP.SIPClient(
        "127.0.0.1", 5060, "dinkes", "rahasia", phone=None, myIP="127.0.0.1", myPort=5070
    )


@pytest.mark.parametrize("algorithms", [("MD5",), ("SHA-256", "MD5")])
def test_pyvoip_register_answer_verifies(algorithms: tuple[str, ...]) -> None:
    """pyVoIP answers the first challenge line with MD5 and no qop; the shared nonce
    makes that verify even when SHA-256 is listed first. Its digest-uri is always
    `sip:<server>;transport=UDP`, so it needs `accept_host_only_digest_uri`."""
    client = _pyvoip_client()
    first = parse_message(client.gen_first_response().encode())
    assert isinstance(first, Request)
    secrets = AccountSecrets(
        "dinkes",
        compute_ha1("dinkes", "127.0.0.1", "rahasia", "MD5"),
        compute_ha1("dinkes", "127.0.0.1", "rahasia", "SHA-256"),
    )
    for lenient in (False, True):
        auth = Authenticator(
            "127.0.0.1",
            {"dinkes": secrets},
            SECRET,
            algorithms=algorithms,
            rng=random.Random(1),
            accept_host_only_digest_uri=lenient,
        )
        outcome = auth.authenticate(first, 0.0)
        assert isinstance(outcome, Challenge)
        offered = [challenge_params(value)["algorithm"] for _, value in outcome.headers]
        assert offered == list(algorithms)
        unauthorized = SIP.SIPMessage(bytes(response_to(first, 401, headers=outcome.headers)))
        nonce = challenge_params(outcome.headers[0][1])["nonce"]
        assert unauthorized.authentication["nonce"] == nonce  # it read the first line
        second = parse_message(client.gen_register(unauthorized).encode())
        assert isinstance(second, Request)
        assert second.uri == "sip:127.0.0.1"
        result = auth.authenticate(second, 1.0)
        assert isinstance(result, Authenticated if lenient else Challenge)


def test_pyvoip_invite_answer_verifies_with_host_only_digest_uri() -> None:
    client = _pyvoip_client()
    media = {10000: {0: RTP.PayloadType.PCMU}}
    invite_text = client.gen_invite(
        "1000", "1", media, RTP.TransmitType.SENDRECV, "z9hG4bK-py1", "call-py"
    )
    invite = parse_message(invite_text.encode())
    assert isinstance(invite, Request) and invite.uri == "sip:1000@127.0.0.1"
    ha1 = compute_ha1("dinkes", REALM, "rahasia", "MD5")
    auth = Authenticator(
        REALM,
        {"dinkes": AccountSecrets("dinkes", ha1, None)},
        SECRET,
        rng=random.Random(3),
        accept_host_only_digest_uri=True,
    )
    outcome = auth.authenticate(invite, 0.0)
    assert isinstance(outcome, Challenge)
    unauthorized = SIP.SIPMessage(bytes(response_to(invite, 401, headers=outcome.headers)))
    digest = client.gen_authorization(unauthorized).decode()
    params = unauthorized.authentication
    # The header SIPClient.invite() writes around gen_authorization's digest.
    invite.headers.add(
        "Authorization",
        f'Digest username="dinkes",realm="{params["realm"]}",nonce="{params["nonce"]}",'
        f'uri="sip:127.0.0.1;transport=UDP",response="{digest}",algorithm=MD5',
    )
    assert auth.authenticate(invite, 1.0) == Authenticated("dinkes")
