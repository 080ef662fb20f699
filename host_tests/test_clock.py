"""firmware/ocpp/clock.py: RFC 3339 date-times as OCPP sends them, epoch seconds back to
text, and the CSMS clock carried across time.ticks_ms() and its wrap."""
import calendar
import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.ocpp import clock
from firmware.ticks import ticks_add

T = calendar.timegm((2026, 11, 22, 10, 0, 0))


@pytest.mark.parametrize("text, want", [
    ("2026-11-22T10:00:00Z", T),
    ("2026-11-22t10:00:00z", T),  # RFC 3339 allows lower case
    ("2026-11-22T10:00:00.123Z", T),
    ("2026-11-22T10:00:00.999999999Z", T),  # truncated, never rounded up
    ("2026-11-22T11:00:00+01:00", T),
    ("2026-11-22T11:00:00+0100", T),  # ISO 8601 basic offset: accepted
    ("2026-11-22T04:30:00-05:30", T),
    ("2026-11-22T10:00:00-00:00", T),
    ("2026-11-22T10:00:00.5+00:00", T),
    ("2026-11-23T00:30:00+14:30", T),
    ("1970-01-01T00:00:00Z", 0),
    ("2000-02-29T00:00:00Z", calendar.timegm((2000, 2, 29, 0, 0, 0))),
    ("2024-02-29T23:59:59Z", calendar.timegm((2024, 2, 29, 23, 59, 59))),
    ("2099-12-31T23:59:59Z", calendar.timegm((2099, 12, 31, 23, 59, 59))),
])
def test_parse_accepts_what_ocpp_sends(text, want):
    assert clock.parse(text) == want


@pytest.mark.parametrize("text, why", [
    ("2026-11-22T10:00:00", "no time zone"),
    ("2026-11-22 10:00:00Z", "'T'"),
    ("2026-11-22", "expected YYYY-MM-DD"),
    ("2026-11-22T10:00:00+01", "offset must be"),
    ("2026-11-22T10:00:00+1:00", "digit at position 21"),
    ("2026-11-22T10:00:00+24:00", "offset out of range"),
    ("2026-11-22T10:00:00.Z", "no digits after"),
    ("2026-11-22T10:00:00ZZ", "trailing"),
    ("2026-11-22T10:00:00Q", "expected Z or an offset"),
    ("2026-13-01T00:00:00Z", "no such date"),
    ("2026-00-01T00:00:00Z", "no such date"),
    ("2025-02-29T00:00:00Z", "no such date"),  # not a leap year
    ("2100-02-29T00:00:00Z", "no such date"),  # century, not a leap year
    ("2026-04-31T00:00:00Z", "no such date"),
    ("2026-11-22T24:00:00Z", "time of day"),
    ("2026-11-22T10:00:60Z", "time of day"),  # no leap seconds
    ("1969-12-31T23:59:59Z", "before 1970"),
    ("1970-01-01T00:30:00+01:00", "before 1970-01-01"),
    ("2026-1x-22T10:00:00Z", "digit at position 6"),
    ("2026-11-22T10:00:00.1234567890123456789012Z", "longer than"),
])
def test_parse_names_what_is_wrong(text, why):
    with pytest.raises(ValueError) as e:
        clock.parse(text)
    assert why in str(e.value)


@pytest.mark.parametrize("value", [None, 1795341600, b"2026-11-22T10:00:00Z"])
def test_parse_refuses_what_is_not_a_string(value):
    with pytest.raises(ValueError, match="not a string"):
        clock.parse(value)


def test_iso():
    assert clock.iso(T) == "2026-11-22T10:00:00Z"
    assert clock.iso(T + 0.9) == "2026-11-22T10:00:00Z"
    assert clock.iso(0) == "1970-01-01T00:00:00Z"
    with pytest.raises(ValueError, match=">= 0"):
        clock.iso(-1)


def test_iso_past_the_end_of_year_9999_stays_a_valid_date_time():
    # a CSMS that set the clock to 9999-12-31T23:59:59.500Z: a second later is year 10000
    end = clock.parse("9999-12-31T23:59:59Z")
    assert clock.iso(end) == "9999-12-31T23:59:59Z"
    assert clock.iso(end + 1) == "9999-12-31T23:59:59Z"
    assert clock.iso(end + 86400 * 400) == "9999-12-31T23:59:59Z"


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1),
                    max_value=datetime.datetime(2199, 12, 31, 23, 59, 59)),
       st.integers(-14 * 60, 14 * 60))
def test_parse_and_iso_agree_with_the_python_calendar(dt, off_min):
    dt = dt.replace(microsecond=0)
    epoch = calendar.timegm(dt.timetuple())
    assert clock.iso(epoch) == dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert clock.parse(clock.iso(epoch)) == epoch
    local = dt + datetime.timedelta(minutes=off_min)
    sign = "-" if off_min < 0 else "+"
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + "%s%02d:%02d" % (
        sign, abs(off_min) // 60, abs(off_min) % 60)
    if local.year >= 1970 and epoch >= 0:
        assert clock.parse(text) == epoch


@given(st.dates(min_value=datetime.date(1970, 1, 1), max_value=datetime.date(9999, 12, 31)))
def test_days_from_civil_and_back(d):
    n = d.toordinal() - datetime.date(1970, 1, 1).toordinal()
    assert clock.days_from_civil(d.year, d.month, d.day) == n
    assert clock.civil_from_days(n) == (d.year, d.month, d.day)


def test_clock_is_none_until_set():
    c = clock.Clock()
    assert c.now_s(12345) is None
    assert c.set(T, 1000) is None  # first set: no step to report
    assert c.now_s(1000) == T
    assert c.now_s(1999) == T
    assert c.now_s(2000) == T + 1
    assert c.now_s(61000) == T + 60


def test_clock_set_reports_the_step():
    c = clock.Clock()
    c.set(T, 0)
    assert c.set(T + 100, 10000) == 90  # it thought T + 10, the CSMS says T + 100
    assert c.now_s(10000) == T + 100
    assert c.set(T + 95, 10000) == -5


def test_clock_across_the_ticks_wrap():
    c = clock.Clock()
    start = ticks_add(0, -1500)  # 1.5 s before ticks_ms wraps
    c.set(T, start)
    assert c.now_s(ticks_add(start, 1499)) == T + 1
    assert c.now_s(ticks_add(start, 5000)) == T + 5


def test_clock_stays_exact_for_weeks_when_read_every_few_days():
    # ticks_diff is only good within 2^29 ms (6.2 days): now_s moves its anchor forward
    c = clock.Clock()
    now = ticks_add(0, -10)
    c.set(T, now)
    elapsed = 0
    step = 5 * 86400 * 1000 + 123  # every 5 days and a bit, across several wraps (12.4 d)
    for _ in range(12):
        now = ticks_add(now, step)
        elapsed += step
        assert c.now_s(now) == T + elapsed // 1000


def test_clock_set_refuses_a_negative_time():
    with pytest.raises(ValueError, match=">= 0"):
        clock.Clock().set(-5, 0)
