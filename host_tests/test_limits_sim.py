"""The limit loop on the simulated wallbox (the real firmware on the unix port): without a
`limits` section it charges exactly as before; a main fuse with a grid meter (the emulated
SDM630 over Modbus, reading the EV's current plus the house's 1.5 kW) lowers the offer to the
fuse's headroom, and a grid meter gone silent falls back to the safe current."""
import pytest
import simrig

GRID = {"grid": {"type": "modbus", "profile": "sdm630", "addr": 2},
        "bus": {"uart": 1, "baud": 9600}}
HOUSE_DA = 1500 * 10 // 3 // 230  # the world's house load per phase (boards/sim/world.py)


def offers(sim, since=0):
    return [o for o in sim.obs[since:] if o.get("k") == "state" and o.get("status") ==
            "Charging"]


def test_without_a_limits_section_it_charges_as_before():
    with simrig.start() as sim:
        sim.do("ev", max_current_a=32)
        n = simrig.charge(sim)
        simrig.device_sleep(sim, 2000)
        st = sim.state()
        diag = sim.diag()
    assert st["status"] == "Charging" and st["offer_da"] == 160, st  # max_current_a
    assert st["reason"] == "config max_current_a", st
    assert all(o["offer_da"] == 160 for o in offers(sim, n)), offers(sim, n)
    assert any(line.startswith("limit      16 A  (config max_current_a)") for line in diag), diag
    logs = [o["msg"] for o in sim.obs if o.get("k") == "log"]
    assert not any("limits:" in m and "refused" in m for m in logs), logs


@pytest.mark.slow
def test_a_main_fuse_with_a_grid_meter_lowers_the_offer_and_a_silent_meter_falls_back():
    with simrig.start({"meters": GRID, "limits": {"main_fuse_a": 10, "safe_a": 6}}) as sim:
        sim.do("ev", max_current_a=32)
        sim.do("plug", cable_a=32)
        sim.wait_for(simrig.status("Charging"), 15)
        # 10 A fuse, 2.1 A of house load per phase: 7.9 A left for the EV (its own current is
        # in the grid meter's reading and is added back).
        # (The meter's currents are whole dA: 0.2 A of rounding.)
        st = sim.wait_for(lambda o: o.get("k") == "state" and o.get("reason") == "main fuse",
                          30)
        want = st["offer_da"]
        assert 100 - HOUSE_DA - 2 <= want <= 100 - HOUSE_DA, st
        assert st["status"] == "Charging"
        diag = sim.diag()
        assert any(line.startswith("  main fuse          %d dA  age " % want)
                   for line in diag), diag
        n = len(sim.obs)
        simrig.device_sleep(sim, 3000)  # it holds: the EV's own current does not count twice
        assert all(o["offer_da"] == want for o in offers(sim, n)), offers(sim, n)
        n = len(sim.obs)
        sim.do("meter", addr=2, fault="silent")
        st = sim.wait_for(lambda o: o.get("k") == "state" and o.get("offer_da") == 60, 30,
                          since=n)
        assert "grid meter stale" in st["reason"], st
        assert max(o["offer_da"] for o in offers(sim, n)) <= want
