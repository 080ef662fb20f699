# S0 pulse meter (IEC 62053-31): the meter's output transistor pulls the input low for
# >= 30 ms per impulse; contacts bounce for < 5 ms. The pin interrupt counts impulses into a
# preallocated array (small ints only: no allocation, no floats); the meter task's poll()
# turns new impulses into energy (the flash register, firmware/meters/energy.py) and power.
#
# Counting: an impulse is an active period of at least debounce_ms that began after the
# line had been idle for at least debounce_ms; it counts at its release. 10-25 ms is inside
# the standard's window: longer than any bounce (< 5 ms) and than a noise spike, no longer
# than the shortest on and off time (30 ms); 15 ms by default. Bounces at the start of a
# pulse only restart its on-time (the pulse stays armed); bounces after its release are
# active periods of a few ms, and they follow an idle time shorter than debounce_ms: neither
# counts, and neither does a spike of noise on an idle line. The impulse rate this counts is
# at most one per 2 x debounce_ms (roles.py refuses an imp_per_kwh x max_kw above it).
#
# Power: from the interval between the last two impulses; while no impulse comes it is at
# most one impulse over the time since the last one (it decays as 1/t), and 0 after IDLE_MS.
from array import array


from firmware.meter import UNKNOWN
from firmware.ticks import ticks_add, ticks_diff, ticks_ms

DEBOUNCE_MS = const(15)
IDLE_MS = const(60000)  # no impulse for this long: power 0 (60 W at 1000 imp/kWh)
_REARM_MS = const(3600000)  # refresh an old edge stamp before ticks_diff could wrap
_QUIET_FACTOR = const(3)  # no impulse for 3 intervals (at least 3 s): the power stopped
_MASK = const(0x3FFFFFFF)  # impulse counter width (small int on every port)
_N = const(0)  # impulses counted (wraps at 2^30)
_EDGE = const(1)  # ticks of the last edge of either kind
_PULSE = const(2)  # ticks of the last counted impulse
_GAP = const(3)  # ms between the last two impulses (0: fewer than two)
_ON = const(4)  # 1 while the line was last seen active
_ARM = const(5)  # 1: the active period began after an idle time of >= debounce_ms
_REF_T = const(6)  # counter mode: ticks of the poll that began the power window
_REF_N = const(7)  # counter mode: impulses at that poll (-1: no window yet)
_WINDOW_MS = const(10000)  # counter mode: shortest time between the two stamps of a power


class S0Meter:
    """S0 input on `pin` (an input with pull-up: active low by default); `counter`: a
    machine.Counter counting the pin's release edges in hardware (no pin interrupt then)."""

    def __init__(self, pin, imp_per_kwh, store, debounce_ms=DEBOUNCE_MS, active=0,
                 clock=None, counter=None):
        if clock is None:
            clock = ticks_ms
        self._clock = clock
        self.pin = pin
        self.imp_per_kwh = imp_per_kwh
        self.store = store
        self.debounce_ms = debounce_ms
        self.active = active
        self.uwh_per_imp = 1000000000 // imp_per_kwh
        now = clock()
        on = 1 if pin.value() == active else 0  # a pulse under way at boot does not count
        self.st = array("i", (0, ticks_add(now, -debounce_ms), now, 0, on, 0, now, -1))
        self._seen = 0
        self._uwh = 0  # energy below one Wh not yet in the store, uWh
        self.p_w = 0
        self.counter = counter
        self.excess = 0  # counter mode: counts above the rate ceiling (bounce, noise)
        if counter is not None:
            self._raw = counter.value() & _MASK
            return
        self._irq = self.irq  # bound once: the handler allocates nothing when it runs
        pin.irq(handler=self._irq, trigger=pin.IRQ_FALLING | pin.IRQ_RISING)

    def irq(self, pin):
        """Pin interrupt, both edges: stores ticks and counts; no allocation."""
        now = self._clock()
        st = self.st
        since = ticks_diff(now, st[_EDGE])  # how long the line kept its previous level
        st[_EDGE] = now
        if pin.value() == self.active:
            if not st[_ON] and since >= self.debounce_ms:
                st[_ARM] = 1  # idle long enough: an impulse may begin
            st[_ON] = 1
            return
        if not st[_ON]:
            return  # idle again (a missed edge): no active period seen
        st[_ON] = 0
        if not st[_ARM] or since < self.debounce_ms:
            return  # a bounce, a spike, or a pulse too short to be one
        st[_ARM] = 0
        if st[_N]:
            st[_GAP] = ticks_diff(now, st[_PULSE])
        st[_PULSE] = now
        st[_N] = (st[_N] + 1) & _MASK

    def _count(self, now):
        """Counter mode: take the hardware count's new impulses at this poll (no allocation:
        the count and the stamps are small ints)."""
        st = self.st
        raw = self.counter.value() & _MASK
        new = (raw - self._raw) & _MASK
        self._raw = raw
        room = ticks_diff(now, st[_EDGE]) // (2 * self.debounce_ms) + 1
        st[_EDGE] = now  # the previous poll
        if not new:
            return
        if new > room:
            self.excess += new - room
            new = room
        n = st[_N] = (st[_N] + new) & _MASK
        if st[_REF_N] < 0 or ticks_diff(now, st[_PULSE]) >= IDLE_MS:
            st[_REF_T] = now  # the first change after a pause: its impulses' time unknown
            st[_REF_N] = n
            st[_GAP] = 0
        else:
            el = ticks_diff(now, st[_REF_T])
            if el >= _WINDOW_MS or not st[_GAP]:
                st[_GAP] = max(el // ((n - st[_REF_N]) & _MASK), 1)
                st[_REF_T] = now
                st[_REF_N] = n
        st[_PULSE] = now

    @property
    def impulses(self):
        return self.st[_N]

    def power_w(self, now):
        """Power from the impulse interval, bounded by the time since the last impulse."""
        st = self.st
        gap = st[_GAP]
        if gap <= 0:
            return 0
        since = ticks_diff(now, st[_PULSE])
        if since >= IDLE_MS:
            return 0
        if since > gap:
            gap = since
        return self.uwh_per_imp * 36 // (gap * 10)  # uWh * 3600 s/h / (ms * 1000)

    async def poll(self, r):
        now = self._clock()
        st = self.st
        if self.counter is not None:
            self._count(now)
        n = st[_N]
        new = (n - self._seen) & _MASK
        self._seen = n
        if ticks_diff(now, st[_EDGE]) > _REARM_MS:
            st[_EDGE] = ticks_add(now, -self.debounce_ms)  # still quiet; never wraps
        if ticks_diff(now, st[_PULSE]) > _REARM_MS:
            st[_PULSE] = ticks_add(now, -IDLE_MS)
        if new:
            self._uwh += new * self.uwh_per_imp
            wh = self._uwh // 1000000
            self._uwh -= wh * 1000000
            self.store.add(wh)
        self.p_w = p = self.power_w(now)
        if not new and ticks_diff(now, st[_PULSE]) > _QUIET_FACTOR * max(st[_GAP], 1000):
            self.store.flush()  # the impulses stopped: end of a session, save what is left
        r.energy_wh = self.store.wh
        r.p_total_w = p
        for k in range(3):  # an S0 output knows no phases and no current
            r.i_da[k] = UNKNOWN
            r.v_dv[k] = UNKNOWN
            r.p_w[k] = UNKNOWN
