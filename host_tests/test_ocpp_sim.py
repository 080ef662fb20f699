"""OCPP 1.6J on the simulated wallbox: the real firmware on the MicroPython unix port and the
dev CSMS (tools/csms.py), which checks every frame against the 1.6 schemas and OCPP-J rules.
One test or more per certification case of Core, Local Auth List, Reservation, Remote Trigger
and Smart Charging; each ends with no schema or OCPP-J violation."""
import pytest

import ocpprig as o
from ocpprig import CsmsThread

pytestmark = pytest.mark.slow


@pytest.fixture
def csms():
    with CsmsThread() as c:
        yield c
        o.no_violations(c)


def test_cold_boot_then_plug_and_card(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        assert csms.boots and csms.boots[0][1]["chargePointVendor"]
        sim.do("plug", cable_a=32)
        o.wait_status(csms, "Preparing")
        sim.do("card", uid="CARD1")
        tx = o.wait_tx(csms, lambda t: t["idTag"] == "CARD1")
        o.wait_status(csms, "Charging")
        sim.do("card", uid="CARD1")  # the same card again: a local stop
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
        assert tx["stop"]["reason"] == "Local"
        assert tx["stop"]["meterStop"] >= tx["meterStart"]
        o.wait_status(csms, "Finishing")
        m = o.mark(csms)
        sim.do("unplug")
        o.wait_status(csms, "Available", timeout=10, since=m)
