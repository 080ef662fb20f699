# OCPP 1.6 charging profiles as the charge point keeps them: the semantic checks of
# SetChargingProfile (section 3.13, 5.16 and the errata), the compact record each profile
# becomes in RAM and the dict a record stands for (to_dict), and reading the file they
# persist in. Pure logic except load(), which takes the path. Used by firmware/ocpp/smart.py
# (the Profiles store, its schedule arithmetic, the record's layout - its _R_* indices - and
# writing the file).
#
# A record is a tuple (smart.py's _R_* order, as compile_profile returns it and to_dict
# unpacks it); its periods are one flat array('i') of
# (startPeriod, limit x 10, numberPhases or 0) triplets, so 8 profiles of 24 periods stay
# around a few kB. Limits are kept in tenths (the schema's multipleOf 0.1), rounded down: a
# limit can only come out lower, never higher. A profile that cannot be installed raises
# ValueError, its message naming the first fault.
#
# Decisions where the spec leaves room (each has a test in host_tests/test_smart.py):
# - Absolute without startSchedule: 1.6 says the schedule is then relative to the start of
#   charging; it runs from the transaction start like a Relative one.
# - Relative with startSchedule: refused (a Relative schedule has no fixed start).
# - transactionId on a profile other than a TxProfile: refused (1.6: "only valid if
#   ChargingProfilePurpose is set to TxProfile").
# - recurrencyKind on a profile that is not Recurring: ignored.
# - validTo at or before validFrom: refused (the profile could never apply).
import json
from array import array


from .. import persist
from . import clock

# codes of the purposes and kinds: their index in PURPOSES and KINDS (smart.py has the same)
_CPMAX = const(0)
_TX = const(2)
_RECURRING = const(1)
_RELATIVE = const(2)
PURPOSES = ("ChargePointMaxProfile", "TxDefaultProfile", "TxProfile")
KINDS = ("Absolute", "Recurring", "Relative")
_MAX_LIMIT = const(1000000)  # 1 MW or 1 MA: anything above is a sender's mistake
_MAX_INT = const(0x3FFFFFFF)  # small ints on every port (34 years of seconds)
# What keys.py reports: ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods
_MAX_STACK = const(8)
_MAX_PERIODS = const(24)
_CONNECTORS = const(1)  # connector ids 1.._CONNECTORS (0: the charge point as a whole)


def _int(d, key, lo, hi, need):
    v = d.get(key)
    if v is None:
        if need:
            raise ValueError("%s missing" % key)
        return None
    if type(v) is not int or not lo <= v <= hi:
        raise ValueError("%s must be an integer %d..%d, got %r" % (key, lo, hi, v))
    return v


def _tenths(v, what):
    if type(v) not in (int, float) or not 0 <= v <= _MAX_LIMIT:  # NaN fails the range too
        raise ValueError("%s must be a number 0..%d, got %r" % (what, _MAX_LIMIT, v))
    # floor to 0.1; the small margin keeps 2.3 (2.2999... in binary) at 23
    return int(v * 10 + 0.01)


def _obj(v, what):
    """v if it is a dict (a JSON object), else ValueError naming `what`."""
    if type(v) is not dict:
        raise ValueError("%s must be an object" % what)
    return v


def _pick(d, key, names):
    """The index of d[key] in names; ValueError naming the key and the choices if absent."""
    v = d.get(key)
    if v not in names:
        raise ValueError("%s must be %s, got %r" % (key, " or ".join(names), v))
    return names.index(v)


def _time(d, key):
    v = d.get(key)
    if v is None:
        return None
    try:
        return clock.parse(v)
    except ValueError as e:
        raise ValueError("%s: %s" % (key, e))


def compile_profile(conn, p, tx_id):
    """The record of a csChargingProfiles dict installed on connector `conn` while
    transaction `tx_id` (or None) runs there; ValueError names the first fault."""
    _obj(p, "csChargingProfiles")
    _int({"connectorId": conn}, "connectorId", 0, _CONNECTORS, True)
    pid = _int(p, "chargingProfileId", -_MAX_INT, _MAX_INT, True)
    stack = _int(p, "stackLevel", 0, _MAX_STACK, True)
    purpose = _pick(p, "chargingProfilePurpose", PURPOSES)
    kind = _pick(p, "chargingProfileKind", KINDS)
    tid = p.get("transactionId")
    if purpose == _CPMAX and conn != 0:
        raise ValueError("ChargePointMaxProfile only on connector 0")
    if purpose == _TX:
        if conn == 0:
            raise ValueError("TxProfile needs a connector > 0")
        if tx_id is None:
            raise ValueError("TxProfile without a transaction")
        if tid is not None and tid != tx_id:
            raise ValueError("TxProfile for transaction %r, not %r" % (tid, tx_id))
    elif tid is not None:
        raise ValueError("transactionId only belongs in a TxProfile")
    recur = 0
    if kind == _RECURRING:
        recur = (86400, 604800)[_pick(p, "recurrencyKind", ("Daily", "Weekly"))]  # s
    vfrom = _time(p, "validFrom")
    vto = _time(p, "validTo")
    if vfrom is not None and vto is not None and vto <= vfrom:
        raise ValueError("validTo is not after validFrom")
    s = _obj(p.get("chargingSchedule"), "chargingSchedule")
    watts = _pick(s, "chargingRateUnit", ("A", "W")) == 1
    dur = _int(s, "duration", 0, _MAX_INT, False)
    start = _time(s, "startSchedule")
    if kind == _RECURRING and start is None:
        raise ValueError("Recurring needs startSchedule")
    if kind == _RELATIVE and start is not None:
        raise ValueError("Relative must not have startSchedule")
    mn = s.get("minChargingRate")
    mn = None if mn is None else _tenths(mn, "minChargingRate")
    per = s.get("chargingSchedulePeriod")
    if type(per) is not list or not 1 <= len(per) <= _MAX_PERIODS:
        raise ValueError("chargingSchedulePeriod must list 1..%d periods" % _MAX_PERIODS)
    arr = array("i")
    last = -1
    for k, q in enumerate(per):
        _obj(q, "chargingSchedulePeriod[%d]" % k)
        sp = _int(q, "startPeriod", 0, _MAX_INT, True)
        if (k == 0 and sp != 0) or sp <= last:
            raise ValueError("startPeriod must start at 0 and rise, got %d at [%d]" % (sp, k))
        last = sp
        arr.append(sp)
        arr.append(_tenths(q.get("limit"), "limit"))
        arr.append(_int(q, "numberPhases", 1, 3, False) or 0)
    return (pid, conn, stack, purpose, kind, recur, vfrom, vto, start, dur, watts, arr,
            tx_id if purpose == _TX else None, mn)


def from_tenths(x):
    """A value in tenths as a JSON number: an int when whole."""
    x = int(x)
    return x // 10 if x % 10 == 0 else x / 10


def to_dict(r):
    """The csChargingProfiles dict of a record (what the file and the tests show)."""
    pid, _, stack, purpose, kind, recur, vfrom, vto, start, dur, watts, arr, _, mn = r
    per = []
    for k in range(0, len(arr), 3):
        q = {"startPeriod": arr[k], "limit": from_tenths(arr[k + 1])}
        if arr[k + 2]:
            q["numberPhases"] = arr[k + 2]
        per.append(q)
    s = {"chargingRateUnit": "W" if watts else "A", "chargingSchedulePeriod": per}
    p = {"chargingProfileId": pid, "stackLevel": stack,
         "chargingProfilePurpose": PURPOSES[purpose], "chargingProfileKind": KINDS[kind],
         "chargingSchedule": s}
    if recur:
        p["recurrencyKind"] = "Daily" if recur == 86400 else "Weekly"
    if vfrom is not None:
        p["validFrom"] = clock.iso(vfrom)
    if vto is not None:
        p["validTo"] = clock.iso(vto)
    if start is not None:
        s["startSchedule"] = clock.iso(start)
    if dur is not None:
        s["duration"] = dur
    if mn is not None:
        s["minChargingRate"] = from_tenths(mn)
    return p


def load(path):
    """(entries, errors): the entries of the file ({"c": connector, "tx": transaction, "p":
    profile dict}), unchecked; a missing file is no profiles and no error, an unreadable one
    is none and an error."""
    try:
        persist.recover(path)
        f = open(path)
    except OSError:
        return (), []
    try:
        with f:
            d = json.load(f)
        ps = d.get("profiles") if type(d) is dict and d.get("v") == 1 else None
        if type(ps) is not list:
            raise ValueError("not a profile file (v 1)")
    except (ValueError, OSError) as e:
        return (), ["%s unreadable (%s): no profiles" % (path, e)]
    out = []
    errors = []
    for k, e in enumerate(ps):
        if type(e) is not dict or "p" not in e:
            errors.append("%s: entry %d not a profile, dropped" % (path, k))
        else:
            out.append(e)
    return out, errors
