# What the OCPP charge point reports of its connector and EV meter:
# - connector statuses (Statuses: StatusNotification), below;
# - the energy at a transaction's edges (TxEnergy: meterStart / meterStop);
# - the content of MeterValues (meter_value).
#
# Statuses: the one place the charge session's state maps to OCPP 1.6
# StatusNotification (connector 0: the charge point, 1: the socket). The observer calls
# observe() each tick; the sender asks due() and send(). "Plugged" is the transactions'
# view (pilot.connected: a pilot fault is not an unplug).
#
# TxEnergy, the energy at a transaction's edges (OCPP meterStart / meterStop).
# Rules (docs/ocpp.md, "Energy at the edges"):
# - Never report a register the meter did not give. meterStart is a reading no older than
#   the meter's staleness limit; without one the transaction waits for it (the contactor
#   stays open, so no energy goes unbilled), up to _START_WAIT_MS; after that the meter
#   task's saved register (its EnergyStore) will do. With neither the transaction waits
#   for the meter: charging with an unknown meterStart would bill the meter's lifetime.
# - meterStop is read after the contactor opened: the stop waits (bounded by _STOP_WAIT_MS)
#   for a poll stamped after the opening, so the energy of the last poll period belongs to
#   this transaction and not to none.
# - The register reported never goes below one already reported (journaled readings, the
#   open transaction's file, the meter task's saved total): `wh` only rises.
# A board without an EV meter reports 0 Wh at both edges (nothing is billed by energy).
#
# OCPP MeterValues content: one meterValue (timestamp and sampledValue list) for the
# measurands a configuration key names, from the board's EV meter Reading and the controller's
# offer; values as strings, per-phase where the meter has phases (1.6 section 7.31/7.45).
# Only a fresh reading gives power, currents, voltages and frequency: a meter gone silent
# leaves them out (a stale value is not sent as if it were now); the energy register is the
# highest the meter gave (TxEnergy below).

from ..ticks import ticks_diff, ticks_ms

_START_WAIT_MS = const(10000)
_STOP_WAIT_MS = const(3000)


def _ev_task(cp):
    """The EV meter's task (firmware.meters), or None."""
    ms = cp.meters
    return ms.get("ev") if ms is not None else None


class Statuses:
    def __init__(self, cp):
        self.cp = cp
        self.now = [None, None]  # (status, error, info) observed, per connector
        self.sent = [None, None]  # ... last sent (a BootNotification accepted: all again)
        self.at = [None, None]  # stamp of the observed change (cp.stamp: timekeep), with now

    def status(self, c):
        """The status name observed for connector c, None before the first observation."""
        st = self.now[c]
        return st[0] if st else None

    def observe(self):
        """Take the statuses now; True when one changed (the sender is woken)."""
        # Connector 0. A lost card reader (board.cards.fault, set by firmware/rfid.py) is
        # errorCode ReaderFailure with the driver's text as info; the status stays what it is
        # (charging still starts by RemoteStartTransaction or free vend), and the next
        # notification with NoError says the reader is back.
        cp = self.cp
        if getattr(cp.ctl.session, "halted", False):
            st0 = ("Faulted", "InternalError", "fail-safe")
        else:
            fault = getattr(cp.cards, "fault", None)
            st0 = ("Available" if cp.available[0] else "Unavailable",
                   "ReaderFailure" if fault else "NoError", str(fault)[:50] if fault else "")
        changed = False
        for c, st in ((1, self._connector()), (0, st0)):
            if st != self.now[c]:
                self.now[c] = st
                self.at[c] = cp.stamp()
                changed = True
        return changed

    def due(self, c, min_s):
        """Connector c's status differs from the one sent and has lasted min_s seconds
        (MinimumStatusDuration)."""
        st = self.now[c]
        return st is not None and st != self.sent[c] and (
            min_s <= 0 or self.cp.tk.age_s(self.at[c], ticks_ms()) >= min_s)

    async def send(self, c):
        st = self.now[c]
        p = {"connectorId": c, "status": st[0], "errorCode": st[1],
             "timestamp": self.cp.tk.iso(self.at[c], ticks_ms())}
        if st[2]:
            p["info"] = st[2]
        await self.cp.rpc.call("StatusNotification", p)
        self.sent[c] = st

    def _connector(self):
        cp = self.cp
        a = cp.ctl.session.act
        status, error, info = a.status, a.error, a.info
        tx = cp.tx
        o = tx.open
        if status == "Faulted":
            return (status, error, info[:50])
        if not (cp.available[0] and cp.available[1]) and o is None:
            return ("Unavailable", "NoError", "")
        fault = getattr(_ev_task(cp), "fault", None)  # the EV meter's, while it fails
        if fault and error == "NoError":
            error, info = "OtherError", fault
        if not tx.plugged:
            if o is not None:
                status = "SuspendedEV"  # transaction goes on, EV side unplugged
            elif tx.auth is not None:
                status = "Preparing"  # identification first: waiting for the plug
            elif cp.reservation is not None:
                status = "Reserved"
            else:
                status = "Available"
        elif o is None:
            status = "Finishing" if tx.finished else "Preparing"
        elif o.get("suspended"):
            status = "SuspendedEVSE"  # the CSMS said the idTag is invalid: no energy
        elif status == "Preparing":
            status = "SuspendedEV"  # authorised, EV not drawing yet
        return (status, error, info[:50])


class TxEnergy:
    def __init__(self, cp):
        self.cp = cp
        self.wh = 0  # the highest register known (Wh)
        self._wait = None  # ticks since a start waits for the meter
        self._closed = False  # the contactor closed during the open transaction
        self._opened = None  # ticks it was first seen open again

    def saved(self):
        """The EV meter task's total as saved on flash (its EnergyStore), -1 if none."""
        v = getattr(_ev_task(self.cp), "total_wh", -1)
        return v if type(v) is int else -1

    def raise_to(self, wh):
        if type(wh) is int and wh > self.wh:
            self.wh = wh

    def now(self):
        """The register to report now: the highest value known (Wh)."""
        m = self.cp.board.meter_reading
        if m is not None:
            self.raise_to(m.energy_wh)
        self.raise_to(self.saved())
        return self.wh

    def at_start(self, now, ready):
        """meterStart, or None while the start must wait for the meter (or is not ready: the
        wait ends)."""
        if not ready:
            self._wait = None
            return None
        m = self.cp.board.meter_reading
        if not (m is None or m.fresh(now) and m.energy_wh >= 0):
            log = self.cp.say
            if self._wait is None:
                self._wait = now
                log("no fresh meter reading: the start waits for the meter")
                return None
            if ticks_diff(now, self._wait) < _START_WAIT_MS or self.saved() < 0 and self.wh <= 0:
                return None
            log("no meter reading: meterStart is the saved register")
        self._wait = None
        self._closed, self._opened = False, None  # the new transaction's contactor (watch)
        return self.now()

    def watch(self, now, closed):
        """Each observer pass of an open transaction: when the contactor opened last."""
        if closed:
            self._closed, self._opened = True, None
        elif self._closed and self._opened is None:
            self._opened = now  # first seen open (the observer wakes on the change)

    def stop_settled(self, now, asked, closed):
        """True once meterStop can be read: the contactor open and a poll stamped after it
        opened (at once when it opened long before, or never closed), or _STOP_WAIT_MS after
        the stop was asked at `asked`. The observer calls watch() first in the same pass."""
        m = self.cp.board.meter_reading
        if m is None or ticks_diff(now, asked) >= _STOP_WAIT_MS:
            return True
        if closed:
            return False
        at, o = m.at_ms, self._opened
        return o is None or at is not None and ticks_diff(at, o) > 0


def meter_value(cp, context, key, wh):
    """One meterValue: the measurands configured under the key `key` (a CSL) that the board
    has, the energy register given as `wh` (the caller's snapshot: what was saved)."""
    m = cp.board.meter_reading
    if m is not None and not m.fresh(ticks_ms()):
        m = None
    sv = []
    for name in cp.keys.get(key).split(","):
        name = name.strip()
        if name == "Energy.Active.Import.Register":
            _v(sv, wh, context, name, "Wh")
        elif m is None:
            continue
        elif name == "Power.Active.Import" and m.p_total_w > -0x20000000:
            _v(sv, max(0, m.p_total_w), context, name, "W")
        elif name == "Current.Import":
            for k in range(3):
                if m.i_da[k] > -0x20000000:
                    _v(sv, "%.1f" % (abs(m.i_da[k]) / 10), context, name, "A",
                       "L%d" % (k + 1))
        elif name == "Current.Offered":
            _v(sv, "%.1f" % (cp.ctl.session.act.offer_da / 10), context, name, "A")
        elif name == "Voltage":
            for k in range(3):
                if m.v_dv[k] > 0:
                    _v(sv, "%.1f" % (m.v_dv[k] / 10), context, name, "V",
                       "L%d-N" % (k + 1))
        elif name == "Frequency" and m.freq_chz > 0:
            _v(sv, "%.2f" % (m.freq_chz / 100), context, name, None)
        elif name == "Temperature" and cp.board.temperature_c is not None:
            t = cp.board.temperature_c()
            if t is not None:
                _v(sv, t, context, name, "Celsius")
    if not sv:
        _v(sv, wh, context, "Energy.Active.Import.Register", "Wh")
    return {"timestamp": cp.iso_now(), "sampledValue": sv}


def _v(sv, value, context, measurand, unit, phase=None):
    """One sampledValue, appended to sv."""
    d = {"value": str(value), "context": context, "measurand": measurand}
    if unit:
        d["unit"] = unit
    if phase:
        d["phase"] = phase
    sv.append(d)
