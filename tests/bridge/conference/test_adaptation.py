"""The link ladder: FEC at once on loss, back to clean only after clean reports in a row."""

from __future__ import annotations

from bridge.conference.adaptation import CLEAN_REPORTS_TO_RECOVER, LADDER, LinkAdapter
from dsp.codecs.base import EncoderSettings

BASE = EncoderSettings(ptime_ms=40, bitrate_bps=16_000, fec=True, dtx=True)


def fraction(percent: float) -> int:
    """RFC 3550's fraction lost: lost/256, as a report block carries it."""
    return round(percent * 256 / 100)


def adapter(base: EncoderSettings = BASE, maximum: int = 24_000) -> LinkAdapter:
    return LinkAdapter(base, min_bitrate_bps=6_000, max_bitrate_bps=maximum)


def test_clean_link_keeps_the_configured_settings() -> None:
    link = adapter()
    assert link.on_report(0) is None
    assert link.on_report(fraction(1)) is None
    assert link.settings() == BASE


def test_loss_turns_fec_on_at_once_then_lowers_the_bitrate_as_loss_grows() -> None:
    link = adapter()
    three = link.on_report(fraction(3))
    assert three is not None
    assert (three.bitrate_bps, three.expected_loss_percent) == (20_000, 10)
    twelve = link.on_report(fraction(12))
    assert twelve is not None
    assert (twelve.bitrate_bps, twelve.expected_loss_percent) == (18_000, 30)
    assert twelve.ptime_ms == 40 and twelve.dtx  # the rest stays as negotiated


def test_the_configured_maximum_always_wins() -> None:
    link = adapter(maximum=16_000)
    worse = link.on_report(fraction(40))
    assert worse is not None and worse.bitrate_bps == 16_000


def test_without_fec_loss_changes_nothing() -> None:
    link = adapter(EncoderSettings(bitrate_bps=16_000, fec=False))
    assert link.on_report(fraction(12)) is None
    assert link.settings().expected_loss_percent == 0


def test_recovery_takes_clean_reports_in_a_row_and_one_rung_at_a_time() -> None:
    link = adapter()
    link.on_report(fraction(12))
    assert link.step == len(LADDER) - 1
    for _ in range(CLEAN_REPORTS_TO_RECOVER - 1):
        assert link.on_report(0) is None
    assert link.on_report(fraction(8)) is None  # not clean: the count starts again
    for _ in range(CLEAN_REPORTS_TO_RECOVER - 1):
        assert link.on_report(0) is None
    better = link.on_report(0)
    assert better is not None and link.step == len(LADDER) - 2
    assert better.expected_loss_percent == 20
    for _ in range(3 * CLEAN_REPORTS_TO_RECOVER):
        link.on_report(0)
    assert link.step == 0 and link.settings() == BASE
