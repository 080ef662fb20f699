# What a board's RTC and random-number generator give, for ports/qemu, which has neither:
# os.urandom, time.time/time_ns/gmtime/localtime. install() puts stand-ins for `os` and `time`
# in sys.modules (the real module's names copied, the missing ones added), so that code
# imported afterwards sees a board's modules. tools/qemu_run.py installs them for the
# pure-logic checks; the session and the bench run on the port's own modules.
import sys

_EPOCH_2000 = 946684800  # seconds from 1970 to 2000-01-01 (MicroPython's embedded epoch)
_state = [0x2545F491]


def urandom(n):
    """n pseudo-random bytes (xorshift32 seeded from ticks): no entropy, unique names only."""
    import time as _t

    x = _state[0] ^ _t.ticks_us()
    out = bytearray(n)
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x & 0xFF
    _state[0] = x
    return bytes(out)


def _seconds():
    import time as _t

    return _EPOCH_2000 + _t.ticks_ms() // 1000  # boots at 2000-01-01 00:00:00 UTC


def _gmtime(secs=None):
    s = _seconds() if secs is None else int(secs)
    days, rem = divmod(s, 86400)
    z = days + 719468  # civil-from-days (proleptic Gregorian)
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return (y, m, d, rem // 3600, rem // 60 % 60, rem % 60, (days + 3) % 7, 0)


class _Module:
    pass


def _stand_in(real, extra):
    m = _Module()
    for name in dir(real):
        if not name.startswith("__"):
            setattr(m, name, getattr(real, name))
    for name, v in extra.items():
        if not hasattr(real, name):
            setattr(m, name, v)
    return m


def install():
    import os
    import time

    sys.modules["os"] = _stand_in(os, {"urandom": urandom})
    sys.modules["time"] = _stand_in(time, {
        "time": _seconds, "time_ns": lambda: _seconds() * 1000000000,
        "gmtime": _gmtime, "localtime": _gmtime})
