"""The real board files (boards/esp32_wallbox, boards/stm32_wallbox) on CPython, with fake
`machine`, `pyb` and `esp32` modules that record every call and model the CP front end
(divider + ADC) as docs/boards.md describes it. The fakes know nothing of the boards'
calibration constants: the test derives the expected ADC codes from the documented circuit."""
import importlib
import os
import re
import sys
import time
import types

import pytest

from firmware import boardcaps, config
from firmware.charge import pilot as cp
from firmware.charge.controller import ChargeController
from firmware.events import EventLog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = ("esp32_wallbox", "stm32_wallbox")

# The documented CP divider: CP -R1- node -R2- 3V3, node -R3- GND.
_R1, _R2, _R3 = 100e3, 20e3, 15e3
_G = 1 / _R1 + 1 / _R2 + 1 / _R3


def node_volts(cp_mv):
    return (cp_mv / 1000 / _R1 + 3.3 / _R2) / _G


class Hw:
    """The world the fakes see: EV pilot level, PP resistance, RCM, mirror contact."""

    def __init__(self):
        self.ev_high_mv = 12000  # high plateau: 12 V open, 9 V (B), 6 V (C)
        self.diode = True
        self.pp_ohms = None  # None: no cable
        self.rcm_fault = 0
        self.calls = []  # (what, args) in order
        self.pins = {}  # id -> FakePin
        self.pwms = []
        self.adcs = {}  # pin id -> ADC
        self.pwm_duty_u16 = None  # what the CP output drives now (callable -> u16)

    def rec(self, what, *args, **kw):
        self.calls.append((what, args, kw))

    def cp_mv_at(self, t_us):
        """CP line voltage at t_us into the PWM period."""
        u16 = self.pwm_duty_u16()
        on_us = u16 * 1000 // 65535
        if t_us % 1000 < on_us:
            return self.ev_high_mv
        if u16 >= 65535:
            return self.ev_high_mv
        return -12000 if self.diode else -self.ev_high_mv


# -- fake modules -------------------------------------------------------------------------------


def make_fakes(hw):
    class Pin:
        IN, OUT, OPEN_DRAIN = 1, 2, 3  # no OUT_PP: legacy, gone in MicroPython 2
        PULL_UP, PULL_DOWN = 1, 2
        IRQ_RISING, IRQ_FALLING = 1, 2

        def __init__(self, pid, mode=None, pull=None, value=None):
            self.id = pid
            self.mode = mode
            self.pull = pull
            self.v = 0 if value is None else value
            self.init_value = value
            self.irq_handler = None
            self.writes = []
            hw.pins[pid] = self
            hw.rec("Pin", pid, mode=mode, pull=pull, value=value)

        def value(self, v=None):
            if v is None:
                if self.id == hw.rcm_pin:
                    return hw.rcm_fault
                return self.v
            self.v = v
            self.writes.append(v)

        def irq(self, handler=None, trigger=None, hard=False):
            self.irq_handler = handler
            self.irq_trigger = trigger
            self.irq_hard = hard
            hw.rec("irq", self.id, trigger=trigger)

    class WDT:
        def __init__(self, id=0, timeout=5000):
            self.timeout = timeout
            self.fed = 0
            hw.rec("WDT", timeout=timeout)

        def feed(self):
            self.fed += 1

    def reset():
        hw.rec("reset")

    # machine (ESP32 flavour: LEDC PWM, ADC with read_u16/read_uv)
    class PWM:
        def __init__(self, pin, freq=None, duty_u16=None, invert=False):
            self.pin = pin
            self.freq = freq
            self.u16 = duty_u16
            self.init_duty_u16 = duty_u16
            self.history = []
            hw.pwms.append(self)
            hw.pwm_duty_u16 = lambda: self.u16
            hw.rec("PWM", pin.id, freq=freq, duty_u16=duty_u16)

        def duty_u16(self, v=None):
            if v is None:
                return self.u16
            self.u16 = v
            self.history.append(v)

    class ADC:
        ATTN_11DB = 3
        sample_us = 35  # a real ESP32 read in a Python loop

        def __init__(self, pin, atten=None):
            self.pin = pin
            self.atten = atten
            self.reads = 0
            self.t_us = 0
            hw.adcs[pin.id] = self
            hw.rec("ADC", pin.id, atten=atten)

        def _volts(self):
            if self.pin.id == hw.cp_adc_pin:
                self.t_us += self.sample_us
                return node_volts(hw.cp_mv_at(self.t_us))
            r = hw.pp_ohms
            return 3.3 if r is None else 3.3 * r / (r + 1000)

        def read_u16(self):
            self.reads += 1
            return min(65535, int(self._volts() / 3.3 * 65535))

        def read_uv(self):
            self.reads += 1
            return int(min(self._volts(), 3.1) * 1e6)  # saturates near 3.1 V at 11 dB

    machine = types.ModuleType("machine")
    machine.Pin, machine.PWM, machine.ADC = Pin, PWM, ADC
    machine.WDT, machine.reset = WDT, reset

    # pyb (STM32 flavour: timer PWM channels, timed ADC)
    class Channel:
        def __init__(self, timer, n, mode, pin, pulse_width_percent):
            self.timer = timer
            self.n = n
            self.mode = mode
            self.pin = pin
            top = timer.period() + 1
            self.cmp = top if pulse_width_percent >= 100 else top * pulse_width_percent // 100
            self.init_cmp = self.cmp
            self.history = []
            hw.pwm_duty_u16 = lambda: 65535 if self.cmp >= top else self.cmp * 65535 // top
            hw.rec("channel", timer.n, n, mode, pin=pin.id,
                   pulse_width_percent=pulse_width_percent)

        def pulse_width(self, w=None):
            if w is None:
                return self.cmp
            self.cmp = w
            self.history.append(w)

    class Timer:
        PWM = "PWM"

        def __init__(self, n, freq=None):
            self.n = n
            self.freq = freq
            # ports/stm32/timer.c compute_prescaler_period_from_freq (84 MHz on APB1):
            # divide by 5, then 3, then 2 until the period fits 16 bits.
            period, pre = 84000000 // freq, 1
            while period > 0xFFFF:
                if period % 5 == 0:
                    pre, period = pre * 5, period // 5
                elif period % 3 == 0:
                    pre, period = pre * 3, period // 3
                else:
                    pre, period = pre * 2, period >> 1
            self.prescaler = pre - 1
            self._period = period - 1
            hw.rec("Timer", n, freq=freq)

        def period(self):
            return self._period

        def channel(self, n, mode, pin=None, pulse_width_percent=None):
            return Channel(self, n, mode, pin, pulse_width_percent)

    class PybADC:
        def __init__(self, pin):
            self.pin = pin
            self.reads = 0
            hw.adcs[pin.id] = self
            hw.rec("ADC", pin.id)

        def _code(self, volts):
            return max(0, min(4095, int(volts / 3.3 * 4096)))

        def read(self):
            r = hw.pp_ohms
            return self._code(3.3 if r is None else 3.3 * r / (r + 1000))

        def read_timed(self, buf, timer):
            hw.rec("read_timed", len(buf), timer=timer)
            step = 1000000 // timer.freq
            for i in range(len(buf)):
                buf[i] = self._code(node_volts(hw.cp_mv_at(i * step)))
                self.reads += 1
            return len(buf)

    pyb = types.ModuleType("pyb")
    pyb.Pin, pyb.Timer, pyb.ADC = Pin, Timer, PybADC
    pyb.LED = None
    esp32 = types.ModuleType("esp32")
    return machine, pyb, esp32


@pytest.fixture
def ticks(monkeypatch):
    for name, fn in (
        ("ticks_ms", lambda: int(time.monotonic() * 1000)),
        ("ticks_us", lambda: int(time.monotonic() * 1e6)),
        ("ticks_diff", lambda a, b: a - b),
        ("ticks_add", lambda a, b: a + b),
        ("sleep_ms", lambda ms: None),
    ):
        monkeypatch.setattr(time, name, fn, raising=False)


@pytest.fixture(params=BOARDS)
def rig(request, monkeypatch, ticks):
    """(module, board, hw) for each real board, built on fresh fakes."""
    hw = Hw()
    machine, pyb, esp32 = make_fakes(hw)
    for name, mod in (("machine", machine), ("pyb", pyb), ("esp32", esp32)):
        monkeypatch.setitem(sys.modules, name, mod)
    modname = "boards.%s.board" % request.param
    monkeypatch.delitem(sys.modules, modname, raising=False)
    mod = importlib.import_module(modname)
    hw.cp_adc_pin = mod.CP_ADC_PIN
    hw.rcm_pin = mod.RCM_FAULT_PIN
    board = mod.build()
    yield mod, board, hw
    sys.modules.pop(modname, None)


def _cp_output_u16(hw):
    return hw.pwm_duty_u16()


# -- the tests ----------------------------------------------------------------------------------


def test_cp_pwm_is_1khz_and_starts_in_the_safe_state(rig):
    mod, board, hw = rig
    if mod.NAME == "esp32_wallbox":
        (pwm,) = hw.pwms
        assert pwm.pin.id == mod.CP_PWM_PIN
        assert pwm.freq == 1000
        assert pwm.init_duty_u16 == 65535  # given in the constructor: x1 from the first edge
    else:
        timers = [c for c in hw.calls if c[0] == "Timer"]
        chans = [c for c in hw.calls if c[0] == "channel"]
        assert ("Timer", (mod.CP_TIMER,), {"freq": 1000}) in timers
        (ch,) = chans
        assert ch[1][0] == mod.CP_TIMER and ch[1][1] == mod.CP_CHANNEL and ch[1][2] == "PWM"
        assert ch[2]["pin"] == mod.CP_PWM_PIN and ch[2]["pulse_width_percent"] == 100
    assert _cp_output_u16(hw) == 65535  # +12 V constant
    # The coil was created off before the CP output existed.
    order = [c[1][0] for c in hw.calls if c[0] == "Pin"]
    assert order.index(mod.CONTACTOR_PIN) < order.index(mod.CP_PWM_PIN)
    assert hw.pins[mod.CONTACTOR_PIN].init_value == 1 - mod.CONTACTOR_ON


def test_stm32_timer_pwm_duty_u16_maps_onto_the_compare(monkeypatch, ticks):
    hw = Hw()
    machine, pyb, esp32 = make_fakes(hw)
    for name, m in (("machine", machine), ("pyb", pyb), ("esp32", esp32)):
        monkeypatch.setitem(sys.modules, name, m)
    monkeypatch.delitem(sys.modules, "boards.stm32_wallbox.board", raising=False)
    mod = importlib.import_module("boards.stm32_wallbox.board")
    board = mod.build()
    top = board.cp_timer.period() + 1
    assert top == 16800  # prescaler 5: 59.5 ns steps
    p = board.pilot
    for permille in (1000, 0, 100, 266, 533, 850, 960, cp.DUTY_DIGITAL):
        p.set_duty(permille)
        got = board.cp_pwm._ch.cmp * 1000 / top
        assert abs(got - permille) <= 0.5, (permille, got)  # within 0.05 %
    p.set_duty(1000)
    assert board.cp_pwm._ch.cmp == top  # compare > counter max: never low
    p.set_duty(0)
    assert board.cp_pwm._ch.cmp == 0  # -12 V constant (state F)
    sys.modules.pop("boards.stm32_wallbox.board", None)


def test_burst_fills_the_whole_buffer_and_spans_a_period(rig):
    mod, board, hw = rig
    buf = board.pilot.samples
    assert len(buf) == mod.CP_SAMPLES
    for i in range(len(buf)):
        buf[i] = 0xFFFF  # sentinel: no real ADC code is this high on either board
    hw.ev_high_mv = 9000
    board.pilot.set_duty(500)  # 50 % PWM: both plateaus in the burst
    reads0 = hw.adcs[mod.CP_ADC_PIN].reads if mod.NAME == "esp32_wallbox" else 0
    board.cp_burst(buf)
    assert 0xFFFF not in list(buf)
    span_us = mod.CP_SAMPLES * 1000000 // mod.CP_RATE_HZ
    assert span_us > 1000, "the burst must span more than one 1 kHz PWM period"
    if mod.NAME == "esp32_wallbox":
        assert hw.adcs[mod.CP_ADC_PIN].reads - reads0 == mod.CP_SAMPLES
        assert mod.CP_RATE_HZ == 1000000 // mod.CP_SAMPLE_US
        assert hw.adcs[mod.CP_ADC_PIN].atten == 3  # 11 dB given explicitly
    else:
        (rt,) = [c for c in hw.calls if c[0] == "read_timed"]
        pace = rt[2]["timer"]
        assert pace.n == mod.CP_PACE_TIMER != mod.CP_TIMER
        assert pace.freq == mod.CP_RATE_HZ
        assert rt[1][0] == mod.CP_SAMPLES


@pytest.mark.parametrize("high_mv,duty", [(12000, 1000), (9000, 1000), (9000, 266),
                                          (6000, 533), (3000, 100)])
def test_calibration_matches_the_documented_front_end(rig, high_mv, duty):
    """Codes made by the documented divider + ADC read back as the CP voltages (+/- 150 mV),
    through the real driver and the real burst analysis."""
    mod, board, hw = rig
    hw.ev_high_mv = high_mv
    board.pilot.set_duty(duty)
    out = board.pilot.read()
    assert abs(out[0] - high_mv) <= 150, list(out)
    if duty < 1000:
        assert abs(out[1] + 12000) <= 150, list(out)
    if mod.NAME == "stm32_wallbox" and duty < 1000:
        # Two whole periods per burst (same clock for PWM and pacing): the duty comes out.
        assert abs(out[2] - duty) <= 15, list(out)


def _doc_pins(name):
    text = open(os.path.join(ROOT, "docs", "boards.md")).read()
    m = re.search(r"^## %s\b(.*?)(?=^## |\Z)" % name, text, re.S | re.M)
    assert m, "docs/boards.md has no '## %s' section" % name
    return dict(re.findall(r"^\|\s*`(\w+_PIN)`\s*\|\s*([^|]+?)\s*\|", m.group(1), re.M))


def test_pins_are_the_documented_ones(rig):
    mod, board, hw = rig
    consts = {k: getattr(mod, k) for k in dir(mod) if k.endswith("_PIN")}
    documented = _doc_pins(mod.NAME)
    assert set(documented) == set(consts), "docs/boards.md and board.py name different pins"
    for k, v in consts.items():
        want = ("GPIO%d" % v) if isinstance(v, int) else v
        assert documented[k] == want, (k, documented[k], want)
    # every pin is used, each once, and nothing else is touched
    used = set(hw.pins)
    assert used == set(consts.values())
    assert len(set(consts.values())) == len(consts)
    if mod.NAME == "esp32_wallbox":
        adc1 = range(32, 40)
        assert mod.CP_ADC_PIN in adc1 and mod.PP_ADC_PIN in adc1  # ADC2 is dead with Wi-Fi
        assert mod.MIRROR_PIN not in (36, 39) and mod.RCM_FAULT_PIN not in (36, 39)
        for out in (mod.CONTACTOR_PIN, mod.RCM_TEST_PIN, mod.LOCK_PIN, mod.CP_PWM_PIN):
            assert out < 34  # 34..39 are input only
    # outputs start at their inactive level
    assert hw.pins[mod.RCM_TEST_PIN].init_value == 1 - mod.RCM_TEST_LEVEL
    assert hw.pins[mod.LOCK_PIN].init_value == 1 - mod.LOCK_LEVEL


# What the firmware reads of every board (firmware/boardcaps.py, docs/boards.md), and a name.
BOARD_ATTRS = boardcaps.REQUIRED + ("name",)


def test_board_has_everything_the_firmware_uses(rig):
    mod, board, hw = rig
    for attr in BOARD_ATTRS:
        assert hasattr(board, attr), attr
    assert board.name == mod.NAME
    assert 1 <= board.pilot_period_ms <= 10
    for attr in ("set_duty", "read", "duty"):
        assert hasattr(board.pilot, attr)
    assert callable(board.pp.ohms)
    for attr in ("set", "open_now", "feedback", "closed", "has_mirror"):
        assert hasattr(board.contactor, attr)
    assert board.contactor.has_mirror
    for attr in ("fault", "set_test", "on_trip"):
        assert hasattr(board.rcm, attr)
    wdt = board.watchdog(5000)
    wdt.feed()
    assert ("WDT", (), {"timeout": 5000}) in hw.calls
    board.reset()
    assert ("reset", (), {}) in hw.calls


def test_charge_controller_runs_on_the_board(rig):
    mod, board, hw = rig
    cfg = config.from_dict({"rating_a": 16})
    assert not cfg.errors
    ctl = ChargeController(board, cfg, EventLog(8))
    # the RCM fault input got its interrupt, on the trip edge
    (irq,) = [c for c in hw.calls if c[0] == "irq"]
    assert irq[1][0] == mod.RCM_FAULT_PIN and irq[2]["trigger"] == 1
    a = ctl.step(1000)
    assert a.status == "Available" and not a.close
    assert _cp_output_u16(hw) == 65535
    assert hw.pins[mod.CONTACTOR_PIN].v == 1 - mod.CONTACTOR_ON


def test_the_real_boards_declare_no_phase_switch_and_refuse_a_phase_request(rig):
    mod, board, hw = rig
    assert board.phase_switch is None
    ctl = ChargeController(board, config.from_dict({"rating_a": 16}), EventLog(8))
    assert ctl.phase_switch is None and ctl.phases == 3
    with pytest.raises(ValueError, match="set_phases: this station has no phase switch"):
        ctl.set_phases(1)
    assert ctl.inputs.phases_req == 0


def _lock_follows(mod, hw, works):
    """The lock's position switch: reads locked once the driver output says locked."""
    locked = works and hw.pins[mod.LOCK_PIN].v == mod.LOCK_LEVEL
    hw.pins[mod.LOCK_SENSE_PIN].v = mod.LOCK_SENSE_LOCKED if locked else 1 - mod.LOCK_SENSE_LOCKED


def test_lock_sense_pin_reads_unlocked_when_its_wire_breaks(rig):
    mod, board, hw = rig
    pin = hw.pins[mod.LOCK_SENSE_PIN]
    assert pin.pull == pin.PULL_UP and mod.LOCK_SENSE_LOCKED == 0
    assert board.lock.has_sense


@pytest.mark.parametrize("jammed", [False, True])
def test_board_offers_16a_to_a_plugged_ev(rig, jammed):
    """Plug a 32 A cable and an EV in state B: the controller, through this board's drivers
    and calibration, drives the CP PWM at the 16 A duty (26.6 %), and closes on state C."""
    mod, board, hw = rig
    ctl = ChargeController(board, config.from_dict({"rating_a": 16}), EventLog(8))
    hw.pp_ohms = 220
    hw.ev_high_mv = 9000
    now = 1000
    for _ in range(100):
        ctl.step(now)
        now += 10
        _lock_follows(mod, hw, not jammed)
    assert ctl.inputs.pp_da == 320
    assert abs(_cp_output_u16(hw) * 1000 / 65535 - 266.7) <= 1.0
    assert ctl.session.act.status == "Preparing"
    hw.ev_high_mv = 6000  # S2 closed: state C
    for _ in range(300):
        ctl.step(now)
        now += 10
        if ctl.session.act.rcm_test:  # the RCM module answers its self-test
            hw.rcm_fault = 1
        else:
            hw.rcm_fault = 0
        hw.pins[mod.MIRROR_PIN].v = hw.pins[mod.CONTACTOR_PIN].v == mod.CONTACTOR_ON
        _lock_follows(mod, hw, not jammed)
    if jammed:  # the position switch never confirms: no closing, a lock failure
        assert not any(v == mod.CONTACTOR_ON for v in hw.pins[mod.CONTACTOR_PIN].writes)
        assert ctl.session.act.error == "ConnectorLockFailure"
        assert hw.pins[mod.LOCK_PIN].v == 1 - mod.LOCK_LEVEL  # released
        return
    assert ctl.session.act.close, (ctl.session.act.status, ctl.session.act.info)
    assert hw.pins[mod.CONTACTOR_PIN].v == mod.CONTACTOR_ON
    assert ctl.session.act.status == "Charging"


def test_board_main_runs_the_app_on_build():
    for name in BOARDS:
        src = open(os.path.join(ROOT, "boards", name, "main.py")).read()
        assert "from boards.%s.board import build" % name in src
        assert "app.run(build())" in src


# -- the pilot twin on a 32-bit port --------------------------------------------------------
# ESP32 has no natmod here (no xtensa toolchain), so its safety loop runs the Python twin.
# On 32-bit ports MicroPython's small ints hold 31 bits; a larger intermediate becomes a
# heap-allocated long int on every burst. SmallInt checks every arithmetic result.
_SMALL = 1 << 30


class SmallInt(int):
    def _chk(self, v):
        if v is NotImplemented:
            return v
        assert -_SMALL <= v < _SMALL, "intermediate %d leaves 31-bit small ints" % v
        return SmallInt(v)


for _op in ("add", "sub", "mul", "floordiv", "mod", "lshift", "rshift", "and", "or"):
    for _name in ("__%s__" % _op, "__r%s__" % _op):
        def _wrap(self, other, _f=getattr(int, _name)):
            return self._chk(_f(self, other))
        setattr(SmallInt, _name, _wrap)
SmallInt.__neg__ = lambda self: self._chk(-int(self))


class SmallList(list):
    """Stands in for the twin's arrays: every element read is a SmallInt."""

    def __getitem__(self, k):
        return SmallInt(list.__getitem__(self, k))


def test_pilot_twin_stays_in_small_ints_with_each_boards_burst(rig, monkeypatch):
    from drivers import kernels_pilot as kp
    from native_helpers import pilot_wave

    mod, board, hw = rig
    n, rate = mod.CP_SAMPLES, mod.CP_RATE_HZ
    offset, uv = mod.CP_OFFSET_MV, mod.CP_UV_PER_CODE
    bits = 16 if (13500 - offset) * 1000 // uv > 4095 else 12  # read_u16 or 12-bit codes
    for name in ("_hist", "_ms", "_ex", "_er"):
        monkeypatch.setattr(kp, name, SmallList(getattr(kp, name)))
    waves = [(12000, -12000, 1.0), (-12000, -12000, 0.0), (0, 0, 1.0)]
    waves += [(hi, -12000, d / 100) for hi in (9000, 6000, 3000) for d in (10, 27, 53, 85, 96)]
    for hi, lo, duty in waves:
        for phase in (0.0, 0.37):
            codes = pilot_wave(hi, lo, duty, n=n, rate=rate, phase=phase, rise_us=8,
                               noise_mv=40, offset_mv=offset, uv=uv, bits=bits)
            assert 0 < min(codes) and max(codes) < (1 << bits) - 1  # no clipping
            plain = [0] * 4
            kp.analyse(codes, n, plain, offset, uv, rate, kp.PASSES)
            tracked = [0] * 4
            kp.analyse(SmallList(codes), SmallInt(n), tracked, SmallInt(offset), SmallInt(uv),
                       SmallInt(rate), kp.PASSES)
            assert tracked == plain
