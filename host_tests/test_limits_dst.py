"""The UK off-peak schedule is in UK local time (docs/limits.md "Grid rules"): GMT in winter,
BST (UTC+1) from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of
October. Checked against the system's tz database and at both transitions, through the loop."""
import calendar
import datetime as dt
import types
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.limits import conf, rules
from firmware.limits.loop import Limits

LONDON = ZoneInfo("Europe/London")


def utc(*args):
    return calendar.timegm(dt.datetime(*args).timetuple())


@given(st.integers(utc(1997, 1, 1), utc(2099, 12, 31)))
def test_the_uk_offset_is_the_tz_databases(t):
    want = dt.datetime.fromtimestamp(t, dt.timezone.utc).astimezone(LONDON).utcoffset()
    assert rules.uk_offset_s(t) == want.total_seconds(), dt.datetime.utcfromtimestamp(t)


def test_both_transitions_to_the_second():
    spring = utc(2026, 3, 29, 1, 0, 0)  # the last Sunday of March 2026
    autumn = utc(2026, 10, 25, 1, 0, 0)  # the last Sunday of October 2026
    assert rules.uk_offset_s(spring - 1) == 0 and rules.uk_offset_s(spring) == 3600
    assert rules.uk_offset_s(autumn - 1) == 3600 and rules.uk_offset_s(autumn) == 0
    assert rules.uk_offset_s(utc(2027, 1, 1)) == 0 and rules.uk_offset_s(utc(2027, 7, 1)) == 3600
    assert rules.days_from_civil(1970, 1, 1) == 0 and rules.days_from_civil(2000, 3, 1) == 11017


class _Ctl:
    inputs = None

    def __init__(self):
        self.calls = []

    def set_limit(self, amps, reason):
        self.calls.append((amps, reason))


def offer_at(epoch_s):
    ctl = _Ctl()
    cfg = types.SimpleNamespace(limits={"preset": "uk"}, max_current_a=32, phases=3)
    lim = Limits(ctl, 32, log=lambda m: None, cfg=cfg)
    lim.now_s = lambda: epoch_s
    lim.apply(1000)
    return ctl.calls[-1]


def test_the_peak_hours_follow_uk_local_time_across_both_transitions():
    # Friday before the October change: 07:30 UTC is 08:30 BST, inside the 08-11 peak
    assert offer_at(utc(2026, 10, 23, 7, 30)) == (0, "pause: off-peak schedule below 6 A")
    # Monday after it: 07:30 UTC is 07:30 GMT, before the peak
    assert offer_at(utc(2026, 10, 26, 7, 30)) == (32, "config rating_a")
    assert offer_at(utc(2026, 10, 26, 8, 0))[0] == 0
    # Friday before the March change: 21:30 UTC = 21:30 GMT, peak (16-22); the Monday after
    # it 21:30 UTC = 22:30 BST, after the peak
    assert offer_at(utc(2026, 3, 27, 21, 30))[0] == 0
    assert offer_at(utc(2026, 3, 30, 21, 30)) == (32, "config rating_a")
    assert offer_at(utc(2026, 3, 30, 7, 0))[0] == 0  # 08:00 BST


@given(st.integers(0, 7 * 86400 - 1))
def test_the_default_peak_hours_are_the_uk_default_schedules(week_s):
    day, h = week_s // 86400, week_s % 86400 // 3600
    assert rules.peak(week_s) == (day < 5 and (8 <= h < 11 or 16 <= h < 22))


@pytest.mark.parametrize("text,hours", [
    ("8-11,16-22", [8, 9, 10, 16, 17, 18, 19, 20, 21]), ("0-24", list(range(24))), ("", []),
    (" 17 - 20 ", [17, 18, 19])])
def test_peak_hours_text(text, hours):
    assert conf.peak_mask(text) == sum(1 << h for h in hours)


@pytest.mark.parametrize("bad", ["8-8", "20-17", "8-25", "8", "a-b", "1-2,3-4,5-6,7-8,9-10",
                                 7, None])
def test_bad_peak_hours_are_refused_by_name(bad):
    s = conf.check({"peak_hours": bad})
    assert any("peak_hours=%r refused" % (bad,) in m for m in s["errors"]), s["errors"]
    assert s["peak_mask"] == rules.UK_PEAK_MASK
