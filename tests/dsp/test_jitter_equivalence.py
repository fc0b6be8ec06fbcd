"""dsp.jitter gives the same output, to the bit, as the last commit that changed what it plays
(bench/jitter_equivalence.py): random streams with bursty loss, jitter and stalls, reordering,
duplicates, timestamp jumps, clock skew, FEC rebuilds and concealment on and off."""

import subprocess
from types import ModuleType

import pytest

import dsp.jitter
from bench.jitter_equivalence import compare, load_reference

SEEDS = range(12)
SECONDS = 15.0


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    try:
        return load_reference()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the reference commit is not in this checkout (no git, or a shallow clone)")


@pytest.mark.parametrize("seed", SEEDS)
def test_plays_what_the_reference_plays(reference: ModuleType, seed: int) -> None:
    assert compare(reference, dsp.jitter, seed, SECONDS) > 0
