# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): a whole
# 1p -> 3p switch through the charge controller on fake hardware with a phase switch (stop,
# B, open, the 10 s pause, the phase coil, its mirror, closing again) and the limit loop's
# phase policy deciding on grid readings, both under micropython.heap_lock(): the safety
# path and the policy allocate nothing.
import time
from array import array

import micropython

from drivers.contactor import Contactor
from drivers.pilot import Pilot
from drivers.proximity import Proximity
from drivers.rcm import Rcm
from firmware import config
from firmware.charge import pilot as cp
from firmware.charge.controller import ChargeController
from firmware.charge.session import CHARGING
from firmware.events import EventLog
from firmware.limits import conf
from firmware.limits.arbiter import Arbiter
from firmware.limits.phases import PhasePolicy
from firmware.ticks import ticks_add, ticks_diff

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


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
    """A prepared square wave per EV state (B, C); `state` picks it."""

    def __init__(self):
        self.waves = {}
        for st, mv in (("B", 9000), ("C", 6000)):
            w = array("H", bytes(256))
            for k in range(128):
                mv_k = mv if (k % 100) < 27 else -12000
                w[k] = (mv_k + 13500) * 1000 // 6592
            self.waves[st] = w
        self.state = "B"

    def __call__(self, buf):
        w = self.waves[self.state]
        pwm = self.pwm.u16 != 65535
        for k in range(len(buf)):
            buf[k] = w[k] if pwm else w[0]


class Board:
    name = "fake"
    pilot_period_ms = 2
    lock = None
    led = None

    def __init__(self):
        self.burst = Burst()
        pwm = FakePwm()
        self.burst.pwm = pwm
        self.pilot = Pilot(pwm, self.burst, 128, 100000, -13500, 6592)
        self.pp = Proximity(lambda: 3300 * 220 // 1220, 1000, 3300)
        self.coil = FakePin()
        self.mirror = FakePin()
        self.rcm_pin = FakePin()
        self.contactor = Contactor(self.coil, self.mirror)
        self.rcm = Rcm(self.rcm_pin, FakePin())
        self.phase_coil = FakePin()
        self.phase_mirror = FakePin()
        self.phase_switch = Contactor(self.phase_coil, self.phase_mirror)


b = Board()
ctl = ChargeController(b, config.from_dict({"rating_a": 16, "limits": {"phase_pause_s": 10}}),
                       EventLog(16))
LOG = {"open": None, "switch": None, "under_load": 0}


def run(n, t):
    for _ in range(n):
        b.mirror.v = b.coil.v
        b.phase_mirror.v = b.phase_coil.v
        b.rcm_pin.v = 1 if ctl.session.act.rcm_test else 0
        pwm = b.pilot.duty != cp.DUTY_X1
        if not pwm and b.burst.state == "C":
            b.burst.state = "B"  # the EV answers the PWM stop at once
        elif pwm and b.burst.state == "B" and ctl.inputs.phases_req:
            b.burst.state = "C"
        coil = b.phase_coil.v
        closed = b.coil.v
        ctl.step(t)
        if b.phase_coil.v != coil:
            LOG["switch"] = t
            if closed or b.mirror.v:
                LOG["under_load"] += 1
        if closed and not b.coil.v:
            LOG["open"] = t
        t = ticks_add(t, 2)
    return t


t = time.ticks_ms()
t = run(6000, t)  # the pause from power-up passes (12 s default is 10 s here)
b.burst.state = "C"
t = run(400, t)
check("charging on one phase", ctl.session.act.status == CHARGING and ctl.phases == 1)


def switch_run(t):
    err = None
    micropython.heap_lock()
    try:
        ctl.set_phases(3)
        t = run(5600, t)  # stop, B, open, 10 s pause, switch, mirror, close again
    except Exception as e:  # noqa: BLE001 - reported after the lock is released
        err = e
    micropython.heap_unlock()
    return err, t


err, t = switch_run(t)
check("the switch allocates nothing (heap locked): %r" % (err,), err is None)
check("switched to three phases and charging again",
      ctl.phases == 3 and ctl.session.act.status == CHARGING and b.coil.v == 1)
check("never switched under load", LOG["under_load"] == 0)
check("the pause: %d ms" % ticks_diff(LOG["switch"], LOG["open"]),
      10000 <= ticks_diff(LOG["switch"], LOG["open"]) <= 10100)

# The policy: grid readings in, a phase count out, allocation-free.
def policy_run():
    s = conf.check({"main_fuse_a": 20, "phase_up_s": 10, "phase_down_s": 10,
                    "phase_min_s": 60, "phase_ignore_s": 20})
    a = Arbiter(s, 32, 32, 1)
    p = PhasePolicy(s, 1)
    now = 0
    switches = 0
    err = None
    micropython.heap_lock()
    try:
        for k in range(3000):
            now += 700
            h2 = 160 if (k // 300) % 2 else 40  # L2's load: 3 phases fit, then not
            a.grid(now, 50, h2, 30, 0, 0, 0, (80 + h2) * 23, 0, 5000, 230)
            a.decide(now)
            n = p.decide(now, a, True)
            if n != a.phases:
                a.set_phases(n)
                switches += 1
    except Exception as e:  # noqa: BLE001 - reported after the lock is released
        err = e
    micropython.heap_unlock()
    return err, switches


err, switches = policy_run()
check("policy decisions allocate nothing (heap locked): %r" % (err,), err is None)
check("the policy switched %d times (4 max per session)" % switches, switches == 4)
print("DONE %d failed" % len(FAILS))
