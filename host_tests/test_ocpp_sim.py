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
    # Free vend: the EV plugged while the CSMS rejects the boot charges, and the CSMS hears
    # nothing but the retried BootNotifications (OCPP 1.6 4.2).
    with CsmsThread(boot_status="Rejected", interval=2) as csms:
        with o.start_sim(csms, free_vend=True) as sim, o.report(sim, csms):
            csms.wait_for(lambda: len(csms.boots) >= 1, 20)
            sim.do("plug", cable_a=32)
            sim.wait_for({"k": "contacts", "closed": True}, 10)
            assert sim.state()["status"] == "Charging"
            csms.wait_for(lambda: len(csms.boots) >= 3, 20)
            assert not csms.statuses and not csms.transactions
            sent = {o.frame_action(f) for f in csms.frames if f["dir"] == "in"}
            assert sent == {"BootNotification"}, sent
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
        sim.do("unplug")


def test_a_second_remote_start_while_one_is_open_is_rejected(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        sim.do("plug", cable_a=32)
        o.wait_status(csms, "Preparing")
        r = o.call(csms, "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1})
        assert r == {"status": "Accepted"}
        tx = o.wait_tx(csms, lambda t: t["idTag"] == "REMOTE1")
        o.wait_status(csms, "Charging")
        for p in ({"idTag": "REMOTE2", "connectorId": 1}, {"idTag": "REMOTE2"}):
            assert o.call(csms, "RemoteStartTransaction", p) == {"status": "Rejected"}, p
        o.sleep(2)
        assert [t["idTag"] for t in csms.transactions.values()] == ["REMOTE1"]
        assert tx["stop"] is None and sim.state()["status"] == "Charging"


def test_remote_start_rejected_when_busy_and_for_a_bad_connector(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms)
        assert o.call(csms, "RemoteStartTransaction", {"idTag": "X"}) == {"status": "Rejected"}
        assert o.call(csms, "RemoteStartTransaction", {"idTag": "X", "connectorId": 2}) == {
            "status": "Rejected"}


def test_ev_side_disconnect_stops_the_transaction(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms)
        sim.do("unplug")
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
        assert tx["stop"]["reason"] == "EVDisconnected"
        assert tx["stop"]["meterStop"] >= tx["meterStart"]


def test_ev_side_disconnect_with_stop_off_keeps_the_transaction(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "StopTransactionOnEVSideDisconnect", "false")
        o.charging(sim, csms)
        m = o.mark(csms)
        sim.do("unplug")
        o.wait_status(csms, "SuspendedEV", since=m)
        o.sleep(1)
        assert all(t["stop"] is None for t in csms.transactions.values())


def _lock(sim):
    """The socket lock's last command (observation "lock"), False before any."""
    v = [ob["v"] for ob in sim.obs if ob.get("k") == "lock"]
    return bool(v and v[-1])


def test_unlock_connector_on_ev_side_disconnect_false_holds_the_cable_for_its_card(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "UnlockConnectorOnEVSideDisconnect", "false")
        o.charging(sim, csms, "CARD1")
        assert _lock(sim)
        sim.do("unplug", ev_only=True)  # the EV side only: the cable stays in the socket
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
        assert tx["stop"]["reason"] == "EVDisconnected"
        o.wait_log(sim, "the cable stays locked until CARD1's card")
        o.sleep(1)
        assert _lock(sim)  # held, with no transaction and the contactor open
        sim.do("card", uid="CARD1")
        o.wait_log(sim, "cable unlocked (card CARD1)")
        sim.wait_for(lambda ob: ob.get("k") == "lock" and not ob["v"], 10)
        sim.do("unplug")  # the cable taken out
        # again: somebody else's card does not free it, UnlockConnector does
        o.charging(sim, csms, "CARD2")
        sim.do("unplug", ev_only=True)
        o.wait_log(sim, "until CARD2's card")
        sim.do("card", uid="OTHER")
        o.sleep(1)
        assert _lock(sim)
        assert o.call(csms, "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
        assert not _lock(sim)
        o.wait_log(sim, "cable unlocked (UnlockConnector)")


def test_minimum_status_duration_holds_back_a_short_lived_status(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "MinimumStatusDuration", 4)
        m = o.mark(csms)
        sim.do("plug")  # Preparing for about a second: never reported
        o.sleep(1)
        sim.do("unplug")
        o.sleep(6)
        assert o.statuses(csms)[m:] == []
        sim.do("plug")  # stays: reported once it has lasted 4 s
        o.wait_status(csms, "Preparing", since=m, timeout=30)
        assert o.statuses(csms)[m:] == ["Preparing"]


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
        assert "FirmwareManagement" in keys["SupportedFeatureProfiles"]["value"]


def test_unknown_and_unsupported_actions_get_the_right_callerror(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        r = o.call(csms, "FooBar", {})
        assert r[0] == "NotImplemented", r
        # an OCPP 1.6 action the firmware has no handler for (no certificate signing on the
        # device: docs/security.md)
        r = o.call(csms, "CertificateSigned", {"certificateChain": "x"})
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
        tx = o.charging(sim, csms)
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
        o.charging(sim, csms)
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
        o.charging(sim, csms)
        assert o.call(csms, "UnlockConnector", {"connectorId": 1}, timeout=30) == {
            "status": "Unlocked"}
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
        assert tx["stop"]["reason"] == "UnlockCommand"


def test_change_availability_scheduled_during_a_transaction(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms)
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
        # The triggered message itself: its action and the connector it was asked for.
        sim.do("plug", cable_a=32)
        o.wait_status(csms, "Preparing")
        o.sleep(1)
        for what, c, check in (
                ("StatusNotification", 1, lambda p: p["connectorId"] == 1
                 and p["status"] == "Preparing"),
                ("StatusNotification", 0, lambda p: p["connectorId"] == 0
                 and p["status"] == "Available"),
                ("MeterValues", 1, lambda p: p["connectorId"] == 1 and all(
                    v["context"] == "Trigger" for m in p["meterValue"]
                    for v in m["sampledValue"])),
                ("Heartbeat", None, lambda p: p == {})):
            n = len(csms.frames)
            req = {"requestedMessage": what}
            if c is not None:
                req["connectorId"] = c
            assert o.call(csms, "TriggerMessage", req) == {"status": "Accepted"}, req
            got = csms.wait_for(lambda: [p for f in csms.frames[n:] if f["dir"] == "in"
                                         and o.frame_action(f) == what
                                         for p in [o.frame_payload(f)]], 10)
            assert len(got) == 1 and check(got[0]), (req, got)
        # Diagnostics- and FirmwareStatusNotification (GetDiagnostics: firmware/secext;
        # UpdateFirmware: docs/ota.md) say Idle; a Heartbeat triggered after them arrives
        # after them (the queue is in order)
        n = len(csms.frames)
        for what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification",
                     "Heartbeat"):
            assert o.call(csms, "TriggerMessage", {"requestedMessage": what}) == {
                "status": "Accepted"}, what
        csms.wait_for(lambda: any(o.frame_action(f) == "Heartbeat" for f in csms.frames[n:]
                                  if f["dir"] == "in"), 10)
        assert [o.frame_action(f) for f in csms.frames[n:] if f["dir"] == "in"
                and o.frame_action(f) not in (None, "StatusNotification")] == [
            "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat"]
        assert [p for _, a, p in csms.notifications if a == "FirmwareStatusNotification"] == [
            {"status": "Idle"}]


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


def test_connection_loss_during_a_transaction_delivers_in_order(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "MeterValueSampleInterval", 1)
        tx = o.charging(sim, csms)
        sim.do("net", state="down")
        o.wait_log(sim, "link down")
        o.sleep(3)  # meter values go to the journal meanwhile
        sim.do("unplug")
        o.wait_log(sim, "stopped (EVDisconnected)")
        n = len(csms.frames)
        sim.do("net", state="up")
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
        sent = [f["text"] for f in csms.frames[n:] if f["dir"] == "in"]
        order = [a for t in sent for a in ("MeterValues", "StopTransaction", "StatusNotification")
                 if '"%s"' % a in t]
        # queued transaction messages first (in order), then the status that changed offline
        assert "StopTransaction" in order
        stop_at = order.index("StopTransaction")
        assert "MeterValues" in order[:stop_at], order
        assert "StatusNotification" not in order[:stop_at], order
        assert tx["stop"]["meterStop"] >= tx["meterStart"]


def test_offline_start_with_local_list_and_unknown_id(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        r = o.call(csms, "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                           "localAuthorizationList": [
                                               {"idTag": "LOCAL1", "idTagInfo": {
                                                   "status": "Accepted"}},
                                               {"idTag": "BLOCKED", "idTagInfo": {
                                                   "status": "Blocked"}}]})
        assert r == {"status": "Accepted"}
        assert o.call(csms, "GetLocalListVersion", {}) == {"listVersion": 1}
        sim.do("net", state="down")
        o.wait_log(sim, "link down")
        sim.do("plug", cable_a=32)
        sim.do("card", uid="BLOCKED")
        o.wait_log(sim, "BLOCKED not accepted")
        sim.do("card", uid="UNKNOWN9")
        o.wait_log(sim, "UNKNOWN9 not accepted")
        sim.do("card", uid="local1")  # idTags are case-insensitive
        o.wait_log(sim, "transaction -1 started for local1")
        sim.do("card", uid="local1")
        o.wait_log(sim, "stopped (Local)")
        sim.do("unplug")
        sim.do("net", state="up")
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
        assert tx["idTag"] == "local1" and tx["stop"]["reason"] == "Local"


def test_offline_unknown_id_allowed_then_deauthorised_by_the_csms():
    with CsmsThread(tags={"GOOD": "Accepted"}) as csms:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.booted(csms)
            o.configure(csms, "AllowOfflineTxForUnknownId", "true")
            o.configure(csms, "StopTransactionOnInvalidId", "true")
            sim.do("net", state="down")
            o.wait_log(sim, "link down")
            sim.do("plug", cable_a=32)
            sim.do("card", uid="STRANGER")
            o.wait_log(sim, "started for STRANGER")
            sim.do("net", state="up")
            tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
            assert tx["stop"]["reason"] == "DeAuthorized"
        o.no_violations(csms)


def test_local_list_differential_version_mismatch_and_too_long(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        full = {"listVersion": 5, "updateType": "Full", "localAuthorizationList": [
            {"idTag": "T%04d" % i, "idTagInfo": {"status": "Accepted"}} for i in range(50)]}
        assert o.call(csms, "SendLocalList", full) == {"status": "Accepted"}
        diff = {"listVersion": 5, "updateType": "Differential", "localAuthorizationList": [
            {"idTag": "T0001"}]}
        assert o.call(csms, "SendLocalList", diff) == {"status": "VersionMismatch"}
        diff["listVersion"] = 6
        assert o.call(csms, "SendLocalList", diff) == {"status": "Accepted"}
        assert o.call(csms, "GetLocalListVersion", {}) == {"listVersion": 6}
        r = o.call(csms, "GetConfiguration", {"key": ["SendLocalListMaxLength"]})
        n = int(r["configurationKey"][0]["value"])
        big = {"listVersion": 7, "updateType": "Full", "localAuthorizationList": [
            {"idTag": "U%05d" % i, "idTagInfo": {"status": "Accepted"}} for i in range(n + 1)]}
        r = o.call(csms, "SendLocalList", big)
        assert r in ({"status": "Failed"},) or r[0] == "OccurrenceConstraintViolation", r
        assert o.call(csms, "GetLocalListVersion", {}) == {"listVersion": 6}


def test_power_cut_during_a_transaction_ends_it_with_power_loss(csms, tmp_path):
    d = o.state_dir(tmp_path)
    sim = o.start_sim(csms, state_dir=d).start()
    with o.report(sim, csms):
        o.booted(csms)
        tx = o.charging(sim, csms)
        o.sleep(1)
        sim.send({"do": "powercut"})  # no ack: the process is gone
        sim.wait_for({"k": "closed"}, 10)
    sim.proc.wait(10)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
        assert tx["stop"]["reason"] == "PowerLoss"
        assert tx["stop"]["meterStop"] >= tx["meterStart"]
        assert tx["start_frames"] == 1 and tx["stop_frames"] == 1



def test_tx_default_profile_lowers_the_offer_and_clear_restores_it(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        prof = {"chargingProfileId": 1, "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 10.0}]}}
        assert o.call(csms, "SetChargingProfile", {"connectorId": 1,
                                                   "csChargingProfiles": prof}) == {
            "status": "Accepted"}
        o.charging(sim, csms)
        o.offer(sim, 100)
        r = o.call(csms, "GetCompositeSchedule", {"connectorId": 1, "duration": 600})
        assert r["status"] == "Accepted"
        assert r["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10.0
        # a TxProfile on top, for this transaction: 8 A
        tid = list(csms.transactions.values())[-1]["id"]
        txp = dict(prof, chargingProfileId=2, chargingProfilePurpose="TxProfile",
                   transactionId=tid, chargingSchedule={"chargingRateUnit": "A",
                                                        "chargingSchedulePeriod": [
                                                            {"startPeriod": 0, "limit": 8.0}]})
        assert o.call(csms, "SetChargingProfile", {"connectorId": 1,
                                                   "csChargingProfiles": txp}) == {
            "status": "Accepted"}
        o.offer(sim, 80)
        assert o.call(csms, "ClearChargingProfile", {"id": 2}) == {"status": "Accepted"}
        assert o.call(csms, "ClearChargingProfile", {"id": 99}) == {"status": "Unknown"}
        o.offer(sim, 100)
        assert o.call(csms, "ClearChargingProfile", {}) == {"status": "Accepted"}
        # back to the installer's max_current_a (16 A), never the 32 A rating: OCPP's
        # "no profile" limit cannot lift the offer above the configured maximum
        o.offer(sim, 160)
        o.sleep(6)
        assert sim.state()["offer_da"] == 160


def test_tx_profile_without_a_transaction_is_rejected(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        prof = {"chargingProfileId": 3, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative", "chargingSchedule": {
                    "chargingRateUnit": "A", "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 6.0}]}}
        assert o.call(csms, "SetChargingProfile", {"connectorId": 1,
                                                   "csChargingProfiles": prof}) == {
            "status": "Rejected"}


def test_fault_is_reported_with_the_sessions_error_code(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.charging(sim, csms)
        sim.do("fault", name="rcm_trip")
        csms.wait_for(lambda: any(p["status"] == "Faulted" and p["errorCode"] ==
                                  "GroundFailure" for cp, p in list(csms.statuses)), 15)


def test_basic_auth_and_diag_never_shows_the_password():
    pw = "s3cret-password-0123"
    with CsmsThread(password=pw) as csms:
        with o.start_sim(csms, ocpp={"password": pw}) as sim, o.report(sim, csms):
            o.booted(csms)
            lines = sim.diag("status")
            text = "\n".join(lines)
            assert "ocpp       %sCP1  connected  boot Accepted" % csms.url in text, text
            assert "journal 0 pending" in text
            assert pw not in text and pw not in "\n".join(o.logs(sim))
        o.no_violations(csms)
    with CsmsThread(password=pw) as csms:
        with o.start_sim(csms, ocpp={"password": "wrong-password-0123"}) as sim:
            o.wait_log(sim, "HTTP 401 Unauthorized")
            assert not csms.boots


def test_remote_start_with_a_tx_profile_limits_that_transaction(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        sim.do("plug", cable_a=32)
        o.wait_status(csms, "Preparing")
        prof = {"chargingProfileId": 7, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative", "chargingSchedule": {
                    "chargingRateUnit": "A", "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 7.0}]}}
        r = o.call(csms, "RemoteStartTransaction", {"idTag": "RS", "chargingProfile": prof})
        assert r == {"status": "Accepted"}
        o.wait_tx(csms, lambda t: t["idTag"] == "RS")
        o.offer(sim, 70, timeout=20)


def test_wss_with_the_csms_ca_charges_and_a_wrong_host_name_is_refused(tmp_path):
    # Security profile 2: TLS with the CA from config; a certificate for another host name
    # (from the same CA) is refused, named as a TLS failure, and nothing is sent to it.
    import shutil

    import certs

    c = certs.make_certs(str(tmp_path / "certs"))
    d = o.state_dir(tmp_path)
    shutil.copy(c["ca_pem"], d + "/ca.pem")
    with CsmsThread(cert=c["cert"], key=c["key"]) as csms:
        url = "wss://localhost:%d/" % csms.port
        with o.start_sim(csms, ocpp={"url": url, "ca": "ca.pem"}, state_dir=d,
                         free_vend=True) as sim, o.report(sim, csms):
            o.booted(csms)
            m = o.mark(csms)
            sim.do("plug")
            o.wait_status(csms, "Charging", since=m, timeout=30)
            tx = o.wait_tx(csms, lambda t: t["meterStart"] is not None)
            assert tx["stop"] is None
        o.no_violations(csms)
    with CsmsThread(cert=c["wrong_cert"], key=c["wrong_key"]) as csms:
        url = "wss://localhost:%d/" % csms.port
        with o.start_sim(csms, ocpp={"url": url, "ca": "ca.pem"}, state_dir=d) as sim:
            o.wait_log(sim, "TLS handshake with localhost:%d failed" % csms.port, timeout=30)
            assert not csms.boots
