"""Registrar (RFC 3261 §10.3): bindings, refresh, expiry, removal, ordering and errors."""

from __future__ import annotations

import random
import re

import pytest

from bridge.sip.auth import (
    AccountSecrets,
    Authenticator,
    compute_ha1,
    compute_response,
)
from bridge.sip.errors import LocalProtocolError
from bridge.sip.flow import Flow
from bridge.sip.message import NameAddress, Request, Response, make_request
from bridge.sip.registrar import Registrar

DOMAIN = "telerapat.local"
SECRET = b"registrar-test-secret-32-bytes!!"
PASSWORDS = {"dinkes": "rahasia", "bpbd": "siaga"}
FLOW = Flow("udp", "192.0.2.1", 5060, "198.51.100.7", 40000)


def make_registrar(**kwargs: int) -> Registrar:
    accounts = {
        name: AccountSecrets(name, compute_ha1(name, DOMAIN, pw, "MD5"), None)
        for name, pw in PASSWORDS.items()
    }
    auth = Authenticator(DOMAIN, accounts, SECRET, rng=random.Random(5))
    return Registrar(auth, DOMAIN, rng=random.Random(6), **kwargs)


class Phone:
    """A UA registering one account: answers 401 challenges, counts CSeq per Call-ID."""

    def __init__(self, registrar: Registrar, user: str = "dinkes", call_id: str = "reg-1") -> None:
        self.registrar = registrar
        self.user = user
        self.call_id = call_id
        self.cseq = 0
        self.challenge: dict[str, str] | None = None
        self.nc = 0

    def request(
        self, headers: list[tuple[str, str]], to_user: str | None = None, to_host: str = DOMAIN
    ) -> Request:
        self.cseq += 1
        to = f"<sip:{to_user or self.user}@{to_host}>"
        base = [
            ("Via", f"SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bK-{self.cseq}"),
            ("From", f"<sip:{self.user}@{DOMAIN}>;tag=f1"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
        ]
        return make_request("REGISTER", f"sip:{DOMAIN}", base + headers)

    def authorization(self, request: Request) -> str:
        assert self.challenge is not None
        self.nc += 1
        nc = f"{self.nc:08x}"
        ha1 = compute_ha1(self.user, DOMAIN, PASSWORDS[self.user], "MD5")
        response = compute_response(
            algorithm="MD5",
            ha1=ha1,
            nonce=self.challenge["nonce"],
            method="REGISTER",
            uri=request.uri,
            qop="auth",
            nc=nc,
            cnonce="c0ffee",
        )
        return (
            f'Digest username="{self.user}", realm="{DOMAIN}", nonce="{self.challenge["nonce"]}",'
            f' uri="{request.uri}", response="{response}", qop=auth, nc={nc}, cnonce="c0ffee"'
        )

    def send(
        self,
        headers: list[tuple[str, str]],
        now: float,
        *,
        flow: Flow = FLOW,
        to_user: str | None = None,
        to_host: str = DOMAIN,
        cseq: int | None = None,
    ) -> Response:
        """Send REGISTER with credentials (fetching a challenge first if needed)."""
        if self.challenge is None:
            response = self.registrar.handle(self.request(headers, to_user, to_host), flow, now)
            assert response.status == 401
            self.take_challenge(response)
        if cseq is not None:
            self.cseq = cseq - 1
        request = self.request(headers, to_user, to_host)
        request.headers.add("Authorization", self.authorization(request))
        response = self.registrar.handle(request, flow, now)
        if response.status == 401:
            self.take_challenge(response)
        return response

    def take_challenge(self, response: Response) -> None:
        value = response.headers.get("WWW-Authenticate")
        assert value is not None
        self.challenge = dict(re.findall(r'(\w+)="?([^",]*)"?', value))
        self.nc = 0


def contacts(response: Response) -> dict[str, int]:
    """Map each Contact URI in a 200 to its expires parameter."""
    result: dict[str, int] = {}
    for value in response.headers.get_list("Contact"):
        address = NameAddress.parse(value)
        result[address.uri] = int(dict(address.params)["expires"] or "")
    return result


PHONE_URI = "sip:dinkes@198.51.100.7:40000;transport=udp"
DESK_URI = "sip:dinkes@198.51.100.8:5060"


def test_register_without_credentials_is_challenged() -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    response = registrar.handle(phone.request([("Contact", f"<{PHONE_URI}>")]), FLOW, 0.0)
    assert response.status == 401
    assert (response.headers.get("WWW-Authenticate") or "").startswith('Digest realm="tele')
    assert NameAddress.parse(response.headers.get("To") or "").tag is not None
    assert registrar.bindings("dinkes", 0.0) == []


def test_register_binds_contact_with_flow_and_lists_it() -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    response = phone.send([("Contact", f"<{PHONE_URI}>"), ("Expires", "300")], 10.0)
    assert response.status == 200
    assert contacts(response) == {PHONE_URI: 300}
    [binding] = registrar.bindings("dinkes", 10.0)
    assert (binding.aor, binding.contact, binding.expires_at) == (
        "sip:dinkes@telerapat.local",
        PHONE_URI,
        310.0,
    )
    assert (binding.call_id, binding.cseq, binding.flow) == ("reg-1", 2, FLOW)


def test_phone_registering_to_our_address_gets_the_domain_aor() -> None:
    registrar = make_registrar()
    response = Phone(registrar).send([("Contact", f"<{PHONE_URI}>")], 0.0, to_host="192.0.2.1")
    assert response.status == 200
    assert [b.aor for b in registrar.bindings("dinkes", 0.0)] == ["sip:dinkes@telerapat.local"]


def test_contact_text_is_echoed_as_sent() -> None:
    """baresip finds its binding in the 200 by exact text, so no normalising."""
    registrar = make_registrar()
    sent = "sip:dinkes-0x5f@198.51.100.7:40000;transport=UDP"
    response = Phone(registrar).send([("Contact", f"<{sent}>;expires=600")], 0.0)
    assert contacts(response) == {sent: 600}


def test_refresh_updates_expiry_and_flow() -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    phone.send([("Contact", f"<{PHONE_URI}>"), ("Expires", "120")], 0.0)
    moved = Flow("udp", "192.0.2.1", 5060, "198.51.100.7", 40001)
    response = phone.send([("Contact", f"<{PHONE_URI}>"), ("Expires", "120")], 100.0, flow=moved)
    assert response.status == 200
    assert contacts(response) == {PHONE_URI: 120}
    [binding] = registrar.bindings("dinkes", 200.0)
    assert (binding.expires_at, binding.flow, binding.cseq) == (220.0, moved, 3)


def test_bindings_expire_on_scripted_time() -> None:
    registrar = make_registrar()
    Phone(registrar).send([("Contact", f"<{PHONE_URI}>"), ("Expires", "60")], 0.0)
    assert len(registrar.bindings("dinkes", 59.9)) == 1
    assert registrar.bindings("dinkes", 60.0) == []
    registrar.expire(60.0)
    assert registrar.bindings("dinkes", 0.0) == []  # gone, not merely hidden


def test_expires_zero_removes_one_contact() -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    phone.send([("Contact", f"<{PHONE_URI}>, <{DESK_URI}>"), ("Expires", "300")], 0.0)
    response = phone.send([("Contact", f"<{PHONE_URI}>;expires=0")], 1.0)
    assert response.status == 200
    assert contacts(response) == {DESK_URI: 299}


def test_star_with_expires_zero_removes_all() -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    phone.send([("Contact", f"<{PHONE_URI}>"), ("Contact", f"<{DESK_URI}>")], 0.0)
    other = Phone(registrar, call_id="other-device")
    response = other.send([("Contact", "*"), ("Expires", "0")], 5.0)
    assert response.status == 200
    assert response.headers.get("Contact") is None
    assert registrar.bindings("dinkes", 5.0) == []


@pytest.mark.parametrize(
    "headers",
    [
        [("Contact", "*"), ("Expires", "60")],
        [("Contact", "*")],
        [("Contact", f"*, <{PHONE_URI}>"), ("Expires", "0")],
    ],
)
def test_star_needs_expires_zero_and_no_other_contact(headers: list[tuple[str, str]]) -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    phone.send([("Contact", f"<{DESK_URI}>")], 0.0)
    response = phone.send(headers, 1.0)
    assert response.status == 400
    assert len(registrar.bindings("dinkes", 1.0)) == 1


def test_too_brief_expiry_is_423_with_min_expires() -> None:
    registrar = make_registrar(min_expires_s=60)
    phone = Phone(registrar)
    response = phone.send([("Contact", f"<{PHONE_URI}>"), ("Expires", "30")], 0.0)
    assert response.status == 423
    assert response.headers.get("Min-Expires") == "60"
    assert registrar.bindings("dinkes", 0.0) == []


def test_contact_expires_parameter_overrides_header_and_long_ones_are_clamped() -> None:
    registrar = make_registrar(max_expires_s=3600)
    phone = Phone(registrar)
    response = phone.send(
        [
            ("Contact", f"<{PHONE_URI}>;expires=90"),
            ("Contact", f"<{DESK_URI}>"),
            ("Expires", "86400"),
        ],
        0.0,
    )
    assert contacts(response) == {PHONE_URI: 90, DESK_URI: 3600}


def test_missing_expires_uses_default() -> None:
    registrar = make_registrar(default_expires_s=1800)
    response = Phone(registrar).send([("Contact", f"<{PHONE_URI}>")], 0.0)
    assert contacts(response) == {PHONE_URI: 1800}


def test_registering_another_account_is_forbidden() -> None:
    registrar = make_registrar()
    response = Phone(registrar, user="bpbd").send(
        [("Contact", f"<{PHONE_URI}>")], 0.0, to_user="dinkes"
    )
    assert response.status == 403
    assert registrar.bindings("dinkes", 0.0) == []
    assert registrar.bindings("bpbd", 0.0) == []


@pytest.mark.parametrize("cseq", [3, 2])
def test_same_call_id_with_lower_or_equal_cseq_is_500(cseq: int) -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    phone.send([("Contact", f"<{PHONE_URI}>"), ("Expires", "300")], 0.0, cseq=3)
    response = phone.send([("Contact", f"<{PHONE_URI}>"), ("Expires", "0")], 1.0, cseq=cseq)
    assert response.status == 500
    [binding] = registrar.bindings("dinkes", 1.0)
    assert binding.cseq == 3


def test_star_is_refused_out_of_order_too() -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    phone.send([("Contact", f"<{PHONE_URI}>")], 0.0, cseq=5)
    response = phone.send([("Contact", "*"), ("Expires", "0")], 1.0, cseq=4)
    assert response.status == 500
    assert len(registrar.bindings("dinkes", 1.0)) == 1


def test_other_call_id_replaces_binding_whatever_its_cseq() -> None:
    registrar = make_registrar()
    Phone(registrar, call_id="boot-1").send([("Contact", f"<{PHONE_URI}>")], 0.0, cseq=50)
    rebooted = Phone(registrar, call_id="boot-2")
    response = rebooted.send([("Contact", f"<{PHONE_URI}>"), ("Expires", "600")], 1.0)
    assert response.status == 200
    [binding] = registrar.bindings("dinkes", 1.0)
    assert (binding.call_id, binding.cseq, binding.expires_at) == ("boot-2", 2, 601.0)


def test_failed_contact_commits_nothing() -> None:
    registrar = make_registrar(min_expires_s=60)
    phone = Phone(registrar)
    response = phone.send([("Contact", f"<{DESK_URI}>;expires=600, <{PHONE_URI}>;expires=10")], 0.0)
    assert response.status == 423
    assert registrar.bindings("dinkes", 0.0) == []


def test_query_lists_bindings_without_changing_them() -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    phone.send([("Contact", f"<{PHONE_URI}>"), ("Expires", "300")], 0.0)
    before = registrar.bindings("dinkes", 0.0)
    response = phone.send([], 100.0)
    assert response.status == 200
    assert contacts(response) == {PHONE_URI: 200}
    assert registrar.bindings("dinkes", 100.0) == before


def test_multiple_contacts_and_equivalent_uris() -> None:
    registrar = make_registrar()
    phone = Phone(registrar)
    named = "sip:dinkes@Desk.Example:5060;transport=udp"
    phone.send([("Contact", f"<{PHONE_URI}>, <{named}>"), ("Expires", "300")], 0.0)
    # Host case, parameter name case and transport value case do not make a new binding.
    same = "sip:dinkes@desk.example:5060;TRANSPORT=UDP"
    response = phone.send([("Contact", f"<{same}>"), ("Expires", "600")], 10.0)
    assert contacts(response) == {PHONE_URI: 290, same: 600}
    assert [b.contact for b in registrar.bindings("dinkes", 10.0)] == [PHONE_URI, same]


def test_contacts_per_account_are_capped_oldest_replaced() -> None:
    registrar = make_registrar(max_contacts_per_aor=3)
    phone = Phone(registrar)
    for port in range(5):
        phone.send([("Contact", f"<sip:dinkes@198.51.100.9:{5000 + port}>")], float(port))
    ports = [b.contact.rsplit(":", 1)[1] for b in registrar.bindings("dinkes", 5.0)]
    assert ports == ["5002", "5003", "5004"]


def test_accounts_are_kept_apart() -> None:
    registrar = make_registrar()
    Phone(registrar).send([("Contact", f"<{PHONE_URI}>")], 0.0)
    Phone(registrar, user="bpbd", call_id="b").send([("Contact", "<sip:bpbd@192.0.2.50>")], 0.0)
    assert [b.contact for b in registrar.bindings("bpbd", 1.0)] == ["sip:bpbd@192.0.2.50"]
    assert [b.aor for b in registrar.bindings("dinkes", 1.0)] == ["sip:dinkes@telerapat.local"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([("Contact", f"<{PHONE_URI}>"), ("Expires", "soon")], 400),
        ([("Contact", f"<{PHONE_URI}>;expires=-5")], 400),
        ([("Contact", "<mailto:dinkes@example.org>")], 416),
    ],
)
def test_malformed_register_is_answered_not_raised(
    headers: list[tuple[str, str]], status: int
) -> None:
    registrar = make_registrar()
    response = Phone(registrar).send(headers, 0.0)
    assert response.status == status
    assert registrar.bindings("dinkes", 0.0) == []


def test_required_extension_is_420_before_authentication() -> None:
    registrar = make_registrar()
    request = Phone(registrar).request([("Contact", f"<{PHONE_URI}>"), ("Require", "gruu")])
    response = registrar.handle(request, FLOW, 0.0)
    assert response.status == 420
    assert response.headers.get("Unsupported") == "gruu"


def test_registrar_refuses_other_methods() -> None:
    registrar = make_registrar()
    request = Phone(registrar).request([])
    request.method = "INVITE"
    with pytest.raises(LocalProtocolError):
        registrar.handle(request, FLOW, 0.0)


def test_constructor_checks_expiry_limits() -> None:
    with pytest.raises(ValueError, match="min_expires_s"):
        make_registrar(min_expires_s=600, default_expires_s=300)
