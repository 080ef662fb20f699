# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the real
# board files (boards/esp32_wallbox, boards/stm32_wallbox) built on fake `machine` / `pyb`
# modules put into sys.modules, a whole session through the charge controller, and the
# board's part of the safety path (CP burst, PP read, PWM duty) under micropython.heap_lock().
import sys
import time

import micropython

from firmware import config
from firmware.charge.controller import ChargeController
from firmware.events import EventLog
from firmware.ticks import ticks_add

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


# -- the documented analog front end (docs/boards.md), computed once outside the heap lock --
_R1, _R2, _R3 = 100000, 20000, 15000
_LEVELS = (12000, 9000, 6000, 3000, -12000)


def _node_mv(cp_mv):
    g = 1 / _R1 + 1 / _R2 + 1 / _R3
    return (cp_mv / _R1 + 3300 / _R2) / g


CODES_U16 = {}  # CP mV -> ESP32 read_u16() code (3.3 V full scale)
CODES_12 = {}  # CP mV -> STM32 12-bit code
CODES_UV = {}  # CP mV -> ESP32 read_uv() at the pin
for _mv in _LEVELS:
    CODES_U16[_mv] = int(_node_mv(_mv) * 65535 / 3300)
    CODES_12[_mv] = int(_node_mv(_mv) * 4096 / 3300)
    CODES_UV[_mv] = int(_node_mv(_mv) * 1000)


class W:  # the world the fakes see
    high = 12000  # CP high plateau: 12 V open, 9 V B, 6 V C
    rcm = 0  # the module answering its self-test
    trip = 0  # a real residual-current trip
    pp_mv = 3300
    cp_adc_pin = None
    rcm_pin = None
    out = None  # the CP output: an object with .u16()


PINS = {}
TIMERS = {}


def plug_cable(ohms):
    W.pp_mv = 3300 if ohms is None else 3300 * ohms // (ohms + 1000)


def cp_mv_at(t_us):
    u16 = W.out.u16()
    if u16 >= 65535 or t_us < u16 * 1000 // 65535:
        return W.high
    return -12000


class Pin:
    IN, OUT = 1, 2
    PULL_UP, PULL_DOWN = 1, 2
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, pid, mode=None, pull=None, value=None):
        self.id = pid
        self.v = 0 if value is None else value
        self.handler = None
        PINS[pid] = self

    def value(self, v=None):
        if v is None:
            if self.id == W.rcm_pin:
                return 1 if W.rcm or W.trip else 0
            return self.v
        self.v = v

    def irq(self, handler=None, trigger=None, hard=False):
        self.handler = handler


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


def _reset():
    pass


class PWM:  # ESP32 LEDC
    def __init__(self, pin, freq=None, duty_u16=None, invert=False):
        self.freq = freq
        self._u16 = duty_u16
        self.init_u16 = duty_u16
        W.out = self

    def duty_u16(self, v=None):
        if v is None:
            return self._u16
        self._u16 = v

    def u16(self):
        return self._u16


class ADC:  # ESP32: one read at a time, ~35 us apart
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.id = pin.id
        self.n = 0

    def read_u16(self):
        self.n += 1
        return CODES_U16[cp_mv_at(self.n * 35 % 1000)]

    def read_uv(self):
        if self.id == W.cp_adc_pin:
            self.n += 1
            return CODES_UV[cp_mv_at(self.n * 35 % 1000)]
        return W.pp_mv * 1000


class machine:
    Pin = Pin
    PWM = PWM
    ADC = ADC
    WDT = WDT
    reset = _reset


class Channel:
    def __init__(self, timer, pulse_width_percent):
        self.top = timer.period() + 1
        self.cmp = self.top * pulse_width_percent // 100
        W.out = self

    def pulse_width(self, w):
        self.cmp = w

    def u16(self):
        return 65535 if self.cmp >= self.top else self.cmp * 65535 // self.top


class Timer:
    PWM = 0

    def __init__(self, n, freq=None):
        self.n = n
        self.freq = freq
        self._period = 84000000 // freq // 2 - 1 if freq < 2000 else 84000000 // freq - 1

    def period(self):
        return self._period

    def callback(self, fn):
        self.cb = fn
        TIMERS[self.n] = self

    def channel(self, k, mode, pin=None, pulse_width_percent=None):
        return Channel(self, pulse_width_percent)


class PybADC:
    def __init__(self, pin):
        self.id = pin.id

    def read(self):
        if self.id == W.cp_adc_pin:  # one conversion at the PWM's rising edge: the high level
            return CODES_12[W.high]
        return W.pp_mv * 4095 // 3300

    def read_timed(self, buf, timer):
        step = 1000000 // timer.freq
        for i in range(len(buf)):
            buf[i] = CODES_12[cp_mv_at(i * step % 1000)]
        return len(buf)


class pyb:
    Pin = Pin
    Timer = Timer
    ADC = PybADC


sys.modules["machine"] = machine
sys.modules["pyb"] = pyb


class Rig:
    """One board under test (plain attributes: a closure over many names would allocate
    when called, and the heap-locked part must measure the firmware, not the harness)."""

    def __init__(self, mod, board, ctl):
        self.ctl = ctl
        self.coil = PINS[mod.CONTACTOR_PIN]
        self.mirror = PINS[mod.MIRROR_PIN]
        self.on = mod.CONTACTOR_ON

    def run(self, n, t):
        ctl = self.ctl
        for _ in range(n):
            W.rcm = 1 if ctl.session.act.rcm_test else 0  # the module answers its self-test
            self.mirror.v = 1 if self.coil.v == self.on else 0
            ctl.step(t)
            t = ticks_add(t, 10)
        return t


def session(name):
    PINS.clear()
    W.high = 12000
    W.rcm = W.trip = 0
    plug_cable(None)
    mod = __import__("boards.%s.board" % name, None, None, ["build"])
    W.cp_adc_pin = mod.CP_ADC_PIN
    W.rcm_pin = mod.RCM_FAULT_PIN
    b = mod.build()
    check("%s: CP starts at +12 V (x1)" % name, W.out.u16() == 65535)
    cfg = config.from_dict({"rating_a": 16, "reclose_ms": 1000})
    ctl = ChargeController(b, cfg, EventLog(16))
    rig = Rig(mod, b, ctl)
    coil = rig.coil
    t = rig.run(20, time.ticks_ms())
    check("%s: state A, Available" % name, ctl.session.act.status == "Available")
    plug_cable(220)
    W.high = 9000
    t = rig.run(50, t)
    u16 = W.out.u16()
    check("%s: 16 A offered as 26.6 %% PWM (%d)" % (name, u16), abs(u16 - 17476) <= 70)
    W.high = 6000
    t = rig.run(300, t)
    act = ctl.session.act
    check("%s: charging, coil on" % name, act.close and act.status == "Charging"
          and coil.v == mod.CONTACTOR_ON)
    err = None
    micropython.heap_lock()
    try:
        t = rig.run(200, t)  # steady charging: burst, analysis, PP, session, outputs
        W.high = 9000  # the EV opens S2
        t = rig.run(20, t)
        b.pilot.set_duty(0)
        b.pilot.set_duty(266)
        b.pilot.set_duty(1000)
    except MemoryError as e:
        err = e
    micropython.heap_unlock()
    check("%s: board safety path allocates nothing: %r" % (name, err), err is None)
    check("%s: C->B opened the coil" % name, coil.v != mod.CONTACTOR_ON)
    # An RCM trip reaches the coil from the pin interrupt, heap locked.
    W.high = 6000
    t = rig.run(400, t)
    check("%s: charging again" % name, ctl.session.act.close)
    rcm = PINS[mod.RCM_FAULT_PIN]
    err = None
    opened_by_irq = False
    micropython.heap_lock()
    try:
        W.trip = 1
        rcm.handler(rcm)
        opened_by_irq = coil.v != mod.CONTACTOR_ON
        t = rig.run(10, t)
    except MemoryError as e:
        err = e
    micropython.heap_unlock()
    check("%s: RCM IRQ opened the coil, no allocation: %r" % (name, err),
          err is None and opened_by_irq)
    check("%s: RCM trip Faulted" % name, ctl.session.act.status == "Faulted")
    if getattr(b, "start_reflex", None) is None:  # the controller probed the board (None)
        return
    # The reflex in the CP timer's hard interrupt: the EV leaves C while no step runs.
    W.trip = 0
    W.high = 9000
    t = rig.run(100, t)  # the fault clears on unplug; re-plug
    W.high = 12000
    plug_cable(None)
    t = rig.run(50, t)
    plug_cable(220)
    W.high = 9000
    t = rig.run(50, t)
    W.high = 6000
    t = rig.run(3000, t)
    check("%s: charging (reflex)" % name, ctl.session.act.close and ctl.reflex.armed)
    b.start_reflex(ctl.reflex)
    irq = TIMERS[mod.CP_TIMER].cb
    err = None
    micropython.heap_lock()
    try:
        irq(None)
        closed_before = coil.v == mod.CONTACTOR_ON
        W.high = 9000  # S2 opens; the controller does not step
        irq(None)
        irq(None)
    except MemoryError as e:
        err = e
    micropython.heap_unlock()
    check("%s: reflex IRQ opened the coil on B, no allocation: %r" % (name, err),
          err is None and closed_before and coil.v != mod.CONTACTOR_ON
          and b.contactor.tripped == 1)
    t = rig.run(5, t)
    check("%s: session took the reflex opening over" % name,
          not ctl.session.act.close and b.contactor.tripped == 0)
    b.stop_reflex()


session("esp32_wallbox")
session("stm32_wallbox")
print("DONE %d failed" % len(FAILS))
