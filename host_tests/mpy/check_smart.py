# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the OCPP
# clock and smart-charging logic on MicroPython's integers, floats, json and files, and the
# heap that 8 installed profiles hold (printed; figures for a 64-bit port, about half on the
# 32-bit boards).
import gc
import os
import time

from firmware.ocpp import clock
from firmware.ocpp.smart import NO_LIMIT_A, Profiles
from firmware.ocpp.smart_store import to_dict

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


def raises(f, *args):
    try:
        f(*args)
    except ValueError as e:
        return str(e)
    return ""


T0 = clock.parse("2026-03-02T00:00:00Z")
H = 3600
DAY = 86400

check("parse Z", T0 == 1772409600)
check("parse offset and fraction", clock.parse("2026-03-02T01:00:00.999+01:00") == T0)
check("parse basic offset", clock.parse("2026-03-01T19:00:00-0500") == T0)
check("iso", clock.iso(T0 + 59) == "2026-03-02T00:00:59Z")
check("iso 2099", clock.iso(clock.parse("2099-12-31T23:59:59Z")) == "2099-12-31T23:59:59Z")
check("days 2000-01-01", clock.days_from_civil(2000, 1, 1) == 10957)
check("no zone refused", "no time zone" in raises(clock.parse, "2026-03-02T00:00:00"))
check("Feb 29 2025 refused", "no such date" in raises(clock.parse, "2025-02-29T00:00:00Z"))

c = clock.Clock()
check("clock unset", c.now_s(0) is None)
start = time.ticks_add(0, -1500)  # 1.5 s before time.ticks_ms() wraps
c.set(T0, start)
check("clock across the ticks wrap", c.now_s(time.ticks_add(start, 5000)) == T0 + 5)


def prof(pid, purpose="TxDefaultProfile", kind="Absolute", stack=0, periods=((0, 16),),
         unit="A", start=T0, duration=None, recur=None):
    s = {"chargingRateUnit": unit,
         "chargingSchedulePeriod": [{"startPeriod": a, "limit": b} for a, b in periods]}
    if start is not None:
        s["startSchedule"] = clock.iso(start)
    if duration is not None:
        s["duration"] = duration
    p = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": s}
    if recur:
        p["recurrencyKind"] = recur
    return p


tmp = "/tmp/wallbox_check_smart_%d.json" % (time.time_ns() % 1000000007)


def cleanup():
    for name in (tmp, tmp + ".new"):
        try:
            os.remove(name)
        except OSError:
            pass


try:
    ps = Profiles(tmp)
    check("empty", len(ps) == 0 and ps.errors == [])
    daily = prof(1, kind="Recurring", recur="Daily", unit="W",
                 periods=((0, 11000), (8 * H, 6000), (20 * H, 11000)))
    check("daily accepted", ps.set(0, daily) == "Accepted")
    check("W -> A", ps.limit(T0 + 7 * H) == (15.9, "TxDefaultProfile 1", T0 + 8 * H))
    check("next day at noon", ps.limit(T0 + DAY + 12 * H)[0] == 8.6)
    check("max on connector 1 refused",
          ps.set(1, prof(2, purpose="ChargePointMaxProfile")) == "Rejected"
          and "only on connector 0" in ps.why)
    check("max accepted", ps.set(0, prof(2, purpose="ChargePointMaxProfile",
                                         periods=((0, 13), (H, 40)))) == "Accepted")
    check("tx accepted", ps.set(1, prof(3, purpose="TxProfile", periods=((0, 25),),
                                        start=None), tx_id=7) == "Accepted")
    check("max caps", ps.limit(T0 + 60, tx_start=T0, tx_id=7)[:2] ==
          (13, "ChargePointMaxProfile 2"))
    check("tx overrides default", ps.limit(T0 + 7 * H, tx_start=T0, tx_id=7)[:2] ==
          (25, "TxProfile 3"))
    comp = ps.composite(1, T0 + 1800, 2 * H)
    check("composite", comp["chargingSchedule"]["chargingSchedulePeriod"] ==
          [{"startPeriod": 0, "limit": 13.0}, {"startPeriod": 1800, "limit": 15.9}])
    check("composite W", ps.composite(0, T0, H, unit="W")["chargingSchedule"][
        "chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 8970}])
    check("composite gap", ps.composite(0, T0 - H, H)["chargingSchedule"][
        "chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": NO_LIMIT_A}])
    again = Profiles(tmp)
    check("persisted", [to_dict(r) for r in again._r] ==
          [to_dict(r) for r in ps._r] and again.errors == [])
    check("persisted limit", again.limit(T0 + 60, tx_start=T0, tx_id=7) ==
          ps.limit(T0 + 60, tx_start=T0, tx_id=7))
    check("retag", ps.retag(7, 1234) == 1 and Profiles(tmp).limit(
        T0 + 7 * H, tx_start=T0, tx_id=1234)[:2] == (25, "TxProfile 3"))
    check("end transaction", ps.end_transaction(1234) == 1 and len(Profiles(tmp)) == 2)
    check("clear", ps.clear() == "Accepted" and ps.clear() == "Unknown")
    with open(tmp, "w") as f:
        f.write("{not json")
    bad = Profiles(tmp)
    check("corrupt file", len(bad) == 0 and "unreadable" in bad.errors[0])

    # heap held by 8 installed profiles: first 1 period each, then 24
    ps = again = bad = comp = None
    for n in (1, 24):
        ps = comp = None
        cleanup()
        inputs = [prof(i, stack=i % 8, kind="Recurring", recur="Daily",
                       periods=[(k * H, 6 + k % 10) for k in range(n)]) for i in range(8)]
        conns = [0, 1] * 4
        gc.collect()
        before = gc.mem_alloc()
        ps = Profiles(tmp)
        ok = all(ps.set(conns[i], inputs[i]) == "Accepted" for i in range(8))
        gc.collect()
        held = gc.mem_alloc() - before
        check("8 profiles of %d periods installed" % n, ok and len(ps) == 8)
        print("heap: 8 profiles x %d periods hold %d bytes" % (n, held))
        gc.collect()
        before = gc.mem_alloc()
        reloaded = Profiles(tmp)
        gc.collect()
        print("heap: the same reloaded from the file: %d bytes" % (gc.mem_alloc() - before))
        check("reloaded %d" % n, len(reloaded) == 8)
        reloaded = None
        gc.collect()
        a0 = gc.mem_alloc()
        ps.limit(T0 + 12 * H, tx_start=T0, tx_id=7)
        print("heap: one limit() call allocates %d bytes" % (gc.mem_alloc() - a0))
        t0 = time.ticks_ms()
        comp = ps.composite(1, T0, 7 * DAY)
        ms = time.ticks_diff(time.ticks_ms(), t0)
        print("composite over 7 days: %d periods, %d s covered, %d ms" % (
            len(comp["chargingSchedule"]["chargingSchedulePeriod"]),
            comp["chargingSchedule"]["duration"], ms))
        check("composite of %d" % n, comp["status"] == "Accepted")
finally:
    cleanup()

print("DONE %d failed" % len(FAILS))
