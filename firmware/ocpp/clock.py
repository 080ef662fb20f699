# Wall-clock time for OCPP: RFC 3339 date-times <-> epoch seconds (UTC, from 1970), and the
# CSMS's clock carried across time.ticks_ms(). Pure logic: no clock reads, no time module
# (time.gmtime/mktime count from 2000 on ESP32 and STM32 and from 1970 on unix, so the
# civil-date arithmetic is done here, the same on every target and on CPython).
#
# What parse() accepts (OCPP-J 1.6 section 3.1: ISO 8601 date-times, receivers must handle
# fractional seconds and time-zone offsets):
#   YYYY-MM-DDTHH:MM:SS[.fraction](Z | +hh:mm | -hh:mm | +hhmm | -hhmm)
# - "T" and "Z" may be lower case (RFC 3339 allows it); a space for "T" is refused.
# - Any number of fraction digits, truncated to the second (never rounded up).
# - The basic offset "+0100" is accepted as well as RFC 3339's "+01:00": ISO 8601 defines
#   both and a CSMS sending one means the same instant; "+01" alone is refused.
# - No time zone is an error by default: such a time is local to the sender, whose zone the
#   charge point does not know, and RFC 3339 requires one. parse(s, naive_utc=True) reads it
#   as UTC for a CSMS known to send naive UTC times.
# - Seconds 60 (leap second) and hour 24 are refused; years 1970..9999, results >= 0.
# On 32-bit boards epoch seconds after 2004 are no longer small ints (2^30): a few bytes of
# heap per value, which is fine outside the hot paths.
from micropython import const

from firmware.ticks import ticks_add, ticks_diff

_DAY_S = const(86400)
_REANCHOR_MS = const(86400000)  # a day: ticks_diff is exact up to 2^29 ms (6.2 days)
_MAX_LEN = const(40)  # longer strings are refused before they are looked at
_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_CUM = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)  # days before each month


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _leaps_before(y):
    """Leap years in 1..y-1 (proleptic Gregorian)."""
    y -= 1
    return y // 4 - y // 100 + y // 400


_LEAPS_1970 = _leaps_before(1970)


def _days_before_year(y):
    return 365 * (y - 1970) + _leaps_before(y) - _LEAPS_1970


def days_from_civil(y, m, d):
    """Days from 1970-01-01 to the date y-m-d (month 1..12, day 1..31, not checked)."""
    return _days_before_year(y) + _CUM[m - 1] + (m > 2 and _leap(y)) + d - 1


def civil_from_days(days):
    """(year, month, day) of the date `days` after 1970-01-01 (days >= 0)."""
    y = 1970 + days // 366  # at most the year; step up while the next year starts in time
    while _days_before_year(y + 1) <= days:
        y += 1
    doy = days - _days_before_year(y)
    m = 12
    while True:
        start = _CUM[m - 1] + (m > 2 and _leap(y))
        if doy >= start:
            return y, m, doy - start + 1
        m -= 1


def _bad(s, why):
    return ValueError("bad date-time %r: %s" % (s, why))


def _num(s, i, n, what):
    v = 0
    for k in range(i, i + n):
        c = ord(s[k]) - 48
        if c < 0 or c > 9:
            raise _bad(s, what + " is not a number")
        v = v * 10 + c
    return v


def _expect(s, i, chars, what):
    if i >= len(s) or s[i] not in chars:
        raise _bad(s, "expected %s at position %d" % (what, i))


def parse(s, naive_utc=False):
    """Epoch seconds (UTC, 1970) of an RFC 3339 date-time; ValueError naming the fault."""
    if type(s) is not str:
        raise ValueError("date-time must be a string, got %r" % (s,))
    if len(s) > _MAX_LEN:
        raise _bad(s[:_MAX_LEN], "longer than 40 characters")
    y, mo, d, sec, off = fields(s, naive_utc)
    if y < 1970:
        raise _bad(s, "year before 1970")
    t = days_from_civil(y, mo, d) * _DAY_S + sec - off
    if t < 0:
        raise _bad(s, "before 1970-01-01T00:00:00Z")
    return t


def fields(s, naive_utc=False):
    """(year, month, day, second of the day, offset s) of a date-time (str) of any length
    and year 1..9999 (schema.is_datetime's check too); ValueError naming the fault."""
    if len(s) < 19:
        raise _bad(s, "expected YYYY-MM-DDTHH:MM:SS and a zone")
    _expect(s, 4, "-", "'-'")
    _expect(s, 7, "-", "'-'")
    _expect(s, 10, "Tt", "'T'")
    _expect(s, 13, ":", "':'")
    _expect(s, 16, ":", "':'")
    y = _num(s, 0, 4, "the year")
    mo = _num(s, 5, 2, "the month")
    d = _num(s, 8, 2, "the day")
    h = _num(s, 11, 2, "the hour")
    mi = _num(s, 14, 2, "the minute")
    sec = _num(s, 17, 2, "the second")
    if y < 1:
        raise _bad(s, "year 0")
    if not 1 <= mo <= 12:
        raise _bad(s, "month %d out of range" % mo)
    mdays = 29 if mo == 2 and _leap(y) else _MDAYS[mo - 1]
    if not 1 <= d <= mdays:
        raise _bad(s, "day %d out of range" % d)
    if h > 23 or mi > 59 or sec > 59:
        raise _bad(s, "time of day out of range")
    i = 19
    n = len(s)
    if i < n and s[i] == ".":
        i += 1
        j = i
        while i < n and "0" <= s[i] <= "9":
            i += 1
        if i == j:
            raise _bad(s, "no digits after '.'")
    off = 0
    if i == n:
        if not naive_utc:
            raise _bad(s, "no time zone (Z or +hh:mm)")
    elif s[i] in "Zz":
        i += 1
    elif s[i] in "+-":
        rest = n - i - 1
        if rest == 5 and s[i + 3] == ":":
            oh, om = _num(s, i + 1, 2, "the offset"), _num(s, i + 4, 2, "the offset")
        elif rest == 4:
            oh, om = _num(s, i + 1, 2, "the offset"), _num(s, i + 3, 2, "the offset")
        else:
            raise _bad(s, "offset must be +hh:mm or +hhmm")
        if oh > 23 or om > 59:
            raise _bad(s, "offset out of range")
        off = (oh * 60 + om) * 60
        if s[i] == "-":
            off = -off
        i = n
    else:
        raise _bad(s, "expected Z or an offset at position %d" % i)
    if i != n:
        raise _bad(s, "trailing characters")
    return y, mo, d, h * 3600 + mi * 60 + sec, off


def _secs(v):
    t = int(v)
    if t < 0:
        raise ValueError("epoch seconds must be >= 0, got %r" % (v,))
    return t


_END_S = 253402300799  # 9999-12-31T23:59:59Z: RFC 3339 has four-digit years


def iso(epoch_s):
    """RFC 3339 UTC form of epoch seconds: "2026-11-22T10:00:00Z" (fractions truncated).
    A time past the end of year 9999 (a CSMS that set the clock to its last second) is
    written as that last second, so every timestamp stays a valid date-time."""
    t = _secs(epoch_s)
    if t > _END_S:
        t = _END_S
    days, sod = divmod(t, _DAY_S)
    y, m, d = civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, d, sod // 3600, sod // 60 % 60, sod % 60)


class Clock:
    """The CSMS's wall clock carried on time.ticks_ms(): set() from BootNotification.conf or
    Heartbeat.conf currentTime, now_s() whenever the time is needed. now_s() moves its anchor
    forward once a day, so it stays exact as long as it is called at least every 6 days
    (ticks_diff covers 2^29 ms); the OCPP task calls it every second."""

    def __init__(self):
        self._s = None  # epoch seconds at the anchor
        self._ms = 0  # ticks_ms at the anchor

    def set(self, epoch_s, now_ms):
        """Anchor the clock; returns the step in seconds from the previous estimate, or
        None the first time (for the log: a large step means the clock was wrong)."""
        t = _secs(epoch_s)
        old = self.now_s(now_ms)
        self._s, self._ms = t, now_ms
        return None if old is None else t - old

    def now_s(self, now_ms):
        """Epoch seconds now (UTC), or None if the clock was never set."""
        if self._s is None:
            return None
        d = ticks_diff(now_ms, self._ms)
        if d >= _REANCHOR_MS:
            whole = d // 1000
            self._s += whole
            self._ms = ticks_add(self._ms, whole * 1000)
            d -= whole * 1000
        return self._s + d // 1000
