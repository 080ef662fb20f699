"""The one orderly restart path (firmware/restart.py) on the simulated wallbox: the real
firmware on the MicroPython unix port, restarted on the same state folder. An OCPP Reset and
the supervisor's restart after the safety path failed save the energy register (an S0 meter
here, whose store writes only every save_wh) and leave a marker that the next boot reads as
an orderly restart; a power cut leaves none."""
import pytest

import ocpprig as o
import simrig
from ocpprig import CsmsThread

pytestmark = pytest.mark.slow

S0 = {"ev": {"type": "s0", "imp_per_kwh": 1000, "save_wh": 1000}}  # no save on its own


def ev_readings(sim, since=0):
    return [x["wh"] for x in sim.obs[since:] if x.get("k") == "reading" and x["role"] == "ev"]


def charge_until(sim, wh, timeout=40):
    sim.do("plug", cable_a=32)
    sim.wait_for(lambda x: x.get("k") == "reading" and x["role"] == "ev" and x["wh"] >= wh,
                 timeout)


def boot_line(sim):
    return sim.wait_for(lambda x: x.get("k") == "log" and x["msg"].startswith("boot: "),
                        10)["msg"]


def first_reading(sim):
    return sim.wait_for(lambda x: x.get("k") == "reading" and x["role"] == "ev", 10)["wh"]


def test_an_ocpp_hard_reset_while_charging_keeps_the_energy_register(tmp_path):
    d = o.state_dir(tmp_path)
    with CsmsThread() as csms:
        with o.start_sim(csms, state_dir=d, free_vend=True, meters=S0) as sim, \
                o.report(sim, csms):
            o.booted(csms)
            boot_line(sim)
            charge_until(sim, 6)
            assert o.call(csms, "Reset", {"type": "Hard"}) == {"status": "Accepted"}
            assert sim.wait_for({"k": "end"}, 20)["reset"]
            counted = ev_readings(sim)[-1]
        with o.start_sim(csms, state_dir=d, free_vend=True, meters=S0) as sim, \
                o.report(sim, csms):
            assert boot_line(sim) == "boot: after an orderly restart (ocpp-hard)"
            # every Wh the S0 input counted before the reset is still in the register
            assert first_reading(sim) >= counted >= 6
        o.no_violations(csms)


def test_a_supervisor_restart_is_orderly_and_a_power_cut_is_not(tmp_path):
    d = o.state_dir(tmp_path)
    cfg = {"meters": S0}
    sim = simrig.start(cfg, state_dir=d)
    try:
        assert boot_line(sim) == "boot: after a power cut or reset"  # a first boot
        charge_until(sim, 4)
        sim.do("crash")  # the charge controller dies: the safety path failed
        assert sim.wait_for({"k": "end"}, 30)["reset"]
        counted = ev_readings(sim)[-1]
    finally:
        sim.stop()
    sim = simrig.start(cfg, state_dir=d)
    try:
        assert boot_line(sim) == "boot: after an orderly restart (supervisor)"
        assert first_reading(sim) >= counted >= 4
    finally:
        o.kill(sim)  # a power cut: no marker
    sim = simrig.start(cfg, state_dir=d)
    try:
        assert boot_line(sim) == "boot: after a power cut or reset"
    finally:
        sim.stop()


def test_a_watchdog_reset_is_told_from_a_power_cut(tmp_path):
    d = o.state_dir(tmp_path)
    sim = simrig.start({"watchdog_ms": 1000}, state_dir=d)
    try:
        boot_line(sim)
        sim.do("block", ms=3000)  # the interpreter hangs in C: nothing feeds the watchdog
        assert sim.wait_for({"k": "end"}, 20)["reset"]
    finally:
        sim.stop()
    sim = simrig.start({"watchdog_ms": 1000}, state_dir=d)
    try:
        assert boot_line(sim) == "boot: after a watchdog reset"
    finally:
        sim.stop()
    sim = simrig.start({"watchdog_ms": 1000}, state_dir=d)
    try:
        assert boot_line(sim) == "boot: after a power cut or reset"  # taken once
    finally:
        sim.stop()
