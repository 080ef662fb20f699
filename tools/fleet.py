"""How many simulated wallboxes this machine runs at once against one dev CSMS with no missed
heartbeat and no safety-loop overrun.

    .venv/bin/python tools/fleet.py N [--seconds 60] [--heartbeat 10] [--heapsize 640k]
    .venv/bin/python tools/fleet.py --find [--seconds 30] [--max 32]

One dev CSMS (tools/csms.py, in a thread) answers every BootNotification with `interval` =
--heartbeat, so each box sends a Heartbeat that often. N simulated wallboxes (the real
firmware on the MicroPython unix port, each its own process with -X heapsize, charge point
ids FLEET001...) connect to it with free vend and run for --seconds while their EVs cycle:
S2 closes (charge), S2 opens (C->B: the contactor must open), a pause, and every third cycle
an unplug and a new plug (a new transaction). Per box:

- heartbeats: the arrival times of its Heartbeats at the CSMS (host clock) from its boot to
  the end of the run. The firmware sends one when `interval` has passed since the last, and
  looks at most once a second, so a healthy gap is interval .. interval + ~1 s. A gap longer
  than LIMIT = 1.5 x interval + 2 s (SLACK_S) is missed heartbeats: 1 + (gap - LIMIT) //
  interval of them. The gaps are boot -> first, each to the next, and last -> end of run (a
  box that falls silent at the end misses them too). The count the CSMS got is shown beside
  the least a healthy box sends, (end - boot) // (interval + POLL_S): each gap runs up to
  POLL_S = 1 s over the interval.
- overruns: the firmware's charge-controller step (2 ms grid) arriving later than the
  reflex's silence limit, BEAT_MS = 1.5 s (drivers/reflex.py): the reflex opening for
  "controller silent" (trip 3), the supervisor's fail-safe for a silent safety task (trip 5),
  a watchdog reset, a restart of the charge task - and, when none of these happened, a loop
  lag (the controller's own `stats`: how late a step ran against its grid) of BEAT_MS or
  more counts as one. The loop lag p99/max are printed too.
- C->B: S2 opening while the contactor was closed -> the open command, on the device clock.
- violations: the CSMS's schema / OCPP-J violations of that charge point.

A box that does not boot, stops, or does not follow its EV within a timeout fails the run
too. Verdict line: "fleet N=..: pass|FAIL (missed heartbeats .., overruns .., C->B max ..
ms, violations ..)". --find runs N = 1, 2, 4, 8, 12, 16, 24, 32, ... (to --max) until one
fails, halves the last step until the failing N is at most 2 above a passing one, and
prints the largest that passed. Exit status 0 when the run (with --find: N=1) passed.
"""
import argparse
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import simlib  # noqa: E402
from csms import CsmsError, CsmsThread  # noqa: E402

BEAT_MS = 1500  # drivers/reflex.py BEAT_MS: the controller silent this long -> reflex opens
SLACK_S = 2.0  # on top of 1.5 x interval: the 1 s send-loop poll plus a busy host
POLL_S = 1.0  # firmware/ocpp/cp.py: the send loop looks at the heartbeat at least once a second
TRIP_BEAT = 3  # firmware/charge/session.py TRIP_BEAT, TRIP_FAIL_SAFE
TRIP_FAIL_SAFE = 5
CONFIG = {"rating_a": 32, "max_current_a": 16, "reclose_ms": 1000, "reclose_error_ms": 1000,
          "free_vend": True}
HEAP = "640k"  # tools/sim.py HEAP_MPY: what the OCPP session needs plus room
CHARGE_S = 4.0  # one cycle: charge, C->B, pause
PAUSE_S = 2.0
REPLUG_EVERY = 3
FOLLOW_S = 30.0  # a box that does not close/open within this has failed


class FleetError(Exception):
    pass


# -- the rules ----------------------------------------------------------------------------
def heartbeat_limit(interval, slack=SLACK_S):
    """The longest gap (s) between heartbeats that misses none."""
    return 1.5 * interval + slack


def missed_heartbeats(start, beats, end, interval, slack=SLACK_S):
    """Heartbeats missed between `start` (boot accepted) and `end`, given their arrival
    times `beats` (seconds, any order; those outside start..end are ignored): each gap of
    [start, *beats, end] longer than heartbeat_limit() misses 1 + (gap - limit) // interval."""
    if interval <= 0:
        raise FleetError("heartbeat interval must be > 0, got %r" % (interval,))
    limit = heartbeat_limit(interval, slack)
    marks = [start] + sorted(t for t in beats if start < t <= end) + [end]
    missed = 0
    for a, b in zip(marks, marks[1:]):
        gap = b - a
        if gap > limit:
            missed += 1 + int((gap - limit) // interval)
    return missed


def longest_gap(start, beats, end):
    """The longest of the gaps missed_heartbeats() looks at (s)."""
    marks = [start] + sorted(t for t in beats if start < t <= end) + [end]
    return max(b - a for a, b in zip(marks, marks[1:]))


def expected_heartbeats(start, end, interval):
    """The fewest heartbeats a healthy box sends from start to end (each gap runs up to
    POLL_S over the interval)."""
    return max(0, int((end - start) // (interval + POLL_S)))


def overruns(obs, stats):
    """Safety-loop overruns of one box (see the module docstring)."""
    n = sum(1 for o in obs if o.get("k") == "event" and o.get("code") == "trip"
            and o.get("val") in (TRIP_BEAT, TRIP_FAIL_SAFE))
    n += sum(1 for o in obs if o.get("k") == "watchdog")
    n += (stats or {}).get("restarts", {}).get("charge", 0)
    if n == 0 and (stats or {}).get("lag_max", 0) >= BEAT_MS:
        n = 1
    return n


# -- one box ------------------------------------------------------------------------------
class Box:
    def __init__(self, cp_id, url, heapsize, seed):
        cfg = dict(CONFIG, ocpp={"url": url, "cp_id": cp_id})
        self.cp_id = cp_id
        self.sim = simlib.Sim(cfg, heapsize=heapsize)
        self.rnd = random.Random(seed)
        self.error = None
        self.cycles = 0
        self.stats = None

    def drive(self, deadline):
        """The EV's cycles until `deadline` (time.monotonic()); errors are kept, not
        raised (this runs in a thread)."""
        sim = self.sim
        try:
            sim.do("ev", auto=False)
            sim.do("plug")
            time.sleep(self.rnd.uniform(0, PAUSE_S))  # the boxes out of step
            while time.monotonic() + CHARGE_S + PAUSE_S < deadline:
                n = len(sim.obs)
                sim.do("s2", closed=True)
                sim.wait_for(simlib.contactor_cmd(True), FOLLOW_S, since=n)
                time.sleep(CHARGE_S)
                n = len(sim.obs)
                sim.do("s2", closed=False)
                sim.wait_for(simlib.is_open_cmd, FOLLOW_S, since=n)
                self.cycles += 1
                if self.cycles % REPLUG_EVERY == 0:
                    sim.do("unplug")
                    time.sleep(PAUSE_S / 2)
                    sim.do("plug")
                time.sleep(PAUSE_S)
        except (TimeoutError, RuntimeError, OSError) as e:
            self.error = "EV cycle %d: %s" % (self.cycles + 1, str(e).splitlines()[0][:200])

    def collect(self):
        if self.error is not None:
            return
        try:
            n = len(self.sim.obs)
            self.sim.do("stats")
            self.stats = self.sim.wait_for({"k": "stats"}, FOLLOW_S, since=n)
        except (TimeoutError, RuntimeError, OSError) as e:
            self.error = "stats: %s" % str(e).splitlines()[0][:200]

    def stop(self):
        try:
            self.sim.stop()
        except (TimeoutError, RuntimeError, OSError) as e:
            if self.error is None:
                self.error = "stop: %s" % str(e).splitlines()[0][:200]
        if "MemoryError" in self.sim.output():
            self.error = "out of memory (heap %s)" % self.sim.heapsize


def _each(boxes, fn, *args):
    threads = [threading.Thread(target=fn, args=(b,) + args, daemon=True) for b in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# -- a run of N boxes ---------------------------------------------------------------------
def run(n, seconds=60.0, heartbeat=10, heapsize=HEAP):
    """Run n boxes against one dev CSMS; a dict of the figures (see report())."""
    _, errors = simlib.build.compile_all(os.path.join(simlib.ROOT, "build", "mpy"))
    if errors:
        raise FleetError("mpy-cross failed: %s" % "; ".join(errors[:3]))
    boxes = []
    with CsmsThread(interval=heartbeat) as csms:
        try:
            for i in range(n):  # one after another: a start storm is not the steady state
                box = Box("FLEET%03d" % (i + 1), csms.url, heapsize, seed=i)
                boxes.append(box)
                try:
                    box.sim.start(timeout=60)
                except (TimeoutError, RuntimeError, OSError) as e:
                    box.error = "start: %s" % str(e).splitlines()[0][:200]
            live = [b for b in boxes if b.error is None]
            try:
                csms.wait_for(lambda: all(csms.accepted.get(b.cp_id) == "Accepted"
                                          for b in live), 60 + 2 * n)
            except CsmsError:  # each box without a boot is named below
                pass
            t_start = time.monotonic()
            t_end = t_start + seconds
            _each(live, Box.drive, t_end)
            time.sleep(max(0.0, t_end - time.monotonic()))  # heartbeats until the end
            _each(live, Box.collect)
        finally:
            _each(boxes, Box.stop)
        beats = list(csms.beats)
        violations = list(csms.violations)
    return _figures(boxes, beats, violations, t_end, heartbeat)


def _figures(boxes, beats, violations, t_end, heartbeat):
    rows = []
    for b in boxes:
        boot = [t for cp, a, t in beats if cp == b.cp_id and a == "BootNotification"]
        hb = [t for cp, a, t in beats if cp == b.cp_id and a == "Heartbeat"]
        error = b.error
        if not boot and error is None:
            error = "no BootNotification reached the CSMS"
        elif len(boot) > 1 and error is None:
            error = "booted %d times (a reset)" % len(boot)
        start = boot[0] if boot else t_end
        c2b = simlib.reactions_while_closed(b.sim.obs, simlib.is_s2_open)
        st = b.stats or {}
        rows.append({
            "cp": b.cp_id, "error": error, "cycles": b.cycles,
            "heartbeats": sum(1 for t in hb if start < t <= t_end),
            "expected": expected_heartbeats(start, t_end, heartbeat),
            "missed": missed_heartbeats(start, hb, t_end, heartbeat) if boot else 0,
            "gap": longest_gap(start, hb, t_end) if boot else 0.0,
            "overruns": overruns(b.sim.obs, b.stats),
            "lag_p99": st.get("lag_p99", -1), "lag_max": st.get("lag_max", -1),
            "c2b": c2b, "violations": sum(1 for v in violations if v["cp"] == b.cp_id)})
    c2b = [x for r in rows for x in r["c2b"]]
    out = {"n": len(boxes), "rows": rows,
           "missed": sum(r["missed"] for r in rows),
           "overruns": sum(r["overruns"] for r in rows),
           "violations": len(violations),
           "c2b_max": max(c2b) if c2b else 0.0, "c2b_n": len(c2b),
           "errors": [(r["cp"], r["error"]) for r in rows if r["error"]]}
    out["passed"] = not (out["missed"] or out["overruns"] or out["violations"]
                         or out["errors"])
    return out


def box_lines(res):
    return ["  %s: heartbeats %d (>= %d due, longest gap %.1f s), missed %d, overruns %d "
            "(loop lag p99 %d ms, max %d ms), C->B max %.1f ms over %d, violations %d%s" % (
                r["cp"], r["heartbeats"], r["expected"], r["gap"], r["missed"], r["overruns"],
                r["lag_p99"], r["lag_max"], max(r["c2b"]) if r["c2b"] else 0.0,
                len(r["c2b"]), r["violations"], "; " + r["error"] if r["error"] else "")
            for r in res["rows"]]


def lag_line(res):
    rows = [r for r in res["rows"] if r["lag_max"] >= 0]
    if not rows:
        return "  loop lag: no box reported it"
    return "  loop lag of the %d boxes: p99 worst %d ms, max %d ms (overrun at %d ms); %d C->B" \
        " reactions" % (len(rows), max(r["lag_p99"] for r in rows),
                        max(r["lag_max"] for r in rows), BEAT_MS, res["c2b_n"])


def verdict(res):
    return "fleet N=%d: %s (missed heartbeats %d, overruns %d, C->B max %.1f ms, " \
        "violations %d)" % (res["n"], "pass" if res["passed"] else "FAIL", res["missed"],
                            res["overruns"], res["c2b_max"], res["violations"])


def find_sizes(top):
    """1, 2, 4, 8, 12, 16, then every 8 up to `top` (and `top` itself)."""
    out = [x for x in (1, 2, 4, 8, 12, 16) if x < top]
    x = 24
    while x < top:
        out.append(x)
        x += 8
    return out + [top]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, help="how many simulated wallboxes")
    ap.add_argument("--seconds", type=float, default=None,
                    help="how long they run (default 60, 30 with --find)")
    ap.add_argument("--heartbeat", type=int, default=10, help="HeartbeatInterval, s")
    ap.add_argument("--heapsize", default=HEAP, help="each firmware's -X heapsize")
    ap.add_argument("--find", action="store_true", help="grow N until a run fails")
    ap.add_argument("--max", type=int, default=32, help="largest N --find tries")
    ap.add_argument("--verbose", action="store_true", help="a line per box for every N")
    a = ap.parse_args(argv)
    if a.find == (a.n is not None):
        ap.error("give N or --find (not both)")
    if a.n is not None and not 1 <= a.n <= 200:
        ap.error("N must be 1..200, got %d" % a.n)
    if not 1 <= a.max <= 200:
        ap.error("--max must be 1..200, got %d" % a.max)
    if a.heartbeat < 1:
        ap.error("--heartbeat must be >= 1 s, got %d" % a.heartbeat)
    seconds = a.seconds if a.seconds is not None else 30.0 if a.find else 60.0
    if seconds < 3 * a.heartbeat:
        ap.error("--seconds %g is too short for --heartbeat %d (>= 3 intervals)"
                 % (seconds, a.heartbeat))
    if not a.find:
        res = _measure(a.n, seconds, a)
        return 2 if res is None else 0 if res["passed"] else 1
    sizes = find_sizes(a.max)
    best, worst = 0, None
    for n in sizes:
        res = _measure(n, seconds, a)
        if res is None:
            return 2
        if not res["passed"]:
            worst = n
            break
        best = n
    while worst is not None and worst - best > 2:  # narrow the last step down
        n = (best + worst) // 2
        res = _measure(n, seconds, a)
        if res is None:
            return 2
        if res["passed"]:
            best = n
        else:
            worst = n
    print("fleet: largest N with no missed heartbeat and no overrun: %d%s" % (
        best, " (the --max tried)" if best == sizes[-1] else ""), flush=True)
    return 0 if best else 1


def _measure(n, seconds, a):
    """One run of n boxes with its lines printed; None after a FleetError (printed)."""
    print("fleet: %d simulated wallbox%s for %.0f s, heartbeat %d s ..." % (
        n, "es" if n > 1 else "", seconds, a.heartbeat), flush=True)
    try:
        res = run(n, seconds, a.heartbeat, a.heapsize)
    except FleetError as e:
        print("error: %s" % e, file=sys.stderr)
        return None
    lines = box_lines(res)
    if a.find and not a.verbose:  # only the boxes that failed
        lines = [x for x, r in zip(lines, res["rows"]) if r["missed"] or r["overruns"]
                 or r["violations"] or r["error"]]
    if lines:
        print("\n".join(lines))
    print(lag_line(res))
    print(verdict(res), flush=True)
    return res

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
