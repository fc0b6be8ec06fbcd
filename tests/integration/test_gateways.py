"""Issue #5 with real servers: gateway legs to a video meeting, and a SIP trunk.

- Plain RTP leg into Janus AudioBridge (Debian `janus`, HTTP transport on 127.0.0.1
  only), standing in for the video meeting: our room's leg joins it as a plain-RTP
  participant through Janus's HTTP API, and a second plain-RTP participant, the "video
  user" (a small endpoint here that speaks a sentence in PCMU and records what it hears),
  sits in the Janus room. A baresip phone member and the video user must hear each other
  and neither itself.
- SIP dial-out to a SIPp UAS that challenges with 401 and answers; the meeting ID
  arrives as RFC 4733 events at the RTP port its SDP names, the far end's BYE is followed
  by a re-dial, and the room's end hangs the leg up.
- Trunk: the bridge registers to Kamailio (digest auth), a PSTN caller dials the DID
  through Kamailio and lands in the room, and after Kamailio restarts the bridge
  registers again.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bench.janus import JanusAudioBridge
from bridge.rtp.packet import RtpPacket
from bridge.rtp.telephone_event import DigitStarted, TelephoneEventReceiver
from dsp.codecs import get_codec
from tests.integration.audio_analysis import Samples, correlation_peak
from tests.integration.harness import (
    LOCALHOST,
    SIPP_SCENARIOS,
    ProcessGroup,
    RunningBridge,
    free_port,
    free_port_range,
    run_sipp,
    start_bridge,
    wait_until,
)
from tests.integration.kamailio import TRUNK_USER, start_dialout_uas, start_kamailio
from tests.integration.test_audio import (
    HEARD_NCC,
    NOT_HEARD_NCC,
    RATE_HZ,
    MemberFactory,
    SpeechClip,
    _call_log,
    _heard,
    _measured,
    _wait_log,
)

pytestmark = pytest.mark.integration

JANUS_ROOM = 5001
# Janus AudioBridge's payload type for Opus on plain-RTP participants (its OPUS_PT).
JANUS_OPUS_PT = 100
FRAME_S = 0.02
FRAME_SAMPLES = int(RATE_HZ * FRAME_S)
LISTEN_S = 12.0  # what each side records: several repetitions of the other's sentence


class VideoUser:
    """A plain-RTP participant of the Janus room: speaks a looped clip in PCMU on a steady
    20 ms schedule from its own thread, and keeps what it receives, decoded."""

    def __init__(self, clip: SpeechClip) -> None:
        self._codec = get_codec("PCMU")
        self._source = np.tile(
            np.concatenate([clip.utterance, np.zeros(int(0.3 * RATE_HZ), np.float32)]), 40)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCALHOST, 0))
        self.sock.settimeout(0.005)
        self.port = int(self.sock.getsockname()[1])
        self._frames: list[Samples] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, janus: tuple[str, int]) -> None:
        self._thread = threading.Thread(target=self._run, args=(janus,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.sock.close()

    @property
    def heard_seconds(self) -> float:
        return len(self._frames) * FRAME_S

    def heard(self, after_s: float = 0.0) -> Samples:
        frames = self._frames[int(after_s / FRAME_S):]
        return np.concatenate(frames) if frames else np.zeros(0, np.float32)

    def _run(self, janus: tuple[str, int]) -> None:
        sequence, timestamp, ssrc = 1, 0, 0x5EED
        start = time.monotonic()
        frame = 0
        while not self._stop.is_set():
            chunk = self._source[(frame * FRAME_SAMPLES) % (len(self._source) - FRAME_SAMPLES):]
            payload = self._codec.encode(chunk[None, :FRAME_SAMPLES].astype(np.float32))
            packet = RtpPacket(payload_type=0, sequence_number=sequence, timestamp=timestamp,
                               ssrc=ssrc, payload=payload.tobytes())
            self.sock.sendto(bytes(packet), janus)
            sequence, timestamp = (sequence + 1) & 0xFFFF, timestamp + FRAME_SAMPLES
            frame += 1
            while True:
                try:
                    data = self.sock.recv(2048)
                except (TimeoutError, BlockingIOError):
                    break
                packet = RtpPacket.parse(data)
                if packet.payload_type == 0:
                    self._frames.append(self._codec.decode(packet.payload))
            delay = start + frame * FRAME_S - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)


def _janus_sdp(address: tuple[str, int]) -> str:
    """What a tool would write for Janus's side of our leg: Opus on its port."""
    host, port = address
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=janus\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {JANUS_OPUS_PT}\r\n"
            f"a=rtpmap:{JANUS_OPUS_PT} opus/48000/2\r\na=sendrecv\r\n")


def _our_port(sdp_file: Path) -> int:
    for line in sdp_file.read_text().splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise AssertionError(f"no m=audio line in {sdp_file}")


def test_a_phone_member_and_a_janus_video_user_hear_each_other(
    procs: ProcessGroup, clips: dict[str, SpeechClip], members: MemberFactory,
) -> None:
    janus = JanusAudioBridge(procs.directory / "janus", http_port=free_port(socket.SOCK_STREAM),
                             rtp_ports=free_port_range(40))
    (procs.directory / "janus").mkdir()
    video = VideoUser(clips["bravo"])
    try:
        janus.start()
        janus.create_room(JANUS_ROOM, sampling_rate=16000)
        bridge = _bridge_with_leg(procs)
        legs = bridge.config_path.parent / "legs"
        sdp_file = legs / "janus.sdp"
        wait_until(sdp_file.exists, 10, "the leg's SDP file")
        our_port = _our_port(sdp_file)
        assert "opus/48000/2" in sdp_file.read_text()
        janus_leg = janus.join_rtp(JANUS_ROOM, our_port, codec="opus")
        (legs / "janus-remote.sdp").write_text(_janus_sdp(janus_leg))
        video.start(janus.join_rtp(JANUS_ROOM, video.port, codec="pcmu"))

        alpha = members("alpha", clips["alpha"])
        call_id = alpha.call(bridge.uri("2000"))
        _wait_log(bridge, r"room=terbuka gateway=janus: leg up")
        mark_alpha = alpha.heard_seconds()
        mark_video = video.heard_seconds
        alpha.wait_heard_seconds(mark_alpha + LISTEN_S, timeout_s=LISTEN_S + 10)
        wait_until(lambda: video.heard_seconds >= mark_video + LISTEN_S, LISTEN_S + 10,
                   "the video user to hear the room")
        heard_by_phone = _heard(alpha)[int(mark_alpha * RATE_HZ):]
        heard_by_video = video.heard(mark_video)
        checks = {
            "phone hears video user": correlation_peak(heard_by_phone, clips["bravo"].utterance),
            "phone hears itself": correlation_peak(heard_by_phone, clips["alpha"].utterance),
            "video user hears phone": correlation_peak(heard_by_video, clips["alpha"].utterance),
            "video user hears itself": correlation_peak(heard_by_video, clips["bravo"].utterance),
        }
        for label, peak in checks.items():
            _measured(label, peak.value)
        assert checks["phone hears video user"].value > HEARD_NCC
        assert checks["video user hears phone"].value > HEARD_NCC
        assert checks["phone hears itself"].value < NOT_HEARD_NCC
        assert checks["video user hears itself"].value < NOT_HEARD_NCC

        alpha.end_call()
        _wait_log(bridge, rf"call={call_id}.*ended")
        _wait_log(bridge, r"room=terbuka gateway=janus: leg idle")
    finally:
        video.stop()
        janus.stop()


def _bridge_with_leg(procs: ProcessGroup) -> RunningBridge:
    config: dict[str, object] = {
        "sip": {"domain": "telerapat.test"},
        "language": "en",
        "rooms": [{
            "id": "terbuka", "extension": "2000",
            "gateways": [{"id": "janus", "rtp": {
                "codec": "opus", "payload_type": JANUS_OPUS_PT,
                "remote_sdp": "legs/janus-remote.sdp", "sdp_file": "legs/janus.sdp",
            }}],
        }],
    }
    return start_bridge(procs, config, rtp_ports=40)


class RtpSink:
    """What a far end's RTP port receives from the bridge: audio and RFC 4733 digits."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCALHOST, 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.audio: list[Samples] = []
        self.digits: list[str] = []
        self._events = TelephoneEventReceiver()
        self._codec = get_codec("PCMU")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                packet = RtpPacket.parse(self.sock.recv(2048))
            except (TimeoutError, BlockingIOError):
                continue
            if packet.payload_type == 0:
                self.audio.append(self._codec.decode(packet.payload))
            elif packet.payload_type == 101:
                event = self._events.receive(packet.payload, packet.timestamp, packet.marker)
                if isinstance(event, DigitStarted):
                    self.digits.append(event.digit)


def test_dial_out_authenticates_sends_the_meeting_id_redials_and_hangs_up(
    procs: ProcessGroup, clips: dict[str, SpeechClip], members: MemberFactory,
) -> None:
    sink = RtpSink()
    uas_port = free_port(both=True)
    try:
        uas = start_dialout_uas(procs, sip_port=uas_port, rtp_port=sink.port,
                                user="bridge", password="rahasia-42", hangup_ms=6000)
        bridge = start_bridge(procs, {
            "sip": {"domain": "telerapat.test"},
            "language": "en",
            "rooms": [{
                "id": "terbuka", "extension": "2000",
                "gateways": [{"id": "meeting", "sip": {
                    "uri": f"sip:81234567@{LOCALHOST}:{uas_port}",
                    "username": "bridge", "password": "rahasia-42",
                    "digits": "81234567#,4321#", "digits_delay_s": 0.5,
                    "redial_min_s": 1, "redial_max_s": 4, "codecs": ["PCMU"],
                }}],
            }],
        }, rtp_ports=40)
        alpha = members("alpha", clips["alpha"])
        call_id = alpha.call(bridge.uri("2000"))
        _wait_log(bridge, r"room=terbuka gateway=meeting: leg up", 10)
        _wait_log(bridge, r"gateway meeting: digits sent|member=\d+: digits sent", 10)
        wait_until(lambda: len(sink.digits) >= 13, 5, "the meeting ID and passcode")
        assert "".join(sink.digits) == "81234567#4321#"
        # The far end hears the room: alpha's sentence in what reaches its RTP port.
        wait_until(lambda: len(sink.audio) * FRAME_S >= 4.0, 10, "4 s of the room's audio")
        heard = correlation_peak(np.concatenate(sink.audio), clips["alpha"].utterance)
        _measured("gateway hears the phone member", heard.value)
        assert heard.value > HEARD_NCC
        # The far end hangs up after 6 s; the leg is dialled again (challenged again).
        _wait_log(bridge, r"room=terbuka gateway=meeting: leg waiting", 15)
        _wait_log(bridge, r"room=terbuka gateway=meeting: leg up \(answered\)(?s:.*)"
                  r"room=terbuka gateway=meeting: leg up \(answered\)", 15)
        alpha.end_call()
        _wait_log(bridge, rf"call={call_id}.*ended")
        _wait_log(bridge, r"room=terbuka gateway=meeting: leg idle", 10)
        run = uas.finish(20)
        assert run.returncode == 0, run.errors
        invites = [m for m in run.messages if m.direction == "received" and m.method == "INVITE"
                   and m.status is None]
        assert len(invites) >= 3  # two challenged first tries and the re-dial
        assert any("Authorization: Digest" in m.text for m in invites)
    finally:
        sink.stop()


def test_trunk_registration_did_routing_and_reregistration_after_a_restart(
    procs: ProcessGroup, clips: dict[str, SpeechClip], members: MemberFactory,
) -> None:
    kamailio = start_kamailio(procs, procs.directory / "kamailio", port=free_port(both=True),
                              password="trunk-secret-7")
    bridge = start_bridge(procs, {
        "sip": {"domain": "telerapat.test"},
        "language": "en",
        "trunks": [{
            "id": "kamailio", "registrar": f"sip:{LOCALHOST}:{kamailio.port}",
            "username": TRUNK_USER, "password": "trunk-secret-7", "expires_s": 10,
        }],
        "rooms": [
            {"id": "terbuka", "extension": "2000"},
            {"id": "rakor", "extension": "1000", "numbers": ["0215551000"]},
        ],
    }, rtp_ports=40)
    binding = kamailio.wait_for_binding(port=bridge.sip_port, timeout_s=10)
    assert binding.expires_s <= 10
    _wait_log(bridge, r"trunk=kamailio: registration registered")

    # The PSTN gateway (SIPp) calls the DID through Kamailio: the bridge answers it in rakor.
    run = run_sipp(procs, kamailio.sipp_peer, SIPP_SCENARIOS / "trunk_uac.xml",
                   service="0215551000", extra_args=["-d", "2000"], timeout_s=20)
    assert run.returncode == 0, run.errors
    assert any(m.status == 200 and m.method == "INVITE"
               for m in run.messages if m.direction == "received")
    _wait_log(bridge, r"room=rakor member=\d+: answered .* from 127\.0\.0\.1")

    # Two-way audio: a caller through the trunk and one dialling the room directly.
    alpha, bravo = members("alpha", clips["alpha"]), members("bravo", clips["bravo"])
    alpha_id = alpha.call(kamailio.uri("0215551000"))
    _wait_log(bridge, _call_log(alpha_id, "joined as participant"))
    bravo.call(bridge.uri("1000"))
    mark_alpha, mark_bravo = alpha.heard_seconds(), bravo.heard_seconds()
    alpha.wait_heard_seconds(mark_alpha + 8, timeout_s=20)
    bravo.wait_heard_seconds(mark_bravo + 8, timeout_s=20)
    to_alpha = correlation_peak(_heard(alpha)[int(mark_alpha * RATE_HZ):],
                                clips["bravo"].utterance)
    to_bravo = correlation_peak(_heard(bravo)[int(mark_bravo * RATE_HZ):],
                                clips["alpha"].utterance)
    _measured("trunk caller hears the direct caller", to_alpha.value)
    _measured("direct caller hears the trunk caller", to_bravo.value)
    assert to_alpha.value > HEARD_NCC and to_bravo.value > HEARD_NCC
    alpha.end_call()
    bravo.end_call()

    # Kamailio restarts and forgets every binding; the bridge's refresh registers again.
    kamailio.restart()
    assert not kamailio.bindings()
    kamailio.wait_for_binding(port=bridge.sip_port, timeout_s=15)
