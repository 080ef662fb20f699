# Connector statuses: the one place the charge session's state maps to OCPP 1.6
# StatusNotification (connector 0: the charge point, 1: the socket). The observer calls
# observe() each tick; the sender asks due() and send(). "Plugged" is the transactions'
# view (pilot.connected: a pilot fault is not an unplug).
from firmware.ticks import ticks_ms


class Statuses:
    def __init__(self, cp):
        self.cp = cp
        self.now = [None, None]  # (status, error, info) observed, per connector
        self.sent = [None, None]  # ... last sent
        self.at = [None, None]  # stamp of the observed change (cp.stamp: timekeep)

    def status(self, c):
        """The status name observed for connector c, None before the first observation."""
        st = self.now[c]
        return st[0] if st else None

    def observe(self):
        """Take the statuses now; True when one changed (the sender is woken)."""
        changed = False
        for c, st in ((1, self._connector()), (0, self._charge_point())):
            if st != self.now[c]:
                self.now[c] = st
                self.at[c] = self.cp.stamp()
                changed = True
        return changed

    def resend_all(self):
        """After a BootNotification is accepted every status goes again."""
        self.sent = [None, None]

    def due(self, c, min_s):
        """Connector c's status differs from the one sent and has lasted min_s seconds
        (MinimumStatusDuration)."""
        st = self.now[c]
        if st is None or st == self.sent[c]:
            return False
        at = self.at[c]
        return min_s <= 0 or at is None or self.cp.tk.age_s(at, ticks_ms()) >= min_s

    async def send(self, c):
        st = self.now[c]
        p = {"connectorId": c, "status": st[0], "errorCode": st[1]}
        if st[2]:
            p["info"] = st[2]
        if self.at[c] is not None:
            p["timestamp"] = self.cp.tk.iso(self.at[c], ticks_ms())
        await self.cp.rpc.call("StatusNotification", p)
        self.sent[c] = st

    def _charge_point(self):
        """Connector 0. A lost card reader (board.cards.fault, set by firmware/rfid.py) is
        errorCode ReaderFailure with the driver's text as info; the status stays what it is
        (charging still starts by RemoteStartTransaction or free vend), and the next
        notification with NoError says the reader is back."""
        cp = self.cp
        if getattr(cp.ctl.session, "halted", False):
            return ("Faulted", "InternalError", "fail-safe")
        status = "Available" if cp.available[0] else "Unavailable"
        fault = getattr(cp.cards, "fault", None)
        if fault:
            return (status, "ReaderFailure", str(fault)[:50])
        return (status, "NoError", "")

    def _connector(self):
        cp = self.cp
        a = cp.ctl.session.act
        status, error, info = a.status, a.error, a.info
        tx = cp.tx
        if status == "Faulted":
            return (status, error, info[:50])
        if not (cp.available[0] and cp.available[1]) and tx.open is None:
            return ("Unavailable", "NoError", "")
        fault = self.meter_fault()
        if fault and error == "NoError":
            error, info = "OtherError", fault
        if not tx.plugged:
            if tx.open is not None:
                status = "SuspendedEV"  # transaction goes on, EV side unplugged
            elif tx.auth is not None:
                status = "Preparing"  # identification first: waiting for the plug
            elif cp.reservation is not None:
                status = "Reserved"
            else:
                status = "Available"
        elif tx.open is None:
            status = "Finishing" if tx.finished else "Preparing"
        elif tx.open.get("suspended"):
            status = "SuspendedEVSE"  # the CSMS said the idTag is invalid: no energy
        elif status == "Preparing":
            status = "SuspendedEV"  # authorised, EV not drawing yet
        return (status, error, info[:50])

    def meter_fault(self):
        """The EV meter's fault text while it fails (sent as StatusNotification info)."""
        ms = self.cp.meters
        t = ms.get("ev") if ms is not None else None
        return getattr(t, "fault", None)
