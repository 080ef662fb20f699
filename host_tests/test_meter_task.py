"""The meter task (firmware/meters/task.py) with fake sources and a fake clock: one log line
per failure burst and one when the meter is back, staleness and the fault text, i_max_da
from the phase currents, the energy guard (backwards and impossible jumps rejected), and a
meter swap that keeps the total going on across a reboot. Also the config section's checks
(firmware/meters/roles.py)."""
import asyncio

import pytest
from test_energy import MemFs

from firmware.meter import UNKNOWN, Reading
from firmware.meters import roles
from firmware.meters.energy import EnergyStore
from firmware.meters.task import FAULT_MS, LOG_AFTER, SWAP_CONFIRM, MeterTask


class Timeout(Exception):
    kind = "timeout"


class MeterError(Exception):
    pass


class FakeMeter:
    """Fills the reading like ModbusMeter.poll; `fail` is raised instead when set."""

    def __init__(self):
        self.fail = None
        self.wh = 1000
        self.i = (100, -20, UNKNOWN)
        self.export = -1

    async def poll(self, r):
        if self.fail is not None:
            raise self.fail
        for k in range(3):
            r.i_da[k] = self.i[k]
        r.energy_wh = self.wh
        r.export_wh = self.export


def make(store=None, period_ms=1000, max_w=22000):
    logs = []
    src = FakeMeter()
    r = Reading()
    t = MeterTask("ev", src, r, period_ms=period_ms, log=logs.append, store=store,
                  max_w=max_w, clock_text=lambda: "12:00:01")
    return t, src, r, logs


def step(t, now):
    asyncio.run(t.step(now))


def test_a_failure_burst_is_logged_once_and_the_return_once():
    t, src, r, logs = make()
    step(t, 0)
    src.fail = Timeout("meter 1: no reply")
    for k in range(1, 8):
        step(t, k * 1000)
    assert logs == ["meter ev: timeout (%d in a row since 12:00:01)" % LOG_AFTER]
    assert t.failures == {"timeout": 7} and r.errors == 7 and t.in_row == 7
    src.fail = None
    step(t, 8000)
    assert logs[1:] == ["meter ev: back after 7 failures"]
    assert t.fault is None and r.fresh(8000)


def test_a_single_glitch_is_counted_but_not_logged():
    t, src, r, logs = make()
    src.fail = MeterError("voltage 9999 V out of range")
    step(t, 0)
    src.fail = None
    step(t, 1000)
    assert logs == [] and t.failures == {"invalid": 1} and "9999 V" in t.last_error
    assert t.errors_text() == "invalid 1"


def test_a_source_that_raises_anything_is_a_counted_failure_never_a_dead_task():
    t, src, r, logs = make()
    src.fail = ZeroDivisionError("bug")
    for k in range(3):
        step(t, k * 1000)
    assert t.failures == {"error": 3} and logs == ["meter ev: error (3 in a row since 12:00:01)"]


def test_a_silent_meter_goes_stale_and_reports_the_fault_until_it_is_back():
    t, src, r, logs = make()
    step(t, 0)
    assert r.current_da(0) == 100  # highest magnitude of the phase currents
    src.fail = Timeout("no reply")
    for now in range(1000, FAULT_MS, 1000):
        step(t, now)
        assert t.fault is None, now  # a short silence is no fault yet
    step(t, 12000)
    assert t.fault == "meter ev: no reply for 12 s"
    assert r.current_da(12000) == -1  # the controller charges on the pilot's offer
    src.fail = None
    step(t, 13000)
    assert t.fault is None and r.current_da(13000) == 100


def test_a_meter_that_never_answered_is_a_fault_after_the_same_time():
    t, src, r, logs = make()
    src.fail = Timeout("no reply")
    step(t, 100)
    step(t, 100 + FAULT_MS)
    assert t.fault == "meter ev: no reply for 5 s" and r.at_ms is None


def test_i_max_da_is_the_highest_magnitude_and_unknown_without_currents():
    t, src, r, logs = make()
    src.i = (-170, 20, UNKNOWN)
    step(t, 0)
    assert r.i_max_da == 170
    src.i = (UNKNOWN, UNKNOWN, UNKNOWN)
    step(t, 1000)
    assert r.i_max_da == -1 and r.current_da(1000) == -1


def test_energy_going_backwards_is_rejected_and_the_last_good_value_stays():
    t, src, r, logs = make()
    step(t, 0)
    src.wh = 900
    step(t, 1000)
    assert r.energy_wh == 1000 and t.rejected == 1
    assert logs == ["meter ev: energy register 900 Wh rejected: went back 100 Wh"]
    src.wh = 1005  # back to normal: accepted, no swap
    step(t, 2000)
    assert r.energy_wh == 1005 and t.swaps == 0


def test_the_export_register_going_back_or_jumping_reads_unknown_until_confirmed():
    t, src, r, logs = make(max_w=22000)
    src.export = 500
    step(t, 0)
    assert r.export_wh == 500
    src.export = 400  # backwards: unknown, logged once, the import register unaffected
    step(t, 1000)
    assert r.export_wh == -1 and r.energy_wh == 1000 and t.rejected == 1
    assert logs == ["meter ev: export register 400 Wh rejected: went back 100 Wh"]
    src.export = 520  # plausible again after the glitch
    step(t, 2000)
    assert r.export_wh == 520
    src.export = 520 + 5000  # 22 kW cannot export 5 kWh in a second
    step(t, 3000)
    assert r.export_wh == -1 and "export register 5520 Wh rejected: jumped +5000 Wh" in logs[-1]
    for k in range(SWAP_CONFIRM - 1):  # the same new register again and again: taken
        step(t, 4000 + 1000 * k)
    assert r.export_wh == 5520 and logs[-1] == "meter ev: export register now 5520 Wh (was 520)"


def test_an_impossible_jump_is_rejected_a_possible_one_accepted():
    t, src, r, logs = make(max_w=22000)
    step(t, 0)
    # 22 kW for 1 s is 6 Wh; with x1.5 and the register slack, 29 Wh at most.
    src.wh = 1000 + 29
    step(t, 1000)
    assert r.energy_wh == 1029
    src.wh = 1029 + 5000
    step(t, 2000)
    assert r.energy_wh == 1029 and t.rejected == 1
    assert "jumped +5000 Wh in 1 s (at most 29 possible)" in logs[0]
    # an hour of silence makes a large step possible
    src.wh = 1029 + 20000
    step(t, 3600000)
    assert r.energy_wh == 21029


def test_a_swapped_meter_continues_the_total_and_the_offset_survives_a_reboot():
    fs = MemFs()
    t, src, r, logs = make(store=EnergyStore("energy_ev", fs=fs))
    src.wh = 5000
    step(t, 0)
    src.wh = 10  # a new meter with a nearly empty register
    for k in range(1, SWAP_CONFIRM + 1):
        src.wh += 2
        step(t, k * 1000)
    assert t.swaps == 1
    # what the new meter counted while it was being confirmed is kept
    assert r.energy_wh == 5000 + 2 * (SWAP_CONFIRM - 1)
    assert any("meter swapped" in m for m in logs)
    # reboot: a new task over the same flash shows the same total for the same register
    t2, src2, r2, logs2 = make(store=EnergyStore("energy_ev", fs=fs))
    src2.wh = src.wh + 3
    step(t2, 0)
    assert r2.energy_wh == r.energy_wh + 3 and t2.swaps == 0 and logs2 == []


def test_a_lower_register_at_boot_is_a_swap_once_confirmed():
    fs = MemFs()
    st = EnergyStore("energy_ev", fs=fs)
    st.set(7000, 0)
    st.flush()
    t, src, r, logs = make(store=EnergyStore("energy_ev", fs=fs))
    src.wh = 50
    step(t, 0)
    assert r.energy_wh == 7000  # the total never goes back, even before the swap is sure
    step(t, 1000)
    step(t, 2000)
    assert t.swaps == 1 and r.energy_wh == 7000
    src.wh = 60
    step(t, 3000)
    assert r.energy_wh == 7010


def test_one_wild_reading_between_good_ones_is_no_swap():
    t, src, r, logs = make()
    step(t, 0)
    for k, wh in enumerate((1, 1002, 3, 1004, 5, 1006), start=1):
        src.wh = wh
        step(t, k * 1000)
    assert t.swaps == 0 and r.energy_wh == 1006 and t.rejected == 3


# -- config section ------------------------------------------------------------------------
PROFILES = ("sdm630", "sdm120")


def test_a_good_section_is_taken_with_its_defaults():
    meters, bus, errors = roles.check({
        "ev": {"type": "modbus", "profile": "sdm630", "addr": 1, "baud": 9600},
        "grid": {"type": "s0", "imp_per_kwh": 400}}, PROFILES)
    assert errors == []
    assert meters["ev"]["period_ms"] == 1000 and meters["ev"]["inverted"] is False
    assert meters["grid"]["imp_per_kwh"] == 400 and meters["grid"]["save_wh"] == 10
    assert bus == {"uart": 1, "baud": 9600, "parity": "N", "timeout_ms": 300, "retries": 2}


@pytest.mark.parametrize("section, message", [
    ({"ev": {"type": "modbus", "profile": "sdm630", "addr": 300}},
     "meters: ev.addr=300 refused: out of range, allowed 1..247; the ev meter is off"),
    ({"ev": {"type": "modbus", "profile": "sdm999"}},
     "meters: ev.profile='sdm999' unknown (known: sdm120, sdm630); the ev meter is off"),
    ({"ev": {"type": "modbus"}}, "meters: ev.profile missing; the ev meter is off"),
    ({"ev": {"type": "pulse"}},
     "meters: ev.type='pulse' refused: allowed modbus, s0, ct; the ev meter is off"),
    ({"ev": {"type": "s0", "imp_per_kw": 1000}},
     "meters: ev.imp_per_kw unknown (known: debounce_ms, imp_per_kwh, max_kw, period_ms, "
     "save_wh, type); the ev meter is off"),
    ({"grid": {"type": "ct", "volts": "230"}},
     "meters: grid.volts='230' refused: not an integer, allowed 100..300; the grid meter "
     "is off"),
    ({"ev": {"type": "s0", "period_ms": 50}},
     "meters: ev.period_ms=50 refused: out of range, allowed 200..60000; the ev meter is off"),
    ({"ev": {"type": "modbus", "profile": "sdm630", "inverted": 1}},
     "meters: ev.inverted=1 refused: allowed true or false; the ev meter is off"),
    ({"ev": {"type": "modbus", "profile": "sdm630"}, "bus": {"baud": 9601}},
     "meters: bus.baud=9601 refused: allowed 1200, 2400, 4800, 9600, 19200, 38400, 57600, "
     "115200; the Modbus meters are off"),
    ({"ev": {"type": "modbus", "profile": "sdm630", "baud": 9600},
      "grid": {"type": "modbus", "profile": "sdm630", "addr": 2, "baud": 19200}},
     "meters: grid.baud=19200 differs from the bus's 9600 (one bus, one speed); the Modbus "
     "meters are off"),
    ({"house": {}}, "meters: house unknown (known: bus, ev, grid); ignored"),
    ({"grid": {"type": "ct"}},
     "meters: grid.type='ct' refused: a current transformer measures no direction, so "
     "feed-in would count as import; use a Modbus meter for the grid role; the grid meter "
     "is off"),
    ({"ev": {"type": "s0", "imp_per_kwh": 10000}},
     "meters: ev.imp_per_kwh=10000 refused: at max_kw=60 that is 167 impulses/s, and an "
     "input with debounce_ms=15 counts at most 33/s (impulses of >= 15 ms on and off): set "
     "max_kw to the most the circuit can draw; the ev meter is off"),
    ({"grid": {"type": "s0", "imp_per_kwh": 1000}},  # the grid's ceiling is 250 kW
     "meters: grid.imp_per_kwh=1000 refused: at max_kw=250 that is 70 impulses/s, and an "
     "input with debounce_ms=15 counts at most 33/s (impulses of >= 15 ms on and off): set "
     "max_kw to the most the circuit can draw; the grid meter is off"),
    ("sdm630", "meters: must be a JSON object; no meter runs"),
])
def test_each_bad_value_is_named_and_that_meter_is_off(section, message):
    meters, bus, errors = roles.check(section, PROFILES)
    assert message in errors, errors
    assert "ev" not in meters or not any(e.endswith("the ev meter is off") for e in errors)


def test_s0_rates_the_input_counts_are_taken():
    meters, bus, errors = roles.check({
        "ev": {"type": "s0", "imp_per_kwh": 2000, "max_kw": 22, "debounce_ms": 25},
        "grid": {"type": "s0", "imp_per_kwh": 1000, "max_kw": 43}}, PROFILES)
    assert errors == [] and sorted(meters) == ["ev", "grid"]


def test_a_ct_is_taken_for_the_ev_role():
    meters, bus, errors = roles.check({"ev": {"type": "ct"}}, PROFILES)
    assert errors == [] and meters["ev"]["type"] == "ct"


def test_a_bad_grid_meter_leaves_the_ev_meter_running():
    meters, bus, errors = roles.check({
        "ev": {"type": "s0"}, "grid": {"type": "s0", "imp_per_kwh": 0}}, PROFILES)
    assert list(meters) == ["ev"] and len(errors) == 1


def test_build_reports_a_board_without_the_input_and_keeps_running():
    class Board:
        pass

    logs = []
    ms = roles.build(Board(), {"ev": {"type": "ct"}, "grid": {"type": "s0", "max_kw": 40}},
                     log=logs.append)
    assert ms.tasks == []
    assert logs == ["meters: ev ct meter cannot start: this board has no CT inputs; the ev "
                    "meter is off", "meters: grid s0 meter cannot start: this board has no "
                    "S0 input; the grid meter is off"]


# -- the register's resolution ------------------------------------------------------------
class SteppedMeter(FakeMeter):
    """A meter whose register counts whole steps of step_wh (an EM340: 0.1 kWh), charging
    at watts from a fake clock."""

    def __init__(self, clock, watts, step_wh, start_wh=500000):
        super().__init__()
        self.clock, self.watts, self.step_wh, self.start_wh = clock, watts, step_wh, start_wh

    async def poll(self, r):
        true_wh = self.start_wh + self.watts * self.clock[0] / 3600000
        self.wh = int(true_wh) // self.step_wh * self.step_wh
        await super().poll(r)


@pytest.mark.parametrize("step_wh", [100, 1000])  # EM340 0.1 kWh; an S0 meter at 1 imp/kWh
def test_an_hour_at_11_kw_in_coarse_register_steps_is_all_counted(step_wh):
    clock = [0]
    logs = []
    src = SteppedMeter(clock, 11000, step_wh)
    t = MeterTask("ev", src, Reading(), log=logs.append, max_w=60000, res_wh=step_wh,
                  clock_text=lambda: "12:00:01")
    for k in range(3601):  # one poll a second for an hour
        clock[0] = k * 1000
        step(t, clock[0])
    moved = t.reading.energy_wh - 500000
    assert 10900 <= moved <= 11000, moved  # the register's own rounding, nothing lost
    assert t.swaps == 0 and t.rejected == 0
    assert not any("swapped" in m or "rejected" in m for m in logs), logs[:3]


def test_roles_give_the_guard_each_meters_register_step():
    class Pin(object):
        IRQ_FALLING, IRQ_RISING = 2, 1

        def irq(self, handler=None, trigger=0):
            pass

        def value(self):
            return 1

    class Board:
        def s0_pin(self, role, imp):
            return Pin()

    ms = roles.build(Board(), {"ev": {"type": "s0", "imp_per_kwh": 10},
                               "grid": {"type": "s0", "imp_per_kwh": 3}}, log=lambda m: None)
    assert (ms.get("ev").res_wh, ms.get("grid").res_wh) == (100, 334)  # Wh per impulse, up
    from firmware.meters.modbus_meter import ModbusMeter

    class Master:
        def transaction(self):
            return None

    assert ModbusMeter(Master(), 1, "em340").res_wh == 100
    assert ModbusMeter(Master(), 1, "abb_b23").res_wh == 10


def test_a_bus_line_other_than_the_meters_factory_line_gets_a_hint():
    from firmware.meters.profiles import PROFILES as ALL

    meters, bus, errors = roles.check({
        "ev": {"type": "modbus", "profile": "iem3x5x"},
        "grid": {"type": "modbus", "profile": "orno_we516", "addr": 2},
        "bus": {"baud": 9600, "parity": "E"}}, ALL)
    assert errors == []
    assert roles.serial_hints(meters, bus, ALL) == [
        "meters: ev meter iem3x5x leaves the factory at 19200 8E1; the bus runs 9600 8E1: "
        "set the meter to the bus's line"]  # the Orno ships at 9600 8E1: no hint
