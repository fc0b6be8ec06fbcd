"""bench/loadgen.py: what the members send, and the uplink loss pattern of --loss."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def loadgen(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # bench/ is a folder of scripts that import their siblings by name.
    monkeypatch.syspath_prepend(str(BENCH))
    import loadgen as module

    return module


def test_uplink_loss_drops_packets_at_the_rate_asked_the_same_way_every_run(
    loadgen: ModuleType,
) -> None:
    targets = [(30000 + 2 * k, ("127.0.0.1", 20000 + 2 * k)) for k in range(50)]
    lossy = loadgen.member_specs(targets, 0, seed=7, loss=0.05)
    again = loadgen.member_specs(targets, 0, seed=7, loss=0.05)
    assert [spec.sends for spec in lossy] == [spec.sends for spec in again]
    assert len({spec.sends for spec in lossy}) == 50  # each member its own pattern
    sent = sum(sum(spec.sends) for spec in lossy) / (50 * loadgen.LOSS_PATTERN_ROUNDS)
    assert sent == pytest.approx(0.95, abs=0.005)
    assert all(spec.sends == b"" for spec in loadgen.member_specs(targets, 0, seed=7))
