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


def _charging(sim, csms, tag="CARD1"):
    """Plug, present a card, wait until charging; returns the CSMS's transaction."""
    sim.do("plug", cable_a=32)
    sim.do("card", uid=tag)
    tx = o.wait_tx(csms, lambda t: t["idTag"] == tag and t["stop"] is None)
    o.wait_status(csms, "Charging")
    return tx


def test_boot_pending_then_accepted():
    with CsmsThread(boot_status="Pending", interval=2) as csms:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            csms.wait_for(lambda: len(csms.boots) >= 1, 20)
            o.sleep(1)
            assert not csms.statuses  # nothing but boot before Accepted
            csms.csms.boot_status = "Accepted"
            o.booted(csms)
            assert len(csms.boots) >= 2
        o.no_violations(csms)


def test_boot_rejected_retries_after_interval_and_charges_locally_nothing_else():
    with CsmsThread(boot_status="Rejected", interval=2) as csms:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            csms.wait_for(lambda: len(csms.boots) >= 2, 20)
            assert not csms.statuses
        o.no_violations(csms)


def test_identification_first_then_connection_timeout(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "ConnectionTimeOut", 3)
        m = o.mark(csms)
        sim.do("card", uid="CARD2")
        o.wait_status(csms, "Preparing", since=m)
        o.wait_log(sim, "ConnectionTimeOut", timeout=15)
        o.wait_status(csms, "Available", since=m + 1)
        assert not csms.transactions


def test_remote_start_and_stop(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        sim.do("plug", cable_a=32)
        o.wait_status(csms, "Preparing")
        r = o.call(csms, "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1})
        assert r == {"status": "Accepted"}
        tx = o.wait_tx(csms, lambda t: t["idTag"] == "REMOTE1")
        o.wait_status(csms, "Charging")
        assert o.call(csms, "RemoteStopTransaction", {"transactionId": tx["id"] + 100}) == {
            "status": "Rejected"}
        assert o.call(csms, "RemoteStopTransaction", {"transactionId": tx["id"]}) == {
            "status": "Accepted"}
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
        assert tx["stop"]["reason"] == "Remote"
        # a second remote start while one is open is rejected
        sim.do("unplug")


def test_remote_start_rejected_when_busy_and_for_a_bad_connector(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        _charging(sim, csms)
        assert o.call(csms, "RemoteStartTransaction", {"idTag": "X"}) == {"status": "Rejected"}
        assert o.call(csms, "RemoteStartTransaction", {"idTag": "X", "connectorId": 2}) == {
            "status": "Rejected"}


def test_ev_side_disconnect_stops_the_transaction(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        _charging(sim, csms)
        sim.do("unplug")
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
        assert tx["stop"]["reason"] == "EVDisconnected"
        assert tx["stop"]["meterStop"] >= tx["meterStart"]


def test_ev_side_disconnect_with_stop_off_keeps_the_transaction(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "StopTransactionOnEVSideDisconnect", "false")
        _charging(sim, csms)
        m = o.mark(csms)
        sim.do("unplug")
        o.wait_status(csms, "SuspendedEV", since=m)
        o.sleep(1)
        assert all(t["stop"] is None for t in csms.transactions.values())


def test_get_and_change_configuration(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        r = o.call(csms, "GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})
        assert r["unknownKey"] == ["Nope"]
        assert r["configurationKey"][0]["key"] == "HeartbeatInterval"
        assert o.call(csms, "ChangeConfiguration", {"key": "Nope", "value": "1"}) == {
            "status": "NotSupported"}
        assert o.call(csms, "ChangeConfiguration", {"key": "NumberOfConnectors",
                                                    "value": "2"}) == {"status": "Rejected"}
        assert o.call(csms, "ChangeConfiguration", {"key": "HeartbeatInterval",
                                                    "value": "abc"}) == {"status": "Rejected"}
        o.configure(csms, "HeartbeatInterval", 1)
        n = len(csms.frames)
        csms.wait_for(lambda: any('"Heartbeat"' in f["text"] for f in csms.frames[n:]), 10)
        r = o.call(csms, "GetConfiguration", {})
        keys = {k["key"]: k for k in r["configurationKey"]}
        assert "value" not in keys.get("AuthorizationKey", {})
        assert keys["SupportedFeatureProfiles"]["readonly"] is True
        assert "FirmwareManagement" not in keys["SupportedFeatureProfiles"]["value"]


def test_unknown_and_unsupported_actions_get_the_right_callerror(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        r = o.call(csms, "FooBar", {})
        assert r[0] == "NotImplemented", r
        r = o.call(csms, "UpdateFirmware", {"location": "http://x/f.bin",
                                            "retrieveDate": "2026-01-01T00:00:00Z"})
        assert r[0] == "NotSupported", r
        r = o.call(csms, "RemoteStartTransaction", {"idTag": "x" * 21})
        assert r[0] == "PropertyConstraintViolation", r
        r = o.call(csms, "RemoteStartTransaction", {})
        assert r[0] == "OccurrenceConstraintViolation", r
        r = o.call(csms, "Reset", {"type": 1})
        assert r[0] == "TypeConstraintViolation", r


def test_sampled_meter_values_during_a_transaction(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "MeterValueSampleInterval", 1)
        tx = _charging(sim, csms)
        csms.wait_for(lambda: sum(1 for cp, p in list(csms.meter_values)
                                  if p.get("transactionId") == tx["id"]) >= 4, 20)
        ctx = {sv["context"] for cp, p in list(csms.meter_values)
               for mv in p["meterValue"] for sv in mv["sampledValue"]}
        assert {"Transaction.Begin", "Sample.Periodic"} <= ctx
        sim.do("unplug")
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
        assert tx["stop"]["meterStop"] > tx["meterStart"]


def test_clock_aligned_meter_values(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "ClockAlignedDataInterval", 2)
        csms.wait_for(lambda: any(sv["context"] == "Sample.Clock" for cp, p in list(
            csms.meter_values) for mv in p["meterValue"] for sv in mv["sampledValue"]), 10)


def test_soft_reset_during_a_transaction_stops_it_then_reboots(csms, tmp_path):
    d = o.state_dir(tmp_path)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        _charging(sim, csms)
        assert o.call(csms, "Reset", {"type": "Soft"}) == {"status": "Accepted"}
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
        assert tx["stop"]["reason"] == "SoftReset"
        sim.wait_for({"k": "end"}, 20)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        csms.wait_for(lambda: len(csms.boots) >= 2, 30)


def test_hard_reset_without_transaction(csms, tmp_path):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        assert o.call(csms, "Reset", {"type": "Hard"}) == {"status": "Accepted"}
        sim.wait_for({"k": "end"}, 20)


def test_unlock_connector_with_and_without_session(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        assert o.call(csms, "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
        assert o.call(csms, "UnlockConnector", {"connectorId": 2}) == {"status": "NotSupported"}
        _charging(sim, csms)
        assert o.call(csms, "UnlockConnector", {"connectorId": 1}, timeout=30) == {
            "status": "Unlocked"}
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
        assert tx["stop"]["reason"] == "UnlockCommand"


def test_change_availability_scheduled_during_a_transaction(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        _charging(sim, csms)
        r = o.call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        assert r == {"status": "Scheduled"}
        m = o.mark(csms)
        sim.do("card", uid="CARD1")
        o.wait_tx(csms, lambda t: t["stop"] is not None)
        sim.do("unplug")
        o.wait_status(csms, "Unavailable", since=m)
        r = o.call(csms, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
        assert r == {"status": "Accepted"}
        o.wait_status(csms, "Available", since=m)


def test_trigger_message(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        assert o.call(csms, "TriggerMessage", {"requestedMessage": "BootNotification"}) == {
            "status": "Rejected"}
        n = len(csms.frames)
        for what in ("Heartbeat", "StatusNotification", "MeterValues",
                     "DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            assert o.call(csms, "TriggerMessage", {"requestedMessage": what}) == {
                "status": "Accepted"}, what
            csms.wait_for(lambda: any('"%s"' % what in f["text"] and f["dir"] == "in"
                                      for f in csms.frames[n:]), 10)


def test_reservation_use_cancel_expire_and_rejections(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        exp = "2099-01-01T00:00:00Z"
        r = o.call(csms, "ReserveNow", {"connectorId": 0, "expiryDate": exp, "idTag": "R1",
                                        "reservationId": 1})
        assert r == {"status": "Rejected"}
        r = o.call(csms, "ReserveNow", {"connectorId": 1, "expiryDate": exp, "idTag": "R1",
                                        "reservationId": 1})
        assert r == {"status": "Accepted"}
        o.wait_status(csms, "Reserved")
        r = o.call(csms, "ReserveNow", {"connectorId": 1, "expiryDate": exp, "idTag": "R2",
                                        "reservationId": 2})
        assert r == {"status": "Occupied"}
        assert o.call(csms, "CancelReservation", {"reservationId": 9}) == {"status": "Rejected"}
        sim.do("plug", cable_a=32)
        sim.do("card", uid="OTHER")
        o.wait_log(sim, "reserved for another")
        sim.do("card", uid="R1")
        tx = o.wait_tx(csms, lambda t: t["idTag"] == "R1")
        assert tx["start"]["reservationId"] == 1
        sim.do("unplug")
        o.wait_tx(csms, lambda t: t["stop"] is not None)
        r = o.call(csms, "ReserveNow", {"connectorId": 1, "expiryDate": exp, "idTag": "R3",
                                        "reservationId": 3})
        assert r == {"status": "Accepted"}
        assert o.call(csms, "CancelReservation", {"reservationId": 3}) == {"status": "Accepted"}
        import datetime
        soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2))
        r = o.call(csms, "ReserveNow", {"connectorId": 1, "idTag": "R4", "reservationId": 4,
                                        "expiryDate": soon.strftime("%Y-%m-%dT%H:%M:%SZ")})
        assert r == {"status": "Accepted"}
        o.wait_log(sim, "reservation 4 expired", timeout=10)
