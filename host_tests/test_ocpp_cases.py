"""More OCPP 1.6 certification cases on the simulated wallbox (the real firmware on the unix
port against the dev CSMS, as in test_ocpp_sim.py): cached ids, remote start timed out, hard
reset during a transaction, StopTransactionOnInvalidId false, offline stop, and stacking of
TxDefaultProfiles with ClearChargingProfile. Each ends with no schema or OCPP-J violation."""
import pytest

import ocpprig as o
from ocpprig import CsmsThread

pytestmark = pytest.mark.slow


@pytest.fixture
def csms():
    with CsmsThread() as c:
        yield c
        o.no_violations(c)



def _link_down(sim):
    n = len(sim.obs)
    sim.do("net", state="down")
    o.wait_log(sim, "link down", since=n)


def _reconnected(csms, timeout=60):
    """Wait until the charge point is connected again (after net up)."""
    csms.wait_for(lambda: o.CP in csms.links, timeout)


def _inbound(csms, since):
    """(action, payload) of each CALL the charge point sent from frame `since` on."""
    import json

    out = []
    for f in csms.frames[since:]:
        if f["dir"] != "in":
            continue
        m = json.loads(f["text"])
        if m[0] == 2:
            out.append((m[2], m[3]))
    return out


def _log_since(sim, text, since):
    return [m for x in sim.obs[since:] if x.get("k") == "log"
            for m in (x.get("msg", ""),) if text in m]


def test_cached_id_authorises_offline_until_clear_cache():
    with CsmsThread(tags={"CACHED1": "Accepted"}) as csms:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.booted(csms)
            o.configure(csms, "AuthorizationCacheEnabled", "true")
            o.configure(csms, "LocalAuthorizeOffline", "true")
            o.configure(csms, "AllowOfflineTxForUnknownId", "false")
            o.configure(csms, "LocalAuthListEnabled", "false")  # only the cache decides
            # online: the card is authorised by the CSMS (identification first) ...
            m = o.mark(csms)
            sim.do("card", uid="CACHED1")
            csms.wait_for(lambda: any(p["idTag"] == "CACHED1" for cp, p in
                                      list(csms.authorizations)), 20)
            o.wait_status(csms, "Preparing", since=m)
            sim.do("card", uid="CACHED1")  # ... and withdrawn by the same card
            o.wait_status(csms, "Available", since=m + 1)
            n_auth = len(csms.authorizations)
            # offline: the same card starts a transaction from the cache
            _link_down(sim)
            sim.do("plug", cable_a=32)
            sim.do("card", uid="CACHED1")
            o.wait_log(sim, "started for CACHED1")
            assert not csms.transactions
            sim.do("net", state="up")
            tx = o.wait_tx(csms, lambda t: t["idTag"] == "CACHED1", timeout=60)
            assert tx["stop"] is None and tx["start_frames"] == 1
            assert len(csms.authorizations) == n_auth  # no Authorize: the cache decided
            o.wait_status(csms, "Charging")
            sim.do("card", uid="CACHED1")
            tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
            assert tx["stop"]["reason"] == "Local"
            m = o.mark(csms)
            sim.do("unplug")
            o.wait_status(csms, "Available", since=m)
            # ClearCache: the same card offline is no longer known
            assert o.call(csms, "ClearCache", {}) == {"status": "Accepted"}
            _link_down(sim)
            n = len(sim.obs)
            sim.do("plug", cable_a=32)
            sim.do("card", uid="CACHED1")
            o.wait_log(sim, "idTag CACHED1 not accepted (Invalid)", since=n)
            o.sleep(2)
            assert not _log_since(sim, "started for", n)
            assert sim.state()["status"] != "Charging"
            sim.do("net", state="up")
            _reconnected(csms)
            o.sleep(2)
            assert len(csms.transactions) == 1
        o.no_violations(csms)


def test_remote_start_times_out_without_a_plug(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "ConnectionTimeOut", 3)
        m = o.mark(csms)
        n = len(sim.obs)
        r = o.call(csms, "RemoteStartTransaction", {"idTag": "RTIME", "connectorId": 1})
        assert r == {"status": "Accepted"}
        o.wait_status(csms, "Preparing", since=m)
        o.wait_log(sim, "ConnectionTimeOut", timeout=15, since=n)
        o.wait_status(csms, "Available", since=m + 1)
        # the lapsed authorisation does not start a transaction when the EV comes later
        m = o.mark(csms)
        sim.do("plug", cable_a=32)
        o.wait_status(csms, "Preparing", since=m)
        o.sleep(4)
        assert not csms.transactions
        assert o.statuses(csms)[m:] == ["Preparing"]
        assert sim.state()["status"] != "Charging"
        assert not any(x.get("k") == "contacts" and x.get("closed") for x in sim.obs[n:])


def test_hard_reset_during_a_transaction_stops_it_then_reboots(csms, tmp_path):
    d = o.state_dir(tmp_path)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        tx = o.charging(sim, csms, "HARD1")
        n = len(sim.obs)
        assert o.call(csms, "Reset", {"type": "Hard"}) == {"status": "Accepted"}
        o.wait_log(sim, "stopped (HardReset)")
        end = sim.wait_for({"k": "end"}, 20)
        # The contactor was opened (commanded, and the contacts followed) before the reboot.
        after = sim.obs[n:sim.obs.index(end)]
        cmds = [x["cmd"] for x in after if x.get("k") == "contactor"]
        contacts = [x["closed"] for x in after if x.get("k") == "contacts"]
        assert cmds and cmds[-1] is False and contacts and contacts[-1] is False, after[-20:]
    assert len(csms.boots) == 1
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        csms.wait_for(lambda: len(csms.boots) >= 2, 30)
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=30)
        o.booted(csms)
        assert tx["idTag"] == "HARD1"
        assert tx["stop"]["reason"] == "HardReset"
        assert tx["stop"]["meterStop"] >= tx["meterStart"]
        o.sleep(2)  # no second stop (e.g. PowerLoss) after the reboot
        assert tx["start_frames"] == 1 and tx["stop_frames"] == 1
        assert len(csms.transactions) == 1


def test_invalid_id_from_the_csms_with_stop_off_stops_energy_and_keeps_the_transaction():
    # OCPP 1.6 (StopTransactionOnInvalidId false): the charge point stops the energy
    # delivery and keeps the transaction open until it ends otherwise.
    with CsmsThread(tags={"GOOD": "Accepted"}) as csms:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.booted(csms)
            o.configure(csms, "AllowOfflineTxForUnknownId", "true")
            o.configure(csms, "StopTransactionOnInvalidId", "false")
            o.configure(csms, "MeterValueSampleInterval", 1)
            _link_down(sim)
            sim.do("plug", cable_a=32)
            sim.do("card", uid="STRANGER")
            o.wait_log(sim, "started for STRANGER")
            sim.wait_for(lambda x: x.get("k") == "state" and x["status"] == "Charging", 20)
            n_obs = len(sim.obs)
            sim.do("net", state="up")
            tx = o.wait_tx(csms, lambda t: t["idTag"] == "STRANGER", timeout=60)
            answer = [f["text"] for f in csms.frames if f["dir"] == "out"
                      and '"transactionId": %d' % tx["id"] in f["text"]]
            assert answer and '"Invalid"' in answer[0], answer
            # energy stops: no offer, the contactor opens; the CSMS sees SuspendedEVSE
            sim.wait_for(lambda x: x.get("k") == "state" and x["offer_da"] == 0, 20,
                         since=n_obs)
            sim.wait_for(lambda x: x.get("k") == "contactor" and not x["cmd"], 20,
                         since=n_obs)
            o.wait_status(csms, "SuspendedEVSE", timeout=20)
            # the transaction goes on: its readings keep coming, no Stop
            csms.wait_for(lambda: tx["meter_values"], 20)
            n = len(csms.frames)
            csms.wait_for(lambda: sum(1 for a, p in _inbound(csms, n) if a == "MeterValues"
                                      and p.get("transactionId") == tx["id"]) >= 2, 20)
            assert tx["stop"] is None
            assert sim.state()["offer_da"] == 0
            assert not _log_since(sim, "by the CSMS: stopping", 0)
            assert _log_since(sim, "energy stopped, transaction %d kept" % tx["id"], 0)
            # until the user stops it
            sim.do("card", uid="STRANGER")
            tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
            assert tx["stop"]["reason"] == "Local"
            assert tx["stop"]["meterStop"] > tx["meterStart"]
        o.no_violations(csms)


def test_offline_stop_arrives_after_the_reconnect_in_order(csms):
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        o.configure(csms, "MeterValueSampleInterval", 1)
        tx = o.charging(sim, csms, "OFFSTOP")
        _link_down(sim)
        o.sleep(3)  # sampled meter values are journaled meanwhile
        n = len(sim.obs)
        sim.do("card", uid="OFFSTOP")
        o.wait_log(sim, "stopped (Local)", since=n)
        o.sleep(1)
        assert tx["stop"] is None  # nothing reached the CSMS while offline
        f0 = len(csms.frames)
        sim.do("net", state="up")
        tx = o.wait_tx(csms, lambda t: t["stop"] is not None, timeout=60)
        stop = tx["stop"]
        assert stop["reason"] == "Local" and stop["idTag"] == "OFFSTOP"
        assert stop["meterStop"] >= tx["meterStart"]
        sent = [(a, p) for a, p in _inbound(csms, f0)
                if p.get("transactionId") == tx["id"]]
        acts = [a for a, p in sent]
        assert acts.count("StopTransaction") == 1
        at = acts.index("StopTransaction")
        # the readings queued offline went first, none after the stop
        assert "MeterValues" in acts[:at], acts
        assert "MeterValues" not in acts[at + 1:], acts
        stamps = [p["meterValue"][0]["timestamp"] for a, p in sent if a == "MeterValues"]
        assert stamps == sorted(stamps) and stamps[-1] <= stop["timestamp"]
        wh = [int(sv["value"]) for a, p in sent if a == "MeterValues"
              for sv in p["meterValue"][0]["sampledValue"]
              if sv.get("measurand", "Energy.Active.Import.Register")
              == "Energy.Active.Import.Register"]
        assert wh == sorted(wh) and wh[-1] <= stop["meterStop"]


def _tx_default(pid, level, amps):
    return {"chargingProfileId": pid, "stackLevel": level,
            "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": amps}]}}



def _composite_a(csms):
    r = o.call(csms, "GetCompositeSchedule", {"connectorId": 1, "duration": 600,
                                               "chargingRateUnit": "A"})
    assert r["status"] == "Accepted", r
    return [p["limit"] for p in r["chargingSchedule"]["chargingSchedulePeriod"]]


def test_stacked_tx_default_profiles_and_clearing_the_top_one(csms):
    # max_current_a 20: the 16 A of stackLevel 0 shows in the offer, not the installer's cap
    with o.start_sim(csms, max_current_a=20) as sim, o.report(sim, csms):
        o.booted(csms)
        for pid, level, amps in ((1, 0, 16.0), (2, 1, 10.0)):
            assert o.call(csms, "SetChargingProfile", {
                "connectorId": 1, "csChargingProfiles": _tx_default(pid, level, amps)}) == {
                    "status": "Accepted"}
        n = len(sim.obs)
        o.charging(sim, csms, "STACK1")
        o.wait_log(sim, "limit 10.0 A (ocpp: TxDefaultProfile 2)", since=n)
        o.offer(sim, 100)
        assert _composite_a(csms) == [10.0]
        n = len(sim.obs)
        assert o.call(csms, "ClearChargingProfile", {
            "connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile",
            "stackLevel": 1}) == {"status": "Accepted"}
        o.wait_log(sim, "limit 16.0 A (ocpp: TxDefaultProfile 1)", since=n)
        o.offer(sim, 160)
        assert _composite_a(csms) == [16.0]
        assert o.call(csms, "GetCompositeSchedule", {"connectorId": 2, "duration": 600}) == {
            "status": "Rejected"}  # one connector (0: the grid view)
        assert o.call(csms, "ClearChargingProfile", {"id": 2}) == {"status": "Unknown"}
        # schema-valid but not installable: Rejected, and the log says why
        cpmax = dict(_tx_default(3, 0, 6.0), chargingProfilePurpose="ChargePointMaxProfile")
        n = len(sim.obs)
        assert o.call(csms, "SetChargingProfile", {
            "connectorId": 1, "csChargingProfiles": cpmax}) == {"status": "Rejected"}
        o.wait_log(sim, "SetChargingProfile Rejected: ChargePointMaxProfile only on connector 0",
                   since=n)
        o.sleep(3)
        assert sim.state()["offer_da"] == 160 and sim.state()["status"] == "Charging"
