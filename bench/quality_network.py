"""Speech quality over lossy, jittery links (issue #7): PESQ of G.711 speech after the network.

Speech (bench/speech.py: English and Indonesian, male and female espeak-ng voices, 8 kHz, at
-26 dBFS active level) is sent as 20 ms G.711 µ-law RTP packets after 2 s of silence (so an
adaptive buffer has heard the link before the words start), through a simulated network:
random loss, Gilbert-Elliott bursty loss, and uniform delay jitter around a base. Seeds are
fixed. The same packets, at the same arrival times, go to each receiver:

- bridge: the real member media path (bench/inprocess): a talker and a listener join over
  SIP, the talker's packets reach `CallController.receive_rtp` at their arrival times
  between the 20 ms ticks, and the listener's G.711 packets are decoded;
- buffer: `dsp.jitter.JitterBuffer` alone (push with the arrival time, pop every 20 ms), to
  tell its share from the room's (resampling 8 -> 16 -> 8 kHz, mixing);
- naive: a fixed 40 ms buffer that plays silence for lost or late packets;
- spandsp: a fixed 160 ms buffer with libspandsp's G.711 Appendix I concealment (ctypes).

PESQ (ITU-T P.862 narrowband MOS-LQO) of each against the clean clip, after removing the
bulk delay by cross-correlation; the median over seeds is shown.

    .venv/bin/python bench/quality_network.py           # 4 voices, 5 seeds (a few minutes)
    .venv/bin/python bench/quality_network.py --smoke   # one clip, one seed, for CI
"""

from __future__ import annotations

import argparse
import ctypes
import inspect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from bandwidth import Recorder, remove_delay
from inprocess import InProcessBridge, audio_offer, bench_config, rtp_sent_to
from numpy.typing import NDArray
from pesq import NoUtterancesError, pesq
from quality_report import Section
from speech import ENGLISH, INDONESIAN, VOICES, sentences_clip, set_active_level

from bridge.conference.room import Room
from bridge.rtp.sender import SendStream
from dsp.codecs import new_decoder, new_encoder
from dsp.codecs.base import EncoderSettings
from dsp.jitter import JitterBuffer

Samples = NDArray[np.float32]

RATE_HZ = 8000
FRAME = 160  # 20 ms at 8 kHz
TICK_S = 0.02
WARM_UP_FRAMES = 100  # 2 s of silence before the speech
TAIL_FRAMES = 40  # ticks run after the last packet is sent, so delayed audio comes out
SPEECH_LEVEL_DBFS = -26.0  # ITU-T P.56 nominal active speech level
SEEDS = (1, 2, 3, 4, 5)
# The target row must never fall below spandsp on the same packets: it gets twice the runs.
TARGET_SEEDS = tuple(range(1, 11))
NAIVE_DELAY_MS = 40
SPANDSP_DELAY_MS = 160
SPANDSP_LIBRARY = "/usr/lib/x86_64-linux-gnu/libspandsp.so.2"
TALKER_HOST = "198.51.100.10"  # RFC 5737 TEST-NET-2: names only
LISTENER_HOST = "198.51.100.20"
PCMU_PAYLOAD_TYPE = 0
# Gilbert-Elliott: the bad state loses 75 % and lasts 4 packets on average; the good state
# loses nothing. The bad state's share is set so that the average loss is the condition's.
_BURST_LOSS_IN_BAD = 0.75
_BURST_MEAN_PACKETS = 4.0
TARGET_CLEAN = 4.0
TARGET_LOSSY = 3.3
TARGET_CONDITION = "5 % + 60±40 ms"


@dataclass(frozen=True, slots=True)
class Condition:
    """A network: average loss, bursty or not, and delay `20 + jitter ± jitter` ms."""

    name: str
    loss: float = 0.0
    bursty: bool = False
    jitter_ms: float = 0.0

    def packets(self, count: int, seed: int) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        """Return which of `count` packets arrive, and when (seconds from the first send)."""
        rng = np.random.default_rng(seed)
        if self.bursty:
            leave_bad = 1.0 / _BURST_MEAN_PACKETS
            bad_share = self.loss / _BURST_LOSS_IN_BAD
            enter_bad = bad_share * leave_bad / (1.0 - bad_share)
            draws = rng.random((count, 2))
            lost = np.zeros(count, dtype=np.bool_)
            bad = False
            for index in range(count):  # a Markov chain: each step depends on the last
                bad = draws[index, 0] >= leave_bad if bad else draws[index, 0] < enter_bad
                lost[index] = bad and draws[index, 1] < _BURST_LOSS_IN_BAD
        else:
            lost = rng.random(count) < self.loss
        delay_ms = 20.0 + self.jitter_ms + rng.uniform(-self.jitter_ms, self.jitter_ms, count)
        arrivals = np.arange(count) * TICK_S + delay_ms / 1000
        return ~lost, arrivals


CONDITIONS = (
    Condition("clean"),
    Condition("2 % loss", 0.02),
    Condition("5 % loss", 0.05),
    Condition("10 % loss", 0.10),
    Condition("5 % bursty", 0.05, bursty=True),
    Condition("40±20 ms", jitter_ms=20),
    Condition("60±40 ms", jitter_ms=40),
    Condition("100±80 ms", jitter_ms=80),
    Condition(TARGET_CONDITION, 0.05, jitter_ms=40),
)
SMOKE_CONDITIONS = (CONDITIONS[0], CONDITIONS[-1])


@dataclass(frozen=True, slots=True)
class Stream:
    """One clip as the talker sends it: µ-law payloads and their RTP datagrams."""

    clean: Samples  # the speech, without the warm-up
    payloads: tuple[bytes, ...]
    datagrams: tuple[bytes, ...]


def make_stream(clip: Samples) -> Stream:
    """Encode warm-up silence and the clip as 20 ms PCMU packets, with RTP headers."""
    audio = np.concatenate([np.zeros(WARM_UP_FRAMES * FRAME, np.float32), clip])
    audio = np.pad(audio, (0, -len(audio) % FRAME))
    encoder = new_encoder("PCMU", EncoderSettings())
    sender = SendStream(PCMU_PAYLOAD_TYPE, RATE_HZ, random.Random(2))
    payloads, datagrams = [], []
    for start in range(0, len(audio), FRAME):
        payload = encoder.encode(audio[start : start + FRAME])
        assert payload is not None
        payloads.append(payload)
        datagrams.append(sender.packet(payload, FRAME))
    return Stream(clip, tuple(payloads), tuple(datagrams))


def _arrival_order(received: NDArray[np.bool_], arrivals: NDArray[np.float64]) -> list[int]:
    indices = np.flatnonzero(received)
    return [int(i) for i in indices[np.argsort(arrivals[indices], kind="stable")]]


def _speech_part(stream: Stream, heard: Samples) -> Samples:
    """What was heard from the warm-up's end on (the delay is removed by the PESQ step)."""
    return heard[WARM_UP_FRAMES * FRAME :]


# -- receivers ------------------------------------------------------------------------------


def through_buffer(
    stream: Stream, received: NDArray[np.bool_], arrivals: NDArray[np.float64],
    costs: list[float] | None = None,
) -> Samples:
    """Push each packet into a JitterBuffer at its arrival time; pop one frame per tick."""
    decoder = new_decoder("PCMU")
    buffer = JitterBuffer(RATE_HZ)
    order = _arrival_order(received, arrivals)
    frames = []
    next_packet = 0
    spent = 0.0
    ticks = len(stream.payloads) + TAIL_FRAMES
    for tick in range(ticks):
        now = tick * TICK_S
        while next_packet < len(order) and arrivals[order[next_packet]] <= now:
            index = order[next_packet]
            decoded = decoder.decode(stream.payloads[index])
            started = time.perf_counter()
            buffer.push(index * FRAME, decoded, arrival_s=float(arrivals[index]))
            spent += time.perf_counter() - started
            next_packet += 1
        started = time.perf_counter()
        samples, _ = buffer.pop(FRAME)
        spent += time.perf_counter() - started
        frames.append(samples)
    if costs is not None:
        costs.append(spent / ticks * 1e6)
    return _speech_part(stream, np.concatenate(frames))


def through_bridge(
    stream: Stream, received: NDArray[np.bool_], arrivals: NDArray[np.float64]
) -> Samples:
    """Send the packets through the real bridge, at their arrival times; record the listener.

    Room.push_audio is given the arrival time as `arrival_s` once it takes one; the
    controller passes its `now`, which is the arrival time here.
    """
    bridge = InProcessBridge(bench_config("codecs: [PCMU]\n"))
    offer = audio_offer(TALKER_HOST, PCMU_PAYLOAD_TYPE, ptime_ms=20)
    talker = bridge.join(TALKER_HOST, offer)
    listener = bridge.join(LISTENER_HOST, audio_offer(LISTENER_HOST, PCMU_PAYLOAD_TYPE,
                                                      ptime_ms=20))
    order = _arrival_order(received, arrivals)
    ticks = len(stream.payloads) + TAIL_FRAMES
    recorder = Recorder(new_decoder("PCMU"), ticks)
    start_s = bridge.now
    next_packet = 0
    for tick in range(ticks):
        now = start_s + tick * TICK_S
        while next_packet < len(order) and start_s + arrivals[order[next_packet]] <= now:
            index = order[next_packet]
            bridge.controller.receive_rtp(talker.bridge_rtp_port, stream.datagrams[index],
                                          talker.address, start_s + float(arrivals[index]))
            next_packet += 1
        for datagram in rtp_sent_to(listener, bridge.tick()):
            recorder.receive(datagram, tick)
    return _speech_part(stream, recorder.audio)


def _fixed_playout(
    stream: Stream, received: NDArray[np.bool_], arrivals: NDArray[np.float64], delay_ms: int
) -> NDArray[np.bool_]:
    """Which packets a fixed buffer plays: frame i is due `delay_ms` after the first
    packet's tick, plus i ticks; a packet arriving after its frame is due is late."""
    first = int(np.flatnonzero(received)[0])
    first_tick = int(np.ceil(arrivals[first] / TICK_S - 1e-9)) + delay_ms // 20 - first
    due = (first_tick + np.arange(len(stream.payloads))) * TICK_S
    return received & (arrivals <= due + 1e-9)


def through_naive(
    stream: Stream, received: NDArray[np.bool_], arrivals: NDArray[np.float64]
) -> Samples:
    """A fixed 40 ms buffer: silence for lost and late packets."""
    played = _fixed_playout(stream, received, arrivals, NAIVE_DELAY_MS)
    decoder = new_decoder("PCMU")
    silence = np.zeros(FRAME, np.float32)
    frames = [decoder.decode(p) if ok else silence
              for p, ok in zip(stream.payloads, played, strict=True)]
    return _speech_part(stream, np.concatenate(frames))


class SpanDspPlc:
    """libspandsp's G.711 Appendix I concealment, through ctypes (spandsp/plc.h):
    `plc_state_t *plc_init(plc_state_t *s)`, `int plc_rx(plc_state_t *s, int16_t amp[],
    int len)`, `int plc_fillin(plc_state_t *s, int16_t amp[], int len)`,
    `int plc_free(plc_state_t *s)`."""

    _library: ctypes.CDLL | None = None

    @classmethod
    def available(cls) -> bool:
        if cls._library is None:
            try:
                library = ctypes.CDLL(SPANDSP_LIBRARY)
            except OSError:
                return False
            pcm = ctypes.POINTER(ctypes.c_int16)
            library.plc_init.restype = ctypes.c_void_p
            library.plc_init.argtypes = [ctypes.c_void_p]
            library.plc_rx.argtypes = [ctypes.c_void_p, pcm, ctypes.c_int]
            library.plc_fillin.argtypes = [ctypes.c_void_p, pcm, ctypes.c_int]
            library.plc_free.argtypes = [ctypes.c_void_p]
            cls._library = library
        return True

    def __init__(self) -> None:
        assert self.available() and self._library is not None
        self._lib = self._library
        self._state = self._lib.plc_init(None)

    def frame(self, samples: Samples | None) -> Samples:
        """Pass a received frame through (None: conceal a lost one)."""
        pcm = np.zeros(FRAME, np.int16) if samples is None else np.clip(
            np.round(samples * 32768), -32768, 32767).astype(np.int16)
        pointer = pcm.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))
        if samples is None:
            self._lib.plc_fillin(self._state, pointer, FRAME)
        else:
            self._lib.plc_rx(self._state, pointer, FRAME)
        return pcm.astype(np.float32) / 32768

    def close(self) -> None:
        self._lib.plc_free(self._state)


def through_spandsp(
    stream: Stream, received: NDArray[np.bool_], arrivals: NDArray[np.float64]
) -> Samples:
    """A fixed 160 ms buffer with spandsp's concealment for lost and late packets."""
    played = _fixed_playout(stream, received, arrivals, SPANDSP_DELAY_MS)
    decoder = new_decoder("PCMU")
    plc = SpanDspPlc()
    frames = [plc.frame(decoder.decode(p) if ok else None)
              for p, ok in zip(stream.payloads, played, strict=True)]
    plc.close()
    return _speech_part(stream, np.concatenate(frames))


Receiver = Callable[[Stream, NDArray[np.bool_], NDArray[np.float64]], Samples]


def mos(reference: Samples, degraded: Samples) -> float:
    """P.862 narrowband MOS-LQO of `degraded` against `reference`, bulk delay removed."""
    try:
        return float(pesq(RATE_HZ, reference, remove_delay(reference, degraded), "nb"))
    except NoUtterancesError:
        return float("nan")


# -- the table ------------------------------------------------------------------------------


def clips(smoke: bool) -> list[tuple[str, Samples]]:
    """The speech: each voice reads its language's sentences (one short clip in smoke)."""
    chosen = VOICES[:1] if smoke else VOICES
    made = []
    for voice in chosen:
        sentences = INDONESIAN if voice.startswith("id") else ENGLISH
        if smoke:
            sentences = sentences[:2]
        clip = sentences_clip(voice, sentences, RATE_HZ)
        made.append((voice, set_active_level(clip, SPEECH_LEVEL_DBFS, RATE_HZ)))
    return made


def measure(smoke: bool) -> list[Section]:
    """PESQ per condition and receiver, median over clips x seeds; the buffer's cost."""
    conditions = SMOKE_CONDITIONS if smoke else CONDITIONS
    seeds = SEEDS[:1] if smoke else SEEDS
    receivers: dict[str, Receiver] = {
        "bridge": through_bridge, "buffer": through_buffer, "naive": through_naive,
    }
    if SpanDspPlc.available():
        receivers["spandsp"] = through_spandsp
    streams = [make_stream(clip) for _, clip in clips(smoke)]
    rows = []
    lossy_costs: list[float] = []
    clean_costs: list[float] = []
    medians: dict[tuple[str, str], float] = {}
    worse_than_spandsp: dict[str, int] = {}  # condition -> runs where bridge < spandsp
    target_runs = 0
    for condition in conditions:
        scores: dict[str, list[float]] = {name: [] for name in receivers}
        is_target = condition.name == TARGET_CONDITION
        condition_seeds = TARGET_SEEDS if is_target and not smoke else seeds
        for number, stream in enumerate(streams):
            for seed in condition_seeds:
                received, arrivals = condition.packets(len(stream.payloads),
                                                       seed * 100 + number)
                for name, receive in receivers.items():
                    if name == "buffer":
                        costs = clean_costs if condition.name == "clean" else lossy_costs
                        heard = through_buffer(stream, received, arrivals, costs)
                    else:
                        heard = receive(stream, received, arrivals)
                    scores[name].append(mos(stream.clean, heard))
                if "spandsp" in scores and scores["bridge"][-1] < scores["spandsp"][-1]:
                    worse_than_spandsp[condition.name] = worse_than_spandsp.get(
                        condition.name, 0) + 1
                target_runs += is_target
        for name in receivers:
            medians[condition.name, name] = float(np.nanmedian(scores[name]))
        rows.append((condition.name, *(f"{medians[condition.name, n]:.2f}" for n in receivers)))
    wired = "arrival_s" in inspect.signature(Room.push_audio).parameters
    notes = [
        f"Median PESQ-NB (P.862 MOS-LQO) over {len(streams)} clip(s) x {len(seeds)} seed(s)"
        f" ({TARGET_CONDITION}: x {len(seeds if smoke else TARGET_SEEDS)});"
        " G.711 µ-law, 20 ms packets, delay = 20 + j ± j ms uniform.",
        "bridge: the real member media path (8 -> 16 -> 8 kHz through the room); buffer: "
        f"dsp.jitter.JitterBuffer alone; naive: fixed {NAIVE_DELAY_MS} ms, silence for "
        f"lost/late; spandsp: fixed {SPANDSP_DELAY_MS} ms + libspandsp G.711 App. I PLC.",
        "The room " + ("passes arrival times to the buffer (adaptive delay)." if wired else
                       "does not pass arrival times yet: its buffer keeps the fixed 40 ms "
                       "delay, with concealment."),
        f"Runs where bridge < spandsp on the same packets: "
        f"{worse_than_spandsp.get(TARGET_CONDITION, 0)} of {target_runs} in {TARGET_CONDITION}"
        "; other rows: " + (", ".join(f"{name} {count}" for name, count in
                                      worse_than_spandsp.items() if name != TARGET_CONDITION)
                            or "none") + ".",
    ]
    lossy = (TARGET_CONDITION, "bridge")
    if ("clean", "bridge") in medians:
        notes.append(f"Targets: clean >= {TARGET_CLEAN} through the bridge: "
                     f"{medians['clean', 'bridge']:.2f}; {TARGET_CONDITION} >= {TARGET_LOSSY}: "
                     f"{medians.get(lossy, float('nan')):.2f}.")
    stage_costs = {
        "jitter buffer + PLC (clean link)": float(np.median(clean_costs)),
        f"jitter buffer + PLC ({TARGET_CONDITION})": float(np.median(lossy_costs)),
    }
    notes.append("Cost, µs per member per 20 ms frame (push + pop): " + ", ".join(
        f"{name} {value:.1f}" for name, value in stage_costs.items()))
    return [Section(
        title="Loss and jitter: PESQ-NB of G.711 speech",
        headers=("condition", *receivers),
        rows=tuple(rows),
        notes=tuple(notes),
        stage_costs_us=stage_costs,
    )]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="one clip, one seed, for CI")
    args = parser.parse_args()
    for section in measure(args.smoke):
        print(section.markdown())


if __name__ == "__main__":
    main()
