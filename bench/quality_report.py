"""What each part of bench/quality.py measures, as a table: one `Section` per benchmark.

The parts (bench/quality_network.py, quality_talkers.py, quality_echo.py, ...) each return
one or more sections; bench/quality.py prints them and writes them into the README.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Section:
    """A titled Markdown table with notes under it, and the cost of the stages it ran.

    `stage_costs_us` maps a stage name ("jitter buffer + PLC", "VAD", "AGC", "echo
    canceller", ...) to microseconds of CPU per member per 20 ms frame, measured in the
    same run; bench/quality.py gathers them into the cost table.
    """

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    stage_costs_us: dict[str, float] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"#### {self.title}", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "---|" * len(self.headers))
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines) + "\n"
