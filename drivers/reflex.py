# The reflex: a tiny, allocation-free path outside the asyncio scheduler that opens the
# contactor by itself while it is closed - when the pilot's high plateau leaves C/D, when
# the residual-current monitor trips, or when the charge controller's heartbeat stops - and
# latches why in the contactor driver (the session reads and reports it). The decision is
# kernels.reflex_step (C core or its Python twin). The board decides what calls tick():
# a hard timer interrupt on STM32, a thread on the simulator (docs/safety.md).
from array import array

from micropython import const

from drivers import kernels

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython host tests pass their own clock
    ticks_diff = ticks_ms = None

BEAT_MS = const(1500)  # controller silent this long while closed: open


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
        """One decision. Hard-IRQ safe: no allocation, no floats, no exceptions expected."""
        self.runs = (self.runs + 1) & 0x3FFFFFFF
        st = self.st
        if not st[0]:
            return
        age = ticks_diff(self._clock(), self._ctl.last_step_ms)
        why = kernels.reflex_step(st, self._read(), 1 if self._rcm.fault() else 0, age)
        if why:
            self._contactor.trip(why)
            self.fired += 1
