# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the limit
# arbiter decides on the port as on CPython, and a decision (a grid reading in, the offer out)
# allocates nothing: each runs under micropython.heap_lock().
import time

import micropython

from firmware.limits import conf
from firmware.limits.arbiter import FUSE, OCPP, Arbiter

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


def run(mode, steps):
    a = Arbiter(conf.check({"main_fuse_a": 25, "total_a": 60, "mode": mode,
                            "freq_response": True}), 32, 32, 3)
    a.put(OCPP, 200, 0)
    out = []
    err = None
    now = 0
    da = 0
    for k in range(steps):
        now += 700
        house = 100 + (k * 37) % 150
        g = house + da
        pv = 30000 if (k // 400) % 2 else (k * 911) % 3000  # 280 s sun, 280 s clouds
        ev_w = 3 * da * 23
        micropython.heap_lock()
        try:
            a.grid(now, g, g, g, da, da, da, 3 * g * 23 - pv, ev_w, 4990 - k % 40, 230)
            da = a.decide(now, 100000 + k, k & 0xFFFF)
        except Exception as e:  # noqa: BLE001 - reported after the lock is released
            err = e
        micropython.heap_unlock()
        if err is not None:
            break
        out.append(da)
    return a, out, err


for mode in ("fast", "pv", "minpv"):
    a, out, err = run(mode, 2000)
    check("%s: 2000 decisions under heap_lock allocate nothing (%r)" % (mode, err),
          err is None and len(out) == 2000)
    check("%s: never above the fuse headroom" % mode, max(out) <= 250)
    check("%s: it charged and the offer moved (%d..%d dA)" % (mode, min(out), max(out)),
          max(out) >= 60 and min(out) < max(out))
    check("%s: the fuse slot was read" % mode, a.st[FUSE] == 1)

# Grid and EV readings out of step (docs/limits.md): the house spike's decrease, then a grid
# reading that still holds the EV's old 16 A: 6 A, not a pause, and nothing allocated.
a = Arbiter(conf.check({"main_fuse_a": 25}), 32, 32, 3)
a.put(OCPP, 160, 0)
steps = ((0, 180, 160), (10000, 310, 160), (10500, 310, 100), (11000, 210, 60))
lag = []
err = None
for now, l2, ev in steps:
    micropython.heap_lock()
    try:
        a.grid(now, 180, l2, 190, ev, ev, ev, 3 * 200 * 23, 3 * ev * 23, 5000, 230)
        da = a.decide(now)
    except Exception as e:  # noqa: BLE001 - reported after the lock is released
        err = e
    micropython.heap_unlock()
    if err is not None:
        break
    lag.append(da)
check("out-of-step reading: 16 -> 10 -> 6 A, no pause, no allocation (%r %r)" % (lag, err),
      err is None and lag == [160, 100, 60, 60])

# The board's own inputs on the port (docs/limits.md "Board inputs"): the DSO contact and the
# temperature sensor, read by the loop.
from firmware.limits.loop import Limits  # noqa: E402


class _Ctl:
    inputs = None

    def __init__(self):
        self.calls = []

    def set_limit(self, amps, reason):
        self.calls.append((amps, reason))


class _Board:
    relay = False
    temp = 40.0

    def dso_relay(self):
        return self.relay

    def temperature_c(self):
        return self.temp


bd = _Board()
ctl = _Ctl()
lim = Limits(ctl, 32, log=lambda m: None, board=bd)
lim.apply(1000)
bd.relay = True
lim.apply(1500)
check("dso contact dimmed: the 4.2 kW floor (%r)" % (ctl.calls[-1],), ctl.calls[-1][0] == 6.1)
bd.relay = None
lim.apply(2000)
check("dso contact lost: the fail-safe floor (%r)" % (ctl.calls[-1],),
      ctl.calls[-1] == (6.1, "dso dimming (input stale or bad: fallback)"))
bd.relay = False
bd.temp = 72.5
lim.apply(7000)
check("a hot board derates (%r)" % (ctl.calls[-1],),
      ctl.calls[-1] == (16, "thermal: board at 72 C"))

# UK local time on the port (big ints on a 32-bit build): both 2026 transitions.
from firmware.limits import rules  # noqa: E402

spring = 1774746000  # 2026-03-29 01:00:00 UTC
autumn = 1792890000  # 2026-10-25 01:00:00 UTC
check("uk_offset_s at both transitions", (rules.uk_offset_s(spring - 1), rules.uk_offset_s(
    spring), rules.uk_offset_s(autumn - 1), rules.uk_offset_s(autumn)) == (0, 3600, 3600, 0))

# The owner's peak hours parse on the port (str.isdigit, split) as on CPython.
from firmware.limits import conf  # noqa: E402,F811

check("peak_hours text", (conf.peak_mask("8-11,16-22"), conf.peak_mask(" 17 - 20 "),
                          conf.peak_mask("8-25"), conf.check({"peak_hours": "0-24"})[
                              "peak_mask"]) == (rules.UK_PEAK_MASK, 0xE0000, None, 0xFFFFFF))

# The lock does catch an allocation (so the checks above can fail). `caught` exists before
# the lock: a new global name can grow the module's dict, itself an allocation (it did on
# the emulated Cortex-M3, where the MemoryError escaped the except clause).
caught = False
micropython.heap_lock()
try:
    x = [1, 2, 3]
except MemoryError:
    caught = True
micropython.heap_unlock()
check("heap_lock catches an allocation", caught)

# Time per decision on this port (a figure for docs/limits.md).
a = Arbiter(conf.check({"main_fuse_a": 25, "mode": "pv"}), 32, 32, 3)
t0 = time.ticks_us()
for k in range(1000):
    a.grid(k * 500, 200, 200, 200, 100, 100, 100, 3000, 2000, 5000, 230)
    a.decide(k * 500)
print("per decision: %d us" % (time.ticks_diff(time.ticks_us(), t0) // 1000))

print("DONE %d failed" % len(FAILS))
