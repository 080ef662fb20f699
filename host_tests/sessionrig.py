"""A session wired to an ideal EV, cable, contactor, RCM and socket lock. Runs on CPython
and on the MicroPython unix port (host_tests/mpy/check_wrap.py imports it there).

The rig's clock is a ticks clock: every stamp is masked to the port's ticks period (2^30 ms
with firmware/ticks.py's CPython fallback, as on ESP32 and STM32; the unix port's own
period on MicroPython) and every interval is a ticks_diff, so a rig started near the end of
the period (`Rig(t0=...)`, `wrap_in(ms)`) runs its session across the wrap."""
from firmware.charge import pilot as cp
from firmware.charge import session as S
from firmware.events import EventLog
from firmware.ticks import ticks_add, ticks_diff

HIGH = {"A": 12000, "B": 9000, "C": 6000, "D": 3000, "E": 0, "F": -12000}
PERIOD = ticks_add(0, -1) + 1  # the ticks period of the clock the session runs on


def wrap_in(ms):
    """A start time `ms` before the ticks clock wraps to 0."""
    return ticks_add(0, -ms)


class Rig:
    """A session wired to an ideal EV, cable, contactor and RCM, stepped every 2 ms."""

    def __init__(self, rating_da=320, t0=0, log=True, **kw):
        self.ev = "A"
        self.diode_short = False
        self.rcm_trip = False
        self.rcm_broken = False
        self.rcm_rise_ms = 20  # the RCM's fault output follows the test input this late
        self.rcm_fall_ms = 20  # ... and falls this long after the test input drops
        self.welded = False
        self.no_close = False
        self.lock_jam = False  # the lock never reaches its locked position
        self.lock_travel = 100  # ms from the lock command to the sensor saying locked
        self._lock_at = None
        self.ev_da = -1
        self.events = EventLog(64)
        self.s = S.Session(rating_da, events=self.events, **kw)
        self.i = S.Inputs()
        self.i.pp_da = 320
        self.t = ticks_add(t0, 0)
        self.t0 = self.t
        self._test_at = None
        self._release_at = None
        self.log = [] if log else None  # off for long runs on MicroPython's small heap
        self.closings = []  # (t, raw pilot) at each step where the coil was commanded closed

    def since(self, t):
        """ms from the stamp `t` to now, on the wrapping clock."""
        return ticks_diff(self.t, t)

    def _rcm(self):
        if self.rcm_trip:
            return True
        if self.rcm_broken:
            return False
        a = self.s.act
        if a.rcm_test:
            self._release_at = None
            if self._test_at is None:
                self._test_at = self.t
            return self.since(self._test_at) >= self.rcm_rise_ms
        if self._test_at is not None:
            self._test_at = None
            self._release_at = self.t
        if self._release_at is not None and self.since(self._release_at) >= self.rcm_fall_ms:
            self._release_at = None  # past its use: a stamp kept would come round again
        return self._release_at is not None

    def step(self, n=1, dt=2):
        for _ in range(n):
            a = self.s.act
            pwm = cp.is_pwm(a.duty)
            if a.duty == cp.DUTY_F:
                high, low = -12000, -12000
            else:
                high = HIGH[self.ev]
                low = -high if (self.diode_short and pwm) else -12000
                if not pwm:
                    low = high
            self.i.pilot = cp.classify(high, low, pwm, self.i.pilot)
            self.i.rcm_fault = self._rcm()
            self.i.contactor_fb = (a.close and not self.no_close) or self.welded
            self.i.ev_da = self.ev_da
            if not a.lock:
                self._lock_at = None
            elif self._lock_at is None:
                self._lock_at = self.t
            self.i.lock_fb = (
                a.lock and not self.lock_jam and self.since(self._lock_at) >= self.lock_travel
            )
            was = a.close
            self.s.step(self.t, self.i)
            if a.close and not was:
                self.closings.append((self.t, self.i.pilot))
            if self.log is not None:
                self.log.append((self.t, a.close, a.duty, a.status))
            self.t = ticks_add(self.t, dt)
        return self.s.act

    def until(self, pred, limit_ms=20000):
        start = self.t
        while not pred(self.s.act):
            self.step()
            assert self.since(start) <= limit_ms, "condition not reached in %d ms" % limit_ms
        return self.since(start)

    def charging(self):
        self.ev = "B"
        self.step(10)
        self.ev = "C"
        ms = self.until(lambda a: a.close)
        self.step(20)
        assert self.s.act.status == S.CHARGING
        return ms
