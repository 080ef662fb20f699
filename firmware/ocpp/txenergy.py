# The energy at a transaction's edges (OCPP meterStart / meterStop), from the EV meter.
# Rules (docs/ocpp.md, "Energy at the edges"):
# - Never report a register the meter did not give. meterStart is a reading no older than
#   the meter's staleness limit; without one the transaction waits for it (the contactor
#   stays open, so no energy goes unbilled), up to START_WAIT_MS; after that the meter
#   task's saved register (its EnergyStore) will do. With neither the transaction waits
#   for the meter: charging with an unknown meterStart would bill the meter's lifetime.
# - meterStop is read after the contactor opened: the stop waits (bounded by STOP_WAIT_MS)
#   for a poll stamped after the opening, so the energy of the last poll period belongs to
#   this transaction and not to none.
# - The register reported never goes below one already reported (journaled readings, the
#   open transaction's file, the meter task's saved total): `wh` only rises.
# A board without an EV meter reports 0 Wh at both edges (nothing is billed by energy).
from micropython import const

from firmware.ticks import ticks_diff

START_WAIT_MS = const(10000)
STOP_WAIT_MS = const(3000)


class TxEnergy:
    def __init__(self, cp):
        self.cp = cp
        self.wh = 0  # the highest register known (Wh)
        self._wait = None  # ticks since a start waits for the meter
        self._closed = False  # the contactor closed during the open transaction
        self._opened = None  # ticks it was first seen open again

    def reading(self):
        return self.cp.board.meter_reading

    def saved(self):
        """The EV meter task's total as saved on flash (its EnergyStore), -1 if none."""
        ms = self.cp.meters
        t = ms.get("ev") if ms is not None else None
        v = getattr(t, "total_wh", -1)
        return v if type(v) is int else -1

    def raise_to(self, wh):
        if type(wh) is int and wh > self.wh:
            self.wh = wh

    def now(self):
        """The register to report now: the highest value known (Wh)."""
        m = self.reading()
        if m is not None:
            self.raise_to(m.energy_wh)
        self.raise_to(self.saved())
        return self.wh

    def at_start(self, now):
        """meterStart, or None while the start must wait for the meter."""
        m = self.reading()
        if m is None or m.fresh(now) and m.energy_wh >= 0:
            self._wait = None
            return self.now()
        log = self.cp.say
        if self._wait is None:
            self._wait = now
            log("no fresh meter reading: the start waits")
            return None
        if ticks_diff(now, self._wait) < START_WAIT_MS:
            return None
        if self.saved() >= 0 or self.wh > 0:
            self._wait = None
            log("no meter reading: meterStart is the saved register")
            return self.now()
        return None

    def cancel_start(self):
        self._wait = None

    def watch(self, now, closed):
        """Each observer pass of an open transaction: when the contactor opened last."""
        if closed:
            self._closed, self._opened = True, None
        elif self._closed and self._opened is None:
            self._opened = now  # first seen open (the observer wakes on the change)

    def stop_settled(self, now, asked, closed):
        """True once meterStop can be read: the contactor open and a poll stamped after it
        opened (at once when it opened long before, or never closed), or STOP_WAIT_MS after
        the stop was asked at `asked`."""
        self.watch(now, closed)
        m = self.reading()
        if m is None or ticks_diff(now, asked) >= STOP_WAIT_MS:
            return True
        if closed:
            return False
        at, o = m.at_ms, self._opened
        return o is None or at is not None and ticks_diff(at, o) > 0

    def stopped(self):
        self._closed, self._opened = False, None
