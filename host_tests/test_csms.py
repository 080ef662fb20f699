"""The dev CSMS (tools/csms.py) driven by a small CPython WebSocket charge point: answers,
records, the frame checks that fill `violations`, commands (Python, control port, CLI,
remote start on Preparing), Basic auth and wss://."""
import asyncio
import base64
import json
import os
import re
import ssl
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
from csms import Csms, CsmsError, CsmsThread  # noqa: E402
from csms_check import validator  # noqa: E402

CSMS_PY = os.path.join(ROOT, "tools", "csms.py")
T0 = "2024-05-01T10:00:00Z"
BOOT = {"chargePointVendor": "Wallbox", "chargePointModel": "Sim"}


class Cp:
    """A charge point's side of OCPP-J, just enough to drive the CSMS."""

    def __init__(self, ws):
        self.ws = ws
        self.n = 0
        self.inbox = []  # CALLs from the CSMS, not yet taken

    async def send(self, msg):
        await self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    async def recv(self):
        return json.loads(await asyncio.wait_for(self.ws.recv(), 30))

    async def call(self, action, payload, mid=None):
        """Send a CALL; the answer frame ([3, id, payload] or [4, id, code, ...])."""
        self.n += 1
        mid = mid or "cp-%d" % self.n
        await self.send([2, mid, action, payload])
        while True:
            msg = await self.recv()
            if msg[0] == 2:
                self.inbox.append(msg)
            elif msg[1] == mid:
                return msg

    async def next_call(self):
        return self.inbox.pop(0) if self.inbox else await self.recv()


def run(test, **kwargs):
    """Run `await test(csms, connect_cp)` against a fresh Csms."""
    async def main():
        csms = await Csms(**kwargs).start()

        def open_cp(cp_id="CP1", **kw):
            kw.setdefault("subprotocols", ["ocpp1.6"])
            return connect(csms.url + cp_id, **kw)

        try:
            return await asyncio.wait_for(test(csms, open_cp), 60)
        finally:
            await csms.stop()
    return asyncio.run(main())


def reasons(csms):
    return [v["reason"] for v in csms.violations]


def test_boot_pending_then_accepted():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            assert ws.subprotocol == "ocpp1.6"
            r = await cp.call("BootNotification", BOOT)
            assert r[2]["status"] == "Pending" and r[2]["interval"] == 7
            assert validator("BootNotificationResponse").is_valid(r[2])
            csms.boot_status = "Accepted"
            r = await cp.call("BootNotification", BOOT)
            assert r[2]["status"] == "Accepted"
            r = await cp.call("Heartbeat", {})
            assert validator("HeartbeatResponse").is_valid(r[2])
        assert [b[1] for b in csms.boots] == [BOOT, BOOT]
        assert csms.violations == []
    run(t, boot_status="Pending", interval=7)


def test_a_request_while_pending_is_recorded_unless_triggered():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            await cp.call("BootNotification", BOOT)
            call = asyncio.create_task(csms.call("CP1", "TriggerMessage",
                                                 {"requestedMessage": "StatusNotification"}))
            trigger = await cp.next_call()
            await cp.send([3, trigger[1], {"status": "Accepted"}])
            assert await call == {"status": "Accepted"}
            status = {"connectorId": 0, "errorCode": "NoError", "status": "Available"}
            assert (await cp.call("StatusNotification", status))[0] == 3
            assert csms.violations == []
            assert (await cp.call("Heartbeat", {}))[0] == 3  # answered, but recorded
        assert reasons(csms) == ["Heartbeat before an accepted BootNotification"]
    run(t, boot_status="Pending")


def test_a_transaction_start_meter_values_and_stop(tmp_path):
    log = tmp_path / "csms.jsonl"

    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            await cp.call("BootNotification", BOOT)
            assert (await cp.call("Authorize", {"idTag": "AA"}))[2] == {
                "idTagInfo": {"status": "Accepted"}}
            assert (await cp.call("Authorize", {"idTag": "ZZ"}))[2]["idTagInfo"] == {
                "status": "Invalid"}
            start = {"connectorId": 1, "idTag": "AA", "meterStart": 1000, "timestamp": T0}
            tid = (await cp.call("StartTransaction", start))[2]["transactionId"]
            mv = {"connectorId": 1, "transactionId": tid, "meterValue": [{
                "timestamp": "2024-05-01T10:01:00Z", "sampledValue": [
                    {"value": "1500", "measurand": "Energy.Active.Import.Register",
                     "unit": "Wh"}]}]}
            assert (await cp.call("MeterValues", mv))[2] == {}
            stop = {"transactionId": tid, "idTag": "AA", "meterStop": 4000,
                    "timestamp": "2024-05-01T11:00:00Z", "reason": "Local"}
            assert (await cp.call("StopTransaction", stop))[2]["idTagInfo"]["status"] == (
                "Accepted")
            start2 = dict(start, meterStart=4000, timestamp="2024-05-01T12:00:00Z")
            tid2 = (await cp.call("StartTransaction", start2))[2]["transactionId"]
            assert tid2 > tid
            tx = csms.transactions[tid]
            assert tx["start"] == start and tx["stop"] == stop and tx["meter_values"] == [mv]
            assert tx["meterStart"] == 1000 and csms.transactions[tid2]["stop"] is None
        assert csms.violations == []
    run(t, tags={"AA": "Accepted"}, log=str(log))
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert any(x["event"] == "transaction" and "stop" in x for x in lines)
    assert sum(x["event"] == "frame" for x in lines) == 14  # 7 CALLs and their answers


def test_a_retransmitted_start_transaction_keeps_its_id_and_counts_once():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            start = {"connectorId": 1, "idTag": "AA", "meterStart": 10, "timestamp": T0}
            a = (await cp.call("StartTransaction", start))[2]["transactionId"]
            b = (await cp.call("StartTransaction", dict(start)))[2]["transactionId"]
            c = (await cp.call("StartTransaction", dict(start, meterStart=11)))[2]
        assert a == b and c["transactionId"] == a + 1
        assert len(csms.transactions) == 2 and csms.transactions[a]["start_frames"] == 2
        assert csms.violations == []
    run(t)


def test_schema_violations_are_answered_and_recorded():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            r = await cp.call("StartTransaction", {"connectorId": 1, "idTag": "AA",
                                                   "timestamp": T0})
            assert r[0] == 4 and r[2] == "OccurrenceConstraintViolation"
            r = await cp.call("Authorize", {"idTag": "X" * 21})
            assert r[2] == "PropertyConstraintViolation" and r[3].startswith("idTag:")
            r = await cp.call("Heartbeat", {"now": 1})
            assert r[2] == "PropertyConstraintViolation"
            r = await cp.call("StatusNotification", {
                "connectorId": 1, "errorCode": "NoError", "status": "Charging",
                "timestamp": "2024-05-01 10:00:00"})
            assert r[2] == "TypeConstraintViolation"
        assert len(csms.violations) == 4 and not csms.transactions
        assert "meterStart" in csms.violations[0]["reason"]
        assert csms.violations[0]["cp"] == "CP1" and "StartTransaction" in (
            csms.violations[0]["frame"])
        assert "timestamp" in csms.violations[3]["reason"]
    run(t)


def test_a_second_call_while_one_waits_is_recorded():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            await cp.send([2, "a", "Heartbeat", {}])
            await cp.send([2, "b", "Heartbeat", {}])
            await csms.wait_for(lambda: csms.violations, 30)
        assert reasons(csms) == ["CALL b sent while CALL a still waits for its answer"]
    run(t, answer_delay=30)


def test_bad_ids_frames_and_actions():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            assert (await cp.call("Heartbeat", {}, mid="same"))[0] == 3
            assert (await cp.call("Heartbeat", {}, mid="same"))[0] == 3
            await cp.send([2, "x" * 37, "Heartbeat", {}])
            await cp.send([2, 17, "Heartbeat", {}])
            await cp.send([3, "never-sent", {}])
            await cp.send("not json")
            await cp.send({"not": "an array"})
            await cp.send("[" * 100000 + "]" * 100000)
            r = await cp.call("FooBar", {})
            assert r[2] == "NotImplemented"
            r = await cp.call("Reset", {"type": "Hard"})
            assert r[2] == "NotSupported"
            await csms.wait_for(lambda: len(csms.violations) >= 9, 30)
        got = reasons(csms)
        assert got[0] == "unique id same used before on this connection"
        assert got[1] == got[2] == "unique id must be a string of 1 to 36 characters"
        assert "never-sent" in got[3] and got[4].startswith("not JSON")
        assert got[5].startswith("not an OCPP-J message")
        assert got[6].startswith("frame could not be read: RecursionError")
        assert got[7:] == ["FooBar is not an OCPP 1.6 action", "Reset is a CSMS's action"]
    run(t)


def test_commands_from_python_with_checked_answers():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            call = asyncio.create_task(csms.call("CP1", "Reset", {"type": "Soft"}))
            msg = await cp.next_call()
            assert msg[2:] == ["Reset", {"type": "Soft"}]
            await cp.send([3, msg[1], {"status": "Accepted"}])
            assert await call == {"status": "Accepted"}
            call = asyncio.create_task(csms.call("CP1", "UpdateFirmware", {
                "location": "http://x/fw.bin", "retrieveDate": T0}))
            msg = await cp.next_call()
            await cp.send([4, msg[1], "NotSupported", "no firmware management", {}])
            assert await call == ("NotSupported", "no firmware management", {})
            call = asyncio.create_task(csms.call("CP1", "Reset", {"type": "Hard"}))
            msg = await cp.next_call()
            await cp.send([3, msg[1], {"status": "Maybe"}])
            assert await call == {"status": "Maybe"}  # handed on, and recorded
            await cp.send([3, msg[1], {"status": "Accepted"}])  # a second answer
            await csms.wait_for(lambda: len(csms.violations) == 2, 30)
        assert "Reset.conf: PropertyConstraintViolation status" in csms.violations[0]["reason"]
        assert "no CALL of ours" in csms.violations[1]["reason"]
        await csms.wait_for(lambda: not csms.links, 30)
        with pytest.raises(CsmsError, match="CP1 is not connected"):
            await csms.call("CP1", "Reset", {"type": "Soft"})
    run(t)


def test_remote_start_when_connector_1_reports_preparing():
    async def t(csms, open_cp):
        async with open_cp() as ws:
            cp = Cp(ws)
            for connector in (2, 1):
                r = await cp.call("StatusNotification", {
                    "connectorId": connector, "errorCode": "NoError", "status": "Preparing"})
                assert r[0] == 3
            msg = await cp.next_call()
            assert msg[2:] == ["RemoteStartTransaction", {"connectorId": 1, "idTag": "REMOTE"}]
            await cp.send([3, msg[1], {"status": "Accepted"}])
            await csms.wait_for(lambda: any(e["event"] == "remote_start"
                                            for e in csms.events), 30)
        starts = [e for e in csms.events if e["event"] == "remote_start"]
        assert len(starts) == 1 and starts[0]["result"] == {"status": "Accepted"}
        assert csms.violations == []
    run(t, remote_start_on_preparing="REMOTE")


def _auth(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode())
            .decode()}


def test_basic_auth_and_the_subprotocol_are_required():
    async def t(csms, open_cp):
        for kw in ({}, {"additional_headers": _auth("CP1", "wrong")},
                   {"additional_headers": _auth("CP2", "secret")}):
            with pytest.raises(InvalidStatus) as e:
                async with open_cp(**kw):
                    pass
            assert e.value.response.status_code == 401
        for protocols in (["ocpp2.0.1"], None):
            with pytest.raises(InvalidStatus) as e:
                async with open_cp(subprotocols=protocols,
                                   additional_headers=_auth("CP1", "secret")):
                    pass
            assert e.value.response.status_code == 400
        async with open_cp(additional_headers=_auth("CP1", "secret")) as ws:
            assert (await Cp(ws).call("BootNotification", BOOT))[2]["status"] == "Accepted"
        # the third had CP2's name and the right password, on CP1's path
        assert [e["cp"] for e in csms.events if e["event"] == "refused"] == ["CP1"] * 3
    run(t, password="secret")


def test_wss_with_the_test_certificates(tmp_path):
    from certs import make_certs  # a missing helper is a failure, never a skip
    paths = make_certs(str(tmp_path))
    ctx = ssl.create_default_context(cafile=paths["ca_pem"])

    async def t(csms, open_cp):
        assert csms.url.startswith("wss://")
        async with open_cp(ssl=ctx) as ws:
            assert (await Cp(ws).call("Heartbeat", {}))[0] == 3
        assert csms.violations == []
    run(t, cert=paths["cert"], key=paths["key"])


def test_csms_thread_for_synchronous_tests():
    with CsmsThread(boot_status="Rejected", interval=60) as csms:
        async def cp():
            async with connect(csms.url + "CP7", subprotocols=["ocpp1.6"]) as ws:
                c = Cp(ws)
                assert (await c.call("BootNotification", BOOT))[2]["status"] == "Rejected"
                call = asyncio.create_task(asyncio.to_thread(
                    csms.call, "CP7", "GetConfiguration", {}))
                msg = await c.next_call()
                await c.send([3, msg[1], {"configurationKey": [
                    {"key": "HeartbeatInterval", "readonly": False, "value": "60"}]}])
                return await call
        result = asyncio.run(cp())
        assert result["configurationKey"][0]["key"] == "HeartbeatInterval"
        assert csms.wait_for(lambda: csms.boots and not csms.links, 30)
        assert csms.violations == []


def test_the_command_line_serves_and_sends(tmp_path):
    srv = subprocess.Popen([sys.executable, CSMS_PY, "--port", "0", "--control", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline()
        m = re.search(r"ws://127\.0\.0\.1:(\d+)/<cpid>; control port (\d+)", line)
        assert m, line + srv.stderr.read()
        port, control = m.group(1), m.group(2)

        async def t():
            async with connect("ws://127.0.0.1:%s/CP9" % port,
                               subprotocols=["ocpp1.6"]) as ws:
                cp = Cp(ws)
                await cp.call("BootNotification", BOOT)
                send = await asyncio.create_subprocess_exec(
                    sys.executable, CSMS_PY, "send", "--control", control, "CP9",
                    "ChangeConfiguration", '{"key": "MeterValueSampleInterval", "value": "5"}',
                    stdout=subprocess.PIPE)
                msg = await cp.next_call()
                assert msg[2] == "ChangeConfiguration" and msg[3]["value"] == "5"
                await cp.send([3, msg[1], {"status": "Accepted"}])
                out, _ = await asyncio.wait_for(send.communicate(), 60)
                assert send.returncode == 0
                assert json.loads(out) == {"result": {"status": "Accepted"}}
                bad = await asyncio.create_subprocess_exec(
                    sys.executable, CSMS_PY, "send", "--control", control, "NOPE", "Reset",
                    '{"type": "Soft"}', stdout=subprocess.PIPE)
                out, _ = await asyncio.wait_for(bad.communicate(), 60)
                assert bad.returncode == 1 and "NOPE is not connected" in json.loads(
                    out)["failed"]
        asyncio.run(t())
        status = subprocess.run([sys.executable, CSMS_PY, "status", "--control", control],
                                capture_output=True, text=True, timeout=60)
        assert json.loads(status.stdout)["violations"] == []
        srv.terminate()  # SIGTERM: a clean stop
        assert srv.wait(30) == 0
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait(30)
