"""Legal but unusual answers of real central systems (issue 13, 1.1, 1.4, 1.12; issue 15, 3):
the real ChargePoint on the MicroPython unix port (host_tests/mpy/ocpp_answers_rig.py: fake
controller and board, a scripted CSMS in the same process). Each test says what the CSMS
receives: one StartTransaction per transaction, then its MeterValues and StopTransaction.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RIG = os.path.join(ROOT, "host_tests", "mpy", "ocpp_answers_rig.py")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import simlib  # noqa: E402

pytestmark = pytest.mark.sim
OCPP_CORE_EXPIRY = "2199-12-31T00:00:00+01:00"  # OCPP.Core's answer to every Authorize/Start


def run(tmp_path, plan, timeout=60):
    work = tmp_path / "flash"
    work.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    env = dict(os.environ, MICROPYPATH=ROOT + os.pathsep + ".frozen")
    r = subprocess.run([simlib.micropython_exe(), RIG, str(path), str(work)],
                       capture_output=True, text=True, env=env, timeout=timeout)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stdout + r.stderr, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(lines[-1][7:])


def actions(res, which=("StartTransaction", "MeterValues", "StopTransaction")):
    return [a for a, _ in res["got"] if a in which]


def payloads(res, action):
    return [p for a, p in res["got"] if a == action]


SESSION = [["booted", 15000], ["plug"], ["card", "CARD1"], ["until", "StartTransaction", 1, 15000],
           ["sleep", 300], ["unplug"], ["until", "StopTransaction", 1, 15000], ["sleep", 100],
           ["lookup", "cache", "CARD1"], ["diag"]]


def start_answer(info, tid=7):
    return {"StartTransaction": [{"transactionId": tid, "idTagInfo": info}]}


@pytest.mark.parametrize("info", [
    {"status": "Accepted", "expiryDate": OCPP_CORE_EXPIRY},
    {"status": "Accepted", "expiryDate": "1969-12-31T23:59:59Z"},
    {"status": "Accepted", "expiryDate": "0001-01-01T00:00:00Z"},
    {"status": "Accepted", "parentIdTag": ""},
    {"status": "Accepted", "parentIdTag": "GR\u00dcPPE-\u00e9\u20ac"},
    {"status": "Accepted", "parentIdTag": "\u20ac" * 20},
    {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00+0000"},
], ids=["2199", "1969", "year1", "empty-parent", "utf8-parent", "long-utf8-parent",
        "basic-offset"])
def test_a_start_answered_with_any_legal_id_tag_info_is_sent_once(tmp_path, info):
    res = run(tmp_path, {"keys": {"MeterValueSampleInterval": 0}, "answers": start_answer(info),
                         "steps": SESSION})
    assert actions(res) == ["StartTransaction", "MeterValues", "StopTransaction"], res["log"]
    assert [p["transactionId"] for p in payloads(res, "StopTransaction")] == [7]
    assert payloads(res, "MeterValues")[0]["transactionId"] == 7
    assert res["journal"] == 0 and res["faults"] == 0, res["log"]
    assert not res["timeouts"] if "timeouts" in res else True
    cached = res["lookups"][0][2]
    assert cached is not None and cached[0] in ("Accepted", "Expired"), res["lookups"]


def test_expiry_after_2106_is_cached_clamped_and_logged(tmp_path):
    res = run(tmp_path, {"answers": start_answer(
        {"status": "Accepted", "expiryDate": OCPP_CORE_EXPIRY}), "steps": SESSION})
    assert res["lookups"][0][2] == ["Accepted", 0xFFFFFFFF, None]
    assert any("kept as 2106-02-07T06:28:15Z" in m for m in res["log"]), res["log"]


def test_expiry_before_1970_is_cached_as_long_expired(tmp_path):
    res = run(tmp_path, {"answers": start_answer(
        {"status": "Accepted", "expiryDate": "1969-07-20T20:17:00Z"}), "steps": SESSION})
    assert res["lookups"][0][2] == ["Accepted", 1, None]


def test_an_expiry_that_cannot_be_read_is_not_cached(tmp_path):
    # A CALLRESULT's date-time in another format is used (rpc's lax check); this one has no
    # readable date at all: the Start's idTagInfo is not cached (neither as long expired),
    # the Authorize's entry stays.
    res = run(tmp_path, {"answers": start_answer(
        {"status": "Accepted", "expiryDate": "12/31/2030"}), "steps": SESSION})
    assert res["lookups"][0][2] == ["Accepted", None, None], res["lookups"]
    assert any("not cached" in m for m in res["log"]), res["log"]


def test_authorize_answered_with_a_2199_expiry_is_not_called_failed(tmp_path):
    res = run(tmp_path, {"answers": {"Authorize": [{"idTagInfo": {
        "status": "Accepted", "expiryDate": OCPP_CORE_EXPIRY, "parentIdTag": ""}}]},
        "steps": SESSION})
    assert not any("Authorize failed" in m for m in res["log"]), res["log"]
    assert actions(res) == ["StartTransaction", "MeterValues", "StopTransaction"]


def test_an_answer_with_extra_fields_and_a_zoneless_date_keeps_its_transaction_id(tmp_path):
    conf = {"transactionId": 9, "idTagInfo": {"status": "Accepted",
                                              "expiryDate": "2030-01-01T00:00:00",
                                              "vendorField": 1}, "sessionUrl": "x"}
    res = run(tmp_path, {"answers": {"StartTransaction": [conf]}, "steps": SESSION})
    assert actions(res) == ["StartTransaction", "MeterValues", "StopTransaction"], res["log"]
    assert payloads(res, "StopTransaction")[0]["transactionId"] == 9
    # an expiry it cannot read is not cached, and said so (the entry is Authorize's)
    assert res["lookups"][0][2] == ["Accepted", None, None]
    assert any("not cached: expiryDate '2030-01-01T00:00:00'" in m for m in res["log"])


def test_an_answer_missing_what_the_charge_point_needs_is_still_an_error(tmp_path):
    bad = {"transactionId": "9", "idTagInfo": {"status": "Accepted"}}
    res = run(tmp_path, {"keys": {"TransactionMessageRetryInterval": 1},
                         "answers": {"StartTransaction": [bad]}, "steps": SESSION})
    starts = payloads(res, "StartTransaction")
    assert len(starts) == 2, res["log"]  # the bad answer was an attempt; the retry got 101
    assert payloads(res, "StopTransaction")[0]["transactionId"] == 101


def test_a_start_refused_more_than_the_attempts_keeps_its_values_and_stop(tmp_path):
    errs = [{"_error": "InternalError"}] * 3
    res = run(tmp_path, {"keys": {"TransactionMessageAttempts": 2,
                                  "TransactionMessageRetryInterval": 1},
                         "answers": {"StartTransaction": errs},
                         "steps": [["plug"], ["card", "CARD1"], ["sleep", 300], ["unplug"],
                                   ["until", "StopTransaction", 1, 30000]]})
    assert actions(res) == ["StartTransaction"] * 4 + ["MeterValues", "StopTransaction"], (
        res["log"])
    assert payloads(res, "StopTransaction")[0]["transactionId"] == 101
    assert res["journal"] == 0


def test_stop_answer_updates_the_cache(tmp_path):
    res = run(tmp_path, {"answers": {"StopTransaction": [
        {"idTagInfo": {"status": "Blocked", "expiryDate": "2030-01-01T00:00:00Z"}}]},
        "steps": [["plug"], ["card", "CARD1"], ["until", "StartTransaction", 1, 15000],
                  ["card", "card1"], ["until", "StopTransaction", 1, 15000], ["sleep", 100],
                  ["lookup", "cache", "CARD1"]]})
    assert payloads(res, "StopTransaction")[0]["idTag"] == "card1"
    assert res["lookups"][0][2] == ["Blocked", 1893456000, None], res["lookups"]


def test_a_transaction_id_beyond_32_bits_is_acknowledged_once(tmp_path):
    # A transactionId outside 32 bits (schema-valid) cannot be journaled: the Start is still
    # acknowledged once, its MeterValues and Stop dropped with a log line.
    res = run(tmp_path, {"answers": {"StartTransaction": [
        {"transactionId": 1 << 40, "idTagInfo": {"status": "Accepted"}}]}, "steps": SESSION})
    assert actions(res, ("StartTransaction",)) == ["StartTransaction"], res["log"]
    assert any("cannot be sent" in m for m in res["log"]), res["log"]


def test_a_fault_in_the_sender_is_logged_and_counted_in_diag(tmp_path):
    res = run(tmp_path, {"steps": [["sleep", 200], ["break_peek"], ["plug"], ["card", "C"],
                                   ["until", "StartTransaction", 1, 15000], ["diag"]]})
    assert res["faults"] == 1
    assert any("fault 1 in sender" in m and "unreadable record" in m for m in res["log"])
    assert any("faults 1" in line for line in res["diag"]), res["diag"]
    assert actions(res)[:1] == ["StartTransaction"]  # the sender went on


def entry(tag, **info):
    return {"idTag": tag, "idTagInfo": dict(status="Accepted", **info)}


def test_send_local_list_stores_every_legal_id_tag_info(tmp_path):
    lst = [entry("A1", expiryDate=OCPP_CORE_EXPIRY),
           entry("A2", expiryDate="1960-01-01T00:00:00Z"),
           entry("A3", parentIdTag=""), entry("A4", parentIdTag="\u00e9quipe"),
           entry("A5", parentIdTag="\u20ac" * 20), entry("\u00e9t\u00e9"),
           entry("A6", expiryDate="2030-01-01T00:00:00+0000")]
    res = run(tmp_path, {"steps": [["sleep", 200], ["call", "SendLocalList", {
        "listVersion": 3, "updateType": "Full", "localAuthorizationList": lst}],
        ["call", "GetLocalListVersion", {}]] + [
        ["lookup", "list", t] for t in ("a1", "A2", "A3", "A4", "A5", "\u00c9t\u00e9", "A6")]})
    assert res["replies"] == [["SendLocalList", {"status": "Accepted"}],
                              ["GetLocalListVersion", {"listVersion": 3}]], res["log"]
    got = {t: hit for _, t, hit in res["lookups"]}
    assert got["a1"] == ["Accepted", 0xFFFFFFFF, None]
    assert got["A2"] == ["Accepted", 1, None]
    assert got["A3"] == ["Accepted", None, None]
    assert got["A4"] == ["Accepted", None, "\u00e9quipe"]
    assert got["A5"] == ["Accepted", None, None]  # 60 bytes: left out, logged
    assert got["A6"] == ["Accepted", 1893456000, None]
    assert got["\u00c9t\u00e9"] is None  # only a-z are folded: \u00e9 is not \u00c9
    assert any("parentIdTag" in m and "left out" in m for m in res["log"]), res["log"]


def test_a_local_list_that_cannot_be_stored_is_failed_with_the_reason(tmp_path):
    res = run(tmp_path, {"steps": [["sleep", 200], ["call", "SendLocalList", {
        "listVersion": 3, "updateType": "Full",
        "localAuthorizationList": [entry("a1"), entry("A1")]}],  # one idTag (CiString)
        ["call", "GetLocalListVersion", {}]]})
    assert res["replies"] == [["SendLocalList", {"status": "Failed"}],
                              ["GetLocalListVersion", {"listVersion": 0}]], res["log"]
    assert any("SendLocalList failed: idTag" in m and "twice" in m for m in res["log"]), res[
        "log"]


def test_a_reservation_before_1970_is_rejected_and_an_empty_parent_is_no_group(tmp_path):
    res = run(tmp_path, {"steps": [["sleep", 200], ["call", "ReserveNow", {
        "connectorId": 1, "expiryDate": "1960-01-01T00:00:00Z", "idTag": "R1",
        "reservationId": 1}], ["call", "ReserveNow", {
            "connectorId": 1, "expiryDate": "2099-01-01T00:00:00Z", "idTag": "R1",
            "reservationId": 2, "parentIdTag": ""}], ["sleep", 50],
        ["plug"], ["card", "OTHER"], ["sleep", 500]],
        "answers": {"Authorize": [{"idTagInfo": {"status": "Accepted", "parentIdTag": ""}}]}})
    assert [r for _, r in res["replies"]] == [{"status": "Rejected"}, {"status": "Accepted"}]
    assert actions(res) == []  # OTHER with parent "" is not R1's group: reserved for R1
    assert any("reserved for another idTag" in m for m in res["log"]), res["log"]


@pytest.mark.parametrize("start_parent,card_parent,stops", [
    ("G1", "g1", True), ("", "", False), ("G1", "", False)])
def test_a_card_of_the_group_from_start_conf_stops_a_remote_start(tmp_path, start_parent,
                                                                   card_parent, stops):
    res = run(tmp_path, {
        "keys": {"AuthorizeRemoteTxRequests": "false"},
        "answers": {"StartTransaction": [{"transactionId": 5, "idTagInfo": {
            "status": "Accepted", "parentIdTag": start_parent}}],
            "Authorize": [{"idTagInfo": {"status": "Accepted", "parentIdTag": card_parent}}]},
        "steps": [["sleep", 200], ["call", "RemoteStartTransaction", {"idTag": "R1"}],
                  ["plug"], ["until", "StartTransaction", 1, 15000], ["sleep", 100],
                  ["card", "OTHER"], ["until", "StopTransaction", 1, 4000]]})
    assert payloads(res, "StartTransaction")[0]["idTag"] == "R1"
    assert "Authorize" not in [a for a, _ in res["got"][:3]]
    stops_got = payloads(res, "StopTransaction")
    if stops:
        assert [(p["idTag"], p["reason"]) for p in stops_got] == [("OTHER", "Local")]
    else:
        assert stops_got == [] and res["open"], res["log"]


def test_measurands_the_meter_lacks_are_rejected(tmp_path):
    def change(key, value):
        return ["call", "ChangeConfiguration", {"key": key, "value": value}]

    steps = [["sleep", 100], change("MeterValuesSampledData", "Voltage"),
             change("MeterValuesSampledData", "Energy.Active.Import.Register,Current.Offered"),
             change("StopTxnSampledData", "Frequency")]
    s0 = run(tmp_path / "s0", {"meters": {"ev": {"type": "s0"}}, "steps": steps})
    assert [r["status"] for _, r in s0["replies"]] == ["Rejected", "Accepted", "Rejected"]
    sdm = run(tmp_path / "sdm", {"meters": {"ev": {"type": "modbus", "profile": "sdm630"}},
                                 "steps": steps})
    assert [r["status"] for _, r in sdm["replies"]] == ["Accepted", "Accepted", "Accepted"]


def test_board_overrides_reach_the_keys_and_unused_keys_are_read_only(tmp_path):
    res = run(tmp_path, {"board_keys": {"ConnectorPhaseRotation": "0.RST,1.RST"}, "steps": [
        ["sleep", 100],
        ["call", "GetConfiguration", {"key": ["ConnectorPhaseRotation", "ResetRetries"]}],
        ["call", "ChangeConfiguration", {"key": "ConnectorPhaseRotation", "value": "1.STR"}],
        ["call", "ChangeConfiguration", {"key": "ResetRetries", "value": "2"}]]})
    conf = res["replies"][0][1]["configurationKey"]
    assert conf == [{"key": "ConnectorPhaseRotation", "readonly": True, "value": "0.RST,1.RST"},
                    {"key": "ResetRetries", "readonly": True, "value": "0"}]
    assert [r for _, r in res["replies"][1:]] == [{"status": "Rejected"}] * 2


def test_a_boot_interval_above_a_day_is_clamped_and_logged(tmp_path):
    res = run(tmp_path, {"answers": {"BootNotification": [{
        "status": "Accepted", "currentTime": "2027-01-15T08:00:00Z", "interval": 100000}]},
        "steps": [["sleep", 200], ["call", "GetConfiguration", {"key": ["HeartbeatInterval"]}]]})
    assert res["replies"][0][1]["configurationKey"][0]["value"] == "86400"
    assert any("100000 s clamped to 86400" in m for m in res["log"]), res["log"]


def test_get_local_list_version_of_a_disabled_list_is_its_version(tmp_path):
    res = run(tmp_path, {"steps": [
        ["sleep", 100], ["call", "SendLocalList", {"listVersion": 4, "updateType": "Full",
                                                   "localAuthorizationList": []}],
        ["call", "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"}],
        ["call", "GetLocalListVersion", {}]]})
    assert res["replies"][-1][1] == {"listVersion": 4}  # -1 means "not supported" (5.8)


def test_triggers_are_bounded_and_not_repeated_while_the_sender_waits(tmp_path):
    trig = []
    for what in ("StatusNotification", "MeterValues", "Heartbeat"):
        for c in (None, 0, 1):
            req = {"requestedMessage": what}
            if c is not None:
                req["connectorId"] = c
            trig.append(["call", "TriggerMessage", req])
    res = run(tmp_path, {"delay": {"Heartbeat": 1500}, "keys": {"HeartbeatInterval": 1},
                         "steps": [["sleep", 200], ["until", "Heartbeat", 1, 15000]]
                         + trig[:1] * 3 + trig + [
        ["call", "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}],
        ["call", "TriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"}],
        ["sleep", 3000]]})
    st = [r["status"] for _, r in res["replies"]]
    # the first one three times, then nine of which it is one: eight wait, the ninth is one
    # too many; each is sent once
    assert st == ["Accepted"] * 11 + ["Rejected"] + ["NotImplemented"] * 2, st
    assert [a for a, _ in res["got"]].count("MeterValues") == 3  # connectors None, 0, 1
    assert [a for a, _ in res["got"]].count("Heartbeat") >= 2
    assert not [a for a, _ in res["got"] if "Firmware" in a or "Diagnostics" in a]


def test_a_composite_schedule_of_an_unknown_connector_is_rejected(tmp_path):
    res = run(tmp_path, {"steps": [["sleep", 200]] + [
        ["call", "GetCompositeSchedule", {"connectorId": c, "duration": 600}] for c in (2, 1)]})
    assert res["replies"][0] == ["GetCompositeSchedule", {"status": "Rejected"}], res["log"]
    assert res["replies"][1][1]["status"] == "Accepted", res["replies"]


def test_transaction_data_cut_to_eight_samples_is_logged(tmp_path):
    res = run(tmp_path, {"keys": {"MeterValueSampleInterval": 1,
                                  "StopTxnSampledData": "Energy.Active.Import.Register"},
                         "steps": [["plug"], ["card", "C"], ["until", "MeterValues", 10, 15000],
                                   ["card", "C"], ["until", "StopTransaction", 1, 15000]]},
              timeout=90)
    stop = payloads(res, "StopTransaction")[0]
    assert len(stop["transactionData"]) == 8
    assert stop["transactionData"][-1]["sampledValue"][0]["context"] == "Transaction.End"
    assert any("transactionData keeps the last 8 samples" in m for m in res["log"])
    assert any("earlier samples left out" in m for m in res["log"]), res["log"]


def test_two_cards_with_empty_parents_are_not_one_group(tmp_path):
    empty = {"idTagInfo": {"status": "Accepted", "parentIdTag": ""}}
    res = run(tmp_path, {"answers": {"Authorize": [empty, empty]}, "steps": [
        ["plug"], ["card", "FIRST"], ["until", "StartTransaction", 1, 15000], ["sleep", 100],
        ["card", "OTHER"], ["until", "Authorize", 2, 15000], ["sleep", 300]]})
    assert [a for a, _ in res["got"]].count("Authorize") == 2
    assert payloads(res, "StopTransaction") == [] and res["open"], res["log"]


def test_a_lost_card_reader_is_reader_failure_on_connector_0_until_it_answers(tmp_path):
    """The card reader's driver says it is lost (board.cards.fault): the CSMS gets
    StatusNotification connector 0 errorCode ReaderFailure (the status unchanged: charging
    still starts remotely), and NoError once the reader answers again."""
    res = run(tmp_path, {"reader": True, "steps": [
        ["until", "StatusNotification", 2, 15000], ["sleep", 300],
        ["reader", "pn532 not answering"], ["until", "StatusNotification", 3, 15000],
        ["sleep", 300], ["reader", None], ["until", "StatusNotification", 4, 15000]]})
    cp0 = [p for p in payloads(res, "StatusNotification") if p["connectorId"] == 0]
    got = [(p["status"], p["errorCode"], p.get("info")) for p in cp0]
    assert got == [("Available", "NoError", None),
                   ("Available", "ReaderFailure", "pn532 not answering"),
                   ("Available", "NoError", None)], got
    c1 = [p for p in payloads(res, "StatusNotification") if p["connectorId"] == 1]
    assert all(p["errorCode"] == "NoError" for p in c1), c1


def test_only_ocpp_actions_reach_a_handler(tmp_path):
    """rpc looks a handler up in firmware/ocpp/remote.py by the action's name, and only for
    an action OCPP 1.6 defines: a CALL naming one of the module's other functions (or an
    import) is answered NotImplemented and runs nothing; the real action next to it works."""
    res = run(tmp_path, {"steps": [["sleep", 200]] + [
        ["call", a, {"connectorId": 0, "type": "Inoperative"}]
        for a in ("apply_availability", "_save", "asyncio", "send_triggered",
                  "ChangeAvailability")] + [["sleep", 100]]})
    got = [r[1] for r in res["replies"]]
    assert [g.get("_error") for g in got[:4]] == ["NotImplemented"] * 4, got
    assert got[4] == {"status": "Accepted"}, got
    assert res["status"] == "Unavailable", res["log"]


def test_a_long_unknown_action_is_clipped_by_characters(tmp_path):
    """The CALLERROR's description and the log clip a long action name by characters (50
    euro signs: 40 of them), never inside a character's UTF-8 bytes (MicroPython's %.40s
    counts bytes): the answer and the log stay valid UTF-8."""
    res = run(tmp_path, {"steps": [["sleep", 200], ["call", "\u20ac" * 50, {}], ["sleep", 100]]})
    got = [r[1] for r in res["replies"]]
    assert got == [{"_error": "NotImplemented", "_why": "\u20ac" * 40 + " unknown"}], got
