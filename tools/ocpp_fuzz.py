"""OCPP fuzz test: a hostile OCPP-J 1.6 CSMS on 127.0.0.1 sends the simulated wallbox (the
real firmware on the MicroPython unix port) thousands of malformed and hostile frames while
an EV charges and stops in cycles, and checks every answer.

The CSMS is raw asyncio sockets: it does the HTTP upgrade itself (Sec-WebSocket-Protocol
ocpp1.6), so it can send any bytes (masked, fragmented, oversized, cut off). The frames come
from tools/ocpp_fuzz_gen.py (random.Random(seed), families of frames, each case with the
answer it is owed). One case at a time: the next goes out once the answer came (a CALLERROR
with the right code and id, a close with the right code and a reconnect), or, for a frame
that gets no answer, once a probe CALL sent behind it was answered first. The firmware's own
CALLs get minimal answers (BootNotification Accepted with interval 300, StartTransaction
Accepted with a transactionId, ...) and are checked against the OCPP 1.6 schemas.

Meanwhile the EV closes and opens S2 as tools/bench_core.py does; the C->B reaction (S2 opens
-> contactor open command) is read from the device clock in the observation log. Exit 1 on
any wrong answer, a broken rule in the firmware's own frames, a task restart, or a C->B
reaction p99 over 10 ms.

    python tools/ocpp_fuzz.py --frames N [--seed S] [--known-bugs] [--heapsize 640k]
"""
import argparse
import asyncio
import os
import random
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_core  # noqa: E402
import ocpp_fuzz_gen as gen  # noqa: E402
import simlib  # noqa: E402
from ocpp_fuzz_csms import (  # noqa: E402,F401  (the hostile CSMS, re-exported)
    ANSWER_S, CLOSE_S, CP_ID, EXAMPLES, HOST, RECONNECT_S, Conn, FuzzError, Fuzzer,
    _check_answer, _clip, _iso)

TARGET_P99_MS = 10.0


# -- the simulator side ----------------------------------------------------------------------
def _cycle(sim):
    """One bench_core-style charge cycle: S2 closes (contactor closes), S2 opens (C->B)."""
    bench_core._charge(sim)
    i = len(sim.obs)
    sim.do("s2", closed=False)
    sim.wait_for(simlib.is_open_cmd, 10, since=i)
    time.sleep(1.0)  # the re-close delay (reclose_ms)


def _cycles(sim, stop, out):
    try:
        while not stop.is_set():
            _cycle(sim)
            out["cycles"] += 1
    except Exception as e:  # noqa: BLE001 - reported by run()
        out["errors"].append(repr(e))


def restarts(obs):
    """Task restarts, supervisor failures and watchdog resets in an observation log."""
    out = []
    for o in obs:
        k = o.get("k")
        if k == "event" and o.get("code") == "task restart":
            out.append("task restart: %s" % o.get("val"))
        elif k == "log" and "supervisor:" in o.get("msg", ""):
            out.append(o["msg"])
        elif k == "watchdog":
            out.append("watchdog reset")
    return out


def run(frames=10000, seed=1, cases=None, skip=gen.KNOWN_BUGS, heapsize=None, log=None):
    """Fuzz the simulated wallbox with `cases` (default: gen.generate(frames, seed, skip=skip))
    while the EV charges in cycles. Returns a dict: families (per family: sent, right, wrong,
    reconnects, examples), client_problems, restarts, reactions (C->B ms during the fuzz),
    after (the C->B ms of a cycle after it), cycles, cycle_errors, connects, seconds."""
    cases = gen.generate(frames, seed, skip=skip) if cases is None else cases
    fz = Fuzzer()
    loop = asyncio.new_event_loop()
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    asyncio.run_coroutine_threadsafe(fz.start(), loop).result(10)
    cfg = dict(bench_core.CFG, free_vend=True, connector="type2_socket",
               ocpp={"url": "ws://%s:%d/" % (HOST, fz.port), "cp_id": CP_ID})
    sim = simlib.Sim(cfg, heapsize=heapsize)
    out = {"cycles": 0, "errors": []}
    try:
        sim.start()
        if not fz.booted.wait(60):
            raise FuzzError("no BootNotification from the charge point within 60 s")
        sim.do("ev", auto=False)
        sim.do("plug")
        stop = threading.Event()
        cyc = threading.Thread(target=_cycles, args=(sim, stop, out), daemon=True)
        t0 = time.monotonic()
        cyc.start()
        prog = None if log is None else (lambda k: log("  %6d cases  %5.0f s" % (
            k, time.monotonic() - t0)))
        try:
            asyncio.run_coroutine_threadsafe(fz.run_cases(cases, prog), loop).result()
        finally:
            seconds = time.monotonic() - t0
            stop.set()
            cyc.join(30)
        n_fuzz = len(sim.obs)
        _cycle(sim)  # the contactor still follows the pilot after the fuzz
        after = simlib.reactions_while_closed(sim.obs[n_fuzz:], simlib.is_s2_open)
        stats = bench_core._stats(sim)
    finally:
        try:
            sim.stop()
        finally:
            asyncio.run_coroutine_threadsafe(fz.stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
    reactions = simlib.reactions_while_closed(sim.obs[:n_fuzz], simlib.is_s2_open)
    return {"families": fz.stats, "client_problems": fz.client_problems,
            "restarts": restarts(sim.obs), "reactions": reactions,
            "worst": _worst(sim.obs[:n_fuzz], reactions), "lag": {
                k: stats.get(k) for k in ("lag_p50", "lag_p99", "lag_max", "reflex_fired")},
            "after": after[0] if after else None, "cycles": out["cycles"],
            "cycle_errors": out["errors"], "connects": fz.connects, "seconds": seconds,
            "calls": fz.calls}


def run_parallel(frames=10000, seed=1, parts=4, **kw):
    """run() on `parts` simulated wallboxes at once, frames/parts cases each (seeds seed,
    seed+1, ...), merged into one result. The fuzz waits on round trips, not on the CPU: on a
    2-core machine four take about a quarter of the time of one."""
    from concurrent.futures import ThreadPoolExecutor

    n = -(-frames // parts)
    with ThreadPoolExecutor(parts) as ex:
        res = list(ex.map(lambda k: run(n, seed + k, **kw), range(parts)))
    fams = {}
    for r in res:
        for f, st in r["families"].items():
            m = fams.setdefault(f, {"sent": 0, "right": 0, "wrong": 0, "reconnects": 0,
                                    "examples": []})
            for key in ("sent", "right", "wrong", "reconnects"):
                m[key] += st[key]
            m["examples"] += st["examples"]
    worst = [r["worst"] for r in res if r["worst"]]
    calls = {}
    for r in res:
        for a, c in r["calls"].items():
            calls[a] = calls.get(a, 0) + c
    return {"families": fams, "client_problems": sum((r["client_problems"] for r in res), []),
            "restarts": sum((r["restarts"] for r in res), []),
            "reactions": sum((r["reactions"] for r in res), []),
            "worst": max(worst, key=lambda w: w["ms"]) if worst else None,
            "lag": max((r["lag"] for r in res), key=lambda g: g.get("lag_max") or 0),
            "after": max((r["after"] for r in res if r["after"] is not None), default=None),
            "cycles": sum(r["cycles"] for r in res),
            "cycle_errors": sum((r["cycle_errors"] for r in res), []),
            "connects": sum(r["connects"] for r in res),
            "seconds": max(r["seconds"] for r in res), "calls": calls}


def _worst(obs, reactions):
    """Where the slowest C->B reaction happened: its device time and what the log said
    within a second of it (for a reader judging an outlier)."""
    if not reactions:
        return None
    ms = max(reactions)
    t = next((o["t"] for o in obs if simlib.is_s2_open(o) and any(
        c.get("k") == "contactor" and c.get("cmd") is False and abs(c["t"] - o["t"] - ms)
        < 0.01 for c in obs)), None)
    near = [o.get("msg", o.get("k")) for o in obs if t is not None and o.get("k") in (
        "log", "contactor", "block") and abs(o["t"] - t) < 1000]
    return {"ms": ms, "t": t, "near": near[:20]}


def summary(res):
    """The printed lines and whether the run passed."""
    lines, ok = [], True
    for f, st in res["families"].items():
        lines.append("%-19s sent %6d  right %6d  wrong %4d  reconnects %3d" % (
            f, st["sent"], st["right"], st["wrong"], st["reconnects"]))
        lines += ["    wrong: " + e for e in st["examples"]]
        ok &= st["wrong"] == 0
    lines.append("client frames breaking OCPP-J or the 1.6 schemas: %d" % len(
        res["client_problems"]))
    lines += ["    " + p for p in res["client_problems"][:EXAMPLES]]
    lines.append("task restarts: %s" % ("; ".join(res["restarts"][:5]) or "none"))
    rx = res["reactions"]
    if rx:
        p99 = bench_core.pct(rx, 99)
        lines.append("C->B -> open while fuzzing: n=%d  p50 %.2f ms  p99 %.2f ms  max %.2f ms  "
                     "(device clock, target p99 <= %d ms); after the fuzz: %s ms" % (
                         len(rx), statistics.median(rx), p99, max(rx), TARGET_P99_MS,
                         "none" if res["after"] is None else "%.2f" % res["after"]))
        ok &= p99 <= TARGET_P99_MS
        w = res.get("worst") or {}
        lines.append("    slowest at device t=%s ms; controller loop lag %s; log near it: %s" % (
            w.get("t"), res.get("lag"), "; ".join(map(str, w.get("near", [])))[:600]))
    else:
        lines.append("C->B -> open while fuzzing: no data (no charge cycle completed)")
        ok = False
    lines += ["charge cycle failed: " + e for e in res["cycle_errors"]]
    sent = sum(st["sent"] for st in res["families"].values())
    lines.append("%d cases in %.0f s (%d charge cycles, %d connections, firmware CALLs %s)" % (
        sent, res["seconds"], res["cycles"], res["connects"], res["calls"]))
    ok &= not res["client_problems"] and not res["restarts"] and not res["cycle_errors"]
    ok &= res["after"] is not None
    return lines, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10000, help="fuzz cases to send")
    ap.add_argument("--seed", type=int, help="random seed (default: a random one, printed)")
    ap.add_argument("--known-bugs", action="store_true",
                    help="also send the cases of known firmware bugs (%s)" % ", ".join(
                        gen.KNOWN_BUGS))
    ap.add_argument("--heapsize", help="the firmware's heap, e.g. 640k (default: the sim's)")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    skip = () if a.known_bugs else gen.KNOWN_BUGS
    left = "; known bugs left out: " + ", ".join(skip) if skip else ""
    print("ocpp fuzz: %d cases, seed %d (replay: python tools/ocpp_fuzz.py --frames %d "
          "--seed %d)%s" % (a.frames, seed, a.frames, seed, left), flush=True)
    res = run(a.frames, seed, skip=skip, heapsize=a.heapsize,
              log=lambda s: print(s, flush=True))
    lines, ok = summary(res)
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
