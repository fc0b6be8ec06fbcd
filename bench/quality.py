"""Voice quality on bad links (issue #7): every quality benchmark in one run, one report.

1. loss and jitter: PESQ through the real member media path vs a naive and a good fixed
   baseline (bench/quality_network.py);
2. noisy room and levels: talker selection vs the naive sum, AGC (bench/quality_talkers.py);
3. echo: ERLE and double-talk loss, side by side with libspeexdsp (bench/quality_echo.py);
4. in-band DTMF: detection rate and false digits on speech (bench/dtmf.py);
5. cost: microseconds per member per 20 ms frame of each stage, gathered from the above.

    .venv/bin/python bench/quality.py                  # everything (several minutes)
    .venv/bin/python bench/quality.py --smoke          # under two minutes, for CI
    .venv/bin/python bench/quality.py --write-readme   # also replace the README's table

Figures are measured in this run; nothing is asserted (CI only checks that it runs).
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import dtmf
import quality_echo
import quality_network
import quality_talkers
from quality_report import Section

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN_MARK = "<!-- bench/quality.py: begin -->"
END_MARK = "<!-- bench/quality.py: end -->"
PARTS: tuple[tuple[str, Callable[[bool], list[Section]]], ...] = (
    ("loss and jitter", quality_network.measure),
    ("talkers and levels", quality_talkers.measure),
    ("echo", quality_echo.measure),
    ("in-band DTMF", dtmf.measure),
)


def cost_section(sections: list[Section]) -> Section:
    """One table of what each stage costs per member per frame, from all the parts."""
    costs: dict[str, float] = {}
    for section in sections:
        costs.update(section.stage_costs_us)
    return Section(
        title="Cost of each stage",
        headers=("stage", "µs per member per 20 ms frame"),
        rows=tuple((stage, f"{us:.1f}") for stage, us in costs.items()),
        notes=("Measured in this run on one core of this machine; stages that run only for "
               "some members (the echo canceller, concealment) are per member that runs them.",),
    )


def report(sections: list[Section], commit: str, seconds: float, smoke: bool) -> str:
    mode = " (smoke mode: one seed, short clips; not the figures of record)" if smoke else ""
    head = f"Measured at commit `{commit}` in {seconds:.0f} s{mode}.\n"
    return head + "\n" + "\n".join(section.markdown() for section in sections)


def write_readme(text: str) -> None:
    readme = README.read_text()
    before, found, rest = readme.partition(BEGIN_MARK)
    _, found_end, after = rest.partition(END_MARK)
    if not (found and found_end):
        raise SystemExit(f"{README} has no {BEGIN_MARK} ... {END_MARK} block")
    README.write_text(before + BEGIN_MARK + "\n" + text + END_MARK + after)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a short run, for CI")
    parser.add_argument("--write-readme", action="store_true",
                        help="replace the README's quality tables with this run's")
    args = parser.parse_args()
    started = time.monotonic()
    sections: list[Section] = []
    for name, measure in PARTS:
        part_started = time.monotonic()
        part = measure(args.smoke)
        sections.extend(part)
        for section in part:
            print(section.markdown(), flush=True)
        print(f"({name}: {time.monotonic() - part_started:.0f} s)\n", flush=True)
    sections.append(cost_section(sections))
    print(sections[-1].markdown())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
        cwd=README.parent, check=False,
    ).stdout.strip() or "unknown"
    text = report(sections, commit, time.monotonic() - started, args.smoke)
    if args.write_readme:
        write_readme(text)
        print(f"wrote {README}")


if __name__ == "__main__":
    main()
