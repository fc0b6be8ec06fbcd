"""The running bridge's SIP calls as SIPp sees them: OPTIONS, hold, CANCEL, BYE, PINs, digest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.harness import (
    LOCALHOST,
    SIPP,
    SIPP_SCENARIOS,
    KeyPressCaptures,
    ProcessGroup,
    RunningBridge,
    SippRun,
    default_test_config,
    run_sipp,
    start_bridge,
    start_sipp,
)

pytestmark = pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian package sip-tester)")

TRANSPORTS = ["udp", "tcp"]
RTP_TIMEOUT_S = 2
KEY_INTERVAL_S = 0.2  # between the starts of two key presses; each press lasts 140 ms
KEY_PRESSES_MARK = (
    "  <!-- KEY PRESSES: the test puts play_pcap_audio actions and pauses here. -->\n"
)


def call_log(bridge: RunningBridge, call_id: str) -> str:
    """The bridge's log lines about one call."""
    return "\n".join(line for line in bridge.log().splitlines() if f"call={call_id} " in line)


def wait_for_call_log(bridge: RunningBridge, call_id: str, pattern: str) -> str:
    """Wait (bounded) until the call's log matches `pattern`; return the call's log."""
    bridge.process.wait_for_output(rf"call={re.escape(call_id)} [^\n]*{pattern}", timeout_s=5)
    return call_log(bridge, call_id)


def assert_succeeded(run: SippRun) -> None:
    assert run.returncode == 0, run.describe()


def sdp_attribute_lines(body: str) -> list[str]:
    return [line.strip() for line in body.splitlines() if line.strip()]


# -- 1. OPTIONS ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_options_out_of_dialog_gets_200_with_allow_and_accept(
    procs: ProcessGroup, bridge: RunningBridge, transport: str
) -> None:
    run = run_sipp(procs, bridge, SIPP_SCENARIOS / "options.xml", service="2000",
                   transport=transport)
    assert_succeeded(run)
    (answer,) = run.responses_received(status=200)
    assert answer.transport == transport.upper()
    assert answer.method == "OPTIONS"
    allow = {method.strip() for method in (answer.header("Allow") or "").split(",")}
    assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"} <= allow
    assert "application/sdp" in (answer.header("Accept") or "")
    assert re.search(r";tag=\S+", answer.header("To") or "")


# -- 2. A call ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_is_answered_with_pcmu_on_loopback_joins_and_ends_with_bye(
    procs: ProcessGroup, bridge: RunningBridge, transport: str
) -> None:
    run = run_sipp(procs, bridge, SIPP_SCENARIOS / "uac_call.xml", service="2000",
                   transport=transport, extra_args=["-d", "500"])
    assert_succeeded(run)
    statuses = [m.status for m in run.responses_received("INVITE")]
    assert statuses == [100, 200]
    (answer,) = run.responses_received("INVITE", status=200)
    assert answer.header("Content-Type") == "application/sdp"
    sdp = sdp_attribute_lines(answer.body)
    assert "c=IN IP4 127.0.0.1" in sdp
    (m_line,) = [line for line in sdp if line.startswith("m=audio ")]
    port, formats = int(m_line.split()[1]), m_line.split()[3:]
    rtp = bridge.config["rtp"]
    assert isinstance(rtp, dict)
    low, high = (int(p) for p in str(rtp["ports"]).split("-"))
    assert low <= port <= high and port % 2 == 0
    assert formats[0] == "0" and "a=rtpmap:0 PCMU/8000" in sdp
    assert answer.header("Contact") == (
        f"<sip:2000@{LOCALHOST}:{bridge.sip_port}"
        f"{';transport=tcp' if transport == 'tcp' else ''}>"
    )
    assert run.responses_received("BYE", status=200)
    (call_id,) = run.call_ids
    log = wait_for_call_log(bridge, call_id, r"ended \(remote hung up\)")
    assert re.search(rf"answered SIPp from 127\.0\.0\.1:\d+ over {transport}, codec PCMU", log)
    assert "joined as participant" in log
    assert "caller hung up" in log


def test_invite_without_sdp_gets_our_offer_and_the_answer_in_ack_sets_the_codec(
    procs: ProcessGroup, bridge: RunningBridge
) -> None:
    run = run_sipp(procs, bridge, SIPP_SCENARIOS / "uac_late_offer.xml", service="2000",
                   extra_args=["-d", "300"])
    assert_succeeded(run)
    (offer,) = run.responses_received("INVITE", status=200)
    assert "a=rtpmap:8 PCMA/8000" in sdp_attribute_lines(offer.body)
    (call_id,) = run.call_ids
    log = wait_for_call_log(bridge, call_id, r"ended \(remote hung up\)")
    assert "codec (offered in 200)" in log
    assert "media from ACK: PCMA pt 8" in log


# -- 3. Hold and resume -------------------------------------------------------------------


def test_reinvite_hold_is_answered_recvonly_and_resume_sendrecv(
    procs: ProcessGroup, bridge: RunningBridge
) -> None:
    run = run_sipp(procs, bridge, SIPP_SCENARIOS / "reinvite_hold.xml", service="2000")
    assert_succeeded(run)
    answers = {
        (m.header("CSeq") or ""): sdp_attribute_lines(m.body)
        for m in run.responses_received("INVITE", status=200)
    }
    assert set(answers) == {"1 INVITE", "2 INVITE", "3 INVITE"}
    assert "a=sendrecv" in answers["1 INVITE"]
    assert "a=recvonly" in answers["2 INVITE"] and "a=sendrecv" not in answers["2 INVITE"]
    assert "a=sendrecv" in answers["3 INVITE"]
    # RFC 3264 §8: the same session, a new version in o= for each new answer.
    versions = [answers[f"{n} INVITE"][1].split()[2] for n in (1, 2, 3)]
    assert len(set(versions)) == 3
    (call_id,) = run.call_ids
    log = wait_for_call_log(bridge, call_id, r"ended \(remote hung up\)")
    hold = log.index("re-INVITE: PCMU pt 0, recvonly")
    assert log.index("re-INVITE: PCMU pt 0, sendrecv", hold) > hold


# -- 4. CANCEL ----------------------------------------------------------------------------


def test_cancel_right_after_invite_is_too_late_and_the_call_ends_with_bye(
    procs: ProcessGroup, bridge: RunningBridge
) -> None:
    """SIPp sends the CANCEL as soon as the 200 arrives, before its ACK: the CANCEL finds
    the INVITE answered, so 200 to it and no 487 (RFC 3261 §9.2). The race where the CANCEL
    wins (487, call ended) cannot be forced from outside, since the bridge answers at once;
    tests/bridge/sip/test_core.py covers it
    (test_cancel_before_answer_gives_200_then_487_and_ends_the_call)."""
    run = run_sipp(procs, bridge, SIPP_SCENARIOS / "cancel.xml", service="2000")
    assert_succeeded(run)
    assert run.responses_received("INVITE", status=200)
    assert run.responses_received("CANCEL", status=200)
    assert not run.responses_received(status=487)
    assert run.responses_received("BYE", status=200)
    (call_id,) = run.call_ids
    log = wait_for_call_log(bridge, call_id, r"ended \(remote hung up\)")
    assert "joined as participant" in log


def test_cancel_matching_no_invite_gets_481(procs: ProcessGroup, bridge: RunningBridge) -> None:
    run = run_sipp(procs, bridge, SIPP_SCENARIOS / "cancel_unmatched.xml", service="2000")
    assert_succeeded(run)
    assert [m.status for m in run.responses_received()] == [481]


# -- 5. Bridge-initiated BYE --------------------------------------------------------------


def test_member_sending_no_rtp_is_removed_with_bye_after_the_timeout(
    procs: ProcessGroup,
) -> None:
    """One member over UDP and one over TCP, at once: both get the bridge's BYE."""
    config = default_test_config(0, (0, 0))
    config["rtp"] = {"timeout_s": RTP_TIMEOUT_S}
    bridge = start_bridge(procs, config)
    members = {
        transport: start_sipp(procs, bridge, SIPP_SCENARIOS / "wait_bye.xml", service="2000",
                              transport=transport)
        for transport in TRANSPORTS
    }
    for transport, member in members.items():
        run = member.finish(timeout_s=20)
        assert_succeeded(run)
        (ack,) = run.requests_sent("ACK")
        (bye,) = run.requests_received("BYE")
        (bye_ok,) = run.responses_sent("BYE")
        assert bye_ok.status == 200 and bye.transport == transport.upper()
        assert bye.at - ack.at >= RTP_TIMEOUT_S - 0.1  # not before the timeout
        (answer,) = run.responses_received("INVITE", status=200)
        # RFC 3261 §12.2.1.1: our BYE carries the dialog's tags, ours in From.
        our_tag = (answer.header("To") or "").split(";tag=")[1]
        assert (bye.header("From") or "").endswith(f";tag={our_tag}")
        assert (bye.header("To") or "").endswith(
            (run.requests_sent("INVITE")[0].header("From") or "").split(";tag=")[1]
        )
        (call_id,) = run.call_ids
        log = wait_for_call_log(bridge, call_id, r"ended \(hung up, BYE answered 200\)")
        assert f"hanging up: no RTP for {RTP_TIMEOUT_S} s" in log


# -- 6. PIN entry by RFC 2833 key presses -------------------------------------------------


def pin_scenario(tmp_path: Path, template: str, attempts: list[str]) -> Path:
    """Fill a PIN template with one pcap per attempt, each played after the one before."""
    captures = KeyPressCaptures()
    actions = []
    start_s = 0.0
    for number, keys in enumerate(attempts):
        pcap = tmp_path / f"attempt{number}.pcap"
        duration_s = captures.write(pcap, keys, start_s=start_s, key_interval_s=KEY_INTERVAL_S)
        # The next play must not start before this one ends: SIPp stops a running play.
        pause_ms = round(duration_s * 1000) + 500
        actions.append(
            f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
            f'  <pause milliseconds="{pause_ms}"/>\n'
        )
        start_s += pause_ms / 1000
    text = (SIPP_SCENARIOS / template).read_text()
    assert KEY_PRESSES_MARK in text
    scenario = tmp_path / template
    scenario.write_text(text.replace(KEY_PRESSES_MARK, "".join(actions)))
    return scenario


def test_three_wrong_pins_get_a_bye(
    procs: ProcessGroup, bridge: RunningBridge, tmp_path: Path
) -> None:
    scenario = pin_scenario(tmp_path, "pin_rejected.xml", ["1111#"] * 3)
    run = run_sipp(procs, bridge, scenario, service="1000")
    assert_succeeded(run)
    assert len(run.requests_received("BYE")) == 1
    (call_id,) = run.call_ids
    log = wait_for_call_log(bridge, call_id, r"ended \(hung up, BYE answered 200\)")
    # Every press is one digit, however many packets carried it.
    assert log.count("digit 1 (RFC 4733)") == 12
    assert log.count("digit # (RFC 4733)") == 3
    for attempt in (1, 2, 3):
        assert f"wrong PIN (try {attempt})" in log
    assert "hanging up: wrong PIN" in log
    assert "joined" not in log


@pytest.mark.parametrize(("pin", "role"), [("4321", "participant"), ("9876", "moderator")])
def test_right_pin_joins_the_room_and_no_bye_comes(
    procs: ProcessGroup, bridge: RunningBridge, tmp_path: Path, pin: str, role: str
) -> None:
    scenario = pin_scenario(tmp_path, "pin_accepted.xml", [f"{pin}#"])
    run = run_sipp(procs, bridge, scenario, service="1000")
    assert_succeeded(run)
    assert not run.requests_received("BYE")
    (call_id,) = run.call_ids
    log = wait_for_call_log(bridge, call_id, r"ended \(remote hung up\)")
    digits = re.findall(r"digit (\S) \(RFC 4733\)", log)
    assert "".join(digits) == f"{pin}#"
    assert re.search(rf"joined as {role} \(1 present\)", log)
    assert "wrong PIN" not in log


# -- 7. Load ------------------------------------------------------------------------------


# Over TCP, SIPp opens one connection per call ("tn"): twenty connections at once.
LOAD_TRANSPORT_ARGS = {"udp": [], "tcp": ["-t", "tn", "-max_socket", "100"]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_twenty_concurrent_calls_all_succeed_and_options_still_works(
    procs: ProcessGroup, bridge: RunningBridge, transport: str
) -> None:
    run = run_sipp(procs, bridge, "uac", service="2000", transport=transport, calls=20,
                   extra_args=["-l", "20", "-r", "20", "-d", "3000",
                               *LOAD_TRANSPORT_ARGS[transport]],
                   timeout_s=40)
    assert_succeeded(run)
    assert run.statistics["SuccessfulCall(C)"] == "20", run.describe()
    assert run.statistics["FailedCall(C)"] == "0", run.describe()
    call_ids = run.call_ids
    assert len(call_ids) == 20
    present = []
    for call_id in call_ids:
        log = wait_for_call_log(bridge, call_id, r"ended \(remote hung up\)")
        match = re.search(r"joined as participant \((\d+) present\)", log)
        assert match, log
        present.append(int(match.group(1)))
    assert max(present) == 20  # all twenty in the room at once
    after = run_sipp(procs, bridge, SIPP_SCENARIOS / "options.xml", service="2000",
                     transport=transport)
    assert_succeeded(after)


# -- 8. Digest authentication -------------------------------------------------------------


def test_register_is_challenged_then_accepted_with_the_password(
    procs: ProcessGroup, bridge: RunningBridge
) -> None:
    run = run_sipp(procs, bridge, SIPP_SCENARIOS / "register.xml", service="demo",
                   extra_args=["-au", "demo", "-ap", "demo1234"])
    assert_succeeded(run)
    challenge, bound = run.responses_received("REGISTER")[:2]
    assert challenge.status == 401
    assert re.match(r'Digest .*realm="telerapat\.test"', challenge.header("WWW-Authenticate") or "")
    assert bound.status == 200
    contact = bound.header("Contact") or ""
    assert re.search(r"<sip:demo@127\.0\.0\.1:\d+;transport=UDP>;expires=\d+", contact)
    assert re.search(r"register: sip:demo@127\.0\.0\.1 from 127\.0\.0\.1:\d+ -> 200",
                     bridge.log())


def test_register_with_a_wrong_password_is_challenged_again(
    procs: ProcessGroup, bridge: RunningBridge
) -> None:
    run = run_sipp(procs, bridge, SIPP_SCENARIOS / "register_rejected.xml", service="demo",
                   extra_args=["-au", "demo", "-ap", "wrong-password"])
    assert_succeeded(run)
    assert [m.status for m in run.responses_received("REGISTER")] == [401, 401]
    (rejected,) = run.requests_sent("REGISTER")[1:]
    assert 'username="demo"' in (rejected.header("Authorization") or "")


def test_invite_to_accounts_room_is_challenged_then_answered_with_credentials(
    procs: ProcessGroup, bridge: RunningBridge
) -> None:
    run = run_sipp(procs, bridge, SIPP_SCENARIOS / "invite_auth.xml", service="3000",
                   extra_args=["-au", "demo", "-ap", "demo1234"])
    assert_succeeded(run)
    finals = [m.status for m in run.responses_received("INVITE") if (m.status or 0) >= 200]
    assert finals == [401, 200]
    (challenge,) = run.responses_received("INVITE", status=401)
    assert re.match(r'Digest .*realm="telerapat\.test"', challenge.header("WWW-Authenticate") or "")
    (call_id,) = run.call_ids
    log = wait_for_call_log(bridge, call_id, r"ended \(remote hung up\)")
    assert "room=tertutup: challenged SIPp" in log
    assert re.search(r"answered demo from 127\.0\.0\.1:\d+ over udp", log)
    assert "joined as participant" in log
