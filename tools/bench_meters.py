"""Benchmark: the safety reaction while two Modbus meters are polled (simulated wallbox).

The EV meter (addr 1) and the grid meter (addr 2), both emulated SDM630s (pymodbus behind
socat), on one bus at 9600 baud, each polled every second by its own task. Measured as in
tools/bench_core.py: the time from the EV's C->B (S2 opens) to the contactor-open command,
both stamped by the device clock, over N transitions (default 100), as p50/p99/max; the
controller's loop lag; and the meters' polls and errors over the run. One line per figure.

    python tools/bench_meters.py [--n 100]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_core  # noqa: E402
import simlib  # noqa: E402

METERS = {"ev": {"type": "modbus", "profile": "sdm630", "addr": 1},
          "grid": {"type": "modbus", "profile": "sdm630", "addr": 2},
          "bus": {"uart": 1, "baud": 9600}}
CFG = dict(bench_core.CFG, meters=METERS)


def run(n):
    t0 = time.time()
    sim = simlib.Sim(CFG).start()
    try:
        sim.do("ev", auto=False)
        sim.do("plug")
        for k in range(n):
            bench_core._charge(sim)
            i = len(sim.obs)
            sim.do("s2", closed=False)
            sim.wait_for(simlib.is_open_cmd, 10, since=i)
            time.sleep(1.0)  # re-close spacing
            bench_core._progress("c_to_b_meters", k + 1, n, t0)
        stats = bench_core._stats(sim)
        diag = sim.diag()
        times = simlib.reactions_while_closed(sim.obs, simlib.is_s2_open)
        reads = [o for o in sim.obs if o.get("k") == "reading"]
        other = bench_core._other_faults(sim.obs, ())
    finally:
        sim.stop()
    return times, stats, diag, reads, other


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    a, _ = ap.parse_known_args()  # make bench passes every bench the same options
    print("C->B with two Modbus meters polled at 9600 baud (EV + grid, emulated SDM630): "
          "%d transitions (~%d s)" % (a.n, a.n * 1.2), flush=True)
    times, stats, diag, reads, other = run(a.n)
    if not times:
        print("C->B, 2 meters polled: no data (the run failed)")
        sys.exit(1)
    bench_core.report("C->B, 2 meters polled", times)
    print("loop lag with 2 meters   p50 %d ms  p99 %d ms  max %d ms  (steps %d)" % (
        stats["lag_p50"], stats["lag_p99"], stats["lag_max"], stats["steps"]))
    for role in ("ev", "grid"):
        rs = [o for o in reads if o["role"] == role]
        print("meter %-4s polls %d, fresh %d, errors %d, faults %s" % (
            role, len(rs), sum(1 for o in rs if o["fresh"]), rs[-1]["errors"] if rs else -1,
            sorted({o["fault"] for o in rs if o["fault"]}) or "none"))
    if other:
        print("unexpected faults: %s" % other)
    rc = 0 if len(times) == a.n and not other else 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
