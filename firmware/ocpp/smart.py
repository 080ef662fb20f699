# OCPP 1.6 Smart Charging (section 3.13): the installed charging profiles, the limit they put
# in force at a given second, and the composite schedule of GetCompositeSchedule. Pure
# logic: times are epoch seconds (UTC) handed in by the OCPP task (firmware/ocpp/cp.py),
# which publishes the limit to the limit arbiter (firmware/limits/) - it can only lower the
# offer.
# Checks, the record a profile becomes (and the dict it stands for) and reading the file:
# firmware/ocpp/smart_store.py.
#
# How the limit at second t is found (each rule has a test in host_tests/test_smart.py):
# - A profile is in force at t when validFrom <= t < validTo and its schedule covers t: after
#   the schedule's start (startSchedule; the transaction start for Relative and for Absolute
#   without startSchedule; the latest recurrence for Recurring, never before startSchedule)
#   and before start + duration (no duration: the last period runs on, up to the next
#   recurrence). A schedule without a start point does not apply outside a transaction.
# - Per purpose the profile in force with the highest stackLevel wins; when its schedule ends
#   the next one down takes over. For TxDefaultProfile one on the connector itself beats one
#   on connector 0 at the same stackLevel.
# - A TxProfile of the running transaction overrides every TxDefaultProfile; the result is
#   min(ChargePointMaxProfile, TxProfile or TxDefaultProfile), compared in amperes:
#   W / (volts x numberPhases of the period, or `phases` when it has none), rounded down to
#   0.1 A. minChargingRate is not a limit and is ignored.
# - Connector 0 (GetCompositeSchedule) is the grid view: the ChargePointMaxProfiles only.
# - Before the wall time is known (boot without a set RTC, no NTP, CSMS unreachable) the
#   limit is the lowest any installed profile could put in force (limit_unsynced): the safe
#   side. A schedule that starts with the transaction (Relative; Absolute without
#   startSchedule) is exact even then: the time since the transaction started is known.
import json


from .. import persist
from . import clock
from . import smart_store as st

# A profile's record (smart_store.compile_profile makes it, to_dict reads it back in the same
# order): a tuple indexed by these.
_R_ID = const(0)
_R_CONN = const(1)
_R_STACK = const(2)
_R_PURPOSE = const(3)  # _CPMAX, _TXDEF, _TX
_R_KIND = const(4)  # its index in smart_store.KINDS
_R_RECUR = const(5)  # recurrence in seconds (86400, 604800) or 0
_R_FROM = const(6)  # validFrom, epoch s or None
_R_TO = const(7)  # validTo, epoch s or None
_R_START = const(8)  # startSchedule, epoch s or None
_R_DUR = const(9)  # duration s or None
_R_WATTS = const(10)  # True: limits in W, False: in A
_R_PERIODS = const(11)  # array('i'): start, limit x 10, phases (0 = absent)
_R_TX = const(12)  # transaction a TxProfile belongs to (None for the others)
_R_MIN = const(13)  # minChargingRate x 10 or None (kept for the record; not a limit)
# purposes: their index in smart_store.PURPOSES
_CPMAX = const(0)
_TXDEF = const(1)
_TX = const(2)

NO_LIMIT_A = const(80)  # composite value where no profile limits: the top of the pilot scale
_MAX_INSTALLED = const(8)  # what keys.py reports as MaxChargingProfilesInstalled
_CONNECTORS = const(1)  # as smart_store's
_MAX_OUT = const(48)  # composite periods at most; the schedule's duration is cut to fit
_MAX_STEPS = const(1000)  # schedule boundaries walked for one composite at most


def _mn(a, b):
    """The earlier of two instants, None being never."""
    if a is None:
        return b
    if b is None or a < b:
        return a
    return b


def _eval(r, t, tx_start):
    """(offset of the period in force at t in the record's array or -1, the next instant
    at which that may change or None). Constant on [t, next)."""
    vto = r[_R_TO]
    if vto is not None and t >= vto:
        return -1, None
    vfrom = r[_R_FROM]
    if vfrom is not None and t < vfrom:
        return -1, vfrom
    s = r[_R_START]  # a Recurring one always has it
    if s is None:
        s = tx_start
        if s is None:
            return -1, None
    nxt = vto
    if t < s:
        return -1, _mn(nxt, s)
    rec = r[_R_RECUR]  # 0 unless Recurring
    if rec:
        s += (t - s) // rec * rec  # the latest recurrence
        nxt = _mn(nxt, s + rec)
    off = t - s
    dur = r[_R_DUR]
    if dur is not None:
        if off >= dur:
            return -1, (nxt if rec else None)
        nxt = _mn(nxt, s + dur)
    arr = r[_R_PERIODS]
    k = _period(arr, off)
    if k + 3 < len(arr):
        nxt = _mn(nxt, s + arr[k + 3])
    return k, nxt


def _period(arr, off):
    """The offset in arr of the period in force `off` seconds after the schedule's start."""
    k = len(arr) - 3
    while arr[k] > off:
        k -= 3
    return k


def _rank(r, c):
    """Of two records in force on connector c, the one of higher rank prevails: a TxProfile
    over a TxDefaultProfile, then the higher stackLevel, then one on connector c itself
    over one on connector 0."""
    return r[_R_PURPOSE] << 24 | r[_R_STACK] << 1 | (r[_R_CONN] == c)


def _applies(r, c, tx_id):
    """Can record r limit connector c (0: the grid view, ChargePointMaxProfiles only) while
    transaction tx_id (None: none) runs there?"""
    p = r[_R_PURPOSE]
    if p == _CPMAX:
        return True
    if p == _TXDEF:
        return c and r[_R_CONN] in (0, c)
    return c and r[_R_CONN] == c and r[_R_TX] == tx_id  # a TxProfile's tx is never None


def _da(r, k, volts, phases):
    """Deci-amperes of period k of record r (W -> A rounded down; with no usable voltage
    or phase count a power limit gives 0 A, the safe side)."""
    arr = r[_R_PERIODS]
    if not r[_R_WATTS]:
        return arr[k + 1]
    va = volts * (arr[k + 2] or phases)
    return int(arr[k + 1] // va) if va > 0 else 0


class Profiles:
    """The charging profiles installed on this charge point, persisted in `path`."""

    def __init__(self, path="ocpp_profiles.json"):
        self.path = path
        self.why = ""  # why the last set() was Rejected, or why the file was not written
        self._r = []
        entries, self.errors = st.load(path)
        for e in entries:
            try:
                self._r = self._with(e.get("c"), e["p"], e.get("tx"))
            except ValueError as x:
                self.errors.append("%s: a profile dropped: %s" % (path, x))

    def _with(self, c, p, tx):
        """The records with profile p (on connector c, transaction tx) installed: same id,
        or same stackLevel, purpose and connector, replaces (SetChargingProfile, 5.16).
        ValueError if p is wrong or would be one profile too many."""
        r = st.compile_profile(c, p, tx)
        new = [x for x in self._r if x[_R_ID] != r[_R_ID] and not (
            x[_R_STACK] == r[_R_STACK] and x[_R_PURPOSE] == r[_R_PURPOSE]
            and x[_R_CONN] == r[_R_CONN])] + [r]
        if len(new) > _MAX_INSTALLED:
            raise ValueError("more than %d profiles installed" % _MAX_INSTALLED)
        return new

    def _store(self, new):
        """Write the records to the file atomically (persist.Atomic: a new file, synced, then
        renamed); one profile is encoded at a time, so no big string is built."""
        try:
            with persist.Atomic(self.path, "w") as f:
                f.write('{"v": 1, "profiles": [')
                sep = ""
                for r in new:
                    f.write(sep)
                    f.write(json.dumps({"c": r[_R_CONN], "tx": r[_R_TX], "p": st.to_dict(r)}))
                    sep = ", "
                f.write("]}")
        except OSError as e:
            self.why = "cannot write %s: %s" % (self.path, e)
            return False
        return True

    def set(self, connector_id, profile, tx_id=None):
        """SetChargingProfile: "Accepted" once stored, else "Rejected" (reason in .why).
        tx_id: the transaction running on connector_id, None if none."""
        try:
            new = self._with(connector_id, profile, tx_id)
        except ValueError as e:
            self.why = str(e)
            return "Rejected"
        if not self._store(new):
            return "Rejected"
        self._r = new
        return "Accepted"

    def _drop(self, new):
        """Install `new`, the records kept; removing a limit is never refused, a failed write
        is reported in .why (after a reboot the old, stricter file applies)."""
        n = len(self._r) - len(new)
        if n:
            self._r = new
            self._store(new)
        return n

    def clear(self, id=None, connector_id=None, purpose=None, stack_level=None):
        """ClearChargingProfile: by id if given, else every profile matching all the given
        criteria (none given: all). "Accepted" if any was removed, else "Unknown"."""
        if id is not None:
            keep = [r for r in self._r if r[_R_ID] != id]
        else:
            code = st.PURPOSES.index(purpose) if purpose in st.PURPOSES else -1
            keep = [r for r in self._r if not (
                (connector_id is None or r[_R_CONN] == connector_id)
                and (purpose is None or r[_R_PURPOSE] == code)
                and (stack_level is None or r[_R_STACK] == stack_level))]
        return "Accepted" if self._drop(keep) else "Unknown"

    def end_transaction(self, tx_id):
        """The transaction ended: its TxProfiles go (3.13.1). tx_id None drops every
        TxProfile (at boot with no transaction left running). Returns how many went."""
        return self._drop([r for r in self._r if r[_R_PURPOSE] != _TX or (
            tx_id is not None and r[_R_TX] != tx_id)])

    def retag(self, old, new):
        """A TxProfile installed under a local transaction id `old` (RemoteStartTransaction's
        chargingProfile) follows the transactionId `new` from StartTransaction.conf."""
        n = 0
        for i, r in enumerate(self._r):
            if r[_R_PURPOSE] == _TX and r[_R_TX] == old:
                self._r[i] = r[:_R_TX] + (new,) + r[_R_TX + 1:]
                n += 1
        if n:
            self._store(self._r)
        return n

    def __len__(self):
        return len(self._r)

    def _resolve(self, t, c, tx_start, tx_id, volts, phases):
        """(deci-amperes or None, the governing record, its period, next change or None)."""
        b0 = b1 = None  # the prevailing ChargePointMaxProfile, Tx(Default)Profile
        k0 = k1 = -1
        nxt = None
        for r in self._r:
            if not _applies(r, c, tx_id):
                continue
            k, n = _eval(r, t, tx_start)
            nxt = _mn(nxt, n)
            if k < 0:
                continue
            if r[_R_PURPOSE] == _CPMAX:
                if b0 is None or _rank(r, c) > _rank(b0, c):
                    b0, k0 = r, k
            elif b1 is None or _rank(r, c) > _rank(b1, c):
                b1, k1 = r, k
        da = g = None
        gk = -1
        if b0 is not None:
            da, g, gk = _da(b0, k0, volts, phases), b0, k0
        if b1 is not None:
            d = _da(b1, k1, volts, phases)
            if da is None or d < da:
                da, g, gk = d, b1, k1
        return da, g, gk, nxt

    def limit(self, t, connector_id=1, tx_start=None, tx_id=None, volts=230, phases=3):
        """(amperes or None, reason, next change s or None): the limit the profiles put in
        force at t (epoch s) on the connector, the transaction tx_id having started at
        tx_start (epoch s; None: none runs); None when none limits now. The result holds
        until next change (it may stay the same then)."""
        da, g, k, nxt = self._resolve(t, connector_id, tx_start, tx_id, volts, phases)
        if da is None:
            return None, "no charging profile in force", nxt
        return da / 10, "%s %d" % (st.PURPOSES[g[_R_PURPOSE]], g[_R_ID]), nxt

    def limit_unsynced(self, t, connector_id=1, tx_start=None, tx_id=None, volts=230,
                       phases=3):
        """(amperes or None, reason) while the wall time is unknown: the lowest limit that
        could be in force at uptime t (s). A profile whose schedule starts with the
        transaction (started at uptime tx_start) gives its period now; any other could be
        in force with any of its periods, so its lowest counts (validity dates too are
        unknown: every profile could be valid)."""
        da = g = None
        for r in self._r:
            if not _applies(r, connector_id, tx_id):
                continue
            arr = r[_R_PERIODS]
            ks = range(0, len(arr), 3)
            if r[_R_START] is None:  # (a Recurring one has it)
                if tx_start is None:
                    continue  # no start point outside a transaction
                off = t - tx_start
                if off < 0 or r[_R_DUR] is not None and off >= r[_R_DUR]:
                    continue
                ks = (_period(arr, off),)
            for k in ks:
                d = _da(r, k, volts, phases)
                if da is None or d < da:
                    da, g = d, r
        if da is None:  # (da, not None: a constant tuple would hold the text a second time)
            return da, "no charging profile in force"
        return da / 10, "%s %d (time unknown: the lowest it could be)" % (
            st.PURPOSES[g[_R_PURPOSE]], g[_R_ID])

    def composite(self, connector_id, now_s, duration, unit=None, tx_start=None,
                  tx_id=None, volts=230, phases=3, max_amps=None):
        """GetCompositeSchedule.conf payload for [now_s, now_s + duration). unit None is
        A. Where no profile limits, the limit shown is max_amps (the charge point's own
        maximum; NO_LIMIT_A if not given). At most _MAX_OUT periods: a longer schedule is
        reported with a shorter duration. The types are the schema's (firmware/ocpp/schema.py
        checked the request): connector_id and duration ints, unit None, "A" or "W"."""
        if not 0 <= connector_id <= _CONNECTORS or duration <= 0 or now_s is None:
            return {"status": "Rejected"}
        watts = unit == "W"
        top = NO_LIMIT_A if max_amps is None else max_amps
        end = now_s + duration
        per = []
        last = None
        t = now_s
        for _ in range(_MAX_STEPS):
            da, g, k, nxt = self._resolve(t, connector_id, tx_start, tx_id, volts, phases)
            if da is None:
                v, ph = (top * volts * phases) if watts else top, 0
            else:
                arr = g[_R_PERIODS]
                ph = arr[k + 2]
                if not watts:
                    v = da / 10
                elif g[_R_WATTS]:
                    v = st.from_tenths(arr[k + 1])
                else:
                    v = st.from_tenths(arr[k + 1] * volts * (ph or phases))
            if (v, ph) != last:
                if len(per) == _MAX_OUT:
                    end = t
                    break
                q = {"startPeriod": t - now_s, "limit": v}
                if ph:
                    q["numberPhases"] = ph
                per.append(q)
                last = (v, ph)
            if nxt is None or nxt >= end:
                break
            t = nxt
        else:  # _MAX_STEPS boundaries walked: the schedule ends at the last one
            end = t
        start = clock.iso(now_s)
        return {"status": "Accepted", "connectorId": connector_id, "scheduleStart": start,
                "chargingSchedule": {"duration": end - now_s, "startSchedule": start,
                                     "chargingRateUnit": "W" if watts else "A",
                                     "chargingSchedulePeriod": per}}


def in_force(profiles, tk, now_ms, start, tx_id, volts, phases):
    """(amperes or None, reason): the limit of connector 1 now. tk: the clock
    (firmware/timekeep.py); start: the open transaction's time stamp (None without one)."""
    s = tk.now_s(now_ms)
    if s is not None:
        return profiles.limit(s, 1, None if start is None else tk.wall_of(start, now_ms),
                              tx_id, volts, phases)[:2]
    return profiles.limit_unsynced(tk.uptime_s(now_ms), 1, None if start is None else start[1],
                                   tx_id, volts, phases)
