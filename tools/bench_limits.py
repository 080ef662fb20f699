"""Benchmark: the limit loop's control law against the anchors' on simulated days, and what a
decision costs on the device.

1. Days (tools/limits_days.py, one second per step, pure logic on CPython): a sunny day, a day
   of fast clouds (PV mode), a fuse-limited winter evening, a frequency dip (fast mode). Each
   law (tools/limits_laws.py: ours is the firmware's arbiter and dynamics themselves; the
   SmartEVSE, OpenEVSE and evcc laws are written from their documented parameters) runs on
   the same inputs. Per law and day: fuse-overload seconds beyond the reaction time (2 s, +
   the EV's 3 s to follow), the share of the PV surplus that went into the EV, the grid
   import during PV mode (the EV's draw above the surplus), starts (offer 0 -> 6 A or more:
   a contactor cycle) and phase switches, the EV's energy, its mean current during the dip.
   On the PV days also "ours*": ours with SmartEVSE's start and stop thresholds in our
   keys, for a like-for-like figure.
2. On the MicroPython unix port: time per arbiter decision (a grid reading in, the offer
   out) and heap per decision (gc.mem_alloc over 2000 decisions, and the count that failed
   under micropython.heap_lock()); also on the 32-bit build when build/mp32 exists.
3. The whole firmware's runtime heap on the 32-bit build with the limit loop deciding from
   grid readings (boards/sim/heapcheck.py --limits; target <= 32 KB).

    python tools/bench_limits.py [--from H] [--hours H] [--no-device]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import limits_days  # noqa: E402
import limits_laws  # noqa: E402

MP32 = os.path.join(ROOT, "build", "mp32", "micropython")

# Runs on the unix port: 2000 decisions, each with a new grid reading, PV mode with a fuse,
# the total capacity and the frequency response (every slot and the dynamics at work).
DEVICE_SCRIPT = """
import gc, time, micropython
from firmware.limits import conf
from firmware.limits.arbiter import Arbiter, OCPP
a = Arbiter(conf.check({"main_fuse_a": 25, "total_a": 60, "mode": "pv",
                        "freq_response": True}), 32, 32, 3)
a.put(OCPP, 200, 0)
N = 2000
def step(k, da):
    now = k * 700
    g = 100 + (k * 37) % 150 + da
    pv = 30000 if (k // 400) % 2 else (k * 911) % 3000
    a.grid(now, g, g, g, da, da, da, 3 * g * 23 - pv, 3 * da * 23, 4990 - k % 40, 230)
    return a.decide(now, 100000 + k, k & 0xFFFF)
da = 0
for k in range(50):
    da = step(k, da)
gc.collect()
m0 = gc.mem_alloc()
t0 = time.ticks_us()
for k in range(50, 50 + N):
    da = step(k, da)
us = time.ticks_diff(time.ticks_us(), t0)
m1 = gc.mem_alloc()
failed = 0
for k in range(50 + N, 50 + 2 * N):
    micropython.heap_lock()
    try:
        da = step(k, da)
    except MemoryError:
        failed += 1
    micropython.heap_unlock()
print("RESULT %d %d %d %d" % (N, us, m1 - m0, failed))
"""


def fmt_row(name, r, mode):
    pv = ("PV share %5.1f %%, import %5.2f kWh, EV from PV %5.1f %%" % (
        100 * r["pv_share"], r["import_kwh"],
        100 * (1 - r["import_kwh"] / r["ev_kwh"]) if r["ev_kwh"] else 0.0)
        if mode == "pv" else "EV %5.1f kWh" % r["ev_kwh"])
    dip = "" if r["dip_a"] is None else ", %.1f A mean during the dip" % r["dip_a"]
    return "  %-11s fuse overload %5d s beyond the reaction time, %s, starts %3d, phase " \
           "switches %d%s" % (name, r["overload_s"], pv, r["starts"], r["switches"], dip)


def days(t0, n):
    """Run every law on every day; print the rows; returns {day: {law: figures}}."""
    out = {}
    for make in limits_days.DAYS:
        day = make(t0, n)
        print("%s (%s mode, %s A fuse, %02d:%02d-%02d:%02d):" % (
            day.name, day.mode, day.fuse_a, t0 // 3600, t0 // 60 % 60, (t0 + n) // 3600 % 25,
            (t0 + n) // 60 % 60), flush=True)
        rows = out[day.name] = {}
        laws = (limits_laws.Ours,) + limits_laws.ANCHORS
        if day.mode == "pv":
            laws += (limits_laws.OursAtSmartEvseThresholds,)
        laws += (limits_laws.OursPhaseSwitch,)
        for law in laws:
            r = rows[law.name] = limits_days.run(day, law(day))
            print(fmt_row(law.name, r, day.mode), flush=True)
    return out


def targets(out):
    """The issue's targets: no overload beyond the reaction time; on the PV days a PV share
    at least the best anchor's with at most half its starts."""
    lines = []
    over = sum(rows["ours"]["overload_s"] for rows in out.values())
    lines.append("target fuse overload beyond the reaction time = 0 s: %s (%d s)" % (
        "met" if over == 0 else "MISSED", over))
    for name, rows in out.items():
        if not any(r["import_kwh"] or r["pv_share"] for r in rows.values()):
            continue
        best = max((n for n in rows if not n.startswith("ours")),
                   key=lambda n: rows[n]["pv_share"])
        b = rows[best]
        for ours in ("ours", "ours*", "ours 1p/3p"):
            o = rows[ours]
            ok = o["pv_share"] >= b["pv_share"] and 2 * o["starts"] <= max(b["starts"], 1)
            lines.append("target %s, %s: PV share >= the best anchor's (%s %.2f %%, %d starts, "
                         "%.2f kWh import) with <= half its starts: %s (%.2f %%, %d starts, "
                         "%.2f kWh import)" % (name, ours, best, 100 * b["pv_share"],
                                               b["starts"], b["import_kwh"],
                                               "met" if ok else "MISSED",
                                               100 * o["pv_share"], o["starts"],
                                               o["import_kwh"]))
    lines.append("(ours: the defaults, three phases; ours*: SmartEVSE's thresholds in our keys, "
                 "pv_start_w = pv_stop_w = 920 W, pv_stop_s = 600 s; ours 1p/3p: the defaults "
                 "with a phase switch, limits/phases.py)")
    for line in lines:
        print(line, flush=True)
    return lines


def device(exe, label):
    """Time and heap per decision on a MicroPython binary; one line."""
    import build

    mpy = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy)
    if errors:
        raise SystemExit("mpy-cross failed: %s" % errors[:3])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "decide.py")
        with open(path, "w") as f:
            f.write(DEVICE_SCRIPT)
        r = subprocess.run([exe, path], capture_output=True, text=True, cwd=tmp, timeout=300,
                           env=dict(os.environ, MICROPYPATH=mpy + os.pathsep + ".frozen"))
    res = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if not res:
        print("arbiter decision, %s: FAILED %s" % (label, (r.stdout + r.stderr)[-400:]))
        return None
    n, us, alloc, failed = (int(x) for x in res[0].split()[1:])
    print("arbiter decision, %s: %.1f us each (%d decisions), heap %d bytes per decision "
          "(target 0; gc.mem_alloc over them: %d), %d of %d failed under heap_lock" % (
              label, us / n, n, alloc // n, alloc, failed, n), flush=True)
    return us / n, alloc, failed


def heap32():
    if not os.path.exists(MP32):
        print("heap, 32-bit build with the limit loop: skipped (no build/mp32/micropython)")
        return None
    import bench_core

    ok, res = bench_core.heapcheck(args=["--limits"], exe=MP32, timeout=300)
    res = res or {}
    print("heap, 32-bit build, the whole firmware with the limit loop deciding from grid "
          "readings (fuse, total, minpv): runtime peak %d bytes (target <= 32768), code %d "
          "bytes; session %s" % (res.get("runtime", -1), res.get("code", -1),
                                 "completed" if ok else "FAILED %r" % (res,)), flush=True)
    return res.get("runtime")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="t0", type=float, default=0.0, help="start hour")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--no-device", action="store_true", help="skip the MicroPython figures")
    a, _ = ap.parse_known_args()  # make bench passes every bench the same options
    t0 = int(a.t0 * 3600)
    n = int(a.hours * 3600)
    t = time.time()
    out = days(t0, n)
    targets(out)
    print("(days simulated in %.0f s of CPU)" % (time.time() - t), flush=True)
    if a.no_device:
        return
    import simlib

    device(simlib.micropython_exe(), "64-bit unix port")
    if os.path.exists(MP32):
        device(MP32, "32-bit build")
    heap32()


if __name__ == "__main__":
    main()
