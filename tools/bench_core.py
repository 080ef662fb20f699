"""Benchmark of the charge-control core on the simulated wallbox (real firmware, unix port).

1. Safety reaction: time from the EV's C->B (S2 opens) and from an RCM trip to the
   contactor-open command, over N transitions each (default 200), as p50/p99/max. Both
   timestamps come from the device clock in the observation log. Then C->B again with a
   task that blocks the interpreter for 1 s at random moments (N/2 transitions, the S2
   opening at a random moment too, so that some land inside a block): the reflex must keep
   it within 100 ms and nothing may reset. The controller's loop lag (how late each step ran
   against its grid) with and without the blocking task.
2. Heap: code (gc.mem_alloc after every import, modules from .mpy), runtime data (peak of
   live data during the default session minus that baseline), and the smallest -X heapsize
   that completes the default session.

    python tools/bench_core.py [--n 200] [--skip-reaction] [--skip-heap]
"""
import argparse
import glob
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simlib  # noqa: E402

CFG = {"rating_a": 32, "max_current_a": 16, "reclose_ms": 1000, "reclose_error_ms": 1000}


def _charge(sim):
    n = len(sim.obs)
    sim.do("s2", closed=True)
    sim.wait_for(simlib.contactor_cmd(True), 10, since=n)
    time.sleep(0.06)  # contacts settle, the EV draws current


def _progress(name, k, n, t0):
    if k % 20 == 0 or k == n:
        print("  %-18s %3d/%d  %4.0f s" % (name, k, n, time.time() - t0), flush=True)


def _stats(sim):
    k = len(sim.obs)
    sim.do("stats")
    return sim.wait_for({"k": "stats"}, 10, since=k)


def c_to_b(n, out, blocking=False, reflex=True):
    key = "c_to_b_blocked" if blocking else "c_to_b" if reflex else "c_to_b_noreflex"
    rnd = random.Random(7)
    t0 = time.time()
    with simlib.Sim(CFG).start() as sim:
        sim.do("ev", auto=False)
        if not reflex:
            sim.do("reflex", on=False)
        sim.do("plug")
        if blocking:  # 1 s blocks, 1.5-4.5 s apart, for the whole run
            sim.do("block", ms=1000, every_ms=3000, seed=11)
        for k in range(n):
            _charge(sim)
            i = len(sim.obs)
            if blocking:  # the world opens S2 at a random moment: inside a block or not
                sim.do("s2", closed=False, delay_ms=rnd.randrange(0, 1500))
            else:
                sim.do("s2", closed=False)
            sim.wait_for(simlib.is_open_cmd, 10, since=i)
            time.sleep(1.0)  # re-close spacing
            _progress(key, k + 1, n, t0)
        out[key] = simlib.reactions_while_closed(sim.obs, simlib.is_s2_open)
        out[key + "_stats"] = _stats(sim)
        out[key + "_in_block"] = _in_blocks(sim.obs)
        out[key + "_resets"] = sum(1 for o in sim.obs if o.get("k") == "watchdog")
        out[key + "_other"] = _other_faults(sim.obs, ())


def _in_blocks(obs):
    """How many S2 openings happened while the interpreter was blocked."""
    blocked = False
    n = 0
    for o in obs:
        if o.get("k") == "block":
            blocked = o["on"]
        elif blocked and simlib.is_s2_open(o):
            n += 1
    return n


def rcm_trip(n, out):
    t0 = time.time()
    with simlib.Sim(CFG).start() as sim:
        sim.do("ev", auto=False)
        for _ in range(n):
            sim.do("plug")
            _charge(sim)
            k = len(sim.obs)
            sim.do("fault", name="rcm_trip")
            sim.wait_for(simlib.is_open_cmd, 5, since=k)
            sim.do("fault", name="rcm_trip", on=False)
            sim.do("unplug")  # the station clears only after a passing self-test
            sim.wait_for({"k": "state", "status": "Available"}, 5, since=k)
            time.sleep(max(0.0, 1.0 - 0.35))
            _progress("rcm", len(out.get("rcm_progress", [])) + 1, n, t0)
            out.setdefault("rcm_progress", []).append(1)
        # Only trips that found the contactor closed measure a reaction; any other opening
        # before the trip (an unexpected fault) is counted and named, never paired.
        out["rcm"] = simlib.reactions_while_closed(sim.obs, simlib.is_rcm_trip)
        out["rcm_other"] = _other_faults(sim.obs, ("rcm", "rcm interrupt", "reflex: rcm"))


def _other_faults(obs, expected):
    """{info: count} of Faulted states other than the expected ones."""
    seen = {}
    for o in obs:
        if o.get("k") == "state" and o.get("status") == "Faulted" and o.get(
                "info") not in expected:
            seen[o["info"]] = seen.get(o["info"], 0) + 1
    return seen


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def report(name, xs):
    print("%-22s n=%d  p50 %.2f ms  p99 %.2f ms  max %.2f ms  (limit 100 ms, target p99 <= 10)"
          % (name, len(xs), statistics.median(xs), pct(xs, 99), max(xs)), flush=True)


def default_session(heapsize=None, heap=False):
    sc = simlib.load_scenario(os.path.join(simlib.ROOT, "scenarios", "default.json"))
    sim = simlib.Sim(sc["config"], heapsize=heapsize, heap_sampler=heap)
    try:
        sim.start()
        simlib.run_scenario(sim, sc, log=lambda *a: None)
        sim.stop()
    except (TimeoutError, RuntimeError) as e:
        try:
            sim.stop()  # cleans up; it raises again if the process already died
        except (TimeoutError, RuntimeError):
            pass
        return False, sim, str(e)
    bad = "MemoryError" in sim.output() or not any(o.get("k") == "end" for o in sim.obs)
    return not bad, sim, sim.output()[-500:]


def heapcheck(heapsize=None, args=(), cwd=None, timeout=120, exe=None):
    """The firmware without the simulator's apparatus (boards/sim/heapcheck.py): no control
    channel, no observation log. args go to heapcheck (e.g. --ocpp URL); cwd is the device's
    filesystem (a temporary folder if None); exe another micropython (a 32-bit build: no
    x64 natmods then)."""
    _, errors = simlib.build.compile_all(os.path.join(simlib.ROOT, "build", "mpy"))
    if errors:
        raise RuntimeError("\n".join(errors))
    cmd = [exe or simlib.micropython_exe()]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    natmods = [] if exe else glob.glob(os.path.join(simlib.ROOT, "dist", "x64_*"))
    env = dict(os.environ, MICROPYPATH=":".join(
        [os.path.join(simlib.ROOT, "build", "mpy")] + natmods + [".frozen"]))
    # cwd away from the sources: '' on sys.path would otherwise import the .py files
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(cmd + ["-m", "boards.sim.heapcheck"] + list(args),
                           capture_output=True, text=True, env=env, timeout=timeout,
                           cwd=cwd or tmp)
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
        if os.environ.get("WB_HEAPCHECK_LOG"):
            print(r.stdout[-3000:], r.stderr[-2000:])
    except (ValueError, IndexError):
        return False, None
    return bool(res.get("completed")), res


def smallest(run):
    lo, hi = 16, 512  # KiB
    while hi - lo > 2:
        mid = (lo + hi) // 2
        ok = run("%dk" % mid)
        print("  heapsize %4d KiB: %s" % (mid, "completes" if ok else "fails"), flush=True)
        if ok:
            hi = mid
        else:
            lo = mid
    return hi


def heap_figures():
    ok, res = heapcheck()
    if not ok:
        print("heap: the core session did not complete: %r" % (res,))
        return 1
    print("core session (firmware + sim hardware, no control channel), modules from .mpy,"
          " kernels: %s" % res.get("kernels"))
    print("heap code (gc.mem_alloc after every import): %d bytes" % res["code"])
    print("heap runtime (peak live data - code): %d bytes  (target <= 16384 on a board)"
          % res["runtime"])
    n = smallest(lambda h: heapcheck(h)[0])
    print("smallest -X heapsize completing the core session: %d KiB" % n)
    ok, sim, why = default_session(heap=True)
    if not ok:
        print("heap: default simulator session failed: %s" % why)
        return 1
    h = next(o for o in sim.obs if o.get("k") == "heap")
    print("full simulator session (adds the control channel and JSON observation stream):")
    print("heap code: %d bytes, runtime: %d bytes, kernels: %s"
          % (h["code"], h["runtime"], sim.ready().get("kernels")))
    n = smallest(lambda h: default_session(heapsize=h)[0])
    print("smallest -X heapsize completing the simulator session: %d KiB" % n)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--skip-reaction", action="store_true")
    ap.add_argument("--skip-heap", action="store_true")
    a = ap.parse_args()
    rc = 0
    if not a.skip_reaction:
        out = {}
        threads = [threading.Thread(target=c_to_b, args=(a.n, out)),
                   threading.Thread(target=rcm_trip, args=(a.n, out))]
        t0 = time.time()
        print("safety reaction: %d transitions each, two sims in parallel (~%d s)"
              % (a.n, a.n * 1.2), flush=True)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        nb = max(10, a.n // 2)
        print("C->B with a task blocking the interpreter 1 s at random moments, and C->B "
              "with the reflex off (the controller alone, as on a stock ESP32): %d "
              "transitions each, two sims in parallel (~%d s)" % (nb, nb * 2.5), flush=True)
        threads = [threading.Thread(target=c_to_b, args=(nb, out), kwargs={"blocking": True}),
                   threading.Thread(target=c_to_b, args=(nb, out), kwargs={"reflex": False})]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print("safety reaction (%.0f s):" % (time.time() - t0))
        for key, name in (("c_to_b", "C->B -> open cmd"), ("rcm", "RCM trip -> open cmd"),
                          ("c_to_b_blocked", "C->B, 1 s blocks"),
                          ("c_to_b_noreflex", "C->B, no reflex")):
            if key in out and out[key]:
                report(name, out[key])
            else:
                print("%s: no data (the run failed)" % name)
                rc = 1
        for key, name in (("c_to_b", "without blocking"), ("c_to_b_blocked", "1 s blocks"),
                          ("c_to_b_noreflex", "no reflex")):
            st = out.get(key + "_stats")
            if st:
                print("loop lag %-17s p50 %d ms  p99 %d ms  max %d ms  (steps %d, reflex "
                      "runs %d, reflex openings %d)" % (name, st["lag_p50"], st["lag_p99"],
                                                        st["lag_max"], st["steps"],
                                                        st["reflex_runs"], st["reflex_fired"]))
        for key in ("c_to_b", "rcm", "c_to_b_blocked", "c_to_b_noreflex"):
            if out.get(key + "_other"):
                print("unexpected faults in the %s run: %s" % (key, out[key + "_other"]))
        if "c_to_b_blocked_stats" in out:
            print("with 1 s blocks: %d of %d S2 openings inside a block, %d ms blocked in all, "
                  "watchdog resets %d" % (out["c_to_b_blocked_in_block"], len(
                      out["c_to_b_blocked"]), out["c_to_b_blocked_stats"]["blocked_ms"],
                      out["c_to_b_blocked_resets"]))
            if out["c_to_b_blocked_resets"]:
                rc = 1
    if not a.skip_heap:
        rc |= heap_figures()
    sys.exit(rc)


if __name__ == "__main__":
    main()
