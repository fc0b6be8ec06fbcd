"""Running a meeting from the keypad, with real clients: baresip members pressing keys
(RFC 4733 events from its DTMF command) and a SIPp audience, judged by what the others
hear (normalised cross-correlation with the clips sent and the prompt WAVs) and by the
BYEs that arrive.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bridge.recording import read_recording
from dsp.codecs import get_codec
from tests.integration.audio_analysis import Samples, correlation_peak, resample, rms_dbfs
from tests.integration.baresip import Baresip
from tests.integration.harness import (
    SIPP_PCAPS,
    KeyPressCaptures,
    ProcessGroup,
    RunningBridge,
    start_bridge,
    start_sipp,
    wait_until,
    write_audio_capture,
)
from tests.integration.test_audio import (
    EVENT_MARGIN_S,
    HEARD_NCC,
    NOT_HEARD_NCC,
    RATE_HZ,
    SILENCE_DBFS,
    MemberFactory,
    SpeechClip,
    _call_log,
    _heard,
    _measured,
    _prompt,
    _wait_log,
)
from tests.integration.test_sip_calls import KEY_INTERVAL_S

pytestmark = pytest.mark.integration

PIN, MODERATOR_PIN, OPERATOR_PIN = "4321", "9876", "2468"
AUDIENCE = 17  # SIPp calls; with three baresip members, twenty in the webinar
SCENARIOS = Path(__file__).resolve().parent / "sipp"


def _bridge(procs: ProcessGroup, tmp_path: Path) -> RunningBridge:
    config: dict[str, object] = {
        "sip": {"domain": "telerapat.test"},
        "rtp": {"timeout_s": 30},
        "language": "en",
        "recording": {"directory": str(tmp_path / "recordings")},
        "rooms": [
            {"id": "rakor", "extension": "1000", "pin": PIN, "moderator_pin": MODERATOR_PIN},
            {"id": "seminar", "extension": "3000", "mode": "webinar",
             "moderator_pin": MODERATOR_PIN},
            {"id": "pengaduan", "extension": "6000", "mode": "hotline",
             "operator_extension": "6001", "moderator_pin": OPERATOR_PIN},
            {"id": "salam", "extension": "7000", "announce": "name"},
        ],
    }
    return start_bridge(procs, config, rtp_ports=80)


def _join(bridge: RunningBridge, member: Baresip, extension: str, pin: str,
          role: str = "participant") -> str:
    call_id = member.call(bridge.uri(extension))
    member.send_digits(f"{pin}#")
    _wait_log(bridge, _call_log(call_id, f"joined as {role}"))
    return call_id


def _window(listener: Baresip, clip: SpeechClip) -> tuple[int, int]:
    """Let `listener` record two repetitions of `clip` from now on; return the span,
    EVENT_MARGIN_S clear of what happened before and of what the test does next."""
    margin = int(EVENT_MARGIN_S * RATE_HZ)
    start = listener.heard_samples() + margin
    end = start + 2 * clip.loop_samples
    listener.wait_heard(end + margin, timeout_s=3.0 * (end + margin - start) / RATE_HZ + 5.0)
    return start, end


def _peak(heard: Samples, span: tuple[int, int], reference: Samples) -> float:
    return correlation_peak(heard[span[0] : span[1]], reference).value


def test_moderator_mutes_all_gives_the_floor_unmutes_all_and_removes_the_last_joiner(
    procs: ProcessGroup, members: MemberFactory, clips: dict[str, SpeechClip], tmp_path: Path
) -> None:
    bridge = _bridge(procs, tmp_path)
    moderator = members("moderator", clips["silence"])
    alpha = members("alpha", clips["alpha"])
    bravo = members("bravo", clips["silence"])
    _join(bridge, moderator, "1000", MODERATOR_PIN, "moderator")
    alpha_id = _join(bridge, alpha, "1000", PIN)
    bravo_id = _join(bridge, bravo, "1000", PIN)
    before = _window(bravo, clips["alpha"])
    moderator.send_digits("##")
    _wait_log(bridge, _call_log(alpha_id, "mute: moderator muted"))
    muted = _window(bravo, clips["alpha"])
    alpha_muted_at = alpha.heard_samples()
    alpha.send_digits("*6")  # cannot unmute: the hand goes up instead
    _wait_log(bridge, _call_log(alpha_id, r"hand raised \(1 in queue\)"))
    alpha.wait_heard(alpha_muted_at + 4 * RATE_HZ, timeout_s=15)
    moderator.send_digits("*8")
    _wait_log(bridge, _call_log(alpha_id, "mute: free"))
    after = _window(bravo, clips["alpha"])
    moderator.send_digits("99")  # bravo is still muted by the moderator: lifted
    _wait_log(bridge, _call_log(bravo_id, "mute: free"))
    moderator.send_digits("*2")  # the last to join goes: bravo
    bravo.wait_event("CALL_CLOSED", timeout_s=20)
    _wait_log(bridge, _call_log(bravo_id, "hanging up: removed by a moderator"))
    for member in (moderator, alpha):
        member.end_call()

    heard = _heard(bravo)
    peaks = {name: _peak(heard, span, clips["alpha"].utterance)
             for name, span in (("before", before), ("muted", muted), ("floor", after))}
    for name, peak in peaks.items():
        _measured(f"bravo hears alpha {name}", peak)
    assert peaks["before"] > HEARD_NCC and peaks["floor"] > HEARD_NCC
    assert peaks["muted"] < NOT_HEARD_NCC  # (bravo, muted too, hears only that prompt)
    told = correlation_peak(_heard(alpha)[alpha_muted_at:], _prompt("muted_by_moderator")).value
    _measured("alpha hears 'muted by moderator'", told)
    assert told > 0.5
    removed = correlation_peak(heard, _prompt("removed")).value
    _measured("bravo hears 'removed'", removed)
    assert removed > 0.5


def test_locked_room_turns_a_new_caller_away_with_a_prompt(
    procs: ProcessGroup, members: MemberFactory, clips: dict[str, SpeechClip], tmp_path: Path
) -> None:
    bridge = _bridge(procs, tmp_path)
    moderator = members("moderator", clips["silence"])
    charlie = members("charlie", clips["charlie"])
    moderator_id = _join(bridge, moderator, "1000", MODERATOR_PIN, "moderator")
    moderator.send_digits("*5")
    _wait_log(bridge, _call_log(moderator_id, "room locked"))
    charlie_id = charlie.call(bridge.uri("1000"))
    charlie.send_digits(f"{PIN}#")
    charlie.wait_event("CALL_CLOSED", timeout_s=15)  # the bridge's BYE
    _wait_log(bridge, _call_log(charlie_id, "hanging up: room locked"))
    moderator.end_call()
    told = correlation_peak(_heard(charlie), _prompt("room_locked")).value
    _measured("charlie hears 'room locked'", told)
    assert told > 0.5
    assert "joined as participant" not in "\n".join(
        line for line in bridge.log().splitlines() if charlie_id in line
    )


def _audience_scenario(tmp_path: Path, clip: SpeechClip) -> Path:
    """The SIPp audience: "#" to join (the room has only a moderator PIN), then speech."""
    keys = tmp_path / "join.pcap"
    keys_s = KeyPressCaptures().write(keys, "#", start_s=0.0, key_interval_s=KEY_INTERVAL_S)
    pause_ms = round(keys_s * 1000) + 500
    looped = np.tile(np.concatenate([clip.utterance, np.zeros(RATE_HZ // 3, np.float32)]), 12)
    frames = looped[: looped.shape[0] // 160 * 160].reshape(-1, 160)
    payloads = [bytes(p) for p in get_codec("PCMA").encode(frames)]
    audio = tmp_path / "speech.pcap"
    write_audio_capture(audio, payloads, payload_type=8, ports=(6000, 6002))
    text = (SCENARIOS / "audience.xml").read_text()
    mark = "  <!-- KEY PRESSES: the test puts play_pcap_audio actions and pauses here. -->\n"
    assert mark in text and (SIPP_PCAPS / "g711a.pcap").exists()
    scenario = tmp_path / "audience.xml"
    scenario.write_text(text.replace(mark, (
        f'  <nop><action><exec play_pcap_audio="{keys}"/></action></nop>\n'
        f'  <pause milliseconds="{pause_ms}"/>\n'
        f'  <nop><action><exec play_pcap_audio="{audio}"/></action></nop>\n'
    )))
    return scenario


def test_webinar_twenty_join_muted_and_the_floor_makes_one_heard_then_end_sends_bye(
    procs: ProcessGroup, members: MemberFactory, clips: dict[str, SpeechClip], tmp_path: Path
) -> None:
    """A moderator, alpha (who will ask to speak), bravo (listening), and seventeen SIPp
    callers who all talk: nobody is heard until the moderator gives alpha the floor, then
    alpha and only alpha; the moderator's *4 1 ends the call of all twenty with a BYE."""
    bridge = _bridge(procs, tmp_path)
    moderator = members("moderator", clips["silence"])
    alpha = members("alpha", clips["alpha"])
    bravo = members("bravo", clips["silence"])
    _join(bridge, moderator, "3000", MODERATOR_PIN, "moderator")
    alpha_id = _join(bridge, alpha, "3000", "")
    _join(bridge, bravo, "3000", "")
    # bravo's own "welcome" and "you are listening only" must be over before the window.
    prompts_end = bravo.heard_samples() + sum(
        _prompt(name).shape[0] for name in ("welcome", "listen_only")
    )
    audience = start_sipp(
        procs, bridge, _audience_scenario(tmp_path, clips["charlie"]), service="3000",
        calls=AUDIENCE, extra_args=["-l", str(AUDIENCE), "-r", "20"], max_run_s=90,
    )
    _wait_log(bridge, rf"joined as participant \({AUDIENCE + 3} present\)", timeout_s=20)
    bravo.wait_heard(prompts_end, timeout_s=15)
    muted = _window(bravo, clips["charlie"])
    alpha.send_digits("*9")
    _wait_log(bridge, _call_log(alpha_id, r"hand raised \(1 in queue\)"))
    moderator.send_digits("*8")
    _wait_log(bridge, _call_log(alpha_id, "mute: free"))
    floor = _window(bravo, clips["alpha"])
    moderator.send_digits("*41")
    run = audience.finish(timeout_s=30)
    for member in (moderator, alpha, bravo):
        member.wait_event("CALL_CLOSED", timeout_s=15)

    assert run.returncode == 0, run.describe()
    assert len(run.requests_received("BYE")) == AUDIENCE
    assert len(re.findall(r"hanging up: meeting ended by a moderator", bridge.log())) == (
        AUDIENCE + 3
    )
    heard = _heard(bravo)
    peaks = {
        "alpha while all muted": _peak(heard, muted, clips["alpha"].utterance),
        "audience while all muted": _peak(heard, muted, clips["charlie"].utterance),
        "alpha with the floor": _peak(heard, floor, clips["alpha"].utterance),
        "audience while alpha has the floor": _peak(heard, floor, clips["charlie"].utterance),
    }
    for name, peak in peaks.items():
        _measured(f"bravo hears {name}", peak)
    assert rms_dbfs(heard[muted[0] : muted[1]]) < SILENCE_DBFS
    assert peaks["alpha with the floor"] > HEARD_NCC
    assert peaks["audience while alpha has the floor"] < NOT_HEARD_NCC


def test_recording_holds_what_was_said_while_it_ran(
    procs: ProcessGroup, members: MemberFactory, clips: dict[str, SpeechClip], tmp_path: Path
) -> None:
    bridge = _bridge(procs, tmp_path)
    moderator = members("moderator", clips["silence"])
    alpha = members("alpha", clips["alpha"])
    bravo = members("bravo", clips["bravo"])
    _join(bridge, moderator, "1000", MODERATOR_PIN, "moderator")
    _join(bridge, alpha, "1000", PIN)
    _join(bridge, bravo, "1000", PIN)
    moderator.send_digits("*7")
    _wait_log(bridge, r"room=rakor: recording started")
    _window(moderator, clips["alpha"])
    _window(moderator, clips["bravo"])
    moderator.send_digits("*7")
    stopped = _wait_log(bridge, r"room=rakor: recording stopped: (\S+)")
    for member in (moderator, alpha, bravo):
        member.end_call()
    path = Path(stopped.group(1))
    wait_until(path.exists, 10.0, "the recording to be finished")  # in a worker thread
    samples, rate_hz, metadata = read_recording(path)
    assert metadata["metadata"]["room"] == "rakor" and rate_hz == 16000
    recorded = resample(samples, rate_hz, RATE_HZ)
    assert recorded.shape[0] > 2 * clips["alpha"].loop_samples
    for talker in ("alpha", "bravo"):
        peak = correlation_peak(recorded, clips[talker].utterance).value
        _measured(f"the recording holds {talker}", peak)
        assert peak > HEARD_NCC


def test_a_recorded_name_announces_a_newcomer_to_the_room(
    procs: ProcessGroup, members: MemberFactory, clips: dict[str, SpeechClip], tmp_path: Path
) -> None:
    """bravo says its name (its sentence, cut after `#`), then alpha, already in, hears
    that name followed by "has joined"."""
    bridge = _bridge(procs, tmp_path)
    alpha = members("alpha", clips["silence"])
    bravo = members("bravo", clips["bravo"])
    alpha.call(bridge.uri("7000"))
    _wait_log(bridge, r"room=salam member=\d+: joined as participant")
    bravo_call = bravo.call(bridge.uri("7000"))
    # "Say your name after the tone, then press hash": let it speak about 2 s.
    prompt_s = _prompt("say_your_name").shape[0] / RATE_HZ
    bravo.wait_heard(bravo.heard_samples() + int((prompt_s + 2.5) * RATE_HZ), 20)
    bravo.send_digits("#")
    _wait_log(bridge, _call_log(bravo_call, "joined as participant"))
    announced_from = alpha.heard_samples()
    alpha.wait_heard(announced_from + 4 * RATE_HZ, 20)
    for member in (alpha, bravo):
        member.end_call()
    heard = _heard(alpha)[announced_from - RATE_HZ :]
    joined = correlation_peak(heard, _prompt("has_joined")).value
    _measured("alpha hears 'has joined'", joined)
    assert joined > 0.5  # (under bravo's own voice, now in the room)


# -- the hotline ----------------------------------------------------------------------------

def _report(bridge: RunningBridge, member_id: str) -> tuple[Samples, dict[str, object]]:
    """The report a member left, once the bridge has finished its file."""
    saved = _wait_log(bridge, rf"member={member_id}: report saved \(\S+\): (\S+)")
    path = Path(saved.group(1))
    wait_until(path.exists, 10.0, "the report to be finished")  # in a worker thread
    samples, rate_hz, document = read_recording(path)
    assert rate_hz == RATE_HZ  # as the G.711 caller said it
    return samples, document


def test_hotline_without_operator_keeps_reports_ended_by_hash_and_by_hanging_up(
    procs: ProcessGroup, members: MemberFactory, clips: dict[str, SpeechClip], tmp_path: Path
) -> None:
    bridge = _bridge(procs, tmp_path)
    alpha = members("alpha", clips["alpha"])
    bravo = members("bravo", clips["bravo"])
    alpha_call = alpha.call(bridge.uri("6000"))
    bravo_call = bravo.call(bridge.uri("6000"))
    started = _wait_log(bridge, _call_log(alpha_call, "recording a report"))
    alpha_id = re.search(r"member=(\d+)", started.group(0)).group(1)  # type: ignore[union-attr]
    bravo_id = re.search(r"member=(\d+)", _wait_log(  # type: ignore[union-attr]
        bridge, _call_log(bravo_call, "recording a report")).group(0)).group(1)
    for member, clip in ((alpha, "alpha"), (bravo, "bravo")):  # two sentences each
        member.wait_heard(member.heard_samples() + 3 * clips[clip].loop_samples, 30)
    alpha.send_digits("#")
    bravo.end_call()  # hangs up mid-report: what was said is kept
    alpha.wait_event("CALL_CLOSED", timeout_s=20)  # "your report has been saved", then BYE
    thanked = correlation_peak(_heard(alpha), _prompt("report_saved")).value
    _measured("alpha hears 'report saved'", thanked)
    assert thanked > 0.5
    for member_id, name, ended_by in ((alpha_id, "alpha", "hash"), (bravo_id, "bravo", "hang-up")):
        samples, document = _report(bridge, member_id)
        metadata = document["metadata"]
        assert isinstance(metadata, dict)
        assert (metadata["room"], metadata["caller"], metadata["ended_by"]) == (
            "pengaduan", name, ended_by)
        assert str(metadata["caller_uri"]).startswith(f"sip:{name}@")
        assert float(document["duration_s"]) > 2 * clips[name].loop_samples / RATE_HZ  # type: ignore[arg-type]
        peak = correlation_peak(samples, clips[name].utterance).value
        _measured(f"{name}'s report holds {name}", peak)
        assert peak > HEARD_NCC


def test_hotline_operator_takes_two_queued_callers_one_after_the_other(
    procs: ProcessGroup, members: MemberFactory, clips: dict[str, SpeechClip], tmp_path: Path
) -> None:
    bridge = _bridge(procs, tmp_path)
    operator = members("operator", clips["delta"])
    alpha = members("alpha", clips["alpha"])
    bravo = members("bravo", clips["bravo"])
    operator_call = operator.call(bridge.uri("6001"))
    operator.send_digits(f"{OPERATOR_PIN}#")
    _wait_log(bridge, _call_log(operator_call, "joined as moderator"))
    calls = {}
    for member in (alpha, bravo):
        calls[member.name] = member.call(bridge.uri("6000"))
        _wait_log(bridge, _call_log(calls[member.name], "joined as participant"))
    # Both hear their place: "you are number one / two", then music.
    for member in (alpha, bravo):
        member.wait_heard(member.heard_samples() + 6 * RATE_HZ, 20)
    operator.send_digits("*8")
    _wait_log(bridge, _call_log(operator_call, r"operator talks to member"))
    first = _window(operator, clips["alpha"])
    bravo_waiting = _window(bravo, clips["delta"])
    operator.send_digits("*8")  # done with alpha: thanked and hung up; bravo is next
    alpha.wait_event("CALL_CLOSED", timeout_s=20)
    second = _window(operator, clips["bravo"])
    for member in (operator, bravo):
        member.end_call()

    heard = _heard(operator)
    peaks = {
        "operator hears alpha first": _peak(heard, first, clips["alpha"].utterance),
        "operator hears bravo first": _peak(heard, first, clips["bravo"].utterance),
        "operator hears bravo second": _peak(heard, second, clips["bravo"].utterance),
        "waiting bravo hears the operator": _peak(_heard(bravo), bravo_waiting,
                                                  clips["delta"].utterance),
        "alpha hears the operator": correlation_peak(_heard(alpha), clips["delta"].utterance).value,
    }
    places = {
        name: [correlation_peak(_heard(member), _prompt(prompt)).value
               for prompt in ("queue_position", number)]
        for name, member, number in (("alpha", alpha, "num_one"), ("bravo", bravo, "num_two"))
    }
    for name, peak in peaks.items():
        _measured(name, peak)
    for name, values in places.items():
        _measured(f"{name} hears its place", min(values))
    assert peaks["operator hears alpha first"] > HEARD_NCC
    assert peaks["operator hears bravo first"] < NOT_HEARD_NCC
    assert peaks["operator hears bravo second"] > HEARD_NCC
    assert peaks["waiting bravo hears the operator"] < NOT_HEARD_NCC
    assert peaks["alpha hears the operator"] > HEARD_NCC
    assert min(min(values) for values in places.values()) > 0.5
