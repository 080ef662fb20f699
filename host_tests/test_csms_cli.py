"""The dev CSMS's command line shortcuts (tools/csms_cmds.py through tools/csms.py): each
message of the firmware management profile and the security extensions, sent from the
command line to a charge point (a small WebSocket one, host_tests/test_csms.py's Cp), with the
payload the charge point receives checked against the OCPP 1.6 schemas, file names resolved
on the CSMS's file server, a signature made from --file/--key that verifies, and bad
requests refused before anything is sent."""
import asyncio
import base64
import datetime
import json
import os
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from test_csms import BOOT, Cp, run

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import csms as cli  # noqa: E402
from csms_check import check_payload  # noqa: E402

FILES = "http://127.0.0.1:9/"  # the file server's URL as status reports it (never fetched)
ANSWERS = {"UpdateFirmware": {}, "SignedUpdateFirmware": {"status": "Accepted"},
           "GetDiagnostics": {"fileName": "diag.txt"},
           "GetLog": {"status": "Accepted", "filename": "log.txt"},
           "TriggerMessage": {"status": "Accepted"},
           "ExtendedTriggerMessage": {"status": "Accepted"},
           "InstallCertificate": {"status": "Accepted"},
           "GetInstalledCertificateIds": {"status": "NotFound"},
           "DeleteCertificate": {"status": "NotFound"}}


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    d = tmp_path_factory.mktemp("signer")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fw signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (d / "b.wbota").write_bytes(b"WBOTA1\n" + bytes(range(256)) * 40)
    return d, key


def _drive(cases, files=FILES):
    """[(argv after the command's --control, None or a check(action, payload))]: run each
    command line against a CSMS with a connected CP1; [(exit code, action, payload)]."""
    out = []

    async def test(csms, open_cp):
        csms.files_url = files
        async with open_cp("CP1") as ws:
            cp = Cp(ws)
            await cp.call("BootNotification", BOOT)
            await cp.call("FirmwareStatusNotification", {"status": "Downloading"})
            for argv in cases:
                cmd, rest = argv[0], argv[1:]
                job = asyncio.create_task(asyncio.to_thread(
                    cli.main, [cmd, "--control", str(csms.control_port)] + rest))
                got = (None, None)
                nxt = asyncio.create_task(cp.next_call())
                done, _ = await asyncio.wait({job, nxt}, return_when=asyncio.FIRST_COMPLETED)
                if nxt in done:
                    msg = nxt.result()
                    got = (msg[2], msg[3])
                    await cp.send([3, msg[1], ANSWERS[msg[2]]])
                    code = await job
                else:
                    code = job.result()
                    nxt.cancel()
                out.append((code,) + got)
        assert csms.violations == []
    run(test, control_port=0)
    return out


def test_every_shortcut_sends_a_schema_valid_call(signer, capsys):
    d, key = signer
    cases = [
        ["update", "CP1", "b.wbota", "--retries", "3", "--retry-interval", "20"],
        ["signed-update", "CP1", "https://fw.example/b.wbota", "--cert", str(d / "cert.pem"),
         "--file", str(d / "b.wbota"), "--key", str(d / "key.pem"), "--request-id", "42"],
        ["diagnostics", "CP1"],
        ["log", "CP1", "--type", "SecurityLog", "--request-id", "5"],
        ["trigger", "CP1", "LogStatusNotification"],
        ["trigger", "CP1", "FirmwareStatusNotification"],
        ["install-cert", "CP1", str(d / "cert.pem")],
        ["cert-ids", "CP1", "--type", "CentralSystemRootCertificate"],
        ["delete-cert", "CP1", json.dumps({"hashAlgorithm": "SHA256", "issuerNameHash": "ab",
                                           "issuerKeyHash": "cd", "serialNumber": "07"})],
        ["call", "CP1", "TriggerMessage", '{"requestedMessage": "Heartbeat"}'],
        ["status"],  # what an operator watches: the charge point's notifications
    ]
    got = _drive(cases)
    assert got.pop() == (0, None, None)
    out = capsys.readouterr().out  # one line per answer, then status's indented JSON
    status = json.loads(out[out.index("{\n"):])
    assert ["CP1", "FirmwareStatusNotification", {"status": "Downloading"}] in status[
        "notifications"]
    for (code, action, payload), argv in zip(got, cases):
        assert code == 0 and action is not None, argv
        assert check_payload(action, payload) is None, (action, payload)
    (_, a, p), (_, a2, p2), (_, a3, p3), (_, a4, p4) = got[:4]
    assert a == "UpdateFirmware" and p["location"] == FILES + "b.wbota"
    assert p["retries"] == 3 and p["retryInterval"] == 20 and p["retrieveDate"].endswith("Z")
    assert a2 == "SignedUpdateFirmware" and p2["requestId"] == 42
    fw = p2["firmware"]
    assert fw["signingCertificate"] == (d / "cert.pem").read_text()
    key.public_key().verify(base64.b64decode(fw["signature"]), (d / "b.wbota").read_bytes(),
                            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                            hashes.SHA256())  # raises if it does not verify
    assert (a3, p3) == ("GetDiagnostics", {"location": FILES + "uploads/"})
    assert a4 == "GetLog" and p4 == {"logType": "SecurityLog", "requestId": 5,
                                     "log": {"remoteLocation": FILES + "uploads/"}}
    assert [g[1] for g in got[4:]] == [
        "ExtendedTriggerMessage", "TriggerMessage", "InstallCertificate",
        "GetInstalledCertificateIds", "DeleteCertificate", "TriggerMessage"]
    assert got[6][2]["certificateType"] == "ManufacturerRootCertificate"


def test_bad_requests_are_refused_before_anything_is_sent(signer, capsys):
    d, _ = signer
    got = _drive([["update", "CP1", "b.wbota"],
                  ["delete-cert", "CP1", '{"hashAlgorithm": "MD5"}'],
                  ["signed-update", "CP1", "http://x/b", "--cert", str(d / "cert.pem")],
                  ["install-cert", "CP1", str(d / "missing.pem")]], files=None)
    assert got == [(2, None, None)] * 4
    err = capsys.readouterr().err
    assert "b.wbota: not a URL, and this CSMS serves no files (serve --files DIR)" in err
    assert "DeleteCertificate refused before sending: certificateHashData" in err
    assert "needs --signature, or --file and --key" in err
    assert "missing.pem" in err
