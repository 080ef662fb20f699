# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it):
# the pure logic on MicroPython's integers and strings, and the safety path under
# micropython.heap_lock() to prove it does not allocate.
import time
from array import array

import micropython

from drivers.contactor import Contactor
from drivers.pilot import Pilot
from drivers.proximity import Proximity
from drivers.rcm import Rcm
from firmware import config
from firmware.charge import pilot as cp
from firmware.charge import proximity as pp
from firmware.charge.controller import ChargeController
from firmware.charge.session import CHARGING, Inputs, Session
from firmware.events import EventLog
from firmware.ticks import ticks_add

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


check("duty 16 A", cp.duty_for_amps(160) == 266)
check("duty 80 A", cp.duty_for_amps(800) == 960)
check("x1 below 6 A", cp.duty_for_amps(59) == cp.DUTY_X1)
check("classify C", cp.classify(6000, -12000, True, None) == cp.C)
check("diode", cp.classify(6000, -6000, True, None) == cp.DIODE)
check("gap keeps", cp.classify(7500, -12000, True, cp.B) == cp.B)
check("pp 680 ohm = 20 A", pp.type2_ampacity(680) == 200)
check("pp invalid", pp.type2_ampacity(50) == pp.INVALID and pp.type2_ampacity(5000) == 0)

# Session across the ticks wrap: start 200 ms before time.ticks_ms() wraps, so that B->C,
# the self-test and the closing (430 ms of steps) happen across it. check_wrap.py runs whole
# sessions, every phase across the wrap.
period = ticks_add(0, -1) + 1
t = period - 200
t0 = t
s = Session(320)
i = Inputs()
i.pp_da = 320
for state in ("A",) * 5 + ("B",) * 10 + ("C",) * 200:
    pwm = cp.is_pwm(s.act.duty)
    high = {"A": 12000, "B": 9000, "C": 6000}[state]
    i.pilot = cp.classify(high, -12000 if pwm else high, pwm, i.pilot)
    i.rcm_fault = s.act.rcm_test
    i.contactor_fb = s.act.close
    s.step(t, i)
    t = ticks_add(t, 2)
check("charging across the ticks wrap", s.act.status == CHARGING and s.act.close
      and 0 < t < t0)  # the clock wrapped


# The safety path with the heap locked: fake hardware that does not allocate.
class FakePin:
    def __init__(self, v=0):
        self.v = v

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


class FakePwm:
    def __init__(self):
        self.u16 = 0

    def duty_u16(self, v):
        self.u16 = v


class Burst:
    """Copies a prepared square wave; `level` picks the EV state's high plateau."""

    def __init__(self):
        self.waves = {}
        for st, mv in (("B", 9000), ("C", 6000)):
            w = array("H", bytes(256))
            for k in range(128):
                on = (k % 100) < 27
                mv_k = mv if on else -12000
                w[k] = (mv_k + 13500) * 1000 // 6592
            self.waves[st] = w
        self.state = "B"

    def __call__(self, buf):
        w = self.waves[self.state]
        for k in range(len(buf)):
            buf[k] = w[k]


class Board:
    name = "fake"
    pilot_period_ms = 2
    lock = None
    led = None
    def cp_high_mv(self):  # what the reflex's one CP sample reads
        return self.high_mv

    def __init__(self):
        self.high_mv = 6000
        self.burst = Burst()
        self.pilot = Pilot(FakePwm(), self.burst, 128, 100000, -13500, 6592)
        self.pp = Proximity(lambda: 3300 * 220 // 1220, 1000, 3300)
        self.coil = FakePin()
        self.mirror = FakePin()
        self.rcm_pin = FakePin()
        self.contactor = Contactor(self.coil, self.mirror)
        self.rcm = Rcm(self.rcm_pin, FakePin())


b = Board()
ctl = ChargeController(b, config.from_dict({"rating_a": 16}), EventLog(16))


TRIP = [0]


def run(n, t):
    for _ in range(n):
        b.mirror.v = b.coil.v
        b.rcm_pin.v = 1 if ctl.session.act.rcm_test or TRIP[0] else 0
        ctl.step(t)
        t = ticks_add(t, 2)
    return t


t = time.ticks_ms()
t = run(20, t)
b.burst.state = "C"
t = run(300, t)
check("fake board charging", ctl.session.act.close and ctl.session.act.status == CHARGING)
err = None
micropython.heap_lock()
try:
    t = run(500, t)  # steady charging
    b.burst.state = "B"  # the EV opens S2: detect, open, report - still no allocation
    t = run(20, t)
except MemoryError as e:
    err = e
micropython.heap_unlock()
check("safety path allocates nothing (heap locked): %r" % (err,), err is None)
check("C->B opened under heap lock", not ctl.session.act.close and b.coil.v == 0)

# A residual-current trip while charging: open, state F, Faulted - under the heap lock.
b.burst.state = "C"
t = run(3000, t)  # re-close spacing, self-test, close
check("charging again", ctl.session.act.close)
err = None
micropython.heap_lock()
try:
    TRIP[0] = 1
    t = run(200, t)
except MemoryError as e:
    err = e
micropython.heap_unlock()
check("RCM trip path allocates nothing: %r" % (err,), err is None)
act = ctl.session.act
check("RCM trip opened, Faulted", not act.close and act.status == "Faulted")


def fresh_charging():
    global b, ctl, t
    b = Board()
    ctl = ChargeController(b, config.from_dict({"rating_a": 16}), EventLog(16))
    TRIP[0] = 0
    t = run(20, time.ticks_ms())
    b.burst.state = "C"
    t = run(300, t)
    return ctl.session.act.close and b.coil.v == 1


def locked(fn):
    micropython.heap_lock()
    try:
        fn()
        return None
    except MemoryError as e:
        return e
    finally:
        micropython.heap_unlock()


# 3. A short RCM trip caught only by the interrupt: latched, never forgotten.
check("charging (irq)", fresh_charging())


def short_trip():
    global t
    b.rcm_pin.v = 1
    ctl._rcm_irq(b.rcm_pin)  # the edge interrupt
    b.rcm_pin.v = 0  # the fault output drops before the next step
    t = run(1, t)


err = locked(short_trip)
act = ctl.session.act
check("irq trip allocates nothing: %r" % (err,), err is None)
check("irq trip -> GroundFailure", act.status == "Faulted" and act.error == "GroundFailure")
t = run(3000, t)
check("no re-close after a short trip", b.coil.v == 0 and not act.close)

# 4. fail_safe() sticks: no later step closes the contactor again.
check("charging (fail-safe)", fresh_charging())
ctl.fail_safe()
closed = []
for _ in range(2000):
    t = run(1, t)
    if b.coil.v:
        closed.append(t)
act = ctl.session.act
check("fail-safe sticks: never re-closed", not closed and not act.close)
check("fail-safe reported", act.status == "Faulted" and act.error == "InternalError")

# The reflex: EV leaves C while the controller does not run; then heartbeat lost.
check("charging (reflex)", fresh_charging())
rf = ctl.reflex
check("reflex armed while closed", rf is not None and rf.armed)


def reflex_pilot():
    b.high_mv = 6000
    rf.tick()
    b.high_mv = 9000  # S2 opened: B
    rf.tick()
    rf.tick()


err = locked(reflex_pilot)
check("reflex tick allocates nothing: %r" % (err,), err is None)
check("reflex opened on B", b.coil.v == 0 and b.contactor.tripped == 1 and not rf.armed)
b.burst.state = "B"
t = run(1, t)
check("session took the reflex opening over", not ctl.session.act.close
      and b.contactor.tripped == 0 and ctl.session.act.status != "Faulted")
check("charging (beat)", fresh_charging() and ctl.reflex.armed)
ctl.reflex.tick()
check("beat fresh: stays closed", b.coil.v == 1)
ctl.last_step_ms = time.ticks_add(time.ticks_ms(), -2000)  # the controller went silent
ctl.reflex.tick()
check("beat lost: opened", b.coil.v == 0 and b.contactor.tripped == 3)

# Validated inputs: a bad value never reaches the PWM.
check("charging (inputs)", fresh_charging())
for bad in ("16", -1, None, float("nan"), True, 1e9):
    try:
        ctl.set_limit(bad, "x")
        check("set_limit(%r) refused" % (bad,), False)
    except ValueError:
        pass
t = run(5, t)
check("refused limit: no offer", ctl.session.act.offer_da == 0)
ctl.set_limit(10.5, "limit loop")
t = run(3000, t)
check("float limit as dA", ctl.session.act.offer_da == 105)
try:
    ctl.set_auth(1)
    check("set_auth(1) refused", False)
except ValueError:
    check("set_auth(1) refused: not authorised", not ctl.inputs.authorized)

print("DONE %d failed" % len(FAILS))
