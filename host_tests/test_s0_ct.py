"""S0 pulse meter and CT meter (firmware/meters/s0.py, ct.py) on CPython with a fake clock:
debounce per IEC 62053-31 (bounces < 5 ms never count, 30 ms pulses at the 16.7 Hz ceiling
all count), power from the pulse interval decaying to 0, energy into the flash register;
CT current, power and energy from synthetic samples through the ac_measure twin."""
import asyncio
import math
from array import array

from test_energy import MemFs

from drivers import kernels_twin
from firmware.meter import UNKNOWN, Reading
from firmware.meters import ct as ct_mod
from firmware.meters.ct import CtMeter
from firmware.meters.energy import EnergyStore
from firmware.meters.s0 import IDLE_MS, S0Meter


class Clock:
    def __init__(self, t=1000):
        self.t = t

    def __call__(self):
        return self.t


class FakePin:
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self):
        self.level = 1  # pull-up: idle high
        self.handler = None
        self.trigger = 0

    def irq(self, handler=None, trigger=0):
        self.handler = handler
        self.trigger = trigger

    def value(self):
        return self.level

    def set(self, level):
        if level != self.level:
            self.level = level
            self.handler(self)


def s0(imp=1000, step_wh=10):
    clock = Clock()
    pin = FakePin()
    fs = MemFs()
    store = EnergyStore("energy_ev", step_wh=step_wh, fs=fs)
    m = S0Meter(pin, imp, store, clock=clock)
    return m, pin, clock, fs


def pulse(pin, clock, on_ms=35, bounce=(), release_bounce=()):
    """One impulse: the leading edge, bounces (ms after it), the release and its bounces."""
    t0 = clock.t
    pin.set(0)
    level = 0
    for dt in bounce:
        clock.t = t0 + dt
        level ^= 1
        pin.set(level)
    if level:
        pin.set(0)
    clock.t = t0 + on_ms
    pin.set(1)
    level = 1
    t1 = clock.t
    for dt in release_bounce:
        clock.t = t1 + dt
        level ^= 1
        pin.set(level)
    if not level:
        pin.set(1)


def test_s0_irq_is_on_both_edges():
    m, pin, clock, fs = s0()
    assert pin.trigger == FakePin.IRQ_FALLING | FakePin.IRQ_RISING


def test_bounces_shorter_than_5_ms_at_either_edge_never_count():
    m, pin, clock, fs = s0()
    for k in range(20):
        clock.t = 1000 + k * 200
        pulse(pin, clock, bounce=(1, 2, 3, 4), release_bounce=(1, 3, 4))
    assert m.impulses == 20


def test_pulses_at_the_standards_ceiling_all_count():
    m, pin, clock, fs = s0()
    for k in range(50):  # 30 ms on, 30 ms off: 16.7 Hz
        clock.t = 1000 + k * 60
        pulse(pin, clock, on_ms=30)
    assert m.impulses == 50


def test_a_glitch_right_after_an_edge_does_not_count():
    m, pin, clock, fs = s0()
    pulse(pin, clock)
    clock.t += 8  # 8 ms after the release: closer than the debounce, not a new impulse
    pulse(pin, clock)
    assert m.impulses == 1


def test_noise_spikes_on_an_idle_line_never_count():
    # IEC 62053-31: an impulse is on for >= 30 ms; a spike shorter than debounce_ms is noise
    # (it counted as one Wh when the leading edge alone counted).
    m, pin, clock, fs = s0()
    for k, width in enumerate((1, 3, 8, 14)):
        clock.t = 1000 + k * 500
        pulse(pin, clock, on_ms=width)
    assert m.impulses == 0
    clock.t = 4000
    pulse(pin, clock, on_ms=30)  # a real impulse still counts, once
    assert m.impulses == 1


def test_an_impulse_counts_at_its_release_and_a_pulse_under_way_at_boot_does_not():
    m, pin, clock, fs = s0()
    pin.set(0)
    clock.t += 20
    assert m.impulses == 0  # on for 20 ms, not released yet
    pin.set(1)
    assert m.impulses == 1
    pin2 = FakePin()
    pin2.level = 0  # the line is active when the meter starts: the end of an impulse
    m2 = S0Meter(pin2, 1000, EnergyStore("energy_x", fs=MemFs()), clock=clock)
    clock.t += 40
    pin2.set(1)
    assert m2.impulses == 0


def test_power_from_the_pulse_interval_then_decaying_to_zero():
    m, pin, clock, fs = s0(imp=1000)
    r = Reading()
    for k in range(5):  # one impulse (1 Wh) every 500 ms: 7.2 kW
        clock.t = 1000 + k * 500
        pulse(pin, clock)
    clock.t = 3100
    asyncio.run(m.poll(r))
    assert r.p_total_w == 7200 and r.energy_wh == 5
    assert r.i_da[0] == UNKNOWN and r.p_w[2] == UNKNOWN  # S0 knows no phases
    clock.t = 3035 + 2000  # 2 s after the last impulse (counted at its release, 3035)
    asyncio.run(m.poll(r))
    assert r.p_total_w == 1800  # at most 1 Wh in 2 s
    clock.t = 3035 + IDLE_MS
    asyncio.run(m.poll(r))
    assert r.p_total_w == 0


def test_energy_goes_into_the_flash_register_and_is_flushed_when_power_stops():
    m, pin, clock, fs = s0(imp=400, step_wh=10)  # 2.5 Wh per impulse
    r = Reading()
    for k in range(5):
        clock.t = 1000 + k * 300
        pulse(pin, clock)
        asyncio.run(m.poll(r))
    assert r.energy_wh == 12  # 12.5 Wh: the half stays in RAM
    assert EnergyStore("energy_ev", fs=fs).wh == 10  # written at the 10 Wh step
    clock.t += IDLE_MS
    asyncio.run(m.poll(r))
    assert EnergyStore("energy_ev", fs=fs).wh == 12  # power 0: session end, flushed
    # a reboot counts on from the register
    m2 = S0Meter(FakePin(), 400, EnergyStore("energy_ev", fs=fs), clock=clock)
    asyncio.run(m2.poll(r))
    assert r.energy_wh == 12


def test_the_impulse_counter_wraps_without_losing_energy():
    m, pin, clock, fs = s0(imp=1000)
    m.st[0] = m._seen = 0x3FFFFFFF - 1
    for k in range(4):
        clock.t = 1000 + k * 100
        pulse(pin, clock)
    r = Reading()
    asyncio.run(m.poll(r))
    assert m.impulses == 2 and r.energy_wh == 4


# -- CT ------------------------------------------------------------------------------------
_RATE = 4000  # samples per second per phase
_N = 400  # 5 mains periods per phase
_UA_PER_CODE = 20000  # 20 mA per code: +/- 40 A around 2048
_OFFSET = 2048


def ct_burst(amps):
    """Interleaved 50 Hz sines of the given RMS currents, 12-bit codes around 2048."""
    def burst(buf):
        phases = len(amps)
        for k in range(_N):
            for p, a in enumerate(amps):
                ph = 2 * math.pi * (50 * k / _RATE - p / 3)
                code = _OFFSET + a * math.sqrt(2) * 1e6 / _UA_PER_CODE * math.sin(ph)
                buf[k * phases + p] = int(round(code))
    return burst


def ct(amps, cal=None, step_wh=10):
    clock = Clock()
    fs = MemFs()
    m = CtMeter(ct_burst(amps), len(amps), _OFFSET, _UA_PER_CODE, _RATE, _N,
                EnergyStore("energy_grid", step_wh=step_wh, fs=fs), cal=cal, volts=230,
                clock=clock)
    return m, clock, fs


def test_ct_current_and_power_per_phase_from_the_kernel_twin(monkeypatch):
    monkeypatch.setattr(ct_mod.kernels, "ac_measure", kernels_twin.py_ac_measure)
    m, clock, fs = ct((16, 10, 0))
    r = Reading()
    asyncio.run(m.poll(r))
    assert abs(r.i_da[0] - 160) <= 1 and abs(r.i_da[1] - 100) <= 1
    assert r.i_da[2] == 0  # nothing but the quantisation: under the noise floor
    assert abs(r.p_w[0] - 3680) <= 20 and r.v_dv[0] == 2300
    assert r.p_total_w == r.p_w[0] + r.p_w[1]


def test_ct_calibration_factor_per_phase(monkeypatch):
    monkeypatch.setattr(ct_mod.kernels, "ac_measure", kernels_twin.py_ac_measure)
    m, clock, fs = ct((16,), cal=(1050,))
    r = Reading()
    asyncio.run(m.poll(r))
    assert abs(r.i_da[0] - 168) <= 1
    assert r.i_da[1] == UNKNOWN and r.p_w[1] == UNKNOWN  # a 1-phase CT board


def test_ct_energy_is_integrated_into_the_register(monkeypatch):
    monkeypatch.setattr(ct_mod.kernels, "ac_measure", kernels_twin.py_ac_measure)
    m, clock, fs = ct((16, 16, 16))
    r = Reading()
    for k in range(11):  # 10 intervals of 1 s at ~11 kW: ~30.6 Wh
        clock.t = 1000 + k * 1000
        asyncio.run(m.poll(r))
    assert 30 <= r.energy_wh <= 31
    saved = EnergyStore("energy_grid", fs=fs).wh
    assert r.energy_wh - 10 < saved <= r.energy_wh  # written every 10 Wh


def test_ct_gap_between_polls_is_capped(monkeypatch):
    monkeypatch.setattr(ct_mod.kernels, "ac_measure", kernels_twin.py_ac_measure)
    m, clock, fs = ct((16, 16, 16))
    r = Reading()
    asyncio.run(m.poll(r))
    clock.t += 3600000  # an hour without a poll: not an hour of energy
    asyncio.run(m.poll(r))
    assert r.energy_wh <= 16  # at most MAX_DT_MS (5 s) at 11 kW


def test_ct_rejects_calibration_of_the_wrong_length():
    try:
        CtMeter(ct_burst((1,)), 3, 0, 1, 1, 10, None, cal=(1000,), clock=Clock())
    except ct_mod.CtError as e:
        assert "1 calibration factors for 3 phases" in str(e)
    else:
        raise AssertionError("accepted")


def test_ct_buffers_are_preallocated():
    m, clock, fs = ct((16,))
    assert isinstance(m.buf, array) and len(m.buf) == _N and len(m.out) == 4
