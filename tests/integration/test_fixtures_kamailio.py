"""The issue #5 fixtures on their own: the Kamailio trunk with SIPp, and the dial-out UAS."""

from __future__ import annotations

import hashlib
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.harness import (
    LOCALHOST,
    SIPP,
    SIPP_SCENARIOS,
    ProcessGroup,
    Sipp,
    SippRun,
    free_port,
    run_sipp,
    start_sipp,
)
from tests.integration.kamailio import (
    KAMAILIO,
    TRUNK_USER,
    Binding,
    RunningKamailio,
    sip_port_of,
    start_dialout_uas,
    start_kamailio,
    wait_for_sipp_listening,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian package sip-tester)"),
    pytest.mark.skipif(KAMAILIO is None, reason="needs kamailio (Debian package kamailio)"),
]

PASSWORD = "trunk-secret"
DID = "0215551000"
REGISTER_EXPIRES_S = 10
HANGUP_MS = 300


@pytest.fixture
def kamailio(procs: ProcessGroup, tmp_path: Path) -> RunningKamailio:
    return start_kamailio(procs, tmp_path / "kamailio", port=free_port(), password=PASSWORD)


@dataclass(frozen=True)
class Response:
    """A response as the stand-in bridge reads it."""

    status: int
    text: str

    @classmethod
    def parse(cls, data: bytes) -> Response:
        text = data.decode()
        match = re.match(r"SIP/2\.0 (\d{3}) ", text)
        assert match, f"not a response: {text[:200]!r}"
        return cls(int(match.group(1)), text)

    def header(self, name: str) -> str:
        match = re.search(rf"^{re.escape(name)}:[ \t]*(.*?)\r$", self.text, re.M | re.I)
        assert match, f"no {name} in:\n{self.text}"
        return match.group(1)

    @property
    def cseq(self) -> int:
        return int(self.header("CSeq").split()[0])

    @property
    def body(self) -> str:
        return self.text.split("\r\n\r\n", 1)[1]


DIGEST_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def digest_authorization(
    challenge: str, method: str, uri: str, *, username: str, password: str, nonce_count: int,
    algorithm: str = "MD5",
) -> str:
    """An Authorization value for a qop=auth challenge (RFC 2617 §3.2.2, RFC 7616 §3.4.1),
    written out here so that this self-test does not depend on the bridge code under test."""
    realm = re.search(r'realm="([^"]*)"', challenge)
    nonce = re.search(r'nonce="([^"]*)"', challenge)
    assert realm and nonce, challenge
    nc = f"{nonce_count:08x}"
    cnonce = f"c{nc}"

    def digest(text: str) -> str:
        return DIGEST_HASHES[algorithm](text.encode()).hexdigest()

    ha1 = digest(f"{username}:{realm.group(1)}:{password}")
    response = digest(f"{ha1}:{nonce.group(1)}:{nc}:{cnonce}:auth:{digest(f'{method}:{uri}')}")
    return (
        f'Digest username="{username}", realm="{realm.group(1)}", nonce="{nonce.group(1)}", '
        f'uri="{uri}", response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, '
        f'cnonce="{cnonce}"'
    )


def assert_succeeded(run: SippRun, kamailio: RunningKamailio) -> None:
    assert run.returncode == 0, f"{run.describe()}\n--- kamailio:\n{kamailio.log()[-4000:]}"


def register(
    procs: ProcessGroup, kamailio: RunningKamailio, contact_port: int, *,
    password: str = PASSWORD, expires_s: int = REGISTER_EXPIRES_S,
) -> SippRun:
    """Register TRUNK_USER at the trunk with a Contact on `contact_port`."""
    return run_sipp(
        procs, kamailio.sipp_peer, SIPP_SCENARIOS / "trunk_register.xml", service=TRUNK_USER,
        extra_args=["-au", TRUNK_USER, "-ap", password, "-key", "contact_port",
                    str(contact_port), "-key", "expires", str(expires_s)],
        timeout_s=10,
    )


def call_did(
    procs: ProcessGroup, kamailio: RunningKamailio, did: str = DID, *, hangup_ms: int = 200
) -> SippRun:
    """The PSTN gateway calls `did` through the trunk and hangs up after `hangup_ms`,
    unless the callee hangs up first."""
    return run_sipp(procs, kamailio.sipp_peer, SIPP_SCENARIOS / "trunk_uac.xml", service=did,
                    extra_args=["-d", str(hangup_ms)], timeout_s=10)


def start_callee(procs: ProcessGroup, kamailio: RunningKamailio, *, hangup_ms: int) -> Sipp:
    """A SIPp UAS standing in for the registered bridge; it hangs up after `hangup_ms`,
    unless the caller hangs up first."""
    callee = start_sipp(procs, kamailio.sipp_peer, SIPP_SCENARIOS / "trunk_uas.xml",
                        service=TRUNK_USER, extra_args=["-d", str(hangup_ms)], max_run_s=15)
    wait_for_sipp_listening(callee)
    return callee


def register_callee(procs: ProcessGroup, kamailio: RunningKamailio, callee: Sipp) -> Binding:
    registration = register(procs, kamailio, sip_port_of(callee))
    assert_succeeded(registration, kamailio)
    return kamailio.wait_for_binding(port=sip_port_of(callee), timeout_s=2)


def names_kamailio(kamailio: RunningKamailio, route: str | None) -> bool:
    """Whether a Record-Route or Route value is Kamailio's own entry (loose routing,
    RFC 3261 §16.6 step 4; rr's ftag parameter after it)."""
    return re.fullmatch(rf"<sip:{LOCALHOST}:{kamailio.port};lr(;[^>]*)?>", route or "") is not None


# -- 1. The trunk: registrar and DID proxy -------------------------------------------------


def test_register_with_digest_is_challenged_then_binds_the_contact(
    procs: ProcessGroup, kamailio: RunningKamailio
) -> None:
    contact_port = free_port()

    registration = register(procs, kamailio, contact_port)

    assert_succeeded(registration, kamailio)
    (challenge,) = registration.responses_received("REGISTER", 401)
    offer = challenge.header("WWW-Authenticate") or ""
    assert re.search(r'^Digest .*realm="127\.0\.0\.1"', offer), offer
    assert 'qop="auth"' in offer
    (accepted,) = registration.responses_received("REGISTER", 200)
    assert f";expires={REGISTER_EXPIRES_S}" in (accepted.header("Contact") or "")
    binding = kamailio.wait_for_binding(port=contact_port, timeout_s=2)
    assert binding.contact == f"sip:{TRUNK_USER}@{LOCALHOST}:{contact_port};transport=UDP"
    assert 0 < binding.expires_s <= REGISTER_EXPIRES_S
    assert binding.user_agent == "sipp-trunk-register"


def test_register_below_min_expires_is_bound_for_min_expires(
    procs: ProcessGroup, kamailio: RunningKamailio
) -> None:
    registration = register(procs, kamailio, free_port(), expires_s=2)

    assert_succeeded(registration, kamailio)
    (accepted,) = registration.responses_received("REGISTER", 200)
    assert ";expires=5" in (accepted.header("Contact") or "")


def test_register_with_a_wrong_password_is_challenged_again_and_not_bound(
    procs: ProcessGroup, kamailio: RunningKamailio
) -> None:
    registration = register(procs, kamailio, free_port(), password="not-the-password")

    assert registration.returncode != 0
    assert len(registration.responses_received("REGISTER", 401)) == 2
    assert kamailio.bindings() == []


@pytest.mark.parametrize("did", [DID, "+62215551000"])
def test_did_call_reaches_the_registered_contact_with_record_route(
    procs: ProcessGroup, kamailio: RunningKamailio, did: str
) -> None:
    callee = start_callee(procs, kamailio, hangup_ms=5000)
    binding = register_callee(procs, kamailio, callee)

    call = call_did(procs, kamailio, did, hangup_ms=200)

    assert_succeeded(call, kamailio)
    (answer,) = call.responses_received("INVITE", 200)
    assert names_kamailio(kamailio, answer.header("Record-Route"))
    (ack,) = call.requests_sent("ACK")
    assert names_kamailio(kamailio, ack.header("Route"))
    assert call.responses_received("BYE", 200)
    answered = callee.finish(timeout_s=10)
    assert_succeeded(answered, kamailio)
    (invite,) = answered.requests_received("INVITE")
    assert invite.start_line == f"INVITE {binding.contact} SIP/2.0"
    assert f"<sip:{did}@" in (invite.header("To") or "")  # the dialled number stays in To
    assert names_kamailio(kamailio, invite.header("Record-Route"))
    (bye,) = answered.requests_received("BYE")
    assert len(bye.headers("Via")) == 2  # through Kamailio, not straight from the gateway


def test_callee_bye_follows_the_route_set_back_to_the_gateway(
    procs: ProcessGroup, kamailio: RunningKamailio
) -> None:
    callee = start_callee(procs, kamailio, hangup_ms=200)
    register_callee(procs, kamailio, callee)

    call = call_did(procs, kamailio, hangup_ms=5000)

    assert_succeeded(call, kamailio)
    answered = callee.finish(timeout_s=10)
    assert_succeeded(answered, kamailio)
    (bye,) = answered.requests_sent("BYE")
    assert names_kamailio(kamailio, bye.header("Route"))
    (received,) = call.requests_received("BYE")
    assert received.start_line.startswith("BYE sip:gateway@")
    assert len(received.headers("Via")) == 2
    assert answered.responses_received("BYE", 200)


def test_restart_forgets_the_binding_until_registered_again(
    procs: ProcessGroup, kamailio: RunningKamailio
) -> None:
    contact_port = free_port()
    assert_succeeded(register(procs, kamailio, contact_port), kamailio)
    first = kamailio.wait_for_binding(port=contact_port, timeout_s=2)

    kamailio.restart()

    assert kamailio.bindings() == []
    unanswered = call_did(procs, kamailio)
    assert_succeeded(unanswered, kamailio)
    assert unanswered.responses_received("INVITE", 404)
    assert_succeeded(register(procs, kamailio, contact_port), kamailio)
    assert kamailio.wait_for_binding(port=contact_port, timeout_s=2).contact == first.contact


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_register_answered_by_hand_binds_with_either_digest_algorithm(
    procs: ProcessGroup, tmp_path: Path, algorithm: str
) -> None:
    """SIPp 3.6 answers MD5 only; this REGISTER is written out, as the bridge's would be."""
    trunk = start_kamailio(procs, tmp_path / "trunk", port=free_port(), password=PASSWORD,
                           algorithm=algorithm)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind((LOCALHOST, 0))
        client.settimeout(5.0)
        contact_port = int(client.getsockname()[1])
        uri = f"sip:{LOCALHOST}:{trunk.port}"

        def send_register(cseq: int, authorization: str | None) -> Response:
            lines = [
                f"REGISTER {uri} SIP/2.0",
                f"Via: SIP/2.0/UDP {LOCALHOST}:{contact_port};branch=z9hG4bK-reg-{cseq}",
                f"From: <sip:{TRUNK_USER}@{LOCALHOST}>;tag=reg",
                f"To: <sip:{TRUNK_USER}@{LOCALHOST}>",
                f"Call-ID: reg-{contact_port}", f"CSeq: {cseq} REGISTER",
                f"Contact: <sip:{TRUNK_USER}@{LOCALHOST}:{contact_port}>",
                f"Expires: {REGISTER_EXPIRES_S}", "Max-Forwards: 70",
                *([f"Authorization: {authorization}"] if authorization else []),
                "Content-Length: 0",
            ]
            client.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), (LOCALHOST, trunk.port))
            return Response.parse(client.recv(65535))

        challenge = send_register(1, None)
        assert challenge.status == 401
        offer = challenge.header("WWW-Authenticate")
        assert f"algorithm={algorithm}" in offer, offer
        accepted = send_register(2, digest_authorization(
            offer, "REGISTER", uri, username=TRUNK_USER, password=PASSWORD, nonce_count=1,
            algorithm=algorithm))

    assert accepted.status == 200, accepted.text
    assert trunk.wait_for_binding(port=contact_port, timeout_s=2)


# -- 2. The dial-out UAS (a video meeting's SIP gateway) -----------------------------------


class DialingBridge:
    """Raw-UDP SIP requests standing in for the bridge's dial-out leg, one call at a time."""

    def __init__(self, uas_port: int) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((LOCALHOST, 0))
        self.socket.settimeout(5.0)
        self.port = int(self.socket.getsockname()[1])
        self.uas = (LOCALHOST, uas_port)
        self.uri = f"sip:meeting@{LOCALHOST}:{uas_port}"
        self.call_id = ""
        self._requests_sent = 0
        self._invite_branch = ""

    def __enter__(self) -> DialingBridge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.socket.close()

    def invite(self, call_id: str, cseq: int, authorization: str | None = None) -> Response:
        """Send an INVITE with an offer; return its final response (after any 1xx)."""
        self.call_id = call_id
        body = (f"v=0\r\no=bridge 1 1 IN IP4 {LOCALHOST}\r\ns=-\r\nc=IN IP4 {LOCALHOST}\r\n"
                "t=0 0\r\nm=audio 40002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n")
        headers = [f"Contact: <sip:bridge@{LOCALHOST}:{self.port}>",
                   "Content-Type: application/sdp"]
        if authorization:
            headers.append(f"Authorization: {authorization}")
        self._invite_branch = self._send("INVITE", cseq, None, headers, body)
        while True:
            response = Response.parse(self.socket.recv(65535))
            if response.status >= 200:
                return response

    def ack(self, final: Response) -> None:
        """ACK a final response: in the INVITE's transaction when it is not a 2xx
        (RFC 3261 §17.1.1.3), as a request of its own for a 2xx (§13.2.2.4)."""
        branch = self._invite_branch if final.status >= 300 else None
        self._send("ACK", final.cseq, final.header("To"), [], "", branch=branch)

    def bye(self, answer: Response) -> Response:
        self._send("BYE", answer.cseq + 1, answer.header("To"), [], "")
        return Response.parse(self.socket.recv(65535))

    def answer_bye(self) -> str:
        """Wait for the far end's BYE and answer it with 200; return the BYE."""
        data = self.socket.recv(65535).decode()
        assert data.startswith("BYE "), data
        head = data.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
        copied = [line for line in head if line.split(":", 1)[0].strip().lower()
                  in ("via", "from", "to", "call-id", "cseq")]
        reply = "\r\n".join(["SIP/2.0 200 OK", *copied, "Content-Length: 0", "", ""])
        self.socket.sendto(reply.encode(), self.uas)
        return data

    def _send(self, method: str, cseq: int, to: str | None, headers: list[str], body: str,
              *, branch: str | None = None) -> str:
        self._requests_sent += 1
        branch = branch or f"z9hG4bK-{self.port}-{self._requests_sent}"
        lines = [
            f"{method} {self.uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {LOCALHOST}:{self.port};branch={branch}",
            f"From: <sip:bridge@{LOCALHOST}>;tag=bridge-{self.call_id}",
            f"To: {to or f'<{self.uri}>'}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
            *headers,
            f"Content-Length: {len(body.encode())}",
        ]
        self.socket.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), self.uas)
        return branch


def start_meeting(procs: ProcessGroup, calls: int) -> tuple[Sipp, int]:
    """The dial-out UAS for `calls` calls, and the RTP port its answer names."""
    rtp_port = free_port()
    uas = start_dialout_uas(procs, sip_port=free_port(), rtp_port=rtp_port, user=TRUNK_USER,
                            password=PASSWORD, hangup_ms=HANGUP_MS, calls=calls, max_run_s=15)
    return uas, rtp_port


def answer_challenge(bridge: DialingBridge, challenge: Response, nonce_count: int) -> str:
    return digest_authorization(challenge.header("WWW-Authenticate"), "INVITE", bridge.uri,
                                username=TRUNK_USER, password=PASSWORD,
                                nonce_count=nonce_count)


def first_call_until_far_end_hangs_up(
    uas: Sipp, bridge: DialingBridge, rtp_port: int
) -> Response:
    """INVITE, 401, INVITE with credentials, 200 pointing RTP at `rtp_port`, ACK, and the
    far end's BYE; return the 401."""
    challenge = bridge.invite("dial-1", 1)
    assert challenge.status == 401, challenge.text
    bridge.ack(challenge)
    answer = bridge.invite("dial-1", 2, answer_challenge(bridge, challenge, 1))
    assert answer.status == 200, f"{answer.text}\n{uas.process.output()[-2000:]}"
    assert f"c=IN IP4 {LOCALHOST}" in answer.body
    assert re.search(rf"^m=audio {rtp_port} RTP/AVP 0 101\r$", answer.body, re.M)
    assert "a=rtpmap:101 telephone-event/8000" in answer.body
    bridge.ack(answer)
    acked = time.monotonic()
    bye = bridge.answer_bye()
    assert time.monotonic() - acked >= HANGUP_MS / 1000 - 0.05  # not before the pause
    assert "tag=bridge-dial-1" in bye  # the bridge's own From tag, now in To
    return challenge


@pytest.mark.parametrize("redial_credentials", ["reused", "after_new_challenge"])
def test_dialout_uas_challenges_answers_hangs_up_and_takes_the_redial(
    procs: ProcessGroup, redial_credentials: str
) -> None:
    uas, rtp_port = start_meeting(procs, calls=2)
    with DialingBridge(sip_port_of(uas)) as bridge:
        challenge = first_call_until_far_end_hangs_up(uas, bridge, rtp_port)

        if redial_credentials == "reused":
            answer = bridge.invite("dial-2", 1, answer_challenge(bridge, challenge, 2))
        else:
            second_challenge = bridge.invite("dial-2", 1)
            assert second_challenge.status == 401
            bridge.ack(second_challenge)
            answer = bridge.invite("dial-2", 2, answer_challenge(bridge, second_challenge, 1))
        assert answer.status == 200, answer.text
        bridge.ack(answer)
        assert bridge.bye(answer).status == 200  # the room ended: the bridge hangs up

    run = uas.finish(timeout_s=10)
    assert run.returncode == 0, run.describe()
    assert run.statistics.get("SuccessfulCall(C)") == "2"


def test_dialout_uas_refuses_wrong_credentials_and_fails_the_call(procs: ProcessGroup) -> None:
    uas, _ = start_meeting(procs, calls=1)
    with DialingBridge(sip_port_of(uas)) as bridge:
        challenge = bridge.invite("dial-1", 1)
        bridge.ack(challenge)
        wrong = digest_authorization(challenge.header("WWW-Authenticate"), "INVITE",
                                     bridge.uri, username=TRUNK_USER, password="guessed",
                                     nonce_count=1)

        refused = bridge.invite("dial-1", 2, wrong)
        bridge.ack(refused)

    assert refused.status == 403
    run = uas.finish(timeout_s=10)
    assert run.returncode != 0
    assert run.statistics.get("FailedCall(C)") == "1"
    assert "INVITE credentials did not verify" in run.errors
