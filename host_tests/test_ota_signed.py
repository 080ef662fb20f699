"""SignedUpdateFirmware end to end on the simulator (firmware/ota/signed.py, updater.py): the
dev CSMS sends the bundle's URL with a signing certificate and the signature over the whole
file; the device checks the certificate against its manufacturer root (cert_mf.pem) before
anything is downloaded, the signature after, and tells each step with
SignedFirmwareStatusNotification and the request's requestId. Certificates from
host_tests/x509_cases.py, made valid around today (the CSMS's clock is the device's)."""
import base64
import datetime
import os

import pytest

import ocpprig as o
import ota_http
import x509_cases as xc
from ocpprig import CsmsThread
from test_ota_slots import _release, _version
from test_ota_update import tool

from firmware.ota import slots


@pytest.fixture(scope="module")
def pki():
    return xc.pki(datetime.datetime.now(datetime.timezone.utc))


@pytest.fixture
def csms():
    with CsmsThread() as c:
        yield c
        o.no_violations(c)


def _sfsn(csms):
    return [(p["status"], p.get("requestId")) for _, a, p in list(csms.notifications)
            if a == "SignedFirmwareStatusNotification"]


def _device(tmp_path, pki):
    d = str(tmp_path / "dev")
    os.mkdir(d)
    with open(os.path.join(d, "cert_mf.pem"), "w") as f:
        f.write(pki["root"])
    return d  # no ota_keys.json: the bundle is signed with the certificate's key


def _request(srv, pem, sig, req=7):
    return {"requestId": req, "retries": 0, "firmware": {
        "location": srv.url + "/b", "retrieveDateTime": "2020-01-01T00:00:00Z",
        "signingCertificate": pem, "signature": base64.b64encode(sig).decode()}}


def test_a_signed_update_is_verified_installed_and_told_with_its_request_id(
        csms, pki, tmp_path):
    d = _device(tmp_path, pki)
    data = tool.make_bundle(pki["sign_key"], _release(tmp_path, "0.9.0"), "0.9.0", "sim")
    srv = ota_http.Server(data)
    try:
        sim = o.start_sim(csms, state_dir=d).start()
        try:
            o.booted(csms)
            assert o.call(csms, "SignedUpdateFirmware", _request(
                srv, pki["signing"], xc.sign_pss(pki["sign_key"], data))) == {
                    "status": "Accepted"}
            sim.wait_for({"k": "end"}, 60)  # the restart on trial
        finally:
            sim.stop()
        steps = ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                 "InstallRebooting"]
        assert _sfsn(csms) == [(s, 7) for s in steps], _sfsn(csms)
        with o.start_sim(csms, state_dir=d) as sim:
            csms.wait_for(lambda: ("Installed", 7) in _sfsn(csms), 40)
            assert _version(sim) == "0.9.0"
        assert not [a for _, a, _ in csms.notifications if a == "FirmwareStatusNotification"]
    finally:
        srv.close()


def test_refusals_before_and_after_the_download(csms, pki, tmp_path):
    d = _device(tmp_path, pki)
    data = tool.make_bundle(pki["sign_key"], _release(tmp_path, "0.9.0"), "0.9.0", "sim")
    srv = ota_http.Server(data)
    good = xc.sign_pss(pki["sign_key"], data)
    try:
        with o.start_sim(csms, state_dir=d) as sim:
            o.booted(csms)
            for name, why in (("expired", "has expired"), ("not_yet", "not valid yet"),
                              ("foreign", "not an installed manufacturer root"),
                              ("forged", "bad signature by"),
                              ("ec", "ec keys are not supported")):
                k = len(sim.obs)
                assert o.call(csms, "SignedUpdateFirmware", _request(
                    srv, pki[name], good)) == {"status": "InvalidCertificate"}, name
                o.wait_log(sim, why, since=k)
                o.wait_log(sim, "security: InvalidFirmwareSigningCertificate", since=k)
            assert srv.requests == [] and _sfsn(csms) == []  # nothing downloaded
            # the file's signature by another key: downloaded, then InvalidSignature
            bad = xc.sign_pss(pki["root_key"], data)
            assert o.call(csms, "SignedUpdateFirmware", _request(
                srv, pki["signing"], bad, req=8)) == {"status": "Accepted"}
            csms.wait_for(lambda: ("InvalidSignature", 8) in _sfsn(csms), 30)
            assert _sfsn(csms) == [("Downloading", 8), ("Downloaded", 8),
                                   ("InvalidSignature", 8)]
            o.wait_log(sim, "ota: firmware signature refused")
            # TriggerMessage: the last status again, signed, with its requestId
            assert o.call(csms, "TriggerMessage", {
                "requestedMessage": "FirmwareStatusNotification"}) == {"status": "Accepted"}
            csms.wait_for(lambda: len(_sfsn(csms)) == 4, 10)
            assert _sfsn(csms)[-1] == ("InvalidSignature", 8)
            # a signed update while one downloads cancels it (AcceptedCanceled)
            slow = ota_http.Server(data, pace=(8192, 0.05))  # ~2 s
            try:
                assert o.call(csms, "SignedUpdateFirmware", _request(
                    slow, pki["signing"], good, req=9)) == {"status": "Accepted"}
                csms.wait_for(lambda: ("Downloading", 9) in _sfsn(csms), 10)
                assert o.call(csms, "SignedUpdateFirmware", _request(
                    srv, pki["signing"], bad, req=10)) == {"status": "AcceptedCanceled"}
                csms.wait_for(lambda: ("InvalidSignature", 10) in _sfsn(csms), 30)
                o.simrig.device_sleep(sim, 2500)  # the canceled download would be done
            finally:
                slow.close()
            assert [x for x in _sfsn(csms) if x[1] in (9, 10)] == [
                ("Downloading", 9), ("Downloading", 10), ("Downloaded", 10),
                ("InvalidSignature", 10)], _sfsn(csms)
            o.wait_log(sim, "ota: the update under way is canceled")
            # signed as it is, but a file does not match the bundle's manifest: scheduled for
            # 2 s from now, then InstallVerificationFailed, nothing installed
            broken = bytearray(data)
            broken[-3] ^= 1
            srv.body = bytes(broken)
            at = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2))
            req = _request(srv, pki["signing"], xc.sign_pss(pki["sign_key"], srv.body), req=11)
            req["firmware"]["installDateTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert o.call(csms, "SignedUpdateFirmware", req) == {"status": "Accepted"}
            csms.wait_for(lambda: ("InstallVerificationFailed", 11) in _sfsn(csms), 30)
            assert [x[0] for x in _sfsn(csms) if x[1] == 11] == [
                "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled",
                "Installing", "InstallVerificationFailed"], _sfsn(csms)
            # the plain UpdateFirmware is not supported once signed updates are
            r = o.call(csms, "UpdateFirmware", {"location": srv.url + "/b",
                                                "retrieveDate": "2020-01-01T00:00:00Z"})
            assert r[0] == "NotSupported", r
            assert _version(sim) == "0.8.0"
        assert not os.path.exists(os.path.join(d, slots.BOOT_FILE))
        assert not [n for n in os.listdir(d) if n.startswith("ota_")], os.listdir(d)
    finally:
        srv.close()
