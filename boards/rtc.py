# The clock hardware of the real boards, as firmware/timekeep.py asks for it (board.rtc,
# board.ntp_s): epoch seconds from 1970 (UTC) on every port, whatever the port's own epoch.
# - MachineRtc: machine.RTC().datetime(), the date in civil form (year, month, day, weekday,
#   hours, minutes, seconds, subseconds). ESP32: the RTC is also the system time that mbedTLS
#   checks certificate dates against (gettimeofday); it keeps counting through soft and
#   watchdog resets, and restarts at 2000-01-01 after a power cut. STM32: the RTC runs on
#   the backup domain (LSE crystal, VBAT cell) and keeps its time through a power cut when the
#   board has the cell; an RTC never set reads 2000-01-01.
# - ntp_s: MicroPython's ntptime (frozen in the network-enabled ports) asked once; it blocks
#   in getaddrinfo and recvfrom for up to `timeout_s`. It returns seconds from the port's
#   epoch (2000 on older ESP32/STM32 builds, 1970 where MICROPY_EPOCH_IS_1970): converted.
from firmware.ocpp import clock

_DAY_S = 86400
_Y2000 = 946684800  # 2000-01-01T00:00:00Z in seconds from 1970


def epoch_shift(year0):
    """Seconds to add to a time counted from the port's epoch (time.gmtime(0)[0])."""
    return _Y2000 if year0 == 2000 else 0


class MachineRtc:
    """board.rtc on ESP32 and STM32. weekday_base: what the port calls Monday in the
    datetime tuple (STM32: 1..7 from Monday; ESP32: 0..6, and it ignores it when set)."""

    def __init__(self, weekday_base, rtc=None):
        self._base = weekday_base
        self._rtc = rtc  # machine.RTC(), made on first use (none at import time)

    def _get(self):
        if self._rtc is None:
            from machine import RTC

            self._rtc = RTC()
        return self._rtc

    def read_s(self):
        y, mo, d, _wd, h, mi, s = self._get().datetime()[:7]
        if y < 1970:
            return None
        return clock.days_from_civil(y, mo, d) * _DAY_S + h * 3600 + mi * 60 + s

    def write_s(self, t):
        days, sod = divmod(int(t), _DAY_S)
        y, mo, d = clock.civil_from_days(days)
        wd = (days + 3) % 7 + self._base  # 1970-01-01 was a Thursday (Monday + 3)
        self._get().datetime((y, mo, d, wd, sod // 3600, sod // 60 % 60, sod % 60, 0))


def ntp_s(host, timeout_s=1):
    """Epoch seconds (1970) from the NTP server `host`; OSError when it cannot be had."""
    try:
        import ntptime
    except ImportError:
        raise OSError("this firmware has no ntptime module")
    import time

    ntptime.host = host
    ntptime.timeout = timeout_s
    return ntptime.time() + epoch_shift(time.gmtime(0)[0])


def reset_cause():
    """"watchdog" after a watchdog reset, else None (firmware.app: a reboot the firmware did
    not choose, but not a power cut either). The real boards' board.reset_cause()."""
    import machine

    c = getattr(machine, "reset_cause", None)
    if c is not None and c() == getattr(machine, "WDT_RESET", None):
        return "watchdog"
    return None
