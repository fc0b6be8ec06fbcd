"""Capacity: N G.711 members in one room, our bridge and Janus AudioBridge on the same load.

For each N it starts the server (`telerapat serve` on a config of its own, default media
pipeline: jitter buffer, voice detection, AGC, limiter, echo cancellation where the echo
detector asks for it; or Janus 1.1.2 with an 8 kHz AudioBridge room, members joined as
plain-RTP PCMU participants over its HTTP API), runs bench/loadgen.py beside it (K talkers
send speech, the others -60 dBFS line noise, all receive and measure), and over the
steady window samples the server's CPU time and RSS from /proc. The bridge's own tick
lateness comes from its media clock report (SIGUSR1 at the window's start and end).

The server runs on CPU 0, the load generator on CPU 1 (this machine has two cores), so
what the server is measured on is one core. Janus is pinned to CPU 0 too: beyond a
core it stops keeping time here, where it would otherwise take the generator's core.
Figures from one run only: the ratio between the two servers is what machine noise
cancels out of.

    .venv/bin/python bench/capacity.py                 # sweep N = 10 ... until it fails
    .venv/bin/python bench/capacity.py --sizes 200,500 --seconds 20
    .venv/bin/python bench/capacity.py --smoke         # a few seconds, for CI (fails on a
                                                       # member not joined, silent or short)
    .venv/bin/python bench/capacity.py --sizes 500 --loss 0.02  # lossy uplinks, 2 %
    .venv/bin/python bench/capacity.py --write-readme  # the table into README.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from janus import JanusAudioBridge, cpu_times, rss_bytes

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
README = ROOT / "README.md"
README_BEGIN = "<!-- bench/capacity.py: begin -->"
README_END = "<!-- bench/capacity.py: end -->"
SERVER_CPU = 0
GENERATOR_CPU = 1
TICK_S = 0.02
LATE_SHARE_LIMIT = 0.001  # <= 0.1 % of ticks later than 5 ms
DEFAULT_SIZES = (10, 50, 100, 200, 300, 400, 500, 600, 800)
# The CI smoke: a small room, and one big enough (64 listeners and more) for the send
# path that stamps all listeners' headers at once (bridge.rtp.sender.SendBank).
SMOKE_SIZES = (10, 80)
# Bound on every wait: a server start, a join phase, one report line.
START_TIMEOUT_S = 20.0
LOADGEN_LOCAL_BASE = 30000  # member i uses 127.0.0.1:30000+2i (and +1)
BRIDGE_RTP_PORTS = "42000-45999"  # 2000 pairs
JANUS_RTP_PORTS = (20000, 29999)
_CLOCK_REPORT = re.compile(
    r"media clock: (?P<ticks>\d+) ticks in [\d.]+ s, (?P<late>\d+) late .*?(?P<skipped>\d+) "
    r"skipped; lateness ms p50 (?P<p50>[\d.-]+) p99 (?P<p99>[\d.-]+) max (?P<max>[\d.-]+); "
    r"tick work ms p50 (?P<work50>[\d.-]+) p99 (?P<work99>[\d.-]+) max (?P<workmax>[\d.-]+); "
    r"(?P<offcpu>\d+) of them over [\d.]+ ms off the CPU \(max (?P<offcpumax>[\d.-]+) ms\)"
)


@dataclass
class Measured:
    """One server at one N over the steady window."""

    server: str
    members: int
    window_s: float
    cpu_s: float
    rss_idle_mb: float
    rss_mb: float
    threads: int
    loadgen: dict[str, Any]
    clock: dict[str, float] | None = None  # the bridge's media clock report
    system_s: float = 0.0  # of cpu_s, in the kernel (sockets, scheduling)

    @property
    def cores(self) -> float:
        return self.cpu_s / self.window_s

    @property
    def kernel_share(self) -> float:
        return self.system_s / self.cpu_s if self.cpu_s else 0.0

    @property
    def us_per_member_tick(self) -> float:
        return self.cpu_s / (self.window_s / TICK_S) / self.members * 1e6

    @property
    def rss_per_member_mb(self) -> float:
        return (self.rss_mb - self.rss_idle_mb) / self.members

    @property
    def lost(self) -> int:
        """Packets the members did not get: by sequence number (RFC 3550), or by the clock
        (a server that falls behind sends fewer packets without breaking its numbering)."""
        return max(int(self.loadgen["lost"]), int(self.loadgen["missing_by_clock"]))

    @property
    def late_share(self) -> float | None:
        if self.clock is None:
            return None
        return self.clock["late"] / max(1.0, self.clock["ticks"])

    @property
    def held(self) -> bool:
        """Kept time (bridge: <= 0.1 % late ticks) and every member got every packet."""
        on_time = self.late_share is None or self.late_share <= LATE_SHARE_LIMIT
        return on_time and self.lost == 0 and self.loadgen["joined"] == self.members


# -- the load generator ------------------------------------------------------------------


def run_loadgen(
    target_args: list[str], members: int, args: argparse.Namespace,
    on_steady: Callable[[], None], on_done: Callable[[], None],
) -> dict[str, Any]:
    """Run bench/loadgen.py; call `on_steady`/`on_done` at its STEADY/DONE; return its report."""
    command = [
        str(BIN / "python"), str(ROOT / "bench" / "loadgen.py"), *target_args,
        "--talkers", str(args.talkers), "--warmup", str(args.warmup),
        "--seconds", str(args.seconds), "--local-base", str(LOADGEN_LOCAL_BASE),
        "--cpu", str(GENERATOR_CPU), "--workers", str(args.workers), "--loss", str(args.loss),
    ]
    # Joining N members at 100 per second, then the warm-up and window, then the BYEs.
    deadline = time.monotonic() + START_TIMEOUT_S + members / 50 + args.warmup + args.seconds + 30
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=sys.stderr, cwd=ROOT)
    report: dict[str, Any] | None = None
    try:
        assert process.stdout is not None
        for line in _lines(process.stdout, deadline):
            if line == "STEADY":
                on_steady()
            elif line == "DONE":
                on_done()
            elif line.startswith("{"):
                report = json.loads(line)
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        _end(process)
    if report is None:
        raise RuntimeError(f"loadgen gave no report (exit {process.returncode})")
    return report


def _lines(stream: IO[bytes], deadline: float) -> Iterator[str]:
    """Yield the lines of a pipe until it closes; give up at `deadline`."""
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("loadgen ran past its deadline")
        readable, _, _ = select.select([stream], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode().strip()


def _end(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a bounded wait, SIGKILL: by PID, whatever state it is in."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- the two servers ---------------------------------------------------------------------


def measure_bridge(members: int, args: argparse.Namespace, workdir: Path) -> Measured:
    sip_port = _free_udp_port()
    config = workdir / "bridge.yaml"
    config.write_text(
        f'sip: {{listen: ["udp:127.0.0.1:{sip_port}"], domain: bench.local}}\n'
        f'rtp: {{ports: "{BRIDGE_RTP_PORTS}", timeout_s: 30, stats_interval_s: 3600}}\n'
        'rooms:\n  - {id: bench, extension: "2000"}\n'
    )
    log_path = workdir / f"bridge-{members}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(BIN / "telerapat"), "serve", "--config", str(config)],
            stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT,
            preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}),
        )
    try:
        _wait_for(log_path, "listening for SIP on udp", START_TIMEOUT_S, process)
        rss_idle = rss_bytes(process.pid)
        cpu: list[tuple[float, float]] = []
        rss: list[int] = []
        reports_before = 0

        def mark() -> None:
            nonlocal reports_before
            cpu.append(cpu_times(process.pid))
            reports_before = len(_CLOCK_REPORT.findall(log_path.read_text(errors="replace")))
            process.send_signal(signal.SIGUSR1)  # the media clock reports, a new window starts

        def done() -> None:
            mark()
            rss.append(rss_bytes(process.pid))

        loadgen = run_loadgen(
            ["--sip", f"127.0.0.1:{sip_port}", "--uri", "sip:2000@127.0.0.1",
             "-n", str(members)],
            members, args, mark, done,
        )
        clock = _clock_report(log_path, reports_before + 1, process)
        threads = len(os.listdir(f"/proc/{process.pid}/task"))
    finally:
        _end(process)
    return _measured("telerapat", members, loadgen, cpu, rss_idle, rss[0], threads, clock)


def measure_janus(members: int, args: argparse.Namespace, workdir: Path) -> Measured:
    janus = JanusAudioBridge(workdir / f"janus-{members}", http_port=_free_tcp_port(),
                             rtp_ports=JANUS_RTP_PORTS)
    try:
        janus.start()
        assert janus.pid is not None
        pid = janus.pid
        rss_idle = rss_bytes(pid)
        janus.create_room(1, sampling_rate=8000)
        local_ports = [LOADGEN_LOCAL_BASE + 2 * i for i in range(members)]
        remotes = janus.join_many(1, local_ports, codec="pcmu")
        for task in os.listdir(f"/proc/{pid}/task"):  # every thread, those of joins included
            os.sched_setaffinity(int(task), {SERVER_CPU})
        targets = workdir / f"janus-{members}.json"
        targets.write_text(json.dumps([
            {"local_port": port, "remote": list(remote)}
            for port, remote in zip(local_ports, remotes, strict=True)
        ]))
        cpu: list[tuple[float, float]] = []
        rss: list[int] = []

        def done() -> None:
            cpu.append(cpu_times(pid))
            rss.append(rss_bytes(pid))

        loadgen = run_loadgen(["--rtp-targets", str(targets)], members, args,
                              lambda: cpu.append(cpu_times(pid)), done)
        threads = len(os.listdir(f"/proc/{pid}/task"))
    finally:
        janus.stop()
    return _measured("Janus", members, loadgen, cpu, rss_idle, rss[0], threads, None)


def _measured(
    server: str, members: int, loadgen: dict[str, Any], cpu: list[tuple[float, float]],
    rss_idle: int, rss: int, threads: int, clock: dict[str, float] | None,
) -> Measured:
    """One server's figures from (user, system) CPU at the window's start and end."""
    (user_before, system_before), (user_after, system_after) = cpu[0], cpu[-1]
    system_s = system_after - system_before
    return Measured(server, members, float(loadgen["window_s"]),
                    user_after - user_before + system_s, rss_idle / 2**20, rss / 2**20,
                    threads, loadgen, clock, system_s)


def _wait_for(path: Path, text: str, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"the bridge exited ({process.returncode}); see {path}")
        time.sleep(0.05)
    raise TimeoutError(f"no {text!r} in {path} after {timeout_s} s")


def _clock_report(
    path: Path, wanted: int, process: subprocess.Popen[bytes]
) -> dict[str, float] | None:
    """The media clock's report number `wanted` (1-based), once the bridge has logged it."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        matches = _CLOCK_REPORT.findall(path.read_text(errors="replace"))
        if len(matches) >= wanted:
            names = ("ticks", "late", "skipped", "p50", "p99", "max", "work50", "work99",
                     "workmax", "offcpu", "offcpumax")
            return dict(zip(names, map(float, matches[wanted - 1]), strict=True))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    return None


def _free_udp_port() -> int:
    """A free UDP port for SIP outside the RTP ranges (the config refuses an RTP range
    that holds the SIP port; the load generator's ports must stay free too)."""
    first, last = (int(p) for p in BRIDGE_RTP_PORTS.split("-"))
    taken = (range(first, last + 1), range(LOADGEN_LOCAL_BASE, LOADGEN_LOCAL_BASE + 4000))
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not any(port in ports for ports in taken):
            return port
    raise RuntimeError("no free UDP port outside the RTP ranges")


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the report ------------------------------------------------------------------------


def table(results: list[Measured]) -> list[str]:
    lines = [
        "| N | server | cores (kernel) | µs CPU/member/tick | RSS MB (per member) | threads "
        "| late ticks (>5 ms) | lateness p50/p99/max ms | tick work p50/p99/max ms "
        "| ticks >2 ms off CPU (max ms) "
        "| received/expected | lost | jitter p99 ms | generator late p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lg = r.loadgen
        if r.clock is not None:
            late = f"{100 * (r.late_share or 0):.2f} %"
            lateness = f"{r.clock['p50']:.2f}/{r.clock['p99']:.2f}/{r.clock['max']:.1f}"
            work = f"{r.clock['work50']:.2f}/{r.clock['work99']:.2f}/{r.clock['workmax']:.1f}"
            off_cpu = f"{r.clock['offcpu']:.0f} ({r.clock['offcpumax']:.1f})"
        else:
            late, lateness, work, off_cpu = "n/a", "n/a", "n/a", "n/a"
        jitter = lg["jitter_ms"]["p99"]
        lines.append(
            f"| {r.members} | {r.server} | {r.cores:.2f} ({100 * r.kernel_share:.0f} %) "
            f"| {r.us_per_member_tick:.1f} "
            f"| {r.rss_mb:.0f} ({r.rss_per_member_mb:.2f}) | {r.threads} | {late} | {lateness} "
            f"| {work} | {off_cpu} "
            f"| {lg['received']}/{lg['expected']} | {r.lost} "
            f"| {jitter if jitter is not None else 'n/a'} "
            f"| {lg['generator']['late_ms']['p99']} |"
        )
    return lines


def summary(results: list[Measured]) -> list[str]:
    ours = [r for r in results if r.server == "telerapat"]
    theirs = {r.members: r for r in results if r.server == "Janus"}
    held = [r.members for r in ours if r.held]
    lines = [f"- Largest N the bridge held (<= 0.1 % of ticks > 5 ms late, no loss): "
             f"{max(held) if held else 'none'}"]
    for r in ours:
        janus = theirs.get(r.members)
        if janus is None:
            continue
        ratio = r.us_per_member_tick / janus.us_per_member_tick
        memory = (r.rss_per_member_mb / janus.rss_per_member_mb
                  if janus.rss_per_member_mb > 0 else float("nan"))
        # A server that fell behind did less work per member than the load asked for: its
        # CPU per member is a floor, not a figure to compare.
        behind = [name for name, m in (("the bridge", r), ("Janus", janus)) if not m.held]
        note = f" ({' and '.join(behind)} did not hold this N)" if behind else ""
        lines.append(f"- N = {r.members}: CPU per member {ratio:.2f} x Janus "
                     f"({r.us_per_member_tick:.1f} vs {janus.us_per_member_tick:.1f} µs), "
                     f"RSS per member {memory:.2f} x Janus{note}")
    return lines


def write_readme(text: str) -> None:
    readme = README.read_text()
    begin, end = readme.index(README_BEGIN), readme.index(README_END)
    README.write_text(readme[: begin + len(README_BEGIN)] + "\n" + text + "\n" + readme[end:])


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                          capture_output=True, check=False).stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="comma-separated N (default: sweep until it fails)")
    parser.add_argument("--seconds", type=float, default=20.0, help="steady window per N")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--talkers", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="load generator processes")
    parser.add_argument("--loss", type=float, default=0.0, metavar="FRACTION",
                        help="uplink loss: each member's packets dropped at random at this "
                             "rate before they are sent (the same pattern for both servers)")
    parser.add_argument("--no-janus", action="store_true", help="our bridge only")
    parser.add_argument("--smoke", action="store_true",
                        help=f"N = {', '.join(map(str, SMOKE_SIZES))} for a few seconds; "
                             "exits 1 if a member of our bridge did not join, heard nothing or "
                             "lost packets (no timing is judged)")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    if not 0.0 <= args.loss < 1.0:
        parser.error("--loss: a fraction from 0 up to 1")
    if args.write_readme and args.loss:
        parser.error("--write-readme: the README's table is measured without loss")
    if args.smoke:
        args.seconds, args.warmup = 3.0, 2.0
    sizes = ([int(n) for n in args.sizes.split(",")] if args.sizes
             else list(SMOKE_SIZES) if args.smoke else list(DEFAULT_SIZES))
    with_janus = not args.no_janus and shutil.which("janus") is not None
    if not with_janus and not args.no_janus:
        print("janus not installed (Debian package janus): our bridge only", file=sys.stderr)
    results: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp:
        workdir = Path(tmp)
        for members in sizes:
            ours = measure_bridge(members, args, workdir)
            results.append(ours)
            print("\n".join(table([ours])[2:]), flush=True)
            if with_janus:
                janus = measure_janus(members, args, workdir)
                results.append(janus)
                print("\n".join(table([janus])[2:]), flush=True)
            if not ours.held and not args.sizes and not args.smoke:
                break  # the sweep goes on until the bridge no longer keeps time
    text = "\n".join([
        f"Measured on commit {_commit()}, {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores; {args.talkers} talkers"
        f"{f', {args.loss:.1%} uplink loss' if args.loss else ''}, {args.seconds:g} s window after "
        f"{args.warmup:g} s warm-up; server on CPU {SERVER_CPU}, load generator on CPU "
        f"{GENERATOR_CPU}.",
        "",
        *table(results),
        "",
        *summary(results),
    ])
    print()
    print(text)
    if args.write_readme:
        write_readme(text)
    if args.smoke:
        broken = [line for measured in results if measured.server == "telerapat"
                  for line in _broken(measured)]
        if broken:
            print("\n".join(broken), file=sys.stderr)
            sys.exit(1)


def _broken(measured: Measured) -> list[str]:
    """What went wrong for the members at one N, whatever the timing: a member that did
    not join, heard nothing, or missed packets by sequence number (a broken stream: the
    numbering holds even when a server falls behind)."""
    report, members = measured.loadgen, measured.members
    problems = []
    if report["joined"] != members:
        problems.append(f"N = {members}: {report['joined']} of {members} members joined")
    if report["members_silent"]:
        problems.append(f"N = {members}: {report['members_silent']} members heard nothing")
    if report["lost"]:
        problems.append(f"N = {members}: {report['lost']} packets lost by sequence number")
    return problems


if __name__ == "__main__":
    main()
