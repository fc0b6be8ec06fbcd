"""A 16 kHz room with mixed codecs: wideband stays wideband, narrowband gets no aliases,
packets follow each member's ptime, encodes are shared, Opus DTX and FEC work."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import bridge.conference.media as media_module
import dsp.echo as echo_module
from bridge.conference.media import MemberMedia, OutgoingPacket, PayloadBatch
from bridge.conference.prompts import PromptLibrary
from bridge.conference.room import DigitHeard, MuteChanged, MuteState, Phase, Room
from bridge.config import RoomConfig
from dsp.codecs import codec_rates, new_decoder, new_encoder
from dsp.codecs.base import EncoderSettings, StreamDecoder, StreamEncoder
from dsp.echo import DETECTOR_CHECK_FRAMES
from dsp.jitter import JitterBuffer
from dsp.tones import dtmf

Samples = NDArray[np.float32]
ROOM_RATE = 16_000


def quiet_room(pin: str | None = None) -> Room:
    """A room (PIN-less unless given one) whose prompts are 20 ms of silence, so they end
    at once and are never heard."""
    names = ("enter_pin", "wrong_pin", "too_many_attempts", "welcome", "alone", "muted",
             "unmuted", "moderator")
    clip = np.zeros(ROOM_RATE // 50, dtype=np.float32)
    # Tones are not speech, and these tests measure the mixing path itself: every line
    # above the floor is a talker, at the level it was sent (VAD and AGC: test_talkers.py).
    config = RoomConfig(
        id="r", extension="1", name=None, pin=pin, moderator_pin=None, mode="meeting",
        access="anyone", language="en", codecs=("OPUS", "G722", "PCMU", "PCMA"),
        voice_detection=False, agc=False,
    )
    return Room(config, PromptLibrary(ROOM_RATE, {("en", n): clip for n in names}))


def sine(freq_hz: float, seconds: float, rate_hz: int, amplitude: float = 0.3) -> Samples:
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def level_db(samples: Samples, freq_hz: float, rate_hz: int) -> float:
    """Level of one frequency component, dB relative to full scale, by a Hann-windowed DFT."""
    window = np.hanning(samples.shape[0])
    t = np.arange(samples.shape[0]) / rate_hz
    amplitude = 2 * abs(np.sum(samples * window * np.exp(-2j * np.pi * freq_hz * t)))
    return float(20 * np.log10(amplitude / window.sum() + 1e-12))


class Caller:
    """A member's phone: encodes what it says with the member's codec, decodes what it gets."""

    def __init__(self, room: Room, member_id: int, codec: str,
                 settings: EncoderSettings | None = None) -> None:
        self.room, self.member_id, self.codec = room, member_id, codec
        self.settings = settings or EncoderSettings()
        self.rate_hz, self.clock_hz = codec_rates(codec)
        room.add_member(member_id, str(member_id), codec, 0.0, self.settings)
        self.encoder: StreamEncoder = new_encoder(codec, EncoderSettings())
        self.decoder: StreamDecoder = new_decoder(codec)
        self.timestamp = 0
        self.heard: list[Samples] = []
        self.packets: list[OutgoingPacket] = []

    def say(self, frame: Samples, lost: bool = False, lost_before: bool = False) -> None:
        payload = self.encoder.encode(frame)
        if payload is not None and not lost:
            self.room.push_audio(self.member_id, self.timestamp, payload, lost_before=lost_before)
        self.timestamp += frame.shape[0] * self.clock_hz // self.rate_hz

    def receive(self, packet: OutgoingPacket) -> None:
        self.packets.append(packet)
        if packet.payload is not None:
            self.heard.append(self.decoder.decode(packet.payload))

    def recording(self) -> Samples:
        return np.concatenate(self.heard)


def run(room: Room, callers: list[Caller], speech: dict[int, Samples], ticks: int) -> None:
    """Tick the room; members in `speech` say 20 ms of their signal before each tick."""
    for tick in range(ticks):
        for caller in callers:
            if caller.member_id in speech:
                frame_len = caller.rate_hz // 50
                chunk = speech[caller.member_id][tick * frame_len : (tick + 1) * frame_len]
                caller.say(np.pad(chunk, (0, frame_len - chunk.shape[0])))  # then silence
        for member_id, packet in room.tick(tick * 0.02).items():
            next(c for c in callers if c.member_id == member_id).receive(packet)


def test_wideband_talker_reaches_wideband_listener_above_4khz_and_narrowband_without_alias(
) -> None:
    room = quiet_room()
    talker = Caller(room, 1, "G722")
    wide = Caller(room, 2, "G722")
    narrow = Caller(room, 3, "PCMU")
    run(room, [talker, wide, narrow], {1: sine(6000, 2.0, 16000) + sine(1000, 2.0, 16000)}, 100)
    wide_heard = wide.recording()[16000:]
    narrow_heard = narrow.recording()[8000:]
    assert level_db(wide_heard, 6000, 16000) > -14  # -10.5 dBFS sent
    assert level_db(wide_heard, 1000, 16000) > -14
    assert level_db(narrow_heard, 1000, 8000) > -14
    # 6 kHz would fold to 2 kHz at 8 kHz: the downsampler stops it (>= 70 dB, plus G.711).
    assert level_db(narrow_heard, 2000, 8000) < -60


def test_narrowband_talker_is_upsampled_for_wideband_listeners() -> None:
    room = quiet_room()
    talker = Caller(room, 1, "PCMA")
    wide = Caller(room, 2, "OPUS", EncoderSettings(bitrate_bps=32_000))
    run(room, [talker, wide], {1: sine(1000, 2.0, 8000)}, 100)
    heard = wide.recording()[16000:]
    assert level_db(heard, 1000, 16000) > -13  # -10.5 dBFS sent
    assert level_db(heard, 7000, 16000) < -50  # the 8 kHz image of 1 kHz is filtered out


def test_packets_follow_each_members_ptime_and_same_ptime_listeners_share_the_payload(
) -> None:
    room = quiet_room()
    talker = Caller(room, 1, "PCMU")
    forty = [Caller(room, m, "PCMU", EncoderSettings(ptime_ms=40)) for m in (2, 3)]
    sixty = Caller(room, 4, "G722", EncoderSettings(ptime_ms=60))
    twenty = Caller(room, 5, "PCMU")
    run(room, [talker, *forty, sixty, twenty], {1: sine(500, 1.2, 8000)}, 60)
    assert len(twenty.packets) == 60
    assert [len(c.packets) for c in forty] == [30, 30]
    assert len(sixty.packets) == 20
    assert {p.timestamp_step for p in forty[0].packets} == {320}
    assert {len(p.payload or b"") for p in forty[0].packets} == {320}
    assert {p.timestamp_step for p in sixty.packets} == {480}  # G.722 counts 8000 per second
    assert all(a.payload is b.payload for a, b in zip(*(c.packets for c in forty), strict=True))
    assert level_db(forty[0].recording()[8000:], 500, 8000) > -14


def test_opus_listeners_with_the_same_settings_share_one_encode_and_others_do_not() -> None:
    room = quiet_room()
    talker = Caller(room, 1, "PCMU")
    same = [Caller(room, m, "OPUS") for m in (2, 3)]
    other = Caller(room, 4, "OPUS", EncoderSettings(bitrate_bps=24_000))
    run(room, [talker, *same, other], {1: sine(700, 1.0, 8000)}, 50)
    pairs = list(zip(same[0].packets, same[1].packets, other.packets, strict=True))
    assert all(a.payload is b.payload for a, b, _ in pairs)
    assert sum(a.payload != c.payload for a, _, c in pairs) > 40


def test_opus_dtx_sends_nothing_in_silence_but_keeps_the_clock() -> None:
    room = quiet_room()
    listener = Caller(room, 1, "OPUS", EncoderSettings(dtx=True))
    speaker = Caller(room, 2, "PCMU")
    run(room, [listener, speaker], {}, 100)
    tail = listener.packets[50:]
    assert sum(p.payload is None for p in tail) > 40  # a packet every 400 ms at most
    assert {p.timestamp_step for p in tail} == {960}


def test_opus_fec_rebuilds_a_lost_packet_from_the_next() -> None:
    """With the packet before flagged lost, the gap fills from FEC; unflagged, it stays a
    hole in the playout buffer."""
    speech = sine(300, 1.0, 16000) * np.float32(2.0)
    played: dict[bool, list[bool]] = {}
    for flagged in (True, False):
        media = MemberMedia("OPUS", EncoderSettings())
        encoder = new_encoder("OPUS", EncoderSettings(bitrate_bps=24_000,
                                                      expected_loss_percent=20))
        played[flagged] = []
        for index in range(30):
            payload = encoder.encode(speech[index * 320 : (index + 1) * 320])
            assert payload is not None
            if index != 20:  # packet 20 is lost on the way
                media.push(index * 960, payload, lost_before=flagged and index == 21, late=False)
            played[flagged].append(media.jitter.pop(320)[1])
    # 40 ms of prefill: packet 20 would play at tick 22, when packet 21 is already in.
    assert played[True][22] and not played[False][22]
    assert played[True][3:] == [True] * 27


def test_corrupt_opus_payload_is_dropped_and_counted() -> None:
    media = MemberMedia("OPUS", EncoderSettings())
    media.push(0, b"\xff\xff\xff", lost_before=False, late=False)
    assert media.bad_payloads == 1


def test_a_stateful_codec_joining_between_packet_edges_starts_at_the_next_edge() -> None:
    """A G.722 or Opus member at 40/60 ms joining mid-grid once made the encoder see a
    short frame and raise, which stopped the media clock for every room."""
    room = quiet_room()
    talker = Caller(room, 1, "PCMU")
    run(room, [talker], {1: sine(500, 0.2, 8000)}, 1)
    late = [Caller(room, 2, "G722", EncoderSettings(ptime_ms=40)),
            Caller(room, 3, "OPUS", EncoderSettings(ptime_ms=60))]
    run(room, [talker, *late], {1: sine(500, 2.0, 8000)}, 60)
    sent = [[p for p in caller.packets if p.payload is not None] for caller in late]
    assert {p.timestamp_step for p in sent[0]} == {320}
    assert {p.timestamp_step for p in sent[1]} == {2880}
    assert len(sent[0]) >= 29 and len(sent[1]) >= 19
    # Before its first edge a member's RTP clock runs on, 20 ms a tick, so that the
    # timestamps of all it is sent keep pace with the 60 ticks that passed.
    for caller, frame_ticks in zip(late, (160, 960), strict=True):
        waiting = len(room.member(caller.member_id).media.pending)  # the next packet's
        assert sum(p.timestamp_step for p in caller.packets) == (60 - waiting) * frame_ticks


def test_a_ptime_change_mid_packet_lets_that_packet_pass_unsent() -> None:
    room = quiet_room()
    talker = Caller(room, 1, "PCMU")
    listener = Caller(room, 2, "OPUS", EncoderSettings(ptime_ms=60))
    run(room, [talker, listener], {1: sine(500, 0.2, 8000)}, 4)
    room.set_send_settings(2, EncoderSettings(ptime_ms=20))
    for member_id, packet in room.tick(0.1).items():
        [talker, listener][member_id - 1].receive(packet)
    assert listener.packets[-1].payload is None
    assert listener.packets[-1].timestamp_step == 2 * 960  # the clock still moves on


def test_a_late_packet_is_dropped_for_stateful_codecs_only() -> None:
    for codec, dropped in (("OPUS", 1), ("G722", 1), ("PCMU", 0)):
        media = MemberMedia(codec, EncoderSettings())
        encoder = new_encoder(codec, EncoderSettings())
        rate, clock = codec_rates(codec)
        frame = sine(400, 0.02, rate)
        media.push(0, encoder.encode(frame) or b"", lost_before=False, late=False)
        media.push(clock // 50, encoder.encode(frame) or b"", lost_before=False, late=True)
        assert media.late_dropped == dropped


def test_a_narrowband_prompt_after_silence_carries_no_room_audio() -> None:
    """A caller at the PIN prompt hears silence, then a prompt: the prompt's first frame
    must not start from the room mix's filter history (the room is private until then)."""
    room = quiet_room(pin="1234")
    members = [Caller(room, 1, "PCMU")]
    for digit in "1234#":
        room.press(1, digit, 0.0)
    run(room, members, {1: sine(500, 0.4, 8000, amplitude=0.5)}, 5)  # alone: nobody hears
    members.append(Caller(room, 2, "PCMU"))  # at the PIN prompt (silent prompt clips)
    run(room, members, {1: sine(500, 2.0, 8000, amplitude=0.5)}, 80)
    heard = members[1].recording()
    assert float(np.max(np.abs(heard))) < 0.01  # not a sample of the room leaked


def test_a_talker_keeps_its_own_opus_encoder_through_pauses_then_rejoins_the_shared_one(
) -> None:
    room = quiet_room()
    talker = Caller(room, 1, "OPUS")
    listeners = [Caller(room, m, "OPUS") for m in (2, 3)]
    callers = [talker, *listeners]
    words = np.concatenate([
        sine(300, 0.6, 16000), np.zeros(8000, np.float32),  # a word, a 0.5 s pause
        sine(300, 0.6, 16000), np.zeros(48000, np.float32),  # a word, then 3 s of silence
    ])
    run(room, callers, {1: words}, len(words) // 320)
    shared = [a.payload is b.payload for a, b in zip(*(c.packets for c in listeners),
                                                       strict=True)]
    own = [t.payload is not a.payload
           for t, a in zip(talker.packets, listeners[0].packets, strict=True)]
    assert all(shared)
    pause = range(35, 55)  # 0.7-1.1 s: between the words, the talker hears the room
    assert all(own[tick] for tick in pause)  # ...but through its own encoder
    assert not any(own[-20:])  # 2 s after its last word it shares again


def keyed(digits: str, rate_hz: int, press_ms: int = 80, gap_ms: int = 80) -> Samples:
    """Key presses as a phone line sends them in-band, between stretches of silence."""
    gap = np.zeros(rate_hz * gap_ms // 1000, dtype=np.float32)
    parts = [gap]
    for digit in digits:
        parts += [dtmf(digit, press_ms, rate_hz, level_dbfs=-12.0), gap]
    return np.concatenate(parts)


def test_in_band_star_six_mutes_and_the_tones_stay_out_of_the_mix() -> None:
    room = quiet_room()
    keyer = Caller(room, 1, "PCMU")
    listener = Caller(room, 2, "G722")
    room.pop_actions()
    run(room, [keyer, listener], {1: keyed("*6", 8000)}, 25)
    actions = room.pop_actions()
    assert [a for a in actions if isinstance(a, DigitHeard)] == [
        DigitHeard(1, "*"), DigitHeard(1, "6")
    ]
    assert MuteChanged(1, MuteState.SELF_MUTED) in actions
    heard = listener.recording()
    # Only the ~20 ms before the detector is sure can leak: far less than the 2 x 80 ms keyed.
    loud = np.abs(heard) > 0.02
    assert loud.sum() < 16000 * 0.05


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_40_ms_presses_on_frame_edges_between_silences_count(codec: str) -> None:
    """Q.24's shortest press, from a phone that keys whole packets: each press confirms in
    the hops of the silent frame after it, which must still be analysed."""
    room = quiet_room()
    keyer = Caller(room, 1, codec)
    room.pop_actions()
    run(room, [keyer], {1: keyed("*6#1", 8000, press_ms=40, gap_ms=40)}, 25)
    assert [a.digit for a in room.pop_actions() if isinstance(a, DigitHeard)] == list("*6#1")


def test_open_lines_with_line_noise_are_not_searched_for_key_presses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Noise at -60 .. -52 dBFS (above the talker floor) cannot carry a press: in a large
    room of open lines only the line that keys is analysed."""
    analysed: list[int] = []
    detect = media_module.detect_dtmf

    def counting(frames: Samples, states: Samples, rate_hz: int) -> object:
        analysed.append(frames.shape[0])
        return detect(frames, states, rate_hz)

    monkeypatch.setattr(media_module, "detect_dtmf", counting)
    room = quiet_room()
    callers = [Caller(room, m, "PCMU") for m in range(1, 9)]
    rng = np.random.default_rng(5)
    noise = {
        m: (10 ** ((-60 + m) / 20) * rng.standard_normal(8000)).astype(np.float32)
        for m in range(2, 9)
    }
    room.pop_actions()
    run(room, callers, {1: keyed("5", 8000), **noise}, 25)
    assert [a.digit for a in room.pop_actions() if isinstance(a, DigitHeard)] == ["5"]
    assert analysed and max(analysed) == 1


def test_a_pin_typed_as_tones_admits_the_caller() -> None:
    room = quiet_room(pin="4321")
    caller = Caller(room, 1, "OPUS", EncoderSettings(bitrate_bps=32_000))
    run(room, [caller], {1: keyed("4321#", 16000)}, 50)
    assert room.member(1).phase is Phase.IN_ROOM


def test_a_press_signalled_and_heard_in_band_counts_once() -> None:
    room = quiet_room()
    keyer = Caller(room, 1, "PCMU")
    run(room, [keyer], {}, 2)
    room.press(1, "*", 0.04)  # RFC 4733 event; the tone follows in the audio
    run(room, [keyer], {1: keyed("*", 8000)}, 10)  # heard in-band at ~0.1 s
    room.press(1, "6", 0.5)
    assert room.member(1).mute is MuteState.SELF_MUTED  # "*6", not "**6"


def test_a_members_echo_setting_survives_a_codec_change() -> None:
    room = quiet_room()
    Caller(room, 1, "PCMU")
    room.set_echo_mode(1, "on")
    room.set_codec(1, "G722")
    media = room.member(1).media
    assert media.echo_mode == "on"
    assert media.echo is not None and media.echo.rate_hz == 16000


class _SilencingCanceller:
    """Stands in for a canceller that has removed everything, so what the detector is fed
    can be told apart from what the canceller gives out."""

    def process(self, mic: Samples, reference: Samples) -> Samples:
        return np.zeros_like(mic)


def test_the_echo_detector_hears_the_line_before_its_canceller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Judged on the canceller's output, a cancelled line would look echo-free, lose its
    canceller, and get its echo back."""
    fed: list[float] = []

    def detect(mic_power: NDArray[np.float64], reference_power: NDArray[np.float64],
               states: NDArray[np.float32]) -> NDArray[np.float64]:
        fed.append(float(mic_power[0]))
        return np.full(mic_power.shape, 20.0)  # echo at 20 ms: keep the canceller

    monkeypatch.setattr(media_module, "update_echo_detectors", detect)
    room = quiet_room()
    talker = Caller(room, 1, "PCMU")
    room.member(1).media.echo = _SilencingCanceller()  # type: ignore[assignment]
    run(room, [talker], {1: sine(500, 0.4, 8000)}, 20)
    assert room.member(1).media.echo is not None
    assert min(fed[5:]) > 0.01  # the line's own 500 Hz at -13.5 dBFS, not the zeros


def _count_echo_checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(tick, members) of every echo check call from now on, ticks counted by call of
    `update_echo_detectors`."""
    checked: list[tuple[int, int]] = []
    ticks = [0]
    check, detect = echo_module._check, media_module.update_echo_detectors

    def counting(states: Samples, due: NDArray[np.intp], oldest: NDArray[np.int64]) -> None:
        checked.append((ticks[0], due.size))
        check(states, due, oldest)

    def ticking(*args: Any) -> NDArray[np.float64]:
        ticks[0] += 1
        return detect(*args)

    monkeypatch.setattr(echo_module, "_check", counting)
    monkeypatch.setattr(media_module, "update_echo_detectors", ticking)
    return checked


def test_members_who_join_together_have_their_echo_checks_spread_over_the_ticks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """50 members who joined in one tick are checked 40 and 10 in two ticks of every 25,
    not all 50 in one tick every half second (a check call costs ~250 us, plus ~7 us a
    member)."""
    checked = _count_echo_checks(monkeypatch)
    room = quiet_room()
    callers = [Caller(room, m, "PCMU") for m in range(1, 51)]
    run(room, callers, {}, 7 * DETECTOR_CHECK_FRAMES + 3 * DETECTOR_CHECK_FRAMES)
    assert sum(members for _, members in checked) >= 2 * 50  # all checked, at least twice
    assert sorted({members for _, members in checked}) == [10, 40]
    assert len({tick for tick, _ in checked}) == len(checked)  # each call its own tick


def test_members_who_join_one_by_one_have_their_echo_checks_in_one_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """People dial in over minutes: a small room's detectors all keep the room's beat, so
    its checks are one call every half second, not one per member."""
    checked = _count_echo_checks(monkeypatch)
    room = quiet_room()
    callers: list[Caller] = []
    for member_id in range(1, 11):  # one more member every 7 ticks
        callers.append(Caller(room, member_id, "PCMU"))
        run(room, callers, {}, 7)
    run(room, callers, {}, 10 * DETECTOR_CHECK_FRAMES)
    assert [members for _, members in checked][-3:] == [10, 10, 10]
    ticks = [tick for tick, _ in checked]
    assert all(later - earlier == DETECTOR_CHECK_FRAMES
               for earlier, later in zip(ticks, ticks[1:], strict=False))


def test_a_batch_decodes_g711_of_many_members_as_each_packet_alone_would() -> None:
    """One lookup per law for the whole sweep, in the order the packets came: each member's
    playout buffer gets exactly what pushing its packets one by one gives."""
    rng = np.random.default_rng(5)
    codecs = ["PCMU", "PCMA", "PCMU", "G722", "PCMA"]
    batched = [MemberMedia(codec, EncoderSettings()) for codec in codecs]
    alone = [MemberMedia(codec, EncoderSettings()) for codec in codecs]
    encoders = [new_encoder(codec, EncoderSettings()) for codec in codecs]
    frames = {"PCMU": 160, "PCMA": 160, "G722": 320}
    for tick in range(5):
        batch = PayloadBatch()
        # Members 2 and 4 send a packet twice (a duplicate in the same sweep).
        order = [(k, tick) for k in range(len(codecs))] + [(2, tick), (4, tick)]
        for k, seq in order:
            step = 160 * seq
            samples = (0.1 * rng.standard_normal(frames[codecs[k]])).astype(np.float32)
            payload = encoders[k].encode(samples)
            for media, target in ((batched[k], batch), (alone[k], None)):
                if target is None:
                    media.push(step, payload, lost_before=False, late=False, arrival_s=None)
                else:
                    target.add(media, step, payload, lost_before=False, late=False,
                               arrival_s=None)
        batch.push()
    for media, reference in zip(batched, alone, strict=True):
        for _ in range(12):
            got, got_audio = media.jitter.pop(media.frame_samples)
            want, want_audio = reference.jitter.pop(reference.frame_samples)
            assert got_audio == want_audio
            assert np.array_equal(got, want)


def test_a_packet_that_fails_in_a_batch_is_dropped_alone(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenBuffer(JitterBuffer):
        def push(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug")

    good, broken = MemberMedia("PCMU", EncoderSettings()), MemberMedia("PCMU", EncoderSettings())
    broken.jitter = BrokenBuffer(8000)
    batch = PayloadBatch()
    batch.add(broken, 0, b"\x00" * 160, lost_before=False, late=False, arrival_s=None)
    batch.add(good, 0, b"\x00" * 160, lost_before=False, late=False, arrival_s=None)
    batch.push()
    assert good.jitter.statistics().packets == 1
    assert "a PCMU packet (timestamp 0) dropped" in caplog.text
