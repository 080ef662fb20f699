"""The flash gate on the simulated wallbox (the real firmware on the MicroPython unix port and
the dev CSMS): sim_clock.json "flash_gate" makes the simulated board answer
flash_write_ok() as the STM32 and ESP32 boards do (False while the contactor is closed). A
session with MeterValueSampleInterval 1: no file of the firmware's state folder changes while
the contactor is closed, and the CSMS receives a MeterValues every second, from the journal's
RAM tail (docs/ocpp.md)."""
import datetime
import json
import os

import pytest

import ocpprig as o
from ocpprig import CsmsThread

pytestmark = pytest.mark.slow


@pytest.fixture
def csms():
    with CsmsThread() as c:
        yield c
        o.no_violations(c)


def _files(d):
    """The firmware's files (sim_*: the simulated world's own, e.g. its meter's register)."""
    out = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if os.path.isfile(p) and not name.startswith("sim_"):
            st = os.stat(p)
            with open(p, "rb") as f:
                out[name] = (st.st_size, st.st_mtime_ns, f.read())
    return out


def _epoch(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _mv_times(csms, tid):
    """The periodic readings' times (the device clock's stamps) the CSMS got for tid."""
    return [_epoch(mv["timestamp"])
            for cp, p in list(csms.meter_values) if p.get("transactionId") == tid
            for mv in p["meterValue"]
            if mv["sampledValue"][0].get("context") == "Sample.Periodic"]


def test_no_file_written_while_charging_and_every_meter_value_sent(csms, tmp_path):
    d = o.state_dir(tmp_path)
    with open(os.path.join(d, "sim_clock.json"), "w") as f:
        json.dump({"flash_gate": True}, f)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "MeterValueSampleInterval", 1)
        sim.do("plug", cable_a=32)
        sim.do("card", uid="CARD1")
        tx = o.wait_tx(csms, lambda t: t["idTag"] == "CARD1" and t["stop"] is None)
        o.wait_status(csms, "Charging")
        n0 = len(_mv_times(csms, tx["id"]))
        csms.wait_for(lambda: len(_mv_times(csms, tx["id"])) >= n0 + 1, 20)
        before = _files(d)  # a reading has been sent since the contactor closed
        csms.wait_for(lambda: len(_mv_times(csms, tx["id"])) >= n0 + 7, 30)
        after = _files(d)
        changed = sorted(n for n in set(before) | set(after)
                         if before.get(n) != after.get(n))
        assert changed == [], "written while the contactor was closed: %s" % changed
        assert o.statuses(csms)[-1] == "Charging"
        sim.do("unplug")
        tx = o.wait_tx(csms, lambda t: t["id"] == tx["id"] and t["stop"] is not None)
        assert tx["stop"]["meterStop"] > tx["meterStart"]
    times = _mv_times(csms, tx["id"])
    assert len(times) >= n0 + 7
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps and max(gaps) <= 2 and min(gaps) > 0, gaps  # one a second, none lost


def test_power_cut_while_charging_ends_the_transaction_once(csms, tmp_path):
    """The bounded-loss rule (docs/safety.md): a power cut while the contactor is closed
    loses what waited in RAM; the next boot ends the transaction once, PowerLoss, with a
    meterStop not below its meterStart, and the CSMS has one transaction (the Start's
    answer came before the contactor closed: its ack is on flash)."""
    d = o.state_dir(tmp_path)
    with open(os.path.join(d, "sim_clock.json"), "w") as f:
        json.dump({"flash_gate": True}, f)
    sim = o.start_sim(csms, state_dir=d)
    with sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "MeterValueSampleInterval", 1)
        sim.do("plug", cable_a=32)
        sim.do("card", uid="CARD1")
        tx = o.wait_tx(csms, lambda t: t["idTag"] == "CARD1" and t["stop"] is None)
        o.wait_status(csms, "Charging")
        csms.wait_for(lambda: len(_mv_times(csms, tx["id"])) >= 3, 20)
        o.kill(sim)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        tx = o.wait_tx(csms, lambda t: t["id"] == tx["id"] and t["stop"] is not None, 30)
        assert tx["stop"]["reason"] == "PowerLoss"
        assert tx["stop"]["meterStop"] >= tx["meterStart"]
        o.sleep(2)
        starts = [t for t in csms.transactions.values() if t["idTag"] == "CARD1"]
        assert len(starts) == 1, starts
