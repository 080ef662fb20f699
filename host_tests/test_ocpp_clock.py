"""The clock model on the simulated wallbox (firmware/timekeep.py, docs/ocpp.md "Clock"): a
board whose RTC lost its time, charging before the CSMS could be reached, sends its records
with the real wall time once the time is known - never 1970 or 2000."""
import datetime
import json
import os

import pytest

import ocpprig as o
from ocpprig import CsmsThread

pytestmark = pytest.mark.slow


def _epoch(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _now():
    return datetime.datetime.now(datetime.timezone.utc).timestamp()


def _power_up(d, **settings):
    with open(os.path.join(d, "sim_clock.json"), "w") as f:
        json.dump(settings, f)


def _times(tx):
    """Every time the CSMS received for a transaction: Start, meter values, Stop."""
    ts = [tx["timestamp"]]
    for mv in tx["meter_values"]:
        for v in mv.get("meterValue", ()):
            ts.append(v["timestamp"])
    if tx["stop"] is not None:
        ts.append(tx["stop"]["timestamp"])
        ts += [v["timestamp"] for v in tx["stop"].get("transactionData", ())]
    return ts


@pytest.fixture
def csms():
    with CsmsThread() as c:
        yield c
        o.no_violations(c)


def test_offline_session_before_the_time_is_known_gets_the_wall_time(csms, tmp_path):
    # an ESP32 after a power cut: RTC at 2000-01-01, no NTP, the CSMS out of reach
    d = o.state_dir(tmp_path)
    _power_up(d, rtc="unset", ntp=False, net="down")
    with o.start_sim(csms, state_dir=d, free_vend=True) as sim, o.report(sim, csms):
        o.sleep(1)
        t_plug = _now()
        sim.do("plug", cable_a=32)
        o.wait_log(sim, "transaction -1 started")
        t_started = _now()
        o.sleep(4)  # charging offline
        t_unplug = _now()
        sim.do("unplug")
        o.wait_log(sim, "stopped (EVDisconnected)")
        t_stop = _now()
        o.sleep(2)  # time passes before the link comes up: the stamps must not move with it
        sim.do("net", state="up")
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
        start, stop = _epoch(tx["timestamp"]), _epoch(tx["stop"]["timestamp"])
        # each time within what the host saw around it (seconds are truncated: 1 s slack)
        assert t_plug - 1 <= start <= t_started + 1, (tx["timestamp"], t_plug, t_started)
        assert t_unplug - 1 <= stop <= t_stop + 1, (tx["stop"]["timestamp"], t_unplug, t_stop)
        for ts in _times(tx):
            assert t_plug - 1 <= _epoch(ts) <= t_stop + 1, ts
        o.wait_log(sim, "from csms")
        # the CSMS's time went to the RTC: the next boot starts right
        with open(os.path.join(d, "sim_rtc.json")) as f:
            assert abs(json.load(f)["off"]) <= 2


def test_ntp_sets_the_clock_before_the_csms_is_reached(csms, tmp_path):
    d = o.state_dir(tmp_path)
    _power_up(d, rtc="unset", ntp=True)
    with o.start_sim(csms, state_dir=d, free_vend=True) as sim, o.report(sim, csms):
        o.wait_log(sim, "from ntp")
        o.booted(csms)
        t_plug = _now()
        sim.do("plug", cable_a=32)
        tx = o.wait_tx(csms, lambda t: True, timeout=30)
        # whole seconds twice (ntptime drops the NTP fraction, the stamp drops the sub-second):
        # the stamp may be up to 2 s behind the host's clock, never ahead
        assert t_plug - 2 <= _epoch(tx["timestamp"]) <= _now() + 1, (tx["timestamp"], t_plug)
        with open(os.path.join(d, "sim_rtc.json")) as f:
            assert abs(json.load(f)["off"]) <= 2


def test_a_set_rtc_is_believed_at_the_next_boot(csms, tmp_path):
    # the RTC kept the time the CSMS gave (battery, or an ESP32 soft reset): the next boot
    # stamps its offline records with it at once
    d = o.state_dir(tmp_path)
    _power_up(d, rtc="unset", ntp=False)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        o.wait_log(sim, "from csms")
    _power_up(d, rtc="kept", ntp=False, net="down")
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.wait_log(sim, "from rtc")


def _offer(sim, da, timeout=15):
    sim.wait_for(lambda x: x.get("k") == "state" and x.get("offer_da") == da, timeout)


def test_stored_profiles_limit_the_offer_before_the_time_is_known(csms, tmp_path):
    # a ChargePointMaxProfile from the CSMS (10 A, from an hour ago) and a Relative
    # TxDefaultProfile (8 A for the first 5 s, then 12 A); after a power cut that lost the
    # RTC, offline: the time is unknown, the cap still holds and the relative one is exact
    d = o.state_dir(tmp_path)
    _power_up(d, rtc="set")
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    cpmax = {"chargingProfileId": 1, "stackLevel": 0,
             "chargingProfilePurpose": "ChargePointMaxProfile", "chargingProfileKind": "Absolute",
             "chargingSchedule": {"chargingRateUnit": "A",
                                  "startSchedule": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                  "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]}}
    rel = {"chargingProfileId": 2, "stackLevel": 0,
           "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
           "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
               {"startPeriod": 0, "limit": 8.0}, {"startPeriod": 5, "limit": 12.0}]}}
    with o.start_sim(csms, state_dir=d, free_vend=True) as sim, o.report(sim, csms):
        o.booted(csms)
        for c, p in ((0, cpmax), (1, rel)):
            assert o.call(csms, "SetChargingProfile", {"connectorId": c,
                                                       "csChargingProfiles": p}) == {
                "status": "Accepted"}
    _power_up(d, rtc="unset", ntp=False, net="down")
    with o.start_sim(csms, state_dir=d, free_vend=True) as sim, o.report(sim, csms):
        o.wait_log(sim, "RTC not set")
        sim.do("plug", cable_a=32)
        o.wait_log(sim, "transaction -1 started")
        _offer(sim, 80)  # the relative profile's first 5 s
        o.wait_log(sim, "ChargePointMaxProfile 1 (time unknown")
        _offer(sim, 100)  # then 12 A, capped by the 10 A the cap could be
        assert not [x for x in sim.obs if x.get("k") == "state" and x.get("offer_da", 0) > 100]


def test_a_boot_whose_time_never_became_known_sends_its_lower_bound(csms, tmp_path):
    # boot 1 knows the time; boot 2 (RTC lost, offline) charges and loses power; boot 3 sends
    # boot 2's Start and PowerLoss Stop: no later than the truth, not before boot 1's time,
    # the session's length kept - never 1970 or 2000
    d = o.state_dir(tmp_path)
    _power_up(d, rtc="set")
    t1 = _now()  # boot 1 knows the time from its start on (saved: the next boot's floor)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "MeterValueSampleInterval", 1)  # the PowerLoss stop's last time
    _power_up(d, rtc="unset", ntp=False, net="down")
    sim = o.start_sim(csms, state_dir=d, free_vend=True).start()
    with o.report(sim, csms):
        sim.do("plug", cable_a=32)
        o.wait_log(sim, "transaction -1 started")
        t_start = _now()
        o.sleep(4)
        sim.send({"do": "powercut"})
        sim.wait_for({"k": "closed"}, 10)
    sim.proc.wait(10)
    _power_up(d, rtc="unset", ntp=False)
    with o.start_sim(csms, state_dir=d, free_vend=True) as sim, o.report(sim, csms):
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
        assert tx["stop"]["reason"] == "PowerLoss"
        start, stop = _epoch(tx["timestamp"]), _epoch(tx["stop"]["timestamp"])
        assert t1 - 1 <= start <= t_start + 1, (tx["timestamp"], t1, t_start)
        assert 2 <= stop - start <= 6, (tx["timestamp"], tx["stop"]["timestamp"])
