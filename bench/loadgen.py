"""Load generator of the capacity benchmark (issue #6): N PCMU members in one room, measured.

Either joins N members to our bridge over SIP/UDP (`--sip`), or streams for members the
orchestrator already joined to Janus (`--rtp-targets`, a JSON list of
{"local_port": int, "remote": [ip, port]}). K talkers send espeak-ng speech at -26 dBFS,
the others line noise at -60 dBFS, one packet per 20 ms each (with --loss, a share of
them dropped at random before they are sent: lossy uplinks); what comes back is
measured per member. bench/capacity.py runs it as a subprocess; stdout is its protocol:

    STEADY      the steady window starts (flushed at once; join and warm-up are over)
    DONE        the steady window ends; then BYEs go out
    {...}       one line of JSON: the report

Diagnostics go to stderr. With --workers W the members are split over W processes that
keep one schedule (t0 is shared); this process prints the protocol and sums the figures.

    .venv/bin/python bench/loadgen.py --sip 127.0.0.1:5070 --uri sip:2000@127.0.0.1 -n 100
    .venv/bin/python bench/loadgen.py --rtp-targets members.json --seconds 10
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from loadgen_sip import TIMEOUT_S
from loadgen_worker import (
    LATE_S,
    PERIOD_S,
    SAMPLES_PER_PACKET,
    MemberSpec,
    SipSettings,
    Worker,
    WorkerPlan,
)
from speech import ENGLISH, INDONESIAN, VOICES, sentences_clip, set_active_level

from dsp.codecs import get_codec

log = logging.getLogger("loadgen")

TALKER_LEVEL_DBFS = -26.0
NOISE_LEVEL_DBFS = -60.0
NOISE_FRAMES = 500  # 10 s of line noise, shared; each member starts at its own place
LOSS_PATTERN_ROUNDS = 3000  # 60 s of a member's uplink loss pattern (--loss), looped
RATE_HZ = 8000
_START_MARGIN_ROUNDS = 2  # workers learn the window within a round; give them two


# -- what the members send ---------------------------------------------------------------

def talker_frames(index: int) -> list[bytes]:
    """Return talker `index`'s speech as PCMU payloads of 20 ms: a voice each, looped."""
    voice = VOICES[index % len(VOICES)]
    sentences = INDONESIAN if voice.startswith("id") else ENGLISH
    clip = set_active_level(sentences_clip(voice, sentences, RATE_HZ), TALKER_LEVEL_DBFS,
                            RATE_HZ)
    padded = np.pad(clip, (0, -len(clip) % SAMPLES_PER_PACKET))
    return _encode(padded.reshape(-1, SAMPLES_PER_PACKET))


def noise_frames(seed: int) -> list[bytes]:
    """Return line noise at NOISE_LEVEL_DBFS (RMS) as PCMU payloads of 20 ms."""
    rng = np.random.default_rng(seed)
    noise = 10 ** (NOISE_LEVEL_DBFS / 20) * rng.standard_normal((NOISE_FRAMES,
                                                                 SAMPLES_PER_PACKET))
    return _encode(noise.astype(np.float32))


def _encode(frames: np.ndarray) -> list[bytes]:
    encoded = get_codec("PCMU").encode(frames.astype(np.float32))
    return [row.tobytes() for row in encoded]


def member_specs(
    targets: Sequence[tuple[int, tuple[str, int] | None]], talkers: int, seed: int,
    loss: float = 0.0,
) -> list[MemberSpec]:
    """Give members 0..talkers-1 speech (a voice each, shifted when voices repeat), the
    rest noise; `targets` are (local RTP port, remote or None) per member. With `loss`,
    each member's packets are dropped at random at that rate before they are sent (its
    uplink), by a pattern of LOSS_PATTERN_ROUNDS drawn from `seed`: the same for every
    server measured."""
    speech = [talker_frames(k) for k in range(min(talkers, len(targets)))]
    noise = noise_frames(seed)
    rng = np.random.default_rng([seed, 1])
    specs = []
    for index, (port, remote) in enumerate(targets):
        if index < len(speech):
            frames = speech[index]
            offset = (index // len(VOICES)) * 97 % len(frames)
        else:
            frames, offset = noise, index * 37 % len(noise)
        sends = (rng.random(LOSS_PATTERN_ROUNDS) >= loss).astype(np.uint8).tobytes() if (
            loss > 0) else b""
        specs.append(MemberSpec(index, port, remote, frames, offset, sends))
    return specs


# -- coordination --------------------------------------------------------------------------

class LocalCoordinator:
    """One process: the window starts after the warm-up, and this process prints."""

    def __init__(self, warmup_rounds: int, window_rounds: int) -> None:
        self._warmup_rounds = warmup_rounds
        self._window_rounds = window_rounds
        self._window: tuple[int, int] | None = None

    def joined(self, round_index: int) -> None:
        first = round_index + 1 + self._warmup_rounds
        self._window = (first, first + self._window_rounds)

    def window(self) -> tuple[int, int] | None:
        return self._window

    def phase(self, word: str) -> None:
        print(word, flush=True)


class PipeCoordinator:
    """A worker process: the parent sets the window for all workers, and prints."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def joined(self, round_index: int) -> None:
        self._connection.send(("joined", round_index))

    def window(self) -> tuple[int, int] | None:
        if not self._connection.poll():
            return None
        kind, window = self._connection.recv()
        if kind != "window":
            raise RuntimeError(f"unexpected message from the parent: {kind!r}")
        return (int(window[0]), int(window[1]))

    def phase(self, word: str) -> None:
        pass


def _worker_main(plan: WorkerPlan, connection: Connection, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        connection.send(("result", Worker(plan, PipeCoordinator(connection)).run()))
    except BaseException as exc:
        log.exception("worker failed")
        connection.send(("error", repr(exc)))
        raise


def run_workers(
    specs: list[MemberSpec], sip: SipSettings | None, args: argparse.Namespace,
    cpus: list[int],
) -> list[dict[str, Any]]:
    """Run the members in `args.workers` processes on one schedule; print the protocol."""
    workers = min(args.workers, len(specs))
    warmup_rounds = round(args.warmup / PERIOD_S)
    window_rounds = round(args.seconds / PERIOD_S)
    if workers <= 1:
        plan = WorkerPlan(tuple(specs), sip, time.monotonic() + PERIOD_S, args.seed)
        return [Worker(plan, LocalCoordinator(warmup_rounds, window_rounds)).run()]
    share = None if sip is None else SipSettings(
        sip.bridge, sip.request_uri, sip.join_rate_per_s / workers,
        max(1, sip.max_pending // workers), sip.bye_timeout_s,
    )
    context = multiprocessing.get_context("fork")
    t0 = time.monotonic() + 0.1
    processes, connections = [], []
    try:
        for w in range(workers):
            parent_end, child_end = context.Pipe()
            plan = WorkerPlan(tuple(specs[w::workers]), share, t0, args.seed * 1000 + w)
            cpu = cpus[w % len(cpus)] if cpus else None
            process = context.Process(target=_worker_main, args=(plan, child_end, cpu),
                                      name=f"loadgen-{w}", daemon=True)
            process.start()
            processes.append(process)
            connections.append(parent_end)
        join_bound_s = 30 + TIMEOUT_S + (len(specs) / sip.join_rate_per_s if sip else 0)
        for connection in connections:
            _expect(connection, "joined", join_bound_s)
        first = int((time.monotonic() - t0) / PERIOD_S) + _START_MARGIN_ROUNDS + warmup_rounds
        window = (first, first + window_rounds)
        for connection in connections:
            connection.send(("window", window))
        for word, round_index in (("STEADY", window[0]), ("DONE", window[1])):
            time.sleep(max(0.0, t0 + round_index * PERIOD_S - time.monotonic()))
            print(word, flush=True)
        end_bound_s = 30 + args.bye_timeout + (len(specs) / sip.join_rate_per_s if sip else 0)
        results = [_expect(connection, "result", end_bound_s) for connection in connections]
        for process in processes:
            process.join(timeout=10)
        return results
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            if process.is_alive():
                process.kill()


def _expect(connection: Connection, kind: str, timeout_s: float) -> Any:
    if not connection.poll(timeout_s):
        raise RuntimeError(f"no {kind!r} from a worker within {timeout_s:.0f} s")
    got, payload = connection.recv()
    if got != kind:
        raise RuntimeError(f"worker sent {got!r} ({payload}) instead of {kind!r}")
    return payload


# -- the report ------------------------------------------------------------------------------

def aggregate(results: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Sum the workers' figures into the report (members ordered by index)."""
    def column(name: str) -> np.ndarray:
        return np.concatenate([r[name] for r in results])[order]

    order = np.argsort(np.concatenate([r["index"] for r in results]))
    joined = column("joined")
    received, expected = column("received"), column("expected")
    jitter_ms, gaps, gap_max_ms = column("jitter_ms"), column("gaps"), column("gap_max_ms")
    lost = expected - received
    # Packets are counted by arrival inside the window: a server sending on its own 20 ms
    # phase just before the window's end, a little late, has its last packet fall out, so
    # one packet short is the edge, not a missing tick (one more in at the start is the
    # same edge's other side).
    short = np.maximum(0, results[0]["window_rounds"] - 1 - received)
    heard = joined & (received > 0)
    failures: Counter[str] = Counter()
    for r in results:
        failures.update(r["failures"])
    window_rounds = results[0]["window_rounds"]
    lateness_ms = np.concatenate([r["lateness_s"] for r in results]) * 1000
    skipped = sum(r["skipped_rounds"] for r in results)
    late = int(np.count_nonzero(lateness_ms > LATE_S * 1000)) + skipped
    cpu_user_s = sum(r["cpu_user_s"] for r in results)
    cpu_sys_s = sum(r["cpu_sys_s"] for r in results)
    cpu_s = cpu_user_s + cpu_sys_s
    streaming = sum(r["streaming"] for r in results)
    join_spans = [r["join_s"] for r in results if r["join_s"] is not None]
    report: dict[str, Any] = {
        "mode": "sip" if args.sip else "rtp",
        "members": int(joined.size),
        "joined": int(joined.sum()),
        "failed_joins": int(sum(failures.values())),
        "join_failures": dict(failures),
        "join_s": round(max(join_spans), 3) if join_spans else None,
        "talkers": min(args.talkers, int(joined.size)),
        "window_s": round(window_rounds * PERIOD_S, 3),
        "received": int(received[joined].sum()),
        "expected": int(expected[joined].sum()),
        "lost": int(lost[joined].sum()),
        "loss_ratio": _ratio(int(lost[joined].sum()), int(expected[joined].sum())),
        "members_with_loss": int(np.count_nonzero(lost[joined] > 0)),
        # A server that falls behind sends fewer packets with unbroken sequence numbers:
        # no loss by RFC 3550's count, but short of one packet per 20 ms of the window.
        "missing_by_clock": int(short[joined].sum()),
        "members_short": int(np.count_nonzero(short[joined])),
        "members_silent": int(np.count_nonzero(joined & (received == 0))),
        "jitter_ms": _spread(jitter_ms[heard]),
        "gaps": {
            "count": int(gaps[joined].sum()),
            "members": int(np.count_nonzero(gaps[joined])),
            "max_ms": _round(float(gap_max_ms[joined].max())) if joined.any() else None,
        },
        "hung_up_by_bridge": sum(r["hung_up_by_bridge"] for r in results),
        "rtcp_received": sum(r["rtcp_received"] for r in results),
        "bad_packets": sum(r["bad_packets"] for r in results),
        "byes": {key: sum(r[f"byes_{key}"] for r in results)
                 for key in ("sent", "answered", "timed_out")},
        "generator": {
            "workers": len(results),
            "rounds": window_rounds,
            "skipped_rounds": skipped,
            "late_ms": _spread(lateness_ms),
            "late_over_5ms_share": _ratio(late, lateness_ms.size + skipped),
            "cpu_s": round(cpu_s, 3),
            "cpu_user_s": round(cpu_user_s, 3),
            "cpu_sys_s": round(cpu_sys_s, 3),
            "cpu_share": round(cpu_s / (window_rounds * PERIOD_S), 4),
            "us_per_member_per_20ms": (_round(cpu_s / window_rounds / streaming * 1e6)
                                       if streaming else None),
            "streaming_members": streaming,
            "send_errors": sum(r["send_errors"] for r in results),
            "max_rss_mb": round(max(r["max_rss_kb"] for r in results) / 1024, 1),
        },
    }
    if args.per_member:
        report["per_member"] = {
            "joined": joined.tolist(),
            "received": received.tolist(),
            "expected": expected.tolist(),
            "lost": lost.tolist(),
            "missing_by_clock": short.tolist(),
            "jitter_ms": [_round(v) for v in jitter_ms.tolist()],
            "gaps": gaps.tolist(),
            "gap_max_ms": [_round(v) for v in gap_max_ms.tolist()],
            "ended_by_bridge": column("ended_by_bridge").tolist(),
        }
    return report


def _spread(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": _round(p50), "p99": _round(p99), "max": _round(values.max())}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _round(value: float) -> float:
    return round(float(value), 3)


# -- command line ----------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--sip", metavar="HOST:PORT", help="our bridge's SIP address (UDP)")
    target.add_argument("--rtp-targets", metavar="FILE", type=Path,
                        help='JSON [{"local_port": int, "remote": [ip, port]}, ...]')
    parser.add_argument("--uri", default="sip:2000@127.0.0.1", help="Request-URI to call")
    parser.add_argument("-n", "--members", type=int, default=10, help="members (SIP mode)")
    parser.add_argument("--local-base", type=int, default=30000, metavar="PORT",
                        help="member i binds RTP at PORT+2i and RTCP at PORT+2i+1 (SIP mode)")
    parser.add_argument("--talkers", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=3.0, metavar="S",
                        help="seconds between the last join and the steady window")
    parser.add_argument("--seconds", type=float, default=10.0, help="steady window length")
    parser.add_argument("--join-rate", type=float, default=100.0, metavar="PER_S",
                        help="INVITEs (and later BYEs) per second at most")
    parser.add_argument("--max-pending", type=int, default=50,
                        help="INVITEs (and BYEs) awaiting a final response at most")
    parser.add_argument("--bye-timeout", type=float, default=10.0, metavar="S",
                        help="wait this long after the last BYE for the 200s")
    parser.add_argument("--workers", type=int, default=1, help="processes to split members")
    parser.add_argument("--cpu", default=None, metavar="N[,M...]",
                        help="pin to these CPUs (workers take them in turn)")
    parser.add_argument("--rt-priority", type=int, default=None, metavar="P",
                        help="run under SCHED_FIFO at priority P (1-99) to keep time on a "
                        "busy machine")
    parser.add_argument("--per-member", action="store_true", help="add per-member arrays")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loss", type=_fraction, default=0.0, metavar="FRACTION",
                        help="uplink loss: the share of each member's packets not sent")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0:
        parser.error("--seconds must be positive and --warmup not negative")
    if args.join_rate <= 0 or args.max_pending < 1 or args.workers < 1:
        parser.error("--join-rate, --max-pending and --workers must be positive")
    return args


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text}: a fraction from 0 up to 1")
    return value


def _targets(args: argparse.Namespace) -> list[tuple[int, tuple[str, int] | None]]:
    if args.rtp_targets is not None:
        entries = json.loads(args.rtp_targets.read_text())
        return [(int(e["local_port"]), (str(e["remote"][0]), int(e["remote"][1])))
                for e in entries]
    if args.local_base % 2 or args.local_base + 2 * args.members > 65536:
        raise SystemExit("--local-base must be even, with room for 2 ports per member")
    return [(args.local_base + 2 * i, None) for i in range(args.members)]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    # The orchestrator stops us with SIGTERM: unwind, so workers and sockets are closed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="loadgen: %(levelname)s %(message)s")
    cpus = [int(c) for c in args.cpu.split(",")] if args.cpu else []
    if cpus:
        os.sched_setaffinity(0, {cpus[0]})
    if args.rt_priority is not None:  # forked workers inherit it
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.rt_priority))
    sip = None
    if args.sip:
        host, _, port = args.sip.rpartition(":")
        sip = SipSettings((host, int(port)), args.uri, args.join_rate, args.max_pending,
                          args.bye_timeout)
    specs = member_specs(_targets(args), args.talkers, args.seed, args.loss)
    if not specs:
        raise SystemExit("no members")
    results = run_workers(specs, sip, args, cpus)
    print(json.dumps(aggregate(results, args)), flush=True)


if __name__ == "__main__":
    main()
