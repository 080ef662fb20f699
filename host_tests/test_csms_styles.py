"""The dev CSMS's answer styles (tools/csms_styles.py), driven by the small CPython charge
point of test_csms.py: every answer of a legal style passes the OCPP 1.6 response schemas,
and each style does what docs/ocpp.md says the central system it is modelled on does."""
import datetime
import json
import os
import subprocess
import sys

import pytest
from test_csms import BOOT, CSMS_PY, T0, Cp, reasons, run

import csms_styles
from csms_check import check_payload

START = {"connectorId": 1, "idTag": "AA", "meterStart": 10, "timestamp": T0}
STOP = {"transactionId": 1, "idTag": "AA", "meterStop": 20, "timestamp": T0, "reason": "Local"}


def _instant(text):
    """The instant an RFC 3339 date-time names (an independent reading: fromisoformat)."""
    t = text.upper().replace("Z", "+00:00")
    if "." in t:  # fromisoformat takes at most 6 fraction digits
        head, rest = t.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        t = head + ("." + rest[:min(digits, 6)] if digits else "") + rest[digits:]
    return datetime.datetime.fromisoformat(t)


async def _session(cp, n=1):
    """The answers to one charge point's life: Boot, Heartbeat, Authorize, n Start/Stop
    pairs, MeterValues, DataTransfer, a notification -> [(action, answer frame)]."""
    out = [("BootNotification", await cp.call("BootNotification", BOOT)),
           ("Heartbeat", await cp.call("Heartbeat", {})),
           ("Authorize", await cp.call("Authorize", {"idTag": "AA"}))]
    for k in range(n):
        start = dict(START, meterStart=10 + k)
        r = await cp.call("StartTransaction", start)
        out.append(("StartTransaction", r))
        tid = r[2]["transactionId"]
        mv = {"connectorId": 1, "transactionId": tid, "meterValue": [
            {"timestamp": T0, "sampledValue": [{"value": "1"}]}]}
        out.append(("MeterValues", await cp.call("MeterValues", mv)))
        stop = dict(STOP, transactionId=tid)
        if k % 2:
            del stop["idTag"]
        out.append(("StopTransaction", await cp.call("StopTransaction", stop)))
    out.append(("DataTransfer", await cp.call("DataTransfer", {"vendorId": "x"})))
    out.append(("DiagnosticsStatusNotification",
                await cp.call("DiagnosticsStatusNotification", {"status": "Idle"})))
    return out


@pytest.mark.parametrize("style", csms_styles.LEGAL)
def test_every_answer_of_a_legal_style_passes_the_16_schemas(style):
    seen = []

    async def t(csms, open_cp):
        async with open_cp() as ws:
            seen.extend(await _session(Cp(ws), n=6 if style == "hostile" else 2))
        assert csms.violations == []
    for seed in range(8 if style == "hostile" else 1):
        run(t, style=style, seed=seed)
    for action, frame in seen:
        if frame[0] == 4:  # a refusal: OCPP.Core has no handler for the notifications
            assert style == "ocppcore" and frame[2] == "NotSupported", (action, frame)
            continue
        assert check_payload(action + "Response", frame[2]) is None, (style, action, frame)
    boots = [f[2] for a, f in seen if a == "BootNotification"]
    now = datetime.datetime.now(datetime.timezone.utc)
    for b in boots:  # whatever the format, currentTime is now
        assert abs((_instant(b["currentTime"]) - now).total_seconds()) < 60, b


def test_hostile_varies_formats_ids_and_idtaginfo_and_a_seed_repeats_it():
    def answers(seed):
        got = []

        async def t(csms, open_cp):
            async with open_cp() as ws:
                got.extend(await _session(Cp(ws), n=10))
        run(t, style="hostile", seed=seed)
        return got

    runs = [answers(1), answers(2), answers(3)]
    a = sum(runs, [])
    times = [f[2]["currentTime"] for x, f in a if x in ("BootNotification", "Heartbeat")]
    infos = [f[2]["idTagInfo"] for x, f in a if "idTagInfo" in f[2]]
    ids = [f[2]["transactionId"] for x, f in a if x == "StartTransaction"]
    assert any("z" in t[19:] for t in times) or any(t[10] == "t" for t in times)
    assert any(t.endswith(("+00:00", "-00:00")) for t in times)
    assert any(t[-6] in "+-" and t[-6:] not in ("+00:00", "-00:00") for t in times)
    assert len({len(_frac(t)) for t in times}) >= 4  # fraction lengths vary
    assert {i.get("parentIdTag") for i in infos} >= {None, ""}
    assert any(i.get("expiryDate", "").startswith(("2199", "9999")) for i in infos)
    assert any(i.get("expiryDate", "9").startswith(("19", "0001")) for i in infos)
    assert set(ids) & {0, -1, -2 ** 31, 2 ** 31 - 1}
    for r in runs:  # unique within one CSMS
        tids = [f[2]["transactionId"] for x, f in r if x == "StartTransaction"]
        assert len(set(tids)) == len(tids)
    # the same seed gives the same answers apart from the clock
    assert [f[2].get("transactionId") for x, f in answers(1)] == [
        f[2].get("transactionId") for x, f in runs[0]]


def _frac(t):
    return t[20:].rstrip("Zz").split("+")[0].split("-")[0] if t[19] == "." else ""


@pytest.mark.parametrize("style,fresh", [("dev", False), ("steve", False), ("fresh", True),
                                         ("ocppcore", True), ("openocpp", True)])
def test_a_resent_start_gets_the_same_id_only_where_the_csms_dedupes(style, fresh):
    def ids(**kw):
        async def t(csms, open_cp):
            async with open_cp() as ws:
                cp = Cp(ws)
                a = (await cp.call("StartTransaction", START))[2]["transactionId"]
                b = (await cp.call("StartTransaction", dict(START)))[2]["transactionId"]
            assert len(csms.transactions) == len({a, b})
            assert [s[2] for s in csms.starts] == [a, b]
            return a, b
        return run(t, style=style, **kw)

    a, b = ids()
    assert (a != b) == fresh
    a, b = ids(fresh_ids=True)  # --fresh-ids whatever the style
    assert a != b


def test_dev_flags_a_stop_for_an_id_it_never_gave_and_records_no_transaction():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            r = await Cp(ws).call("StopTransaction", dict(STOP, transactionId=77))
            assert r[0] == 3 and r[2]["idTagInfo"]["status"] == "Accepted"
        assert csms.transactions == {} and [p["transactionId"] for _, p in
                                            csms.unknown_stops] == [77]
        assert reasons(csms) == ["StopTransaction for transactionId 77, which this CSMS "
                                 "never gave"]
    run(t)


def test_a_restarted_csms_keeps_its_transactions_and_numbering():
    db = {}

    async def first(csms, open_cp):
        async with open_cp() as ws:
            return (await Cp(ws).call("StartTransaction", START))[2]["transactionId"]

    tid = run(first, transactions=db)

    async def second(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            await cp.call("StopTransaction", dict(STOP, transactionId=tid))
            r = await cp.call("StartTransaction", dict(START, meterStart=30))
        assert csms.violations == [] and db[tid]["stop"]["meterStop"] == 20
        return r[2]["transactionId"]
    assert run(second, transactions=db) == tid + 1


def test_ocppcore_expiry_2199_id_zero_for_a_refused_start_and_its_stop_rules():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            ok = (await cp.call("StartTransaction", START))[2]
            assert ok["idTagInfo"] == {"status": "Accepted", "parentIdTag": "",
                                       "expiryDate": "2199-12-31T00:00:00+01:00"}
            bad = (await cp.call("StartTransaction", dict(START, idTag="ZZ")))[2]
            assert bad["transactionId"] == 0 and bad["idTagInfo"]["status"] == "Invalid"
            # a Stop for an unknown id closes the latest open transaction of this cp ...
            r = await cp.call("StopTransaction", dict(STOP, transactionId=0))
            assert r[0] == 3 and csms.transactions[ok["transactionId"]]["stop"] is not None
            # ... and with none open it is refused
            r = await cp.call("StopTransaction", dict(STOP, transactionId=0))
            assert r[0] == 4 and r[2] == "PropertyConstraintViolation"
            r = await cp.call("FirmwareStatusNotification", {"status": "Idle"})
            assert r[0] == 4 and r[2] == "NotSupported"
            auth = (await cp.call("Authorize", {"idTag": "AA"}))[2]["idTagInfo"]
            assert auth["expiryDate"].endswith("+00:00") and len(auth["expiryDate"]) == 33
        assert 0 not in csms.transactions and csms.violations == []
    run(t, style="ocppcore", tags={"AA": "Accepted"})


def test_citrineos_answers_a_resent_start_with_concurrent_tx_and_id_zero():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            a = (await cp.call("StartTransaction", START))[2]
            b = (await cp.call("StartTransaction", dict(START)))[2]
            assert a["idTagInfo"]["status"] == "Accepted" and a["transactionId"] > 0
            assert b == {"transactionId": 0, "idTagInfo": {"status": "ConcurrentTx"}}
            r = await cp.call("StopTransaction", dict(STOP, transactionId=999))
            assert r[0] == 3  # answered, nothing closed
        assert csms.transactions[a["transactionId"]]["stop"] is None
        assert csms.violations == []
    run(t, style="citrineos", tags={"AA": {"status": "Accepted", "parentIdTag": "GRP"}})


def test_tag_records_give_parent_and_expiry_to_the_styles_that_send_them():
    tags = {"AA": {"status": "Accepted", "parentIdTag": "GRP",
                   "expiryDate": "2030-01-01T00:00:00Z"}}
    for style in ("steve", "citrineos"):
        async def t(csms, open_cp):
            async with open_cp() as ws:
                return (await Cp(ws).call("Authorize", {"idTag": "AA"}))[2]["idTagInfo"]
        assert run(t, style=style, tags=tags) == dict(tags["AA"]), style


def test_naive_times_have_no_zone_and_break_the_schema():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            return (await Cp(ws).call("BootNotification", BOOT))[2]
    boot = run(t, style="naive")
    assert datetime.datetime.fromisoformat(boot["currentTime"]).tzinfo is None
    assert check_payload("BootNotificationResponse", boot) is not None
    assert "naive" not in csms_styles.LEGAL


def test_the_stamp_helper_writes_the_instant_it_is_given():
    t = datetime.datetime(2026, 3, 1, 0, 30, 5, 123456, datetime.timezone.utc)
    assert csms_styles.stamp(t, 0) == "2026-03-01T00:30:05Z"
    assert csms_styles.stamp(t, 7, 60) == "2026-03-01T01:30:05.1234560+01:00"
    assert csms_styles.stamp(t, 9, -1439, "", "t") == "2026-02-28t00:31:05.123456000-23:59"
    assert csms_styles.stamp(t, 3, 0, "-00:00") == "2026-03-01T00:30:05.123-00:00"
    year1 = datetime.datetime(1, 1, 1, 0, 0, 0, 0, datetime.timezone.utc)
    assert csms_styles.stamp(year1, 0, 90) == "0001-01-01T01:30:00+01:30"
    for text in ("2026-02-28t00:31:05.123456000-23:59", "2026-03-01T01:30:05.1234560+01:00"):
        assert _instant(text) == t


def test_cli_names_an_unknown_style_and_lists_the_styles():
    r = subprocess.run([sys.executable, CSMS_PY, "serve", "--style", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nope" in r.stderr and "ocppcore" in r.stderr
    with pytest.raises(ValueError, match="unknown CSMS style 'x'"):
        csms_styles.make("x", None)
    assert json.dumps(sorted(csms_styles.STYLES))  # every style has a name
    assert os.path.exists(CSMS_PY)


def test_a_lost_answer_is_recorded_then_the_link_drops():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            await cp.send([2, "s1", "StartTransaction", START])
            with pytest.raises(Exception):  # closed, no answer
                await cp.recv()
        async with open_cp() as ws:
            r = await Cp(ws).call("StartTransaction", START)
        assert [s[2] for s in csms.starts] == [r[2]["transactionId"]] * 2  # deduped
        assert [e["action"] for e in csms.events if e["event"] == "answer_lost"] == [
            "StartTransaction"]
    run(t, lose_answers={"StartTransaction": 1})


def test_dev_flags_meter_values_for_an_id_it_never_gave():
    mv = {"connectorId": 1, "transactionId": 55, "meterValue": [
        {"timestamp": T0, "sampledValue": [{"value": "1"}]}]}

    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            assert (await cp.call("MeterValues", mv))[0] == 3
            no_tx = {"connectorId": 0, "meterValue": mv["meterValue"]}
            assert (await cp.call("MeterValues", no_tx))[0] == 3  # no transactionId: fine
        return reasons(csms)
    assert run(t) == ["MeterValues for transactionId 55, which this CSMS never gave"]
    assert run(t, style="steve") == []
