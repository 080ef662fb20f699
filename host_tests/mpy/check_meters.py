# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the S0
# interrupt handler under micropython.heap_lock() (it must not allocate), the meter task
# with a fake source in asyncio (burst log, stamp, fault, recovery, energy guard), the
# energy register on the unix port's filesystem, and the CT meter through drivers.kernels.
import asyncio
import math
import os
import time
from array import array

import micropython

from drivers import kernels
from firmware.meter import UNKNOWN, Reading
from firmware.meters.ct import CtMeter
from firmware.meters.energy import EnergyStore
from firmware.meters.s0 import S0Meter
from firmware.meters.task import MeterTask

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


class Pin:
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self):
        self.v = 1
        self.handler = None

    def irq(self, handler=None, trigger=0):
        self.handler = handler

    def value(self):
        return self.v


T = [1000]


def clock():
    return T[0]


try:
    os.mkdir("/tmp/wallbox-check-meters")
except OSError:
    pass
os.chdir("/tmp/wallbox-check-meters")
for name in os.listdir():
    os.remove(name)

# -- S0: the handler under heap_lock ------------------------------------------------------
store = EnergyStore("energy_s0", step_wh=10)
pin = Pin()
s0 = S0Meter(pin, 1000, store, clock=clock)
h = pin.handler
# leading edge + bounces, 31 ms on, release + a bounce (times in ms, the level after each)
edges = array("i", (0, 1, 2, 3, 4, 35, 36, 37))
levels = array("i", (0, 1, 0, 1, 0, 1, 0, 1))


def impulses(n):
    # in a function: locals, no new globals (a new global's dict slot would allocate)
    for k in range(n):
        t0 = 1000 + k * 100
        for j in range(len(edges)):  # (iterating the array itself would allocate)
            T[0] = t0 + edges[j]
            pin.v = levels[j]
            h(pin)


err = None
micropython.heap_lock()
try:
    impulses(100)
except MemoryError as e:
    err = e
micropython.heap_unlock()
check("S0 irq handler allocates nothing (heap locked)", err is None)
check("S0 counts 100 impulses through the bounces", s0.impulses == 100)

r = Reading()
T[0] = 1000 + 100 * 100
asyncio.run(s0.poll(r))
check("S0 energy 100 Wh at 1000 imp/kWh", r.energy_wh == 100)
check("S0 power from the interval (100 ms: 36 kW)", r.p_total_w == 36000)
check("S0 register on flash", EnergyStore("energy_s0").wh == 100)


# -- S0 counted by a hardware counter (ESP32 PCNT): the poll under heap_lock ------------------
class Counter:  # machine.Counter's value() as the esp32 port gives it: a small int
    def __init__(self):
        self.n = 0

    def value(self, v=None):
        return self.n


ctr = Counter()
s0c = S0Meter(Pin(), 1000, EnergyStore("energy_s0c", step_wh=10), clock=clock, counter=ctr)
rc = Reading()


def counted(n):
    for k in range(n):
        T[0] += 1000
        ctr.n += 3  # 3 Wh a second: 10.8 kW
        s0c._count(T[0])


counted(1)
err = None
micropython.heap_lock()
try:
    counted(30)
except MemoryError as e:
    err = e
micropython.heap_unlock()
check("S0 counter poll allocates nothing (heap locked)", err is None)
asyncio.run(s0c.poll(rc))
check("S0 counter: 93 Wh, 10.8 kW (ms stamps: +0.1 %)",
      rc.energy_wh == 93 and 10800 <= rc.p_total_w <= 10820)


# -- the task with a fake source ------------------------------------------------------------
class Timeout(Exception):
    kind = "timeout"


class Fake:
    def __init__(self):
        self.fail = False
        self.wh = 500

    async def poll(self, r):
        await asyncio.sleep_ms(1)
        if self.fail:
            raise Timeout("no reply")
        r.i_da[0] = 160
        r.i_da[1] = -30
        r.i_da[2] = UNKNOWN
        r.energy_wh = self.wh


logs = []
src = Fake()
rd = Reading()
task = MeterTask("ev", src, rd, period_ms=200, log=logs.append,
                 store=EnergyStore("energy_ev"))


async def drive():
    now = time.ticks_ms()
    await task.step(now)
    check("task stamps a good poll", rd.fresh(now) and rd.i_max_da == 160)
    src.fail = True
    for k in range(1, 7):
        await task.step(time.ticks_add(now, k * 1000))
    check("task logs the burst once", logs == ["meter ev: timeout (3 in a row since %s)" %
                                               task._burst_since])
    check("task fault after 5 s", task.fault == "meter ev: no reply for 6 s")
    check("stale reading is unknown", rd.current_da(time.ticks_add(now, 6000)) == -1)
    src.fail = False
    src.wh = 400  # backwards: rejected
    await task.step(time.ticks_add(now, 7000))
    check("task back: fault cleared", task.fault is None and
          "meter ev: back after 6 failures" in logs)
    check("energy never goes back", rd.energy_wh == 500 and task.rejected == 1)
    # run() itself: a few periods, never raising
    src.wh = 501
    t = asyncio.create_task(task.run())
    await asyncio.sleep_ms(450)
    t.cancel()
    check("run() polls every period", task.good >= 3 and rd.energy_wh == 501)


asyncio.run(drive())


# -- CT through the kernels (natmod or twin) ---------------------------------------------------
def burst(buf):
    for k in range(len(buf)):
        buf[k] = 2048 + int(1131 * math.sin(2 * math.pi * 50 * k / 4000))  # 16 A RMS


ct = CtMeter(burst, 1, 2048, 20000, 4000, 400, EnergyStore("energy_ct"), clock=clock)
rc = Reading()
asyncio.run(ct.poll(rc))
check("CT 16 A through %s" % kernels.IMPL, abs(rc.i_da[0] - 160) <= 1)
check("CT power 230 V x 16 A", abs(rc.p_total_w - 3680) <= 20)

print("DONE %d failed" % len(FAILS))
