"""The certificate store (firmware/certstore.py): InstallCertificate, DeleteCertificate and
GetInstalledCertificateIds on CPython with a stand-in charge point (the hash data checked
against PyPI `cryptography`'s reading), and end to end on the simulator with the dev CSMS
(the store survives a restart; an installed manufacturer root enables signed updates)."""
import datetime
import hashlib
import os
import types

import pytest
from cryptography import x509 as cx
from cryptography.hazmat.primitives import serialization

import ocpprig as o
import x509_cases as xc
from ocpprig import CsmsThread

from firmware import certstore

MF, CS = "ManufacturerRootCertificate", "CentralSystemRootCertificate"


@pytest.fixture(scope="module")
def pki():
    return xc.pki(datetime.datetime.now(datetime.timezone.utc))


def _cp(ca=None, tls=False):
    logs = []
    return types.SimpleNamespace(
        section={"ca": ca} if ca else {}, security=types.SimpleNamespace(cadata=None, tls=tls),
        log=logs.append, logs=logs,
        now_s=lambda: int(datetime.datetime.now(datetime.timezone.utc).timestamp()))


def _ids(pem):
    """The hash data a CSMS computes for a self-signed root (RFC 6960 CertID)."""
    c = cx.load_pem_x509_certificate(pem.encode())
    spki = c.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    bits = spki[-(len(spki) - spki.index(b"\x03\x82") - 5):]  # the BIT STRING's key bits
    return {"hashAlgorithm": "SHA256",
            "issuerNameHash": hashlib.sha256(c.issuer.public_bytes()).hexdigest(),
            "issuerKeyHash": hashlib.sha256(bits).hexdigest(),
            "serialNumber": "%x" % c.serial_number}


def test_install_list_delete(pki, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cp = _cp()
    assert certstore.installed_ids(cp, {"certificateType": MF}) == {"status": "NotFound"}
    for _ in range(2):  # the same root twice: stored once
        assert certstore.install(cp, {"certificateType": MF, "certificate": pki["root"]}) == {
            "status": "Accepted"}
    r = certstore.installed_ids(cp, {"certificateType": MF})
    assert r == {"status": "Accepted", "certificateHashData": [_ids(pki["root"])]}
    for bad, why in ((pki["signing"], "not a CA"), (pki["expired"], "not valid now"),
                     ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                      "DER"), (pki["root"] + pki["foreign_root"], "one certificate")):
        assert certstore.install(cp, {"certificateType": MF, "certificate": bad}) == {
            "status": "Rejected"}
        assert why in cp.logs[-1], cp.logs[-1]
    assert certstore.install(cp, {"certificateType": CS, "certificate": pki["foreign_root"]}
                             ) == {"status": "Accepted"}
    assert os.path.exists("cert_cs.pem") and os.path.exists("cert_mf.pem")
    h = dict(_ids(pki["root"]), serialNumber="00" + _ids(pki["root"])["serialNumber"].upper())
    assert certstore.delete(cp, {"certificateHashData": h}) == {"status": "Accepted"}
    assert certstore.delete(cp, {"certificateHashData": h}) == {"status": "NotFound"}
    assert not os.path.exists("cert_mf.pem")
    assert certstore.installed_ids(cp, {"certificateType": CS})["certificateHashData"] == [
        _ids(pki["foreign_root"])]


def test_the_csms_root_is_the_links_ca_and_the_last_one_stays(pki, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca.pem").write_text(pki["foreign_root"])
    cp = _cp(ca="ca.pem", tls=True)
    assert certstore.install(cp, {"certificateType": CS, "certificate": pki["root"]}) == {
        "status": "Accepted"}
    assert cp.security.cadata.count("BEGIN CERTIFICATE") == 2  # the next connection's CAs
    assert (tmp_path / "ca.pem").read_text().count("BEGIN CERTIFICATE") == 2
    assert certstore.delete(cp, {"certificateHashData": _ids(pki["foreign_root"])}) == {
        "status": "Accepted"}
    assert certstore.delete(cp, {"certificateHashData": _ids(pki["root"])}) == {
        "status": "Failed"}  # the link would have no CA left
    assert "last CSMS root" in cp.logs[-1]


def test_on_the_simulator(pki, tmp_path):
    d = str(tmp_path / "dev")
    os.mkdir(d)
    with CsmsThread() as csms:
        with o.start_sim(csms, state_dir=d):
            o.booted(csms)
            assert o.call(csms, "InstallCertificate", {
                "certificateType": MF, "certificate": pki["root"]}) == {"status": "Accepted"}
            assert o.call(csms, "InstallCertificate", {
                "certificateType": MF, "certificate": pki["signing"]}) == {"status": "Rejected"}
        n = len(csms.boots)
        with o.start_sim(csms, state_dir=d) as sim:  # kept across a restart
            csms.wait_for(lambda: len(csms.boots) > n, 30)
            o.wait_log(sim, "ocpp: boot accepted")
            assert o.call(csms, "GetInstalledCertificateIds", {"certificateType": MF}) == {
                "status": "Accepted", "certificateHashData": [_ids(pki["root"])]}
            r = o.call(csms, "UpdateFirmware", {"location": "http://127.0.0.1:9/b",
                                                "retrieveDate": "2020-01-01T00:00:00Z"})
            assert r[0] == "NotSupported", r  # a manufacturer root: signed updates only
            assert o.call(csms, "DeleteCertificate", {
                "certificateHashData": _ids(pki["root"])}) == {"status": "Accepted"}
            assert o.call(csms, "GetInstalledCertificateIds", {"certificateType": MF}) == {
                "status": "NotFound"}
        o.no_violations(csms)
