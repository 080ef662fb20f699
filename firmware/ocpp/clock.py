# Wall-clock time for OCPP: RFC 3339 date-times <-> epoch seconds (UTC, from 1970), and the
# CSMS's clock carried across time.ticks_ms(). Pure logic: no clock reads, no time module
# (time.gmtime/mktime count from 2000 on ESP32 and STM32 and from 1970 on unix, so the
# civil-date arithmetic is done here, the same on every target and on CPython; days from a
# date is firmware/limits/rules.py's, its inverse is here).
#
# What parse() accepts (OCPP-J 1.6 section 3.1: ISO 8601 date-times, receivers must handle
# fractional seconds and time-zone offsets):
#   YYYY-MM-DDTHH:MM:SS[.fraction](Z | +hh:mm | -hh:mm | +hhmm | -hhmm)
# - "T" and "Z" may be lower case (RFC 3339 allows it); a space for "T" is refused.
# - Any number of fraction digits, truncated to the second (never rounded up).
# - The basic offset "+0100" is accepted as well as RFC 3339's "+01:00": ISO 8601 defines
#   both and a CSMS sending one means the same instant; "+01" alone is refused.
# - No time zone is an error: such a time is local to the sender, whose zone the charge
#   point does not know, and RFC 3339 requires one.
# - Seconds 60 (leap second) and hour 24 are refused; years up to 9999, results >= 0 (an
#   instant before 1970-01-01T00:00:00Z is refused, whatever its offset).
# On 32-bit boards epoch seconds after 2004 are no longer small ints (2^30): a few bytes of
# heap per value, which is fine outside the hot paths.

from ..limits.rules import days_from_civil
from ..ticks import ticks_add, ticks_diff

_DAY_S = const(86400)
_REANCHOR_MS = const(86400000)  # a day: ticks_diff is exact up to 2^29 ms (6.2 days)
_MAX_LEN = const(40)  # longer strings are refused before they are looked at
_FORM = "YYYY-MM-DDTHH:MM:SS"


def civil_from_days(days):
    """(year, month, day) of the date `days` after 1970-01-01 (proleptic Gregorian; the
    inverse of days_from_civil, H. Hinnant's algorithm: 400-year eras of 146097 days, years
    counted from March so that the leap day comes last)."""
    days += 719468  # days from 0000-03-01
    era = days // 146097
    doe = days - era * 146097  # day of the era, 0..146096
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365  # year of the era
    doy = doe - 365 * yoe - yoe // 4 + yoe // 100  # day of the year from March 1st
    mp = (5 * doy + 2) // 153  # month from March, 0..11
    m = mp + 3 if mp < 10 else mp - 9
    return era * 400 + yoe + (m < 3), m, doy - (153 * mp + 2) // 5 + 1


def _bad(s, why):
    return ValueError("bad date-time %r: %s" % (s, why))


def _int(s, i, j):
    """The number in s[i:j], which must be all digits."""
    for k in range(i, j):
        if not "0" <= s[k] <= "9":
            raise _bad(s, "expected %s at position %d" % ("a digit", k))
    return int(s[i:j])


def parse(s):
    """Epoch seconds (UTC, 1970) of an RFC 3339 date-time; ValueError naming the fault."""
    if type(s) is not str:
        raise _bad(s, "not a string")
    if len(s) > _MAX_LEN:
        raise _bad(s[:_MAX_LEN], "longer than 40 characters")
    y, mo, d, sec, off = fields(s)
    t = days_from_civil(y, mo, d) * _DAY_S + sec - off
    if t < 0:
        raise _bad(s, "before 1970-01-01T00:00:00Z")
    return t


def fields(s):
    """(year, month, day, second of the day, offset s) of a date-time (str) of any length
    and year 1..9999 (schema.is_datetime's check too); ValueError naming the fault."""
    if len(s) < 19:
        raise _bad(s, "expected %s and a zone" % _FORM)
    for i in (4, 7, 10, 13, 16):
        if s[i].upper() != _FORM[i]:
            raise _bad(s, "expected %s at position %d" % ("'%s'" % _FORM[i], i))
    y, mo, d = _int(s, 0, 4), _int(s, 5, 7), _int(s, 8, 10)
    h, mi, sec = _int(s, 11, 13), _int(s, 14, 16), _int(s, 17, 19)
    if y < 1 or civil_from_days(days_from_civil(y, mo, d)) != (y, mo, d):
        raise _bad(s, "no such date")
    if h > 23 or mi > 59 or sec > 59:
        raise _bad(s, "time of day out of range")
    i = 19
    n = len(s)
    if i < n and s[i] == ".":
        i += 1
        while i < n and "0" <= s[i] <= "9":
            i += 1
        if i == 20:
            raise _bad(s, "no digits after '.'")
    off = 0
    if i == n:
        raise _bad(s, "no time zone (Z or +hh:mm)")
    elif s[i] in "Zz":
        if i + 1 != n:
            raise _bad(s, "trailing characters")
    elif s[i] in "+-":
        if not (n - i == 5 or n - i == 6 and s[i + 3] == ":"):
            raise _bad(s, "offset must be +hh:mm or +hhmm")
        oh, om = _int(s, i + 1, i + 3), _int(s, n - 2, n)  # the minutes are the last two
        if oh > 23 or om > 59:
            raise _bad(s, "offset out of range")
        off = (oh * 60 + om) * 60
        if s[i] == "-":
            off = -off
    else:
        raise _bad(s, "expected %s at position %d" % ("Z or an offset", i))
    return y, mo, d, h * 3600 + mi * 60 + sec, off


def _secs(v):
    t = int(v)
    if t < 0:
        raise ValueError("epoch seconds must be >= 0, got %r" % (v,))
    return t


_END_S = const(253402300799)  # 9999-12-31T23:59:59Z: RFC 3339 has four-digit years


def iso(epoch_s):
    """RFC 3339 UTC form of epoch seconds: "2026-11-22T10:00:00Z" (fractions truncated).
    A time past the end of year 9999 (a CSMS that set the clock to its last second) is
    written as that last second, so every timestamp stays a valid date-time."""
    days, sod = divmod(min(_secs(epoch_s), _END_S), _DAY_S)
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
