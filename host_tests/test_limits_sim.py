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


@pytest.mark.slow
def test_get_composite_schedule_reports_the_local_fuse_limit_when_it_is_lower():
    """A TxDefaultProfile of 10 A from the CSMS, a main fuse leaving 7.8 A: the offer follows
    the fuse and GetCompositeSchedule says so (not the profile's 10 A alone)."""
    import ocpprig as o
    from ocpprig import CsmsThread

    with CsmsThread() as csms:
        with o.start_sim(csms, meters=GRID, limits={"main_fuse_a": 10}) as sim, \
                o.report(sim, csms):
            o.booted(csms)
            prof = {"chargingProfileId": 1, "stackLevel": 0,
                    "chargingProfilePurpose": "TxDefaultProfile",
                    "chargingProfileKind": "Relative",
                    "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 10.0}]}}
            assert o.call(csms, "SetChargingProfile", {"connectorId": 1,
                                                       "csChargingProfiles": prof}) == {
                "status": "Accepted"}
            sim.do("ev", max_current_a=32)
            sim.do("plug", cable_a=32)
            sim.do("card", uid="CARD1")
            st = sim.wait_for(lambda x: x.get("k") == "state" and x.get("reason") == "main fuse"
                              and x.get("status") == "Charging", 40)
            r = o.call(csms, "GetCompositeSchedule", {"connectorId": 1, "duration": 600})
            per = r["chargingSchedule"]["chargingSchedulePeriod"]
            assert r["status"] == "Accepted" and len(per) == 1, r
            assert per[0]["limit"] <= 8.0 and abs(per[0]["limit"] * 10 - st["offer_da"]) <= 2, (
                r, st)
            r = o.call(csms, "GetCompositeSchedule", {"connectorId": 1, "duration": 600,
                                                      "chargingRateUnit": "W"})
            w = r["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
            assert w <= 8.0 * 230 * 3, r
        o.no_violations(csms)
