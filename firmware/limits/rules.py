# Grid rules as pure functions (docs/limits.md): the §14a EnWG floor, the UK default off-peak
# schedule, the frequency -> current curve. Ints only; they can only lower the offer.

_NOMINAL_V = const(230)
_DSO_FLOOR_W = const(4200)  # §14a EnWG: a dimmed device keeps at least 4.2 kW
_DAY = const(86400)


def w_to_da(w, phases):
    """The per-phase current (dA, rounded up) that carries w watts at the nominal voltage."""
    return (w * 10 + _NOMINAL_V * phases - 1) // (_NOMINAL_V * phases)


def dso_floor_da(phases):
    return w_to_da(_DSO_FLOOR_W, phases)


UK_PEAK_MASK = const(0x3F0700)  # hours 8-10 and 16-21: 08:00-11:00 and 16:00-22:00


def peak(week_s, mask=UK_PEAK_MASK):
    """True inside the schedule's weekday peak hours, local time; week_s counts from Monday
    00:00, mask has bit h set for a peak hour h. The default is the UK default schedule's
    (Smart Charge Points Regulations 2021): weekdays 08:00-11:00 and 16:00-22:00; the owner
    may change it (limits.peak_hours) or remove it (limits.offpeak false)."""
    day = week_s // _DAY
    if day >= 5:
        return False
    return bool(mask >> ((week_s % _DAY) // 3600) & 1)


def days_from_civil(y, m, d):
    """Days from 1970-01-01 to the date y-m-d (proleptic Gregorian; H. Hinnant's algorithm)."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _last_sunday(y, m):
    d = days_from_civil(y, m, 31)  # March and October have 31 days
    return d - (d + 4) % 7  # 1970-01-01 was a Thursday: (d + 4) % 7 is 0 on a Sunday


def uk_offset_s(epoch_s):
    """UK local time minus UTC at a Unix time: 3600 (BST) from 01:00 UTC on the last Sunday
    of March to 01:00 UTC on the last Sunday of October, else 0 (GMT). The rule since 1996
    (the EU summer-time directive, kept in UK law)."""
    day = epoch_s // _DAY
    y = 1970 + day * 400 // 146097
    if days_from_civil(y, 1, 1) > day:
        y -= 1
    elif days_from_civil(y + 1, 1, 1) <= day:
        y += 1
    if _last_sunday(y, 3) * _DAY + 3600 <= epoch_s < _last_sunday(y, 10) * _DAY + 3600:
        return 3600
    return 0


def week_seconds(epoch_s, offset_s):
    """Seconds since Monday 00:00 local time of a Unix time (1970-01-01 was a Thursday)."""
    return (epoch_s + offset_s + 3 * _DAY) % (7 * _DAY)


def freq_da(chz, s, max_da):
    """The frequency response: max_da at or above freq_start_chz, 0 at or below
    freq_stop_chz, linear in between (a fraction of max_da)."""
    start = s["freq_start_chz"]
    stop = s["freq_stop_chz"]
    if chz >= start:
        return max_da
    if chz <= stop:
        return 0
    return max_da * (chz - stop) // (start - stop)


def thermal_da(dc, s, max_da):
    """The thermal derating (dc: the board's temperature in 0.1 deg C): max_da at or below
    thermal_start_c, 0 at or above thermal_stop_c, linear in between."""
    start = s["thermal_start_c"] * 10
    stop = s["thermal_stop_c"] * 10
    if dc <= start:
        return max_da
    if dc >= stop:
        return 0
    return max_da * (stop - dc) // (stop - start)
