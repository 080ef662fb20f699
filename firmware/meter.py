# The meter contract (docs/meters.md): a meter is polled by its own task, which writes the
# values it read into a preallocated Reading and stamps it; the charge controller only
# reads the cached values and treats them as unknown once older than STALE_MS. The safety
# path never waits for a meter and never calls into one.
from array import array


from firmware.ticks import ticks_diff

STALE_MS = const(5000)  # older readings count as unknown (a meter polls every <= 1 s)
UNKNOWN = const(-0x20000000)  # a signed value (current, power) that is not known


class Reading:
    """Latest values of one meter. The meter task writes them in place, then calls
    stamp(now); all values are ints (no allocation for the reader)."""

    def __init__(self):
        self.i_max_da = -1  # highest phase current magnitude, dA; -1 unknown
        self.energy_wh = -1  # cumulative import register, Wh; -1 unknown
        self.export_wh = -1  # cumulative export register, Wh; -1 unknown
        # Per phase L1..L3 (UNKNOWN where the meter has no such value). Current and power
        # are signed: + import (to the EV / from the grid), - export; a current's sign is
        # its phase power's.
        self.i_da = array("i", (UNKNOWN, UNKNOWN, UNKNOWN))  # current, dA
        self.v_dv = array("i", (UNKNOWN, UNKNOWN, UNKNOWN))  # voltage to N, 0.1 V
        self.p_w = array("i", (UNKNOWN, UNKNOWN, UNKNOWN))  # active power, W
        self.p_total_w = UNKNOWN  # active power, all phases, W
        self.freq_chz = -1  # frequency, 0.01 Hz; -1 unknown
        self.at_ms = None  # ticks of the last good poll; None: none yet, or stale
        self.errors = 0  # failed polls since boot (diag)

    def stamp(self, now):
        self.at_ms = now

    def fresh(self, now):
        """True while the last good poll is at most STALE_MS old. A stale stamp is dropped,
        so it is never compared again after the ticks wrap."""
        at = self.at_ms
        if at is None:
            return False
        if ticks_diff(now, at) > STALE_MS:
            self.at_ms = None
            return False
        return True

    def current_da(self, now):
        """Highest phase current (dA) if fresh, else -1 (unknown)."""
        return self.i_max_da if self.fresh(now) else -1
