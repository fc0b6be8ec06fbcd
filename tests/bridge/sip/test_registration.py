"""The REGISTER client (RFC 3261 §10.2, §22; RFC 5626 §4.5 back-off), time scripted."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

import pytest
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock

from bridge.sip.auth import (
    AccountSecrets,
    Authenticated,
    Authenticator,
    ClientCredentials,
    compute_ha1,
    parse_credentials,
)
from bridge.sip.errors import LocalProtocolError
from bridge.sip.flow import Flow
from bridge.sip.message import Request, Response, response_to
from bridge.sip.registrar import Registrar
from bridge.sip.registration import (
    MAX_CHALLENGES_PER_ATTEMPT,
    RegistrationChanged,
    RegistrationClient,
    RegistrationSettings,
    RegistrationState,
)

REGISTRAR_URI = "sip:127.0.0.1:5070"
AOR = "sip:telerapat@127.0.0.1"
CONTACT = "sip:telerapat@127.0.0.1:5060"
REALM = "127.0.0.1"
CREDENTIALS = ClientCredentials("telerapat", "rahasia")
KAMAILIO_CHALLENGE = 'Digest realm="127.0.0.1", nonce="{nonce}", qop="auth"'
FLOW = Flow("udp", "127.0.0.1", 5070, "127.0.0.1", 5060)


def make_client(seed: int = 1, **overrides: object) -> RegistrationClient:
    options: dict[str, object] = {
        "registrar_uri": REGISTRAR_URI,
        "aor": AOR,
        "contact": CONTACT,
        "credentials": CREDENTIALS,
    }
    options.update(overrides)
    settings = RegistrationSettings(**options)  # type: ignore[arg-type]
    return RegistrationClient(
        settings, rng=random.Random(seed), call_id="reg-1@127.0.0.1", from_tag="f00d"
    )


def sent(client: RegistrationClient) -> Request:
    """The one REGISTER the client queued."""
    (request,) = client.requests_to_send()
    return request


def events(client: RegistrationClient) -> list[RegistrationChanged]:
    drained: list[RegistrationChanged] = []
    while (event := client.next_event()) is not None:
        drained.append(event)
    return drained


def reply(request: Request, status: int, *headers: tuple[str, str]) -> Response:
    return response_to(request, status, to_tag="reg-tag", headers=headers)


def challenge(request: Request, nonce: str = "n1", *, stale: bool = False) -> Response:
    value = KAMAILIO_CHALLENGE.format(nonce=nonce) + (", stale=true" if stale else "")
    return reply(request, 401, ("WWW-Authenticate", value))


def ok(request: Request, expires: int = 600) -> Response:
    return reply(request, 200, ("Contact", f"<{CONTACT}>;expires={expires}"))


def register(client: RegistrationClient, now: float = 0.0, expires: int = 600) -> Request:
    """Start and complete a first registration (401, then 200); return the last REGISTER."""
    client.start(now)
    first = sent(client)
    client.receive_response(challenge(first), now)
    second = sent(client)
    client.receive_response(ok(second, expires), now)
    assert client.state is RegistrationState.REGISTERED
    events(client)
    return second


def back_off_ceilings(base: float, maximum: float, count: int) -> list[float]:
    return [min(maximum, base * 2**k) for k in range(count)]


# -- the first registration -----------------------------------------------------------------


def test_first_register_is_challenged_then_granted() -> None:
    client = make_client()
    client.start(10.0)
    first = sent(client)
    assert first.method == "REGISTER" and first.uri == REGISTRAR_URI
    assert list(first.headers) == [
        ("Max-Forwards", "70"),
        ("To", f"<{AOR}>"),
        ("From", f"<{AOR}>;tag=f00d"),
        ("Call-ID", "reg-1@127.0.0.1"),
        ("CSeq", "1 REGISTER"),
        ("Contact", f"<{CONTACT}>"),
        ("Expires", "3600"),
    ]
    assert events(client) == [RegistrationChanged(RegistrationState.REGISTERING, "registering")]

    client.receive_response(challenge(first, "abc"), 10.1)
    second = sent(client)
    assert second.cseq.number == 2 and second.call_id == first.call_id
    assert second.from_address == first.from_address
    credentials = parse_credentials(second.headers.get("Authorization") or "")
    assert (credentials.username, credentials.realm, credentials.nonce) == (
        "telerapat",
        REALM,
        "abc",
    )
    assert (credentials.uri, credentials.qop, credentials.nc) == (REGISTRAR_URI, "auth", "00000001")
    assert events(client) == []  # answering a challenge changes no state

    client.receive_response(ok(second, 600), 10.2)
    assert client.state is RegistrationState.REGISTERED
    assert client.expires_at == pytest.approx(10.1 + 600)  # counted from when it was sent
    assert client.last_reason == "200 OK, expires in 600 s"
    assert events(client) == [
        RegistrationChanged(RegistrationState.REGISTERED, "200 OK, expires in 600 s", 600)
    ]
    assert client.requests_to_send() == []


def test_answer_verifies_at_our_own_registrar_side_authenticator() -> None:
    account = AccountSecrets("telerapat", compute_ha1("telerapat", REALM, "rahasia", "MD5"), None)
    server = Authenticator(REALM, {"telerapat": account}, b"s" * 32, rng=random.Random(2))
    client = make_client()
    client.start(0.0)
    first = sent(client)
    outcome = server.authenticate(first, 0.0)
    assert not isinstance(outcome, Authenticated)
    client.receive_response(reply(first, outcome.status, *outcome.headers), 0.0)
    assert server.authenticate(sent(client), 0.0) == Authenticated("telerapat")


def test_start_twice_is_refused() -> None:
    client = make_client()
    client.start(0.0)
    with pytest.raises(LocalProtocolError, match="registering"):
        client.start(1.0)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="not a SIP URI"):
        make_client(contact="http://example.com")
    with pytest.raises(ValueError, match="expires_s"):
        make_client(expires_s=0)
    with pytest.raises(ValueError, match="retry_base_s"):
        make_client(retry_base_s=700.0)


# -- granted time and refresh -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("granted", "refresh_after"), [(10, 5.0), (120, 60.0), (600, 540.0), (3600, 3540.0)]
)
def test_refresh_is_a_minute_before_expiry_or_at_half_time(
    granted: int, refresh_after: float
) -> None:
    client = make_client()
    register(client, now=100.0, expires=granted)
    assert client.next_deadline() == pytest.approx(100.0 + refresh_after)

    client.handle_timer(100.0 + refresh_after - 0.001)  # early: nothing happens
    assert client.requests_to_send() == []
    client.handle_timer(100.0 + refresh_after)
    refresh = sent(client)
    assert refresh.cseq.number == 3
    assert refresh.headers.get("Authorization") is None  # each attempt starts afresh
    assert client.state is RegistrationState.REGISTERED
    assert client.next_deadline() == pytest.approx(100.0 + granted)  # now: the expiry
    assert events(client) == []


def test_refresh_answered_gives_an_event_and_the_next_refresh() -> None:
    client = make_client()
    register(client, expires=600)
    client.handle_timer(540.0)
    refresh = sent(client)
    client.receive_response(challenge(refresh, "n2"), 540.0)
    again = sent(client)
    client.receive_response(ok(again, 600), 540.5)
    assert events(client) == [
        RegistrationChanged(RegistrationState.REGISTERED, "200 OK, expires in 600 s", 600)
    ]
    assert client.next_deadline() == pytest.approx(1080.0)


def test_registration_running_out_while_refreshing_is_reported() -> None:
    client = make_client()
    register(client, expires=10)
    client.handle_timer(5.0)
    refresh = sent(client)
    client.handle_timer(10.0)
    assert client.state is RegistrationState.REGISTERING
    assert events(client) == [
        RegistrationChanged(RegistrationState.REGISTERING, "registration expired while refreshing")
    ]
    assert client.next_deadline() is None  # the core's 408 or an answer comes next
    client.receive_response(ok(refresh, 10), 12.0)
    assert client.state is RegistrationState.REGISTERED


def test_granted_time_is_our_contacts_parameter_among_several() -> None:
    client = make_client()
    client.start(0.0)
    request = sent(client)
    response = reply(
        request,
        200,
        ("Contact", "<sip:phone@192.0.2.7:5062>;expires=900"),
        ("Contact", "<sip:telerapat@127.0.0.1:5061>;expires=800"),
        ("Contact", "<sip:TELERAPAT@127.0.0.1:5060>;expires=700"),  # user differs in case
        ("Contact", "<sip:telerapat@127.0.0.1:5060;ob>;expires=300"),  # ours (§19.1.4)
        ("Expires", "1200"),
    )
    client.receive_response(response, 0.0)
    assert events(client)[-1].expires_s == 300


def test_granted_time_falls_back_to_expires_then_to_what_we_asked() -> None:
    client = make_client()
    client.start(0.0)
    request = sent(client)
    client.receive_response(reply(request, 200, ("Contact", f"<{CONTACT}>"), ("Expires", "450")), 0)
    assert events(client)[-1].expires_s == 450

    other = make_client(expires_s=1800)
    other.start(0.0)
    request = sent(other)
    other.receive_response(reply(request, 200, ("Contact", f"<{CONTACT}>")), 0.0)
    assert events(other)[-1].expires_s == 1800


@pytest.mark.parametrize(
    ("contacts", "reason"),
    [
        ((), "200 OK without our Contact"),
        (
            ("<sip:telerapat@127.0.0.1:5060;transport=tcp>;expires=60",),
            "200 OK without our Contact",
        ),
        (("<sip:telerapat@127.0.0.1>;expires=60",), "200 OK without our Contact"),
        ((f"<{CONTACT}>;expires=0",), "200 OK granting 0 s"),
    ],
)
def test_2xx_without_our_binding_is_a_failure(contacts: tuple[str, ...], reason: str) -> None:
    client = make_client()
    client.start(0.0)
    request = sent(client)
    client.receive_response(reply(request, 200, *(("Contact", c) for c in contacts)), 0.0)
    assert client.state is RegistrationState.RETRY_WAIT
    assert events(client)[-1] == RegistrationChanged(RegistrationState.RETRY_WAIT, reason)


# -- 423 Interval Too Brief ----------------------------------------------------------------------


def test_423_asks_again_at_once_with_min_expires_and_keeps_it() -> None:
    client = make_client(expires_s=30)
    client.start(0.0)
    first = sent(client)
    client.receive_response(challenge(first), 0.0)
    second = sent(client)
    client.receive_response(reply(second, 423, ("Min-Expires", "120")), 0.0)
    third = sent(client)
    assert third.headers.get("Expires") == "120"
    assert third.cseq.number == 3
    credentials = parse_credentials(third.headers.get("Authorization") or "")
    assert credentials.nc == "00000002"  # the challenge answered again, counted on
    client.receive_response(ok(third, 120), 0.0)
    assert client.state is RegistrationState.REGISTERED

    client.handle_timer(60.0)
    assert sent(client).headers.get("Expires") == "120"  # refreshes keep the minimum


@pytest.mark.parametrize("min_expires", [None, "30", "10", "soon"])
def test_423_without_a_larger_min_expires_is_a_failure(min_expires: str | None) -> None:
    client = make_client(expires_s=30)
    client.start(0.0)
    request = sent(client)
    headers = () if min_expires is None else (("Min-Expires", min_expires),)
    client.receive_response(reply(request, 423, *headers), 0.0)
    assert client.state is RegistrationState.RETRY_WAIT
    assert client.last_reason == "423 Interval Too Brief without a usable Min-Expires"


# -- failures and back-off ----------------------------------------------------------------------


def test_403_backs_off_doubling_with_a_cap_and_jitter() -> None:
    client = make_client(retry_base_s=30.0, retry_max_s=600.0)
    now = 0.0
    client.start(now)
    waits: list[float] = []
    for _ in range(8):
        client.receive_response(reply(sent(client), 403), now)
        assert events(client)[-1] == RegistrationChanged(
            RegistrationState.RETRY_WAIT, "403 Forbidden"
        )
        deadline = client.next_deadline()
        assert deadline is not None
        waits.append(deadline - now)
        now = deadline
        client.handle_timer(now)
        assert events(client) == [RegistrationChanged(RegistrationState.REGISTERING, "retrying")]
    for wait, ceiling in zip(waits, back_off_ceilings(30.0, 600.0, 8), strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert len(set(waits)) == len(waits)  # jittered


def test_jitter_spans_half_to_all_of_the_ceiling() -> None:
    waits = []
    for seed in range(200):
        client = make_client(seed)
        client.start(0.0)
        client.receive_response(reply(sent(client), 503), 0.0)
        deadline = client.next_deadline()
        assert deadline is not None
        waits.append(deadline)
    assert 15.0 <= min(waits) < 16.0
    assert 29.0 < max(waits) <= 30.0


def test_timeout_then_success_resets_the_back_off() -> None:
    client = make_client()
    client.start(0.0)
    client.receive_response(reply(sent(client), 408), 32.0)
    assert client.last_reason == "timeout"
    retry_at = client.next_deadline()
    assert retry_at is not None and 32.0 + 15.0 <= retry_at <= 32.0 + 30.0
    client.handle_timer(retry_at)
    client.receive_response(reply(sent(client), 408), retry_at + 32)
    second_retry = client.next_deadline()
    assert second_retry is not None and 30.0 <= second_retry - (retry_at + 32) <= 60.0

    client.handle_timer(second_retry)
    client.receive_response(ok(sent(client), 600), second_retry)
    assert client.state is RegistrationState.REGISTERED
    client.handle_timer(second_retry + 540)
    client.receive_response(reply(sent(client), 500), second_retry + 541)
    after_reset = client.next_deadline()
    assert after_reset is not None and 15.0 <= after_reset - (second_retry + 541) <= 30.0


def test_failed_refresh_keeps_trying_until_registered_again() -> None:
    client = make_client()
    register(client, expires=600)
    client.handle_timer(540.0)
    client.receive_response(reply(sent(client), 500), 540.0)
    assert events(client) == [
        RegistrationChanged(RegistrationState.RETRY_WAIT, "500 Server Internal Error")
    ]
    assert client.expires_at == pytest.approx(600.0)  # the old grant, not renewed
    for _ in range(3):
        deadline = client.next_deadline()
        assert deadline is not None
        client.handle_timer(deadline)
        client.receive_response(reply(sent(client), 408), deadline + 32)
    deadline = client.next_deadline()
    assert deadline is not None
    client.handle_timer(deadline)
    request = sent(client)
    client.receive_response(challenge(request, "fresh"), deadline)
    client.receive_response(ok(sent(client), 600), deadline)
    assert client.state is RegistrationState.REGISTERED


def test_registrar_restart_challenges_the_refresh_afresh() -> None:
    """A restarted registrar lost our binding and its nonces: the refresh meets a 401
    with a new nonce, which is answered like the first one."""
    client = make_client()
    register(client, expires=600)
    client.handle_timer(540.0)
    refresh = sent(client)
    client.receive_response(challenge(refresh, "after-restart"), 540.0)
    answer = sent(client)
    credentials = parse_credentials(answer.headers.get("Authorization") or "")
    assert (credentials.nonce, credentials.nc) == ("after-restart", "00000001")
    client.receive_response(ok(answer, 600), 540.1)
    assert client.state is RegistrationState.REGISTERED
    assert [e.state for e in events(client)] == [RegistrationState.REGISTERED]


# -- challenges ------------------------------------------------------------------------------------


def test_stale_challenge_is_answered_with_the_new_nonce() -> None:
    client = make_client()
    client.start(0.0)
    client.receive_response(challenge(sent(client), "old"), 0.0)
    answered = sent(client)
    client.receive_response(challenge(answered, "new", stale=True), 0.0)
    again = sent(client)
    credentials = parse_credentials(again.headers.get("Authorization") or "")
    assert (credentials.nonce, credentials.nc) == ("new", "00000001")
    assert len(again.headers.get_all("Authorization")) == 1
    client.receive_response(ok(again), 0.0)
    assert client.state is RegistrationState.REGISTERED


def test_repeated_challenge_after_our_answer_is_authentication_failed() -> None:
    client = make_client()
    client.start(0.0)
    client.receive_response(challenge(sent(client), "n1"), 0.0)
    client.receive_response(challenge(sent(client), "n2"), 0.0)
    assert client.state is RegistrationState.RETRY_WAIT
    assert events(client)[-1] == RegistrationChanged(
        RegistrationState.RETRY_WAIT, "authentication failed"
    )
    assert client.requests_to_send() == []


def test_endless_stale_challenges_give_up() -> None:
    client = make_client()
    client.start(0.0)
    client.receive_response(challenge(sent(client), "n0"), 0.0)
    for count in range(1, MAX_CHALLENGES_PER_ATTEMPT + 1):
        client.receive_response(challenge(sent(client), f"n{count}", stale=True), 0.0)
    assert client.last_reason == "authentication failed"


def test_proxy_and_registrar_challenges_are_both_answered() -> None:
    client = make_client()
    client.start(0.0)
    proxy = reply(
        sent(client), 407, ("Proxy-Authenticate", 'Digest realm="proxy", nonce="p1", qop="auth"')
    )
    client.receive_response(proxy, 0.0)
    client.receive_response(challenge(sent(client), "r1"), 0.0)
    both = sent(client)
    proxy_answer = parse_credentials(both.headers.get("Proxy-Authorization") or "")
    registrar_answer = parse_credentials(both.headers.get("Authorization") or "")
    assert (proxy_answer.realm, proxy_answer.nc) == ("proxy", "00000002")
    assert (registrar_answer.realm, registrar_answer.nc) == (REALM, "00000001")
    assert proxy_answer.cnonce != registrar_answer.cnonce
    client.receive_response(ok(both), 0.0)
    assert client.state is RegistrationState.REGISTERED


@pytest.mark.parametrize(
    ("credentials", "value", "reason"),
    [
        (None, KAMAILIO_CHALLENGE.format(nonce="n"), "401 Unauthorized: no credentials configured"),
        (
            CREDENTIALS,
            'Digest realm="r", nonce="n", qop="auth-int"',
            "401 Unauthorized: no challenge we can answer",
        ),
    ],
)
def test_challenge_we_cannot_answer_is_a_failure(
    credentials: ClientCredentials | None, value: str, reason: str
) -> None:
    client = make_client(credentials=credentials)
    client.start(0.0)
    client.receive_response(reply(sent(client), 401, ("WWW-Authenticate", value)), 0.0)
    assert client.state is RegistrationState.RETRY_WAIT
    assert client.last_reason == reason


# -- stopping ------------------------------------------------------------------------------------


def test_stop_unregisters_with_expires_zero() -> None:
    client = make_client()
    last = register(client)
    client.stop(100.0)
    unregister = sent(client)
    assert unregister.headers.get("Expires") == "0"
    assert unregister.headers.get("Contact") == f"<{CONTACT}>"
    assert unregister.cseq.number == last.cseq.number + 1
    assert unregister.headers.get("Authorization") is None
    assert events(client) == [RegistrationChanged(RegistrationState.UNREGISTERING, "unregistering")]
    assert client.next_deadline() is None

    client.receive_response(challenge(unregister, "bye"), 100.0)
    answered = sent(client)
    assert answered.headers.get("Expires") == "0"
    assert parse_credentials(answered.headers.get("Authorization") or "").nonce == "bye"
    client.receive_response(reply(answered, 200), 100.1)  # no Contact left: all removed
    assert client.state is RegistrationState.STOPPED
    assert client.expires_at is None
    assert events(client) == [RegistrationChanged(RegistrationState.STOPPED, "unregistered")]
    client.stop(101.0)  # again: nothing
    assert client.requests_to_send() == [] and events(client) == []


def test_failed_unregister_still_stops() -> None:
    client = make_client()
    register(client)
    client.stop(100.0)
    client.receive_response(reply(sent(client), 408), 132.0)
    assert client.state is RegistrationState.STOPPED
    assert client.last_reason == "unregister: timeout"
    assert client.next_deadline() is None


def test_stop_before_registering_stops_at_once() -> None:
    client = make_client()
    client.stop(0.0)
    assert client.state is RegistrationState.STOPPED
    assert client.requests_to_send() == []
    assert events(client) == [RegistrationChanged(RegistrationState.STOPPED, "stopped")]


def test_stop_while_waiting_to_retry_without_a_binding_stops_at_once() -> None:
    client = make_client()
    client.start(0.0)
    client.receive_response(reply(sent(client), 403), 0.0)
    client.stop(1.0)
    assert client.state is RegistrationState.STOPPED
    assert client.requests_to_send() == []
    assert client.next_deadline() is None


def test_stop_after_a_failed_refresh_unregisters_while_the_old_grant_lasts() -> None:
    client = make_client()
    register(client, expires=600)
    client.handle_timer(540.0)
    client.receive_response(reply(sent(client), 503), 540.0)
    client.stop(550.0)
    assert sent(client).headers.get("Expires") == "0"
    assert client.state is RegistrationState.UNREGISTERING


def test_stop_while_registering_unregisters_and_ignores_the_old_answer() -> None:
    client = make_client()
    client.start(0.0)
    first = sent(client)
    client.stop(0.5)
    unregister = sent(client)
    assert unregister.headers.get("Expires") == "0"
    client.receive_response(ok(first), 0.6)  # the first REGISTER's answer: stale CSeq
    assert client.state is RegistrationState.UNREGISTERING
    client.receive_response(reply(unregister, 200), 0.7)
    assert client.state is RegistrationState.STOPPED


# -- which responses count -----------------------------------------------------------------------


def test_responses_to_other_requests_are_ignored() -> None:
    client = make_client()
    client.start(0.0)
    first = sent(client)
    client.receive_response(challenge(first), 0.0)
    second = sent(client)
    client.receive_response(ok(first), 0.0)  # CSeq 1, not our last
    wrong_call = ok(second)
    wrong_call.headers.set("Call-ID", "someone-else")
    client.receive_response(wrong_call, 0.0)
    wrong_method = ok(second)
    wrong_method.headers.set("CSeq", "2 INVITE")
    client.receive_response(wrong_method, 0.0)
    client.receive_response(reply(second, 100), 0.0)  # provisional
    broken = ok(second)
    broken.headers.set("CSeq", "two REGISTER")
    client.receive_response(broken, 0.0)
    assert client.state is RegistrationState.REGISTERING
    assert client.requests_to_send() == []
    client.receive_response(ok(second), 0.0)
    assert client.state is RegistrationState.REGISTERED
    client.receive_response(ok(second), 0.0)  # a duplicate after the final: ignored
    assert [e.state for e in events(client)] == [
        RegistrationState.REGISTERING,
        RegistrationState.REGISTERED,
    ]


def test_cseq_counts_up_and_call_id_and_tag_stay_over_a_long_life() -> None:
    client = make_client()
    register(client, expires=120)
    now = 0.0
    for _ in range(20):
        deadline = client.next_deadline()
        assert deadline is not None
        now = deadline
        client.handle_timer(now)
        client.receive_response(challenge(sent(client), f"n{now}"), now)
        request = sent(client)
        client.receive_response(ok(request, 120), now)
    assert request.cseq.number == 2 + 20 * 2
    assert request.call_id == "reg-1@127.0.0.1"
    assert request.from_address.tag == "f00d"


# -- driven by twisted.internet.task.Clock, against our own registrar ------------------------


class FarEnd:
    """A registrar with digest auth (ours), which can restart or go silent."""

    def __init__(self) -> None:
        self.silent = False
        self.restarts = 0
        self.registrar = self._fresh_registrar()

    def restart(self) -> None:
        """Lose every binding and start signing nonces with a new secret."""
        self.restarts += 1
        self.registrar = self._fresh_registrar()

    def _fresh_registrar(self) -> Registrar:
        secret = random.Random(self.restarts).randbytes(32)
        account = AccountSecrets(
            "telerapat", compute_ha1("telerapat", REALM, "rahasia", "MD5"), None
        )
        authenticator = Authenticator(REALM, {"telerapat": account}, secret, rng=random.Random(5))
        return Registrar(
            authenticator, REALM, max_expires_s=600, default_expires_s=600, rng=random.Random(6)
        )

    def answer(self, request: Request, now: float) -> Response | None:
        return None if self.silent else self.registrar.handle(request, FLOW, now)

    def bound(self, now: float) -> bool:
        return bool(self.registrar.bindings("telerapat", now))


class ClockDriver:
    """What the Twisted edge does: send what the client queued, and keep one callLater at
    its next deadline. An unanswered REGISTER gets the core's 408 after Timer F (32 s)."""

    TIMER_F_S = 32.0

    def __init__(self, client: RegistrationClient, clock: Clock, far_end: FarEnd) -> None:
        self.client = client
        self.clock = clock
        self.far_end = far_end
        self.sent: list[Request] = []
        self.log: list[RegistrationChanged] = []
        self._timer: IDelayedCall | None = None

    def run(self, step: Callable[[float], None]) -> None:
        """Call one client entry point with the clock's time, then do its bidding."""
        step(self.clock.seconds())
        self._flush()

    def _time_out(self, request: Request) -> None:
        self.run(partial(self.client.receive_response, response_to(request, 408)))

    def _flush(self) -> None:
        while requests := self.client.requests_to_send():
            for request in requests:
                self.sent.append(request)
                response = self.far_end.answer(request, self.clock.seconds())
                if response is None:
                    self.clock.callLater(self.TIMER_F_S, self._time_out, request)
                else:
                    self.client.receive_response(response, self.clock.seconds())
        self.log.extend(events(self.client))
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        deadline = self.client.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self.clock.seconds())
            self._timer = self.clock.callLater(delay, self.run, self.client.handle_timer)


def test_clock_driven_registration_survives_hours_a_restart_and_an_outage() -> None:
    clock = Clock()
    far_end = FarEnd()
    client = make_client(seed=9)
    driver = ClockDriver(client, clock, far_end)
    driver.run(client.start)
    assert client.state is RegistrationState.REGISTERED
    assert driver.log[-1].reason == "200 OK, expires in 600 s"  # the registrar's maximum

    def advance(seconds: float, *, always_bound: bool) -> None:
        for _ in range(int(seconds)):
            clock.advance(1)
            if always_bound:
                assert far_end.bound(clock.seconds()), clock.seconds()

    advance(3 * 3600, always_bound=True)
    # Each refresh is a 401 and an answered REGISTER, every 540 s.
    assert len(driver.sent) == 2 + 2 * (3 * 3600 // 540)
    assert [r.cseq.number for r in driver.sent] == list(range(1, len(driver.sent) + 1))
    assert {r.call_id for r in driver.sent} == {"reg-1@127.0.0.1"}

    far_end.restart()  # loses the binding and the nonce secret
    assert not far_end.bound(clock.seconds())
    advance(540, always_bound=False)
    assert far_end.bound(clock.seconds())
    assert client.state is RegistrationState.REGISTERED

    far_end.silent = True  # the registrar goes away: refreshes time out, back-off
    before = len(driver.log)
    advance(1800, always_bound=False)
    outage = driver.log[before:]
    assert not far_end.bound(clock.seconds())
    retries = [e for e in outage if e.state is RegistrationState.RETRY_WAIT]
    assert len(retries) >= 4 and {e.reason for e in retries} == {"timeout"}
    assert RegistrationState.REGISTERED not in {e.state for e in outage}
    far_end.silent = False
    # A wait never exceeds retry_max_s (600 s), and a REGISTER already out needs its 32 s.
    advance(600 + ClockDriver.TIMER_F_S, always_bound=False)
    assert client.state is RegistrationState.REGISTERED
    assert far_end.bound(clock.seconds())

    driver.run(client.stop)
    assert client.state is RegistrationState.STOPPED
    assert not far_end.bound(clock.seconds())
    assert client.next_deadline() is None
    assert [e.state for e in driver.log[-2:]] == [
        RegistrationState.UNREGISTERING,
        RegistrationState.STOPPED,
    ]
    assert clock.getDelayedCalls() == []
