# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the
# supervisor's hang detection with real asyncio tasks on the device clock (time.ticks_ms).
# A safety task that stops beating (alive, but silent) makes it fail safe and stop feeding
# the watchdog; a silent non-safety task is cancelled and restarted while the watchdog is
# fed on. Times are read on the device clock; the lower bounds are the rule, the upper bounds
# only say "at the next check" with room for a loaded machine.
import asyncio
import time

from firmware.events import EventLog
from firmware.supervisor import Supervisor

FAILS = []
CHECK_MS = 250  # supervisor._CHECK_MS: how often it looks
HANG_MS = 300  # the tasks' max_age_ms here


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


class Wdt:
    def __init__(self):
        self.feeds = []

    def feed(self):
        self.feeds.append(time.ticks_ms())


class Beating:
    """A task that beats every 10 ms for `live_ms` after each start, then hangs silently."""

    def __init__(self, live_ms):
        self.live_ms = live_ms
        self.last = time.ticks_ms()
        self.starts = []
        self.silent = []  # the last beat before each hang

    def beat(self):
        return self.last

    async def run(self):
        t0 = time.ticks_ms()
        self.starts.append(t0)
        while time.ticks_diff(time.ticks_ms(), t0) < self.live_ms:
            self.last = time.ticks_ms()
            await asyncio.sleep_ms(10)
        self.silent.append(self.last)
        await asyncio.Event().wait()  # alive, never beats again


def world(ctl_live_ms, net_live_ms, run_ms):
    wdt = Wdt()
    opened = []
    events = EventLog(16)
    sup = Supervisor(wdt, lambda: opened.append(time.ticks_ms()), log=lambda m: None,
                     events=events)
    ctl, net = Beating(ctl_live_ms), Beating(net_live_ms)
    sup.add("charge", ctl.run, safety=True, beat=ctl.beat, max_age_ms=HANG_MS)
    sup.add("net", net.run, beat=net.beat, max_age_ms=HANG_MS)

    async def main():
        tasks = sup.start()
        runner = asyncio.create_task(sup.run())
        await asyncio.sleep_ms(run_ms)
        runner.cancel()
        for t in sup.tasks:
            if t.task is not None:
                t.task.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.sleep_ms(0)

    asyncio.run(main())
    return sup, wdt, opened, ctl, net, events


# 1. The network task hangs after 200 ms; the charge controller beats on.
sup, wdt, opened, ctl, net, events = world(10000, 200, 2000)
check("silent non-safety task restarted (%d starts)" % len(net.starts), len(net.starts) >= 2)
gap = time.ticks_diff(net.starts[1], net.silent[0]) if len(net.starts) > 1 else -1
check("restarted only after %d ms of silence: %d ms" % (HANG_MS, gap),
      HANG_MS < gap <= HANG_MS + CHECK_MS + 500)
check("restart reported", sup.tasks[1].restarts >= 1
      and ("task restart" in [c for _, c, _ in events.last()]))
check("no fail-safe for a non-safety task", not opened and sup.failed is None)
check("watchdog fed throughout (%d feeds)" % len(wdt.feeds),
      len(wdt.feeds) >= 2000 // CHECK_MS - 2
      and time.ticks_diff(time.ticks_ms(), wdt.feeds[-1]) <= CHECK_MS + 500)

# 2. The charge controller hangs after 400 ms (alive, silent): fail safe, stop feeding.
sup, wdt, opened, ctl, net, events = world(400, 10000, 2000)
check("silent safety task: fail-safe once", len(opened) == 1)
after = time.ticks_diff(opened[0], ctl.silent[0]) if opened else -1
check("failed only after %d ms of silence: %d ms" % (HANG_MS, after),
      HANG_MS < after <= HANG_MS + CHECK_MS + 500)
check("failure says why: %r" % (sup.failed,),
      sup.failed is not None and "charge" in sup.failed and "silent" in sup.failed)
check("watchdog no longer fed after the failure",
      opened and all(time.ticks_diff(f, opened[0]) < 0 for f in wdt.feeds))
check("the safety task is not restarted", len(ctl.starts) == 1)

print("DONE %d failed" % len(FAILS))
