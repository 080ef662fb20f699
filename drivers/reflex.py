# The reflex: a tiny, allocation-free path outside the asyncio scheduler that opens the
# contactor by itself while it is closed - when the pilot's high plateau leaves C/D, when
# the residual-current monitor trips, or when the charge controller's heartbeat stops - and
# latches why in the contactor driver (the session reads and reports it). The decision is
# kernels.reflex_step (C core or its Python twin). The board decides what calls tick():
# a hard timer interrupt on STM32, a thread on the simulator (docs/safety.md).
from array import array


from drivers import kernels

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython host tests pass their own clock; the ports' 30-bit wrap
    ticks_ms = None

    def ticks_diff(a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000

BEAT_MS = const(1500)  # controller silent this long while closed: open
STALL_MS = const(50)  # armed, driven, and tick() not run for this long: the driver died
TRIP_FAULT = const(5)  # session.TRIP_FAIL_SAFE: the tick itself failed


class Reflex:
    """`read_high_mv()` samples the CP high plateau (mV), `rcm.fault()` the RCM output,
    `ctl.last_step_ms` is the controller's heartbeat; `contactor.trip(why)` opens."""

    def __init__(self, contactor, rcm, read_high_mv, ctl, beat_ms=BEAT_MS, clock=None):
        self.st = array("i", (0, beat_ms, 0, 0))  # ARMED, BEAT_LIMIT_MS, BAD, WHY
        self._contactor = contactor
        self._rcm = rcm
        self._read = read_high_mv
        self._ctl = ctl
        self._clock = clock if clock is not None else ticks_ms
        self.runs = 0  # tick() calls (wraps): diag shows that something drives it
        self.fired = 0  # openings it made since boot
        self.faults = 0  # ticks that raised (and opened the contactor)
        self.driven = False  # the board set up something that calls tick()
        self._seen_runs = 0
        self._seen_ms = 0
        kernels.reflex_step(self.st, 6000, 0, 0)  # once outside any IRQ (see the twin)

    @property
    def armed(self):
        return self.st[0] != 0

    def arm(self, on):
        """The controller arms it right after closing and disarms it before opening."""
        st = self.st
        if on:
            st[2] = 0
            st[0] = 1
        else:
            st[0] = 0

    def tick(self, _arg=None):
        """One decision. Hard-IRQ safe: no allocation, no floats. An exception never leaves
        it: on stm32 one escaping a timer callback disables the callback for good (the
        reflex would be gone while the session charges on), so a failed tick opens the
        contactor (TRIP_FAULT, the session's fail-safe latch) and disarms."""
        self.runs = (self.runs + 1) & 0x3FFFFFFF
        st = self.st
        if not st[0]:
            return
        try:
            age = ticks_diff(self._clock(), self._ctl.last_step_ms)
            why = kernels.reflex_step(st, self._read(), 1 if self._rcm.fault() else 0, age)
        except Exception:  # noqa: BLE001 - whatever it was, open rather than run blind
            st[0] = 0
            self.faults += 1
            why = TRIP_FAULT
        if why:
            self._contactor.trip(why)
            self.fired += 1

    def stalled(self, now):
        """True when the board drives tick() (`driven`), the reflex is armed and tick() has
        not run for STALL_MS: whatever called it stopped (a disabled timer callback). The
        controller fails safe then. Cheap: called every step."""
        n = self.runs
        if not self.driven or not self.st[0] or n != self._seen_runs:
            self._seen_runs = n
            self._seen_ms = now
            return False
        return ticks_diff(now, self._seen_ms) > STALL_MS
