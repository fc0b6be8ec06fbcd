"""Issue #3 with real clients: Opus and G.722 members beside G.711 ones in a 16 kHz room.

baresip members each offer one codec (Opus, G.722 or PCMU), so the bridge's answer is
known; every test asserts it from the bridge's "answered ... codec X" line. Speech is
found in recordings by normalised cross-correlation at 8 kHz, what every member can
hear, with test_audio.py's thresholds; wideband and aliasing are measured as band
levels of steady tones. Figures are printed as MEASURED lines (pytest -s).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.integration.audio_analysis import (
    Samples,
    band_level_dbfs,
    correlation_peak,
    read_recording,
    read_wav,
    resample,
    rms_dbfs,
    trim_silence,
    write_wav,
)
from tests.integration.baresip import G722, OPUS, PCMU, AudioCodec, Baresip, start_baresip
from tests.integration.harness import ProcessGroup, RunningBridge, start_bridge

ANALYSIS_RATE_HZ = 8000  # speech is compared where every codec here carries it
WIDEBAND_RATE_HZ = 16_000  # the room's rate: what Opus and G.722 members can hear
SPEECH_LEVEL_DBFS = -24.0  # as test_audio.py: two talkers stay below the limiter's knee
GAP_S = 0.3  # silence between repetitions of a member's sentence
SOURCE_S = 40.0  # longer than any call here: baresip hangs up when its source ends
# Thresholds of test_audio.py: a heard clip peaks at 0.75-1.0, an unheard one below 0.09.
HEARD_NCC = 0.5
NOT_HEARD_NCC = 0.15
# Sentences recorded per listener. An Opus member that talks too hears some sentences
# worse than others (measured: 0.64-0.81 per sentence, 0.81-0.82 when it is silent): the
# bridge switches its stream between its own encoder and the shared one whenever it
# pauses (conference/media.py), and each switch is a small step for its decoder. Three
# sentences give the best of at least two whole ones.
SPEECH_LOOPS = 3
# Audio recorded right after the last join is left out of measurements: encoders start,
# jitter buffers fill.
SETTLE_S = 0.6

SPEECH = {
    # name: (espeak-ng voice, sentence), as in test_audio.py
    "alpha": ("en-us", "Seven apples lie on the kitchen table"),
    "bravo": ("en-gb-x-rp+f2", "Please bring the blue folder tomorrow"),
}

# The wideband talker's steady signal: a low tone every member can hear, and a high tone
# only wideband members can. A narrowband member would hear the high tone folded to
# 8000 - 6000 = 2000 Hz if the bridge decimated to 8 kHz without filtering first. The low
# tone is prime to 8000 Hz: G.711 quantises it with an error whose harmonics fold all over
# the band, none of them strongly onto 2000 Hz (900 Hz would put its 20th right there), and
# no low-order intermodulation product with 6000 Hz lands near 2000 Hz either.
LOW_TONE_HZ = 937
LOW_TONE_DBFS = -26.0
HIGH_TONE_HZ = 6000
HIGH_TONE_DBFS = -20.0
ALIAS_HZ = 8000 - HIGH_TONE_HZ
# A frequency where nobody sends anything: its level in the PCMU listener's recording is
# the floor (mostly G.711 quantisation noise) that an alias would have to stand out of.
FLOOR_HZ = 2350
# Tones are read in 1 Hz bins within +-5 Hz: G.711's noise under the low tone comes to
# about -79 dBFS per 100 Hz but -87 to -90 dBFS per 10 Hz, which leaves room to see an
# alias 50 dB below the 6 kHz tone (the bridge's decimator promises 70 dB).
TONE_BAND_HZ = 5
TONE_RESOLUTION_HZ = 1.0
HIGH_BAND_HZ = (4000, 7000)  # above narrowband, below G.722's upper edge
AUDIO_BAND_HZ = (50, 7000)
WINDOW_S = 2.0  # of steady tones, analysed per listener
# Measured here: tones arrive within 1.5 dB of their source level and the high band keeps
# its share of the power within 0.1 dB; the PCMU listener's 2 kHz band stays within 3 dB
# of its noise floor, 65-68 dB below the 6 kHz tone. The limits leave room for codecs.
TONE_LEVEL_TOLERANCE_DB = 3.0
MAX_HIGH_BAND_LOSS_DB = 3.0
MAX_ALIAS_DB = -50.0  # relative to the 6 kHz tone

SourceAt = Callable[[int], Samples]  # the source signal at a given rate in Hz


@dataclass(frozen=True)
class Speech:
    """One member's sentence, from espeak-ng: correlation reference and looped source."""

    name: str
    spoken: Samples  # trimmed and levelled, at `rate_hz`
    rate_hz: int

    @property
    def utterance(self) -> Samples:
        """The sentence at `ANALYSIS_RATE_HZ`: what to look for in recordings."""
        return resample(self.spoken, self.rate_hz, ANALYSIS_RATE_HZ)

    @property
    def loop_s(self) -> float:
        return int(self.spoken.shape[0]) / self.rate_hz + GAP_S

    def looped(self, rate_hz: int) -> Samples:
        """The sentence with `GAP_S` pauses, repeated for `SOURCE_S`, at `rate_hz`."""
        once = np.concatenate([
            resample(self.spoken, self.rate_hz, rate_hz),
            np.zeros(round(GAP_S * rate_hz), np.float32),
        ])
        total = round(SOURCE_S * rate_hz)
        return np.tile(once, total // once.shape[0] + 1)[:total]


def _synthesize(name: str, voice: str, text: str, directory: Path) -> Speech:
    spoken_path = directory / f"{name}-espeak.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "160", "-w", str(spoken_path), text],
        check=True, timeout=30,
    )
    samples, rate_hz = read_wav(spoken_path)
    spoken = trim_silence(samples, rate_hz)
    gain = 10 ** ((SPEECH_LEVEL_DBFS - rms_dbfs(spoken)) / 20)
    return Speech(name, (spoken * gain).astype(np.float32), rate_hz)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Speech]:
    """The members' sentences, synthesized once per run (espeak-ng is deterministic)."""
    directory = tmp_path_factory.mktemp("speech")
    return {name: _synthesize(name, voice, text, directory)
            for name, (voice, text) in SPEECH.items()}


def _tone(frequency_hz: float, level_dbfs: float, rate_hz: int) -> Samples:
    """A sine of `level_dbfs` RMS lasting `SOURCE_S`."""
    t = np.arange(round(SOURCE_S * rate_hz)) / rate_hz
    amplitude = np.sqrt(2) * 10 ** (level_dbfs / 20)
    tone: Samples = (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    return tone


def _wideband_tones(rate_hz: int) -> Samples:
    return _tone(LOW_TONE_HZ, LOW_TONE_DBFS, rate_hz) + _tone(HIGH_TONE_HZ, HIGH_TONE_DBFS, rate_hz)


def _silence(rate_hz: int) -> Samples:
    return np.zeros(round(SOURCE_S * rate_hz), np.float32)


class MemberFactory:
    """Start baresip members speaking a given signal (stopped by PID with `procs`)."""

    def __init__(self, procs: ProcessGroup) -> None:
        self._procs = procs
        self.started: list[Baresip] = []

    def __call__(
        self, name: str, codec: AudioCodec, source: SourceAt, *, ptime_ms: int | None = None
    ) -> Baresip:
        """Start `name` offering only `codec`, speaking `source` at the codec's own rate
        (so baresip's resampler stays out of the signal)."""
        path = self._procs.directory / f"{name}-source.wav"
        write_wav(path, source(codec.audio_rate_hz), codec.audio_rate_hz)
        member = start_baresip(self._procs, name, path, codecs=[codec], ptime_ms=ptime_ms)
        self.started.append(member)
        return member


@pytest.fixture
def members(procs: ProcessGroup) -> Iterator[MemberFactory]:
    factory = MemberFactory(procs)
    yield factory
    for member in factory.started:
        member.control.sock.close()


def _bridge(procs: ProcessGroup) -> RunningBridge:
    """A bridge with the default codec list (OPUS, G722, PCMU, PCMA) and ptimes 20/40/60."""
    config: dict[str, object] = {
        "sip": {"domain": "telerapat.test"},
        "rtp": {"timeout_s": 30},
        "language": "en",
        # Steady tones are not speech, and their levels are what is measured: every line
        # above the floor talks, at its own level (no voice detection, no AGC).
        "rooms": [{"id": "terbuka", "extension": "2000", "voice_detection": False,
                   "agc": False}],
    }
    return start_bridge(procs, config, rtp_ports=40)


def _join(bridge: RunningBridge, member: Baresip, codec: AudioCodec) -> str:
    """Call the open room, wait until the bridge lets the member in, check the codec it
    answered with; return the Call-ID."""
    call_id = member.call(bridge.uri("2000"))
    prefix = rf"call={re.escape(call_id)} room=\S+ member=\d+: "
    bridge.process.wait_for_output(prefix + "joined as participant", timeout_s=10)
    answered = re.search(prefix + r"answered .* codec (\S+), rtp port", bridge.log())
    assert answered is not None, f"no answer logged for {call_id}"
    assert answered.group(1) == codec.encoding, f"{member.name}: {answered.group(0)}"
    return call_id


def _listen(listeners: list[Baresip], seconds: float) -> dict[str, float]:
    """Let every listener record `seconds` more after `SETTLE_S`; return where (in seconds
    of its recording) each one's stretch starts."""
    starts = {m.name: m.heard_seconds() + SETTLE_S for m in listeners}
    for member in listeners:
        member.wait_heard_seconds(starts[member.name] + seconds, timeout_s=2 * seconds + 10)
    return starts


def _heard(member: Baresip, rate_hz: int) -> Samples:
    """What the member heard, resampled from the recording's rate to `rate_hz`."""
    samples, recorded_hz = read_recording(member.recording("dec"))
    return resample(samples, recorded_hz, rate_hz)


def _measured(label: str, value: float) -> None:
    print(f"MEASURED {label}: {value:.3f}")


def _assert_hear_each_other_not_themselves(
    members: list[Baresip], speech: dict[str, Speech]
) -> None:
    for listener in members:
        recording = _heard(listener, ANALYSIS_RATE_HZ)
        for talker in members:
            peak = correlation_peak(recording, speech[talker.name].utterance).value
            _measured(f"{listener.name} hears {talker.name}", peak)
            if talker is listener:
                assert peak < NOT_HEARD_NCC, f"{listener.name} hears itself ({peak:.3f})"
            else:
                assert peak > HEARD_NCC, f"{listener.name} misses {talker.name} ({peak:.3f})"


@pytest.mark.parametrize("wideband", [OPUS, G722], ids=lambda codec: codec.encoding)
def test_wideband_and_pcmu_members_hear_each_other_not_themselves(
    procs: ProcessGroup, members: MemberFactory, speech: dict[str, Speech],
    wideband: AudioCodec,
) -> None:
    bridge = _bridge(procs)
    alpha = members("alpha", wideband, speech["alpha"].looped)
    bravo = members("bravo", PCMU, speech["bravo"].looped)
    _join(bridge, alpha, wideband)
    _join(bridge, bravo, PCMU)
    _listen([alpha, bravo], SPEECH_LOOPS * max(s.loop_s for s in speech.values()))
    for member in (alpha, bravo):
        member.end_call()
    _assert_hear_each_other_not_themselves([alpha, bravo], speech)


def _tone_levels(samples: Samples, rate_hz: int) -> dict[str, float]:
    """Levels (dBFS) of the test tones, their alias, and the bands whose ratio is the
    wideband share."""
    def around(frequency_hz: float) -> float:
        return band_level_dbfs(samples, rate_hz, frequency_hz - TONE_BAND_HZ,
                               frequency_hz + TONE_BAND_HZ, resolution_hz=TONE_RESOLUTION_HZ)

    levels = {"low tone": around(LOW_TONE_HZ), "alias": around(ALIAS_HZ),
              "floor": around(FLOOR_HZ)}
    if rate_hz >= WIDEBAND_RATE_HZ:
        levels["high tone"] = around(HIGH_TONE_HZ)
        levels["high band share"] = (band_level_dbfs(samples, rate_hz, *HIGH_BAND_HZ)
                                     - band_level_dbfs(samples, rate_hz, *AUDIO_BAND_HZ))
    return levels


@pytest.mark.parametrize(
    ("talker_codec", "wideband_listener_codec"), [(OPUS, G722), (G722, OPUS)],
    ids=["OPUS-to-G722", "G722-to-OPUS"],
)
def test_wideband_talker_reaches_wideband_listener_and_pcmu_hears_no_alias(
    procs: ProcessGroup, members: MemberFactory, talker_codec: AudioCodec,
    wideband_listener_codec: AudioCodec,
) -> None:
    """A 6 kHz tone crosses the room to a wideband member; a PCMU member hears the low
    tone and nothing folded down to 2 kHz."""
    bridge = _bridge(procs)
    talker = members("talker", talker_codec, _wideband_tones)
    wide = members("wide", wideband_listener_codec, _silence)
    narrow = members("narrow", PCMU, _silence)
    for member, codec in ((talker, talker_codec), (wide, wideband_listener_codec),
                          (narrow, PCMU)):
        _join(bridge, member, codec)
    starts = _listen([wide, narrow], WINDOW_S)
    for member in (wide, narrow, talker):
        member.end_call()

    source = _tone_levels(_wideband_tones(WIDEBAND_RATE_HZ), WIDEBAND_RATE_HZ)
    heard: dict[str, dict[str, float]] = {}
    for member, rate_hz in ((wide, WIDEBAND_RATE_HZ), (narrow, ANALYSIS_RATE_HZ)):
        start = round(starts[member.name] * rate_hz)
        window = _heard(member, rate_hz)[start : start + round(WINDOW_S * rate_hz)]
        assert window.shape[0] == round(WINDOW_S * rate_hz)
        heard[member.name] = _tone_levels(window, rate_hz)
    for who, levels in (("source", source), *heard.items()):
        for what, level in levels.items():
            _measured(f"{who} {what} dB{'' if what == 'high band share' else 'FS'}", level)
    wide_loss_db = source["high band share"] - heard["wide"]["high band share"]
    alias_db = heard["narrow"]["alias"] - HIGH_TONE_DBFS
    _measured("wideband listener's high band share below the source's, dB", wide_loss_db)
    _measured("PCMU listener's 2 kHz alias relative to the 6 kHz tone, dB", alias_db)

    assert abs(heard["wide"]["high tone"] - HIGH_TONE_DBFS) < TONE_LEVEL_TOLERANCE_DB
    assert wide_loss_db < MAX_HIGH_BAND_LOSS_DB
    # The PCMU member does hear the talker, and its floor is low enough to show an alias.
    assert abs(heard["narrow"]["low tone"] - LOW_TONE_DBFS) < TONE_LEVEL_TOLERANCE_DB
    assert heard["narrow"]["floor"] - HIGH_TONE_DBFS < MAX_ALIAS_DB
    assert alias_db < MAX_ALIAS_DB


def test_member_asking_for_40_ms_gets_40_ms_packets(
    procs: ProcessGroup, members: MemberFactory, speech: dict[str, Speech]
) -> None:
    """PCMU at a=ptime:40 beside Opus at the default 20 ms: each gets its own packet time
    and both still hear each other."""
    # PCMU, not Opus or G.722, at 40 ms: a member of a stateful codec whose first packet is
    # due after one 20 ms frame (it joined between two 40 ms packet edges) makes the
    # bridge's encoder raise, which stops its media clock; reported with issue #3.
    bridge = _bridge(procs)
    alpha = members("alpha", PCMU, speech["alpha"].looped, ptime_ms=40)
    bravo = members("bravo", OPUS, speech["bravo"].looped)
    _join(bridge, alpha, PCMU)
    _join(bridge, bravo, OPUS)
    assert alpha.remote_audio_attributes().get("ptime") == "40"
    assert bravo.remote_audio_attributes().get("ptime") == "20"

    before = {m.name: (m.packets_received(), m.heard_seconds()) for m in (alpha, bravo)}
    _listen([alpha, bravo], SPEECH_LOOPS * max(s.loop_s for s in speech.values()))
    packet_ms: dict[str, float] = {}
    for member in (alpha, bravo):
        packets, seconds = member.packets_received(), member.heard_seconds()
        first_packets, first_seconds = before[member.name]
        # One decoded packet is one recorded frame: audio per packet is the packet time.
        packet_ms[member.name] = 1000 * (seconds - first_seconds) / (packets - first_packets)
        _measured(f"{member.name} ms of audio per packet received", packet_ms[member.name])
    for member in (alpha, bravo):
        member.end_call()

    assert packet_ms["alpha"] == pytest.approx(40, rel=0.1)
    assert packet_ms["bravo"] == pytest.approx(20, rel=0.1)
    _assert_hear_each_other_not_themselves([alpha, bravo], speech)
