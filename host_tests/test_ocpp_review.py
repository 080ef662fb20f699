"""OCPP faults found by reviewing the client against the 1.6 specification and real central
systems (issue 13): each test failed on the firmware before its fix. The real firmware on the
unix port against the dev CSMS; where a real CSMS answers differently from the dev one, the
test changes the dev CSMS's answer for that message."""
import time

import pytest

import ocpprig as o
from ocpprig import CsmsThread

pytestmark = pytest.mark.slow


@pytest.fixture
def csms():
    with CsmsThread() as c:
        yield c
        o.no_violations(c)


def _fail(csms, pred, code_log):
    """Make the dev CSMS answer a CALLERROR to the charge point's CALLs matching pred(action,
    payload); each such CALL's arrival (host monotonic seconds) goes into code_log."""
    server = csms.csms
    real = server._handle

    def handle(cp, action, p):
        if pred(action, p):
            code_log.append((action, p, time.monotonic()))
            raise RuntimeError("refused by the test")  # -> CALLERROR InternalError
        return real(cp, action, p)

    server._handle = handle



def test_get_configuration_with_an_empty_key_list_returns_every_key(csms):
    # 1.6 GetConfiguration.req: "If the list is empty or missing, all keys are reported".
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        every = o.call(csms, "GetConfiguration", {})["configurationKey"]
        empty = o.call(csms, "GetConfiguration", {"key": []})["configurationKey"]
        assert len(every) > 30
        assert [k["key"] for k in empty] == [k["key"] for k in every]


def test_a_boot_answered_with_an_error_is_retried_with_backoff_not_every_second():
    tried = []
    with CsmsThread() as csms:
        _fail(csms, lambda a, p: a == "BootNotification" and len(tried) < 2, tried)
        with o.start_sim(csms) as sim, o.report(sim, csms):
            csms.wait_for(lambda: len(tried) >= 1, 30)
            o.sleep(5)
            assert len(tried) == 1, "BootNotification retried within 5 s of a CALLERROR"
            o.booted(csms, timeout=60)
            assert len(tried) == 2
            # backoff: 10 s, then 20 s, each +/- 25 %; the CSMS's arrival times are a lower
            # bound that a loaded machine can only lengthen
            assert tried[1][2] - tried[0][2] >= 7.5
        o.no_violations(csms)


def test_a_status_the_csms_keeps_refusing_blocks_neither_the_other_connector_nor_heartbeats():
    refused = []
    with CsmsThread(interval=2) as csms:
        _fail(csms, lambda a, p: a == "StatusNotification" and p["connectorId"] == 0, refused)
        with o.start_sim(csms) as sim, o.report(sim, csms):
            csms.wait_for(lambda: "Available" in o.statuses(csms, 1), 30)
            beats = len(csms.beats)
            sim.do("plug", cable_a=32)
            o.wait_status(csms, "Preparing", timeout=10)
            csms.wait_for(lambda: len(csms.beats) >= beats + 2, 10)  # heartbeats every 2 s
            o.sleep(6)
            n = len(refused)
            assert 1 <= n <= 3, "connector 0's status retried %d times in ~8 s" % n
            gaps = [b[2] - a[2] for a, b in zip(refused, refused[1:])]
            assert all(g >= 3.75 for g in gaps), gaps  # 5 s first, +/- 25 %
        o.no_violations(csms)


def test_a_boot_notification_triggered_while_pending_is_sent_at_once():
    with CsmsThread(boot_status="Pending", interval=300) as csms:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            csms.wait_for(lambda: len(csms.boots) >= 1, 30)
            assert o.call(csms, "TriggerMessage", {"requestedMessage": "BootNotification"}) == {
                "status": "Accepted"}
            csms.wait_for(lambda: len(csms.boots) >= 2, 10)  # not after the 300 s interval
        o.no_violations(csms)


def test_no_answer_to_the_csms_while_the_boot_is_rejected():
    # 1.6 section 4.2: while Rejected the charge point shall not respond to any CSMS message.
    from csms_server import CsmsError

    with CsmsThread(boot_status="Rejected", interval=300) as csms:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.wait_log(sim, "boot Rejected")
            with pytest.raises(CsmsError, match="did not answer"):
                o.call(csms, "GetConfiguration", {}, timeout=3)
            assert o.wait_log(sim, "not answered: boot Rejected")


def test_operative_cancels_an_inoperative_scheduled_for_the_end_of_the_transaction(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms)
        r = o.call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        assert r == {"status": "Scheduled"}
        r = o.call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
        assert r == {"status": "Accepted"}
        m = o.mark(csms)
        sim.do("card", uid="CARD1")
        o.wait_tx(csms, lambda t: t["stop"] is not None)
        sim.do("unplug")
        o.wait_status(csms, "Available", since=m)
        o.sleep(1)
        assert "Unavailable" not in o.statuses(csms)[m:]


def test_a_scheduled_inoperative_survives_a_power_cut(csms, tmp_path):
    d = o.state_dir(tmp_path)
    sim = o.start_sim(csms, state_dir=d).start()
    with o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms)
        r = o.call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        assert r == {"status": "Scheduled"}
        sim.send({"do": "powercut"})
        sim.wait_for({"k": "closed"}, 10)
    sim.proc.wait(10)
    m = o.mark(csms)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
        o.wait_status(csms, "Unavailable", since=m, timeout=30)
        assert "Available" not in o.statuses(csms)[m:]


def _tx_profile(limit):
    return {"chargingProfileId": 7, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative", "chargingSchedule": {
                "chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": float(limit)}]}}



def test_a_remote_start_profile_whose_transaction_never_started_does_not_limit_the_next():
    with CsmsThread(tags={"CARD1": "Accepted"}) as csms:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.booted(csms)
            o.configure(csms, "AuthorizeRemoteTxRequests", "true")
            r = o.call(csms, "RemoteStartTransaction", {"idTag": "NOPE",
                                                        "chargingProfile": _tx_profile(7)})
            assert r == {"status": "Accepted"}
            o.wait_log(sim, "idTag NOPE not accepted")  # the CSMS's Authorize says Invalid
            tx = o.charging(sim, csms, "CARD1")
            o.sleep(2)
            assert sim.state()["offer_da"] == 160, "NOPE's TxProfile limits CARD1's transaction"
            assert tx["stop"] is None
        o.no_violations(csms)


def test_a_remote_start_profile_limits_before_the_csms_answers_the_start():
    held = []
    with CsmsThread() as csms:
        _fail(csms, lambda a, p: a == "StartTransaction" and len(held) < 100, held)
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.booted(csms)
            sim.do("plug", cable_a=32)
            o.wait_status(csms, "Preparing")
            r = o.call(csms, "RemoteStartTransaction", {"idTag": "RS",
                                                        "chargingProfile": _tx_profile(7)})
            assert r == {"status": "Accepted"}
            csms.wait_for(lambda: held, 10)
            o.offer(sim, 70, timeout=10)  # no transactionId yet: the profile holds all the same
            assert not csms.transactions


def _meter_state(d, wh=None, silent=False):
    """The simulated meter's non-volatile register (Wh) and whether it answers at boot."""
    import json
    import os

    if wh is not None:
        with open(os.path.join(d, "sim_meter_wh"), "w") as f:
            f.write("%.3f" % wh)
    with open(os.path.join(d, "sim_faults.json"), "w") as f:
        json.dump(["meter_silent"] if silent else [], f)


def test_meter_start_is_never_a_value_the_meter_did_not_give(csms, tmp_path):
    # Free vend, EV plugged at boot, the meter silent: meterStart 0 would bill the meter's
    # whole lifetime register (1234.5 kWh here) at the stop.
    d = o.state_dir(tmp_path)
    _meter_state(d, wh=1234567, silent=True)
    with o.start_sim(csms, state_dir=d, free_vend=True) as sim, o.report(sim, csms):
        o.booted(csms)
        sim.do("plug", cable_a=32)
        o.wait_log(sim, "waits for the meter")
        o.sleep(12)  # past the bounded wait: no saved register either, so it waits on
        assert not csms.transactions
        # no energy flows unbilled meanwhile: the contacts never closed
        assert not [x for x in sim.obs if x.get("k") == "contacts" and x.get("closed")]
        sim.do("fault", name="meter_silent", on=False)
        tx = o.wait_tx(csms, lambda t: True, timeout=15)
        assert tx["meterStart"] == 1234567
        o.wait_status(csms, "Charging")


def test_meter_stop_is_read_after_the_contactor_opened_and_the_next_start_continues(
        csms, tmp_path):
    # every Wh belongs to exactly one transaction: the next meterStart equals this meterStop
    # when nothing was charged between (it was the last poll, up to a period old)
    d = o.state_dir(tmp_path)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms, "CARD1")
        o.sleep(3)
        sim.do("card", uid="CARD1")
        first = o.wait_tx(csms, lambda t: t["idTag"] == "CARD1" and t["stop"] is not None)
        sim.do("card", uid="CARD2")
        second = o.wait_tx(csms, lambda t: t["idTag"] == "CARD2")
        assert first["stop"]["meterStop"] > first["meterStart"]
        assert second["meterStart"] == first["stop"]["meterStop"]


def test_the_simulated_meter_keeps_its_register_across_a_restart(csms, tmp_path):
    d = o.state_dir(tmp_path)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms, "CARD1")
        o.sleep(3)
        sim.do("card", uid="CARD1")
        first = o.wait_tx(csms, lambda t: t["stop"] is not None)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        csms.wait_for(lambda: len(csms.boots) >= 2, 30)
        sim.do("plug", cable_a=32)
        sim.do("card", uid="CARD2")
        second = o.wait_tx(csms, lambda t: t["idTag"] == "CARD2")
        assert second["meterStart"] >= first["stop"]["meterStop"] > 0


def test_a_transaction_open_at_a_supervisor_restart_stops_as_reboot_not_power_loss(
        csms, tmp_path):
    # 1.6 Reason: PowerLoss is "complete loss of power"; a restart the firmware made
    # (watchdog, supervisor, crash) is Reboot. The restart marker says which.
    d = o.state_dir(tmp_path)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms, "CARD1")
        sim.do("crash")  # the charge controller dies: the supervisor restarts the board
        assert sim.wait_for({"k": "end"}, 30)["reset"]
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
        assert tx["stop"]["reason"] == "Reboot"
        assert tx["stop_frames"] == 1


def test_a_transaction_open_at_a_power_cut_still_stops_as_power_loss(csms, tmp_path):
    d = o.state_dir(tmp_path)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms, "CARD1")
        o.kill(sim)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
        assert tx["stop"]["reason"] == "PowerLoss"


def test_meter_values_leave_out_what_a_silent_meter_no_longer_gives(csms):
    # a Modbus EV meter that stops answering: its last power and currents are not sent as if
    # they were now; the energy register (the highest the meter gave) still is
    meters = {"ev": {"type": "modbus", "profile": "sdm630", "addr": 1},
              "bus": {"uart": 1, "baud": 9600}}
    with o.start_sim(csms, meters=meters) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "MeterValuesSampledData",
                    "Energy.Active.Import.Register,Current.Import,Power.Active.Import")
        o.configure(csms, "MeterValueSampleInterval", "1")
        o.charging(sim, csms, "CARD1")

        def measurands(p):
            return {s["measurand"] for mv in p["meterValue"] for s in mv["sampledValue"]}

        csms.wait_for(lambda: any("Current.Import" in measurands(p)
                                  for _, p in csms.meter_values), 15)
        sim.do("meter", addr=1, fault="silent")
        o.sleep(7)  # past the reading's 5 s staleness limit
        n = len(csms.meter_values)
        csms.wait_for(lambda: len(csms.meter_values) >= n + 2, 10)
        late = [measurands(p) for _, p in csms.meter_values[n:]]
        assert all(m == {"Energy.Active.Import.Register"} for m in late), late
