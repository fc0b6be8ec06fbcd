"""Room-wide detectors (DTMF, voice, AGC, echo) give, bit for bit, what they gave before they
were made faster, or last changed (bench/detectors.py REFERENCE_COMMITS)."""

from __future__ import annotations

import subprocess

import pytest

from bench.detectors import check_identity, committed_modules


def _committed_version_readable() -> bool:
    try:
        committed_modules()
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


@pytest.mark.skipif(not _committed_version_readable(), reason="needs git and the repository")
@pytest.mark.parametrize("rate_hz", [8000, 16000])
def test_detectors_match_committed_version_bit_for_bit(rate_hz: int) -> None:
    """60 ticks of realistic and random rooms of 1, 9 and 40 rows, gated as the bridge
    gates them and not, with rows joining fresh: every output and state is identical."""
    seen = check_identity(60, row_counts=(1, 9, 40), rates_hz=(rate_hz,))
    assert seen["ticks"] == 2 * 3 * 2 * 60
    # The rooms exercise every path: presses, talkers, echo verdicts and AGC ramps.
    assert seen["digits"] > 10
    assert seen["tones"] > 50
    assert seen["voiced"] > 1000
    assert seen["echo"] > 50
    assert seen["gain_changes"] > 50
