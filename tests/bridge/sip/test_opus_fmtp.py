"""OpusParameters reads any Opus fmtp (RFC 7587 §6.1) with the RFC's defaults and prints ours."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.sip.opus_fmtp import OpusParameters

DEFAULTS = OpusParameters()


def test_absent_fmtp_gives_the_rfc_defaults() -> None:
    for fmtp in (None, "", " ", ";", ";;"):
        assert OpusParameters.parse(fmtp) == DEFAULTS
    assert (DEFAULTS.max_playback_rate_hz, DEFAULTS.sprop_max_capture_rate_hz) == (48000, 48000)
    assert (DEFAULTS.use_inband_fec, DEFAULTS.use_dtx, DEFAULTS.cbr) == (False, False, False)
    assert (DEFAULTS.stereo, DEFAULTS.sprop_stereo) == (False, False)
    assert DEFAULTS.max_average_bitrate_bps is None
    assert (DEFAULTS.ptime_ms, DEFAULTS.min_ptime_ms, DEFAULTS.max_ptime_ms) == (None, None, None)


# fmtp lines peers send, and what they mean.
PEERS = {
    # FreeSWITCH (tests/fixtures/sip/sdp_freeswitch_opus.txt)
    "useinbandfec=1": OpusParameters(use_inband_fec=True),
    # baresip 1.0.0 (tests/fixtures/sip/sdp_baresip.txt)
    "stereo=1;sprop-stereo=1": OpusParameters(stereo=True, sprop_stereo=True),
    # Chrome and Firefox (WebRTC)
    "minptime=10;useinbandfec=1": OpusParameters(min_ptime_ms=10, use_inband_fec=True),
    # Every RFC 7587 receive and sprop parameter at once
    "maxplaybackrate=16000;sprop-maxcapturerate=16000;maxaveragebitrate=20000;stereo=0;"
    "sprop-stereo=0;cbr=1;useinbandfec=1;usedtx=1": OpusParameters(
        max_playback_rate_hz=16000,
        sprop_max_capture_rate_hz=16000,
        max_average_bitrate_bps=20000,
        cbr=True,
        use_inband_fec=True,
        use_dtx=True,
    ),
    # A peer that puts the packet times into the fmtp too
    "ptime=40;maxptime=60;minptime=20": OpusParameters(
        ptime_ms=40, max_ptime_ms=60, min_ptime_ms=20
    ),
}


@pytest.mark.parametrize("fmtp", sorted(PEERS))
def test_real_peers_fmtp_is_read(fmtp: str) -> None:
    assert OpusParameters.parse(fmtp) == PEERS[fmtp]


def test_names_are_case_insensitive_and_blanks_are_tolerated() -> None:
    assert OpusParameters.parse(
        " MaxPlaybackRate = 8000 ;  UseInbandFEC=1;\tUSEDTX=1 ; "
    ) == OpusParameters(max_playback_rate_hz=8000, use_inband_fec=True, use_dtx=True)


def test_unknown_and_malformed_parameters_are_ignored() -> None:
    fmtp = "x-google-min-bitrate=30;useinbandfec;=1;stereo=1=1;usedtx=1;0-15"
    assert OpusParameters.parse(fmtp) == OpusParameters(use_dtx=True)


def test_first_of_two_equal_names_wins() -> None:
    assert OpusParameters.parse("usedtx=1;usedtx=0").use_dtx is True


@pytest.mark.parametrize(
    ("fmtp", "field", "value"),
    [
        # Rates: "any value between 8000 and 48000"; outside is clamped into it.
        ("maxplaybackrate=4000", "max_playback_rate_hz", 8000),
        ("maxplaybackrate=96000", "max_playback_rate_hz", 48000),
        ("maxplaybackrate=12000", "max_playback_rate_hz", 12000),
        ("sprop-maxcapturerate=0", "sprop_max_capture_rate_hz", 8000),
        ("sprop-maxcapturerate=24000", "sprop_max_capture_rate_hz", 24000),
        # maxaveragebitrate: "values outside the range 6000 to 510000 SHOULD be ignored".
        ("maxaveragebitrate=5999", "max_average_bitrate_bps", None),
        ("maxaveragebitrate=6000", "max_average_bitrate_bps", 6000),
        ("maxaveragebitrate=510000", "max_average_bitrate_bps", 510000),
        ("maxaveragebitrate=510001", "max_average_bitrate_bps", None),
        # Packet times run from 3 (one 2.5 ms frame) to 120 ms; 0 means nothing.
        ("maxptime=0", "max_ptime_ms", None),
        ("maxptime=2", "max_ptime_ms", 3),
        ("maxptime=200", "max_ptime_ms", 120),
        ("ptime=60", "ptime_ms", 60),
        ("minptime=10", "min_ptime_ms", 10),
        # Flags are 0 or 1; anything else leaves the default.
        ("stereo=2", "stereo", False),
        ("useinbandfec=yes", "use_inband_fec", False),
        ("usedtx=true", "use_dtx", False),
        ("cbr=1", "cbr", True),
        ("sprop-stereo=1", "sprop_stereo", True),
    ],
)
def test_values_out_of_range_are_clamped_or_ignored(fmtp: str, field: str, value: object) -> None:
    assert getattr(OpusParameters.parse(fmtp), field) == value


@pytest.mark.parametrize(
    "value", ["", "-1", "+16000", "16000.0", "16 000", "0x3e80", "١٦٠٠٠", "9" * 12]
)
def test_numbers_that_are_not_plain_digits_leave_the_default(value: str) -> None:
    assert OpusParameters.parse(f"maxplaybackrate={value}") == DEFAULTS
    assert OpusParameters.parse(f"maxaveragebitrate={value}") == DEFAULTS


def test_ours_prints_in_rfc_order() -> None:
    ours = OpusParameters(
        max_playback_rate_hz=16000,
        sprop_max_capture_rate_hz=16000,
        max_average_bitrate_bps=24000,
        use_inband_fec=True,
        use_dtx=True,
    )
    assert str(ours) == (
        "maxplaybackrate=16000;sprop-maxcapturerate=16000;maxaveragebitrate=24000;"
        "useinbandfec=1;usedtx=1;stereo=0"
    )


def test_defaults_print_the_flags_a_sender_acts_on() -> None:
    assert str(DEFAULTS) == (
        "maxplaybackrate=48000;sprop-maxcapturerate=48000;useinbandfec=0;usedtx=0;stereo=0"
    )
    everything = OpusParameters(
        max_ptime_ms=60, ptime_ms=20, min_ptime_ms=10, stereo=True, sprop_stereo=True, cbr=True
    )
    assert str(everything) == (
        "maxplaybackrate=48000;sprop-maxcapturerate=48000;maxptime=60;ptime=20;minptime=10;"
        "useinbandfec=0;usedtx=0;stereo=1;sprop-stereo=1;cbr=1"
    )


def test_parameters_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.use_dtx = True  # type: ignore[misc]


# -- properties --------------------------------------------------------------------------

_RATES = st.integers(8000, 48000)
_DURATIONS = st.none() | st.integers(3, 120)


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        OpusParameters,
        max_playback_rate_hz=_RATES,
        sprop_max_capture_rate_hz=_RATES,
        max_ptime_ms=_DURATIONS,
        ptime_ms=_DURATIONS,
        min_ptime_ms=_DURATIONS,
        max_average_bitrate_bps=st.none() | st.integers(6000, 510_000),
        stereo=st.booleans(),
        sprop_stereo=st.booleans(),
        cbr=st.booleans(),
        use_inband_fec=st.booleans(),
        use_dtx=st.booleans(),
    )
)
def test_printed_parameters_parse_back_the_same(parameters: OpusParameters) -> None:
    assert OpusParameters.parse(str(parameters)) == parameters


_NAMES = st.sampled_from([
    "maxplaybackrate", "sprop-maxcapturerate", "maxptime", "ptime", "minptime",
    "maxaveragebitrate", "stereo", "sprop-stereo", "cbr", "useinbandfec", "usedtx",
    "MAXPTIME", "x-google-max-bitrate",
])
_SOUPS = st.lists(
    st.one_of(
        st.tuples(_NAMES, st.one_of(st.integers(-10, 10**7).map(str), st.text(max_size=6))).map(
            "=".join
        ),
        st.text(max_size=12),
    ),
    max_size=8,
).map(";".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), _SOUPS))
def test_any_text_parses_to_values_in_range(fmtp: str) -> None:
    parameters = OpusParameters.parse(fmtp)
    assert 8000 <= parameters.max_playback_rate_hz <= 48000
    assert 8000 <= parameters.sprop_max_capture_rate_hz <= 48000
    for duration_ms in (parameters.max_ptime_ms, parameters.ptime_ms, parameters.min_ptime_ms):
        assert duration_ms is None or 3 <= duration_ms <= 120
    bitrate_bps = parameters.max_average_bitrate_bps
    assert bitrate_bps is None or 6000 <= bitrate_bps <= 510_000
    assert OpusParameters.parse(str(parameters)) == parameters
