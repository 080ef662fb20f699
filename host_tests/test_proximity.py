"""Proximity: IEC 62196-2 coding bands and the Type 1 S3 button."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.charge import proximity as pp


@pytest.mark.parametrize("ohms,da", [(1500, 130), (1100, 130), (2460, 130), (680, 200),
                                     (400, 200), (936, 200), (220, 320), (164, 320),
                                     (308, 320), (100, 630), (80, 630), (140, 630)])
def test_bands(ohms, da):
    assert pp.type2_ampacity(ohms) == da


def test_63a_cable_single_phase_is_70a():
    assert pp.type2_ampacity(100, phases=1) == 700


@pytest.mark.parametrize("ohms", [0, 59, 4501, 99999])
def test_invalid(ohms):
    assert pp.type2_ampacity(ohms) == pp.INVALID


@pytest.mark.parametrize("ohms,da", [(1000, 130), (2600, 130), (350, 200), (150, 320)])
def test_between_bands_takes_lower_rating(ohms, da):
    assert pp.type2_ampacity(ohms) == da


@given(st.integers(60, 4500), st.integers(60, 4500))
def test_more_resistance_never_means_more_current(a, b):
    lo, hi = min(a, b), max(a, b)
    assert pp.type2_ampacity(hi) <= pp.type2_ampacity(lo)


def test_type1_latch_button():
    assert pp.type1_state(150, 320) == 320
    assert pp.type1_state(480, 320) == pp.BUTTON
    assert pp.type1_state(99999, 320) == pp.INVALID
