"""The OCPP extension package (firmware/secext) end to end on the simulator with the dev
CSMS: its actions reach the charge point through rpc's extension table (rpc.ext), looked up
after the core's handlers; ExtendedTriggerMessage sends the core's messages as TriggerMessage
does."""
import json
import os
import time

import pytest

import ocpprig as o
import ota_http
from ocpprig import CsmsThread


@pytest.fixture
def csms():
    with CsmsThread() as c:
        yield c
        o.no_violations(c)


def _beats(csms):
    return [b for b in list(csms.beats) if b[1] == "Heartbeat"]


def test_extended_trigger_message(csms):
    with o.start_sim(csms) as sim:
        with o.report(sim, csms):
            o.booted(csms)
            n = len(_beats(csms))
            assert o.call(csms, "ExtendedTriggerMessage",
                          {"requestedMessage": "Heartbeat"}) == {"status": "Accepted"}
            csms.wait_for(lambda: len(_beats(csms)) > n, 10)
            m = o.mark(csms)
            assert o.call(csms, "ExtendedTriggerMessage", {
                "requestedMessage": "StatusNotification", "connectorId": 1}) == {
                "status": "Accepted"}
            o.wait_status(csms, "Available", since=m)
            assert o.call(csms, "ExtendedTriggerMessage", {
                "requestedMessage": "StatusNotification", "connectorId": 2}) == {
                "status": "Rejected"}
            assert o.call(csms, "ExtendedTriggerMessage", {
                "requestedMessage": "BootNotification"}) == {"status": "Rejected"}
            assert o.call(csms, "ExtendedTriggerMessage", {
                "requestedMessage": "SignChargePointCertificate"}) == {
                "status": "NotImplemented"}
            # a payload outside the schema is refused before the handler runs
            r = o.call(csms, "ExtendedTriggerMessage", {"requestedMessage": "Nonsense"})
            assert type(r) is tuple and r[0] == "PropertyConstraintViolation", r


def _fsn(csms):
    return [p["status"] for _, a, p in list(csms.notifications)
            if a == "FirmwareStatusNotification"]


def _iso_in(s):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + s))


def test_statuses_sent_while_offline_are_delivered_after_the_reconnect(csms):
    """FirmwareStatusNotification goes through the journal: an update whose download runs
    (and fails) while the link is down tells Downloading and DownloadFailed after the
    reconnect, in order, once each."""
    srv = ota_http.Server(b"not a bundle")
    try:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.booted(csms)
            assert o.call(csms, "UpdateFirmware", {
                "location": srv.url + "/missing", "retrieveDate": _iso_in(3),
                "retries": 0}) == {}
            n = len(sim.obs)
            sim.do("net", state="down")
            o.wait_log(sim, "link down", since=n)
            o.wait_log(sim, "ota: download failed: HTTP 404", since=n)
            assert _fsn(csms) == []
            sim.do("net", state="up")
            csms.wait_for(lambda: len(_fsn(csms)) >= 2, 30)
            o.simrig.device_sleep(sim, 1500)
            assert _fsn(csms) == ["Downloading", "DownloadFailed"]
    finally:
        srv.close()


def _notes(csms, action):
    return [p for _, a, p in list(csms.notifications) if a == action]


def test_get_diagnostics_uploads_the_file_by_http_put(csms, tmp_path):
    srv = ota_http.Server(b"", drops=1)
    d = o.state_dir(tmp_path)
    try:
        with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
            o.booted(csms)
            keys = {e["key"]: e for e in o.call(csms, "GetConfiguration", {
                "key": ["SupportedFeatureProfiles"]})["configurationKey"]}
            assert "FirmwareManagement" in keys["SupportedFeatureProfiles"]["value"]
            # the first attempt's connection is dropped: the retry after 1 s delivers it
            r = o.call(csms, "GetDiagnostics", {"location": srv.url + "/flaky/",
                                                "retries": 2, "retryInterval": 1})
            name = r["fileName"]
            assert name.startswith("CP1-diagnostics-") and name.endswith(".txt")
            csms.wait_for(lambda: "Uploaded" in [
                p["status"] for p in _notes(csms, "DiagnosticsStatusNotification")], 30)
            assert [p["status"] for p in _notes(csms, "DiagnosticsStatusNotification")] == [
                "Uploading", "Uploaded"]
            assert len(srv.uploads) == 1
            path, body = srv.uploads[0]
            assert path == "/flaky/" + name  # a folder location gets the file's name
            text = body.decode()
            assert text.startswith("wallbox diagnostics log: board sim")
            assert "== status" in text and "offer" in text and "== security log" in text
            assert "StartupOfTheDevice" in text  # the security log's lines
            assert len(body) <= 16384
            assert o.call(csms, "TriggerMessage", {
                "requestedMessage": "DiagnosticsStatusNotification"}) == {"status": "Accepted"}
            csms.wait_for(lambda: len(_notes(csms, "DiagnosticsStatusNotification")) == 3, 10)
            assert _notes(csms, "DiagnosticsStatusNotification")[-1] == {"status": "Idle"}
            # ftp:// is not supported: no file named, UploadFailed told
            assert o.call(csms, "GetDiagnostics", {"location": "ftp://h/d/"}) == {}
            csms.wait_for(lambda: len(_notes(csms, "DiagnosticsStatusNotification")) == 4, 10)
            assert _notes(csms, "DiagnosticsStatusNotification")[-1] == {
                "status": "UploadFailed"}
            # a server that refuses: UploadFailed, no retry after a 4xx
            n = len(srv.requests)
            o.call(csms, "GetDiagnostics", {"location": srv.url + "/refused/x.txt",
                                            "retries": 3, "retryInterval": 1})
            csms.wait_for(lambda: len(_notes(csms, "DiagnosticsStatusNotification")) == 6, 20)
            assert [p["status"] for p in _notes(csms, "DiagnosticsStatusNotification")][
                4:] == ["Uploading", "UploadFailed"]
            assert len(srv.requests) == n + 1
        assert not os.path.exists(os.path.join(d, "diag_upload.txt"))  # removed after
    finally:
        srv.close()


def test_get_log_security_log_with_request_id(csms):
    srv = ota_http.Server(b"")
    try:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.booted(csms)
            r = o.call(csms, "GetLog", {"logType": "SecurityLog", "requestId": 7, "log": {
                "remoteLocation": srv.url + "/logs/"}})
            assert r["status"] == "Accepted" and r["filename"].startswith("CP1-securitylog-")
            csms.wait_for(lambda: len(_notes(csms, "LogStatusNotification")) >= 2, 30)
            assert _notes(csms, "LogStatusNotification") == [
                {"status": "Uploading", "requestId": 7}, {"status": "Uploaded", "requestId": 7}]
            text = srv.uploads[0][1].decode()
            assert text.startswith("wallbox security log:")
            assert "StartupOfTheDevice" in text and "== status" not in text
            # a window that ends before this boot: no line of it
            r = o.call(csms, "GetLog", {"logType": "SecurityLog", "requestId": 8, "log": {
                "remoteLocation": srv.url + "/logs/old.txt",
                "latestTimestamp": "2020-01-01T00:00:00Z"}})
            assert r["status"] == "Accepted"
            csms.wait_for(lambda: len(_notes(csms, "LogStatusNotification")) >= 4, 30)
            old = srv.uploads[1][1].decode()
            assert srv.uploads[1][0] == "/logs/old.txt" and "StartupOfTheDevice" not in old
            r = o.call(csms, "GetLog", {"logType": "DiagnosticsLog", "requestId": 9, "log": {
                "remoteLocation": "ftp://h/"}})
            assert r == {"status": "Rejected"}
            # a server that refuses the upload (HTTP 403): PermissionDenied, no retry
            r = o.call(csms, "GetLog", {"logType": "DiagnosticsLog", "requestId": 10,
                                        "retries": 3, "retryInterval": 1, "log": {
                                            "remoteLocation": srv.url + "/refused/"}})
            assert r["status"] == "Accepted"
            csms.wait_for(lambda: len(_notes(csms, "LogStatusNotification")) >= 6, 30)
            assert _notes(csms, "LogStatusNotification")[4:] == [
                {"status": "Uploading", "requestId": 10},
                {"status": "PermissionDenied", "requestId": 10}]
            assert len([q for q in srv.requests if q[0].startswith("/refused")]) == 1
            assert o.call(csms, "ExtendedTriggerMessage", {
                "requestedMessage": "LogStatusNotification"}) == {"status": "Accepted"}
            csms.wait_for(lambda: len(_notes(csms, "LogStatusNotification")) >= 7, 10)
            assert _notes(csms, "LogStatusNotification")[-1] == {"status": "Idle"}
    finally:
        srv.close()


def _events(csms, kind=None):
    return [p for p in _notes(csms, "SecurityEventNotification")
            if kind is None or p["type"] == kind]


def test_security_events_raised_offline_are_delivered_once_after_the_reconnect(csms, tmp_path):
    """The wallbox boots offline with its RTC an hour slow: StartupOfTheDevice is raised
    while no CSMS can be reached; once the link is up it is delivered, then the CSMS's
    time steps the clock (SettingSystemTime). Each once; a soft reset adds ResetOrReboot
    and one more StartupOfTheDevice at the next boot, nothing is sent twice."""
    d = o.state_dir(tmp_path)
    with open(os.path.join(d, "sim_clock.json"), "w") as f:
        json.dump({"rtc": "kept", "net": "down"}, f)
    with open(os.path.join(d, "sim_rtc.json"), "w") as f:
        json.dump({"off": -3600}, f)
    sim = o.start_sim(csms, state_dir=d).start()
    try:
        with o.report(sim, csms):
            o.wait_log(sim, "security: StartupOfTheDevice")
            o.simrig.device_sleep(sim, 1000)
            assert _events(csms) == []  # offline: nothing could be sent
            sim.do("net", state="up")
            csms.wait_for(lambda: _events(csms, "SettingSystemTime"), 30)
            o.simrig.device_sleep(sim, 2000)
            ev = _events(csms)
            assert [p["type"] for p in ev] == ["StartupOfTheDevice", "SettingSystemTime"], ev
            assert ev[0]["techInfo"] == "after a power cut or reset"
            assert ev[1]["techInfo"].startswith("clock stepped 3")
            assert o.call(csms, "Reset", {"type": "Soft"}) == {"status": "Accepted"}
            sim.wait_for({"k": "end"}, 30)
    finally:
        sim.stop()
    with open(os.path.join(d, "sim_clock.json"), "w") as f:
        json.dump({"rtc": "kept"}, f)
    with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        csms.wait_for(lambda: len(_events(csms)) >= 4, 30)
        o.simrig.device_sleep(sim, 2000)
        assert [p["type"] for p in _events(csms)] == [
            "StartupOfTheDevice", "SettingSystemTime", "ResetOrReboot", "StartupOfTheDevice"]
        assert _events(csms)[2]["techInfo"] == "ocpp-soft"
        # the security log on flash holds them all, in order
        srv = ota_http.Server(b"")
        try:
            o.call(csms, "GetLog", {"logType": "SecurityLog", "requestId": 1, "log": {
                "remoteLocation": srv.url + "/l.txt"}})
            csms.wait_for(lambda: srv.uploads, 20)
            text = srv.uploads[0][1].decode()
        finally:
            srv.close()
        kinds = [line.split(" ")[1] for line in text.splitlines()[2:]]
        assert kinds == ["StartupOfTheDevice", "SettingSystemTime", "ResetOrReboot",
                         "StartupOfTheDevice"], text


def test_a_csms_without_the_security_extension_does_not_hold_up_transactions():
    """OCPP.Core answers SecurityEventNotification (and the other status notifications) with
    NotSupported: the journaled notification is dropped at once, so the StartTransaction
    behind it is not kept waiting for TransactionMessageAttempts x RetryInterval (minutes)."""
    with CsmsThread(style="ocppcore") as csms:
        with o.start_sim(csms) as sim, o.report(sim, csms):
            o.booted(csms)
            o.wait_log(sim, "ocpp: SecurityEventNotification dropped: NotSupported")
            tx = o.charging(sim, csms)
            assert tx["idTag"] == "CARD1"
        o.no_violations(csms)


def test_a_bundle_with_a_foreign_signature_raises_invalid_firmware_signature(csms, tmp_path):
    """Signed by a key the wallbox does not trust: refused (InstallationFailed) and the
    security event InvalidFirmwareSignature is in the security log (not critical: not sent)."""
    import test_ota_update as t

    trusted, foreign = t.tool.new_key(2048), t.tool.new_key(2048)
    d = t._device(tmp_path, trusted)
    srv = ota_http.Server(t.tool.make_bundle(foreign, t._release(tmp_path, "0.9.0"), "0.9.0",
                                             "sim"))
    try:
        with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
            o.booted(csms)
            assert o.call(csms, "UpdateFirmware", {
                "location": srv.url + "/b", "retrieveDate": "2020-01-01T00:00:00Z"}) == {}
            csms.wait_for(lambda: "InstallationFailed" in _fsn(csms), 30)
            o.wait_log(sim, "security: InvalidFirmwareSignature (bad signature")
            assert not _events(csms, "InvalidFirmwareSignature")
        with open(os.path.join(d, "seclog")) as f:
            assert " InvalidFirmwareSignature bad signature" in f.read()
    finally:
        srv.close()


def test_a_refused_password_is_a_security_event_logged_once():
    """HTTP 401 at the WebSocket upgrade: FailedToAuthenticateAtCsms in the security log,
    once however often the link tries again (it is not a critical event: not sent)."""
    with CsmsThread(password="the-right-password-16") as csms:
        with o.start_sim(csms, ocpp={"password": "a-wrong-password-1234"}) as sim, \
                o.report(sim, csms):
            o.wait_log(sim, "security: FailedToAuthenticateAtCsms (HTTP 401")
            n = len(sim.obs)
            o.wait_log(sim, "ocpp: link down", since=n, timeout=30)  # tried again
            assert len([m for m in o.logs(sim) if "security: FailedToAuth" in m]) == 1


def test_get_log_over_https_verifies_the_server_with_the_csms_ca(csms, tmp_path):
    """https:// uploads are verified with the CA of the CSMS link (ocpp.ca): the test CA's
    server takes the file; with another CA configured the upload fails, nothing is sent."""
    import shutil

    import certs

    c = certs.make_certs(str(tmp_path / "certs"))
    srv = ota_http.Server(b"", tls=(c["cert"], c["key"]))
    try:
        for ca, want in (("ca_pem", "Uploaded"), ("other_ca_pem", "UploadFailure")):
            d = str(tmp_path / ca)
            os.mkdir(d)
            shutil.copy(c[ca], os.path.join(d, "ca.pem"))
            n = len(srv.uploads)
            with o.start_sim(csms, ocpp={"ca": "ca.pem"}, state_dir=d) as sim, \
                    o.report(sim, csms):
                o.wait_log(sim, "ocpp: boot accepted")  # this simulator's, not the last one's
                k = len(_notes(csms, "LogStatusNotification"))
                r = o.call(csms, "GetLog", {"logType": "SecurityLog", "requestId": 3,
                                            "retries": 0, "log": {
                                                "remoteLocation": srv.url + "/l/"}})
                assert r["status"] == "Accepted"
                csms.wait_for(lambda: len(_notes(csms, "LogStatusNotification")) >= k + 2, 30)
                assert _notes(csms, "LogStatusNotification")[-1] == {"status": want,
                                                                     "requestId": 3}
            assert len(srv.uploads) == n + (want == "Uploaded")
    finally:
        srv.close()


def test_get_diagnostics_while_charging_waits_for_the_flash_gate(csms, tmp_path):
    """On a board that must not write flash while the contactor is closed (sim_clock.json
    "flash_gate"), the diagnostics file is written and uploaded once charging has stopped;
    Uploading is told at once (it waits in the journal's RAM tail)."""
    d = o.state_dir(tmp_path)
    with open(os.path.join(d, "sim_clock.json"), "w") as f:
        json.dump({"flash_gate": True}, f)
    srv = ota_http.Server(b"")
    try:
        with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
            o.booted(csms)
            o.charging(sim, csms)
            o.call(csms, "GetDiagnostics", {"location": srv.url + "/d/"})
            csms.wait_for(lambda: _notes(csms, "DiagnosticsStatusNotification"), 10)
            o.simrig.device_sleep(sim, 2000)
            assert srv.uploads == [] and not os.path.exists(os.path.join(d, "diag_upload.txt"))
            sim.do("unplug")
            csms.wait_for(lambda: len(_notes(csms, "DiagnosticsStatusNotification")) >= 2, 20)
            assert [p["status"] for p in _notes(csms, "DiagnosticsStatusNotification")] == [
                "Uploading", "Uploaded"]
            assert len(srv.uploads) == 1
    finally:
        srv.close()


def test_frames_that_are_no_ocpp_message_are_an_invalid_messages_event(tmp_path):
    """Two frames that are not OCPP-J (answered as OCPP-J says): InvalidMessages in the
    security log, once for this connection; not critical, so not sent."""
    d = o.state_dir(tmp_path)

    async def raw(text):
        link = csms.csms.links[o.CP]
        await link.ws.send(text)

    with CsmsThread() as csms, o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
        o.booted(csms)
        for text in ("this is not JSON", "[2, 5]"):
            csms._run(raw(text), 10)
            o.wait_log(sim, "bad frame", since=len(sim.obs) - 1)
        o.wait_log(sim, "security: InvalidMessages (not JSON)")
        o.simrig.device_sleep(sim, 500)
        assert len([m for m in o.logs(sim) if "security: InvalidMessages" in m]) == 1
        assert not _events(csms, "InvalidMessages")
        # the only complaints: the two answers to id -1 (OCPP-J's id for an unreadable frame)
        assert [v["reason"].split(",")[0] for v in csms.violations] == [
            "CALLERROR for id -1"] * 2, csms.violations
    with open(os.path.join(d, "seclog")) as f:
        assert " InvalidMessages not JSON" in f.read()


def test_a_task_out_of_memory_and_a_changed_key_are_security_events(csms):
    """A task that dies of MemoryError is MemoryExhaustion (critical: sent to the CSMS); the
    CSMS changing the AuthorizationKey is ReconfigurationOfSecurityParameters (the security
    log only, as the whitepaper's non-critical events)."""
    with o.start_sim(csms) as sim, o.report(sim, csms):
        o.booted(csms)
        n = len(sim.obs)
        sim.do("crash", task="probe", memory=True)
        sim.wait_for({"k": "event", "code": "task restart", "val": "probe"}, 5, since=n)
        csms.wait_for(lambda: _events(csms, "MemoryExhaustion"), 20)
        assert _events(csms, "MemoryExhaustion")[0]["techInfo"] == "task probe out of memory"
        r = o.call(csms, "ChangeConfiguration", {"key": "AuthorizationKey",
                                                  "value": "00112233445566778899aabbccddeeff"})
        assert r == {"status": "Accepted"}
        line = o.wait_log(sim, "ReconfigurationOfSecurityParameters", 10)
    assert "AuthorizationKey changed by the CSMS" in line["msg"]
    assert "00112233" not in line["msg"]  # never the key
    assert _events(csms, "ReconfigurationOfSecurityParameters") == []  # not critical
