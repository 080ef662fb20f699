"""Legal-but-unusual fuzz (tools/ocpp_legal_fuzz.py): the dev CSMS answers the simulated
wallbox with CALLRESULTs generated from the OCPP 1.6 JSON schemas and sends it schema-valid
CALLs, 10,000 in all on four simulators at once. No task restarts, no transaction message
is sent again after its answer, every transaction's Start gets exactly one Stop with the id
its answer gave, and the firmware's own frames keep the schemas.

The generator's own tests (fast) check that what it makes is valid for the schemas (the
jsonschema validator of tools/csms_check.py, not the generator's reading of them), that it
reaches the unusual values it claims, and that the delivery checks can fail."""
import json
import os
import sys
from decimal import Decimal

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import gen_ocpp_schema  # noqa: E402
import ocpp_legal_fuzz as lf  # noqa: E402
from csms_check import check_payload  # noqa: E402

SEED = 20261204
RESPONSES = ("BootNotification", "Heartbeat", "Authorize", "StartTransaction",
             "StopTransaction", "DataTransfer", "MeterValues", "StatusNotification")


def _exact(payload):
    return json.loads(json.dumps(payload), parse_float=Decimal)


def test_every_generated_answer_and_call_is_schema_valid():
    gen = lf.LegalGen(SEED)
    for _ in range(300):
        for action in RESPONSES:
            p = gen.payload(action + "Response")
            assert check_payload(action + "Response", _exact(p)) is None, (action, p)
        action, p = lf.csms_call(gen, [5, -7])
        assert action in gen_ocpp_schema.CSMS_TO_CP
        assert check_payload(action, _exact(p)) is None, (action, p)
        assert len(json.dumps(["2", "x" * 36, action, p]).encode()) < 16384


def test_the_generator_reaches_the_unusual_values_and_repeats_with_its_seed():
    gen = lf.LegalGen(SEED)
    times = [gen.time() for _ in range(3000)]
    ints = [gen.integer() for _ in range(500)]
    texts = [gen.text(20) for _ in range(500)]
    assert any(t[10] == "t" for t in times) and any(t.endswith("z") for t in times)
    assert any(t.endswith("-00:00") for t in times) and any(t.endswith("+23:59") for t in times)
    assert {t[:4] for t in times} >= {"0001", "1969", "2106", "2199"}
    assert len({len(t[20:].split("+")[0].split("-")[0].rstrip("Zz")) for t in times
                if t[19] == "."}) == 9  # 1 to 9 fraction digits (and none)
    assert {0, -1, lf.INT32_MIN, lf.INT32_MAX} <= set(ints)
    assert "" in texts and "x" * 20 in texts and any(not t.isascii() for t in texts)
    assert [gen.time() for _ in range(5)] != [lf.LegalGen(SEED).time() for _ in range(5)]
    def starts(gen):  # all but the times near now, which move with the clock
        return [(p["transactionId"], p["idTagInfo"]["status"], p["idTagInfo"].get(
            "parentIdTag")) for p in (gen.payload("StartTransactionResponse")
                                      for _ in range(20))]
    assert starts(lf.LegalGen(3)) == starts(lf.LegalGen(3)) != starts(lf.LegalGen(4))


def test_known_faults_are_left_out_unless_asked_for():
    def years(known):
        gen = lf.LegalGen(SEED, known)
        return {gen.time("currentTime")[:4] for _ in range(2000)}
    assert "9999" not in years(False) and "9999" in years(True)


def test_the_pinned_calls_cannot_end_the_run():
    gen = lf.LegalGen(SEED)
    seen = set()
    for _ in range(3000):
        action, p = lf.csms_call(gen, [])
        seen.add(action)
        assert action not in ("Reset", "UnlockConnector", "ReserveNow")
        if action == "ChangeAvailability":
            assert p["type"] == "Operative"
        if action == "ChangeConfiguration":
            assert p["key"] not in ("AuthorizationKey", "SecurityProfile",
                                    "TransactionMessageAttempts",
                                    "StopTransactionOnEVSideDisconnect")
    assert seen == set(lf.CALLS)


def _frames(*items):
    """CSMS frames: ("in", id, action, payload) for a CALL, ("out", id) for its answer."""
    out = []
    for it in items:
        if it[0] == "in":
            out.append({"dir": "in", "text": json.dumps([2, it[1], it[2], it[3]])})
        else:
            out.append({"dir": "out", "text": json.dumps([3, it[1], {}])})
    return out


_START = {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": "t0"}
_STOP = {"transactionId": 7, "meterStop": 5, "timestamp": "t1"}
_MV = {"connectorId": 1, "transactionId": 7, "meterValue": [
    {"timestamp": "t1", "sampledValue": [{"value": "1"}]}]}


def test_the_delivery_checks_can_fail():
    starts = [("CP", _START, 7)]
    ok = _frames(("in", "1", "StartTransaction", _START), ("out", "1"),
                 ("in", "2", "MeterValues", _MV), ("out", "2"),
                 ("in", "3", "StopTransaction", _STOP), ("out", "3"))
    assert lf.deliveries(ok, starts)[0] == []
    # a Stop sent again after its answer
    again = ok + _frames(("in", "4", "StopTransaction", _STOP), ("out", "4"))
    assert "sent again" in lf.deliveries(again, starts)[0][0]
    # a sample sent again after its answer
    again = ok + _frames(("in", "4", "MeterValues", _MV), ("out", "4"))
    assert "sent again" in lf.deliveries(again, starts)[0][0]
    # a Start whose answer (id 8) the charge point never used: no Stop for it
    assert "stopped 0 times" in lf.deliveries(ok, starts + [("CP", _START, 8)])[0][0]
    # a Stop for an id the CSMS never gave
    assert "never given" in lf.deliveries(ok, [])[0][-1]
    # a resend of a Stop whose answer was lost is no fault
    lost = _frames(("in", "1", "StopTransaction", _STOP), ("in", "2", "StopTransaction", _STOP),
                   ("out", "2"))
    assert lf.deliveries(lost, [("CP", _START, 7)])[0] == []


def test_a_callerror_for_a_valid_supported_call_is_a_fault():
    for action in lf.ocpp_fuzz_gen.UNSUPPORTED:  # the firmware leaves these out: allowed
        assert lf._judge_call(action, ("NotSupported", "", {})) is None
    assert lf._judge_call("GetDiagnostics", ("NotSupported", "", {})) is not None  # handled
    assert lf._judge_call("ClearCache", ("NotSupported", "", {})) is not None
    assert lf._judge_call("ClearCache", {"status": "Accepted"}) is None
    assert "schema" in lf._judge_call("ClearCache", {"status": "Fine"})


@pytest.mark.slow
def test_legal_fuzz_10000_no_restart_no_resend_every_transaction_stopped():
    res = lf.run_parallel(10000, SEED, parts=4)
    lines, ok = lf.summary(res)
    print("\n".join(lines))
    c = res["counts"]
    assert c["generated"] + c["calls"] >= 10000
    assert c["starts"] >= 40 and c["starts"] == c["journaled"], lines
    assert {k: v[:3] for k, v in res["faults"].items() if v} == {}, lines


class _EndOfTime(lf.csms_styles.Dev):
    """Boot and Heartbeat say it is the last second of year 9999 (legal RFC 3339)."""

    def time(self, t=None):
        return "9999-12-31T23:59:59.500Z"


@pytest.mark.slow
def test_a_clock_set_to_the_end_of_year_9999_keeps_valid_timestamps():
    # the fault the legal fuzz found: the clock ran into year 10000 (clock.iso now stops at
    # the last second of 9999)
    import ocpprig as o

    with o.CsmsThread(style=_EndOfTime) as csms, o.start_sim(csms) as sim, \
            o.report(sim, csms):
        o.booted(csms)
        o.sleep(1.5)
        m = o.mark(csms)
        sim.do("plug", cable_a=32)
        o.wait_status(csms, "Preparing", since=m, timeout=10)
        o.no_violations(csms)
