"""Shared test helpers: real captured fixtures live under tests/fixtures/{sip,rtp,audio}."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> bytes:
    """Return the bytes of tests/fixtures/<name>, e.g. `load_fixture("sip/bye_sipp.sip")`."""
    return (FIXTURES / name).read_bytes()
