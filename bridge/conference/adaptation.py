"""Fitting an Opus member's stream to its link, from the loss its receiver reports.

On loss the encoder is told to expect it, so it spends part of its bits on in-band FEC
(LBRR, RFC 6716 §2.1.7): the far decoder rebuilds a single lost packet from the next one.
libopus 1.3.1 at 16 kHz only adds FEC above a bitrate that falls as the expected loss
rises (measured: about 20 kbit/s at 10 %, 18 kbit/s at 20-30 %, none below), so each rung
sets the lowest bitrate at which its FEC really is sent: as loss rises the bitrate comes
down and the share spent on FEC goes up. The configured maximum always wins; below the
floor the stream simply has no FEC. The ladder climbs one rung per bad RTCP report at once
and comes down one rung only after several clean reports in a row, so a link at the edge
does not flap every five seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dsp.codecs.base import EncoderSettings


@dataclass(frozen=True, slots=True)
class LinkStep:
    """One rung of the ladder: entered at `loss_percent` or more."""

    loss_percent: float
    bitrate_bps: int | None  # None: the configured bitrate
    expected_loss_percent: int  # what the encoder is told to protect against


LADDER: tuple[LinkStep, ...] = (
    LinkStep(0.0, None, 0),
    LinkStep(2.0, 20_000, 10),
    LinkStep(5.0, 18_000, 20),
    LinkStep(10.0, 18_000, 30),
)
# Reports in a row with loss below half of the current step's threshold before stepping
# down: RTCP comes every 5 s, so about 15 s of a clean link.
CLEAN_REPORTS_TO_RECOVER = 3


class LinkAdapter:
    """Bitrate and FEC for one Opus member, from the fraction lost in its reports."""

    def __init__(
        self, base: EncoderSettings, min_bitrate_bps: int, max_bitrate_bps: int
    ) -> None:
        self.base = base
        self.min_bitrate_bps = min_bitrate_bps
        self.max_bitrate_bps = max_bitrate_bps
        self.step = 0
        self._clean_reports = 0

    def settings(self) -> EncoderSettings:
        """The encoder settings for the current rung."""
        rung = LADDER[self.step]
        if rung.bitrate_bps is None or not self.base.fec:
            return self.base
        bitrate = min(max(rung.bitrate_bps, self.min_bitrate_bps), self.max_bitrate_bps)
        return replace(
            self.base, bitrate_bps=bitrate, expected_loss_percent=rung.expected_loss_percent
        )

    def on_report(self, fraction_lost: int) -> EncoderSettings | None:
        """Take an RTCP report block's fraction lost (RFC 3550 §6.4.1: lost/256 since the
        previous report); return the new settings if the step changed."""
        if not self.base.fec:
            return None  # the far end takes no FEC: nothing here would change
        loss_percent = 100.0 * (fraction_lost & 0xFF) / 256.0
        wanted = max(i for i, rung in enumerate(LADDER) if loss_percent >= rung.loss_percent)
        if wanted > self.step:
            self.step, self._clean_reports = wanted, 0
            return self.settings()
        if self.step and loss_percent < LADDER[self.step].loss_percent / 2:
            self._clean_reports += 1
            if self._clean_reports >= CLEAN_REPORTS_TO_RECOVER:
                self.step, self._clean_reports = self.step - 1, 0
                return self.settings()
        else:
            self._clean_reports = 0
        return None
