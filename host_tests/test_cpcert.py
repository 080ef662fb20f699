"""Security profile 3 tooling (tools/cpcert.py): the charge point's key and CSR made on the
host, the CSR signed by a (test) CA, the certificate and key installed into the box's
filesystem with the config switched to profile 3; the simulated box then connects to a dev
CSMS that requires a client certificate of that CA. Mismatched or misnamed certificates and a
config that cannot do profile 3 are refused by name."""
import datetime
import json
import os
import shutil
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

import ocpprig as o
from ocpprig import CsmsThread
from test_ocpp_security import connects

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import cpcert  # noqa: E402


def _ca(d, cn="CPO Test CA"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cp, kp = os.path.join(d, cn + ".pem"), os.path.join(d, cn + ".key")
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cp, kp


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    import certs
    return certs.make_certs(str(tmp_path_factory.mktemp("certs")))


def test_key_csr_sign_install_and_connect_with_profile_3(tmp_path, tls):
    keys = str(tmp_path / "keys")
    cpcert.main(["key", "--cp-id", "CP1", "--org", "Test CPO", "--dir", keys])
    assert oct(os.stat(os.path.join(keys, "cp_key.pem")).st_mode & 0o777) == "0o600"
    csr = x509.load_pem_x509_csr(open(os.path.join(keys, "cp.csr"), "rb").read())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP1"
    ca_pem, ca_key = _ca(str(tmp_path))
    cpcert.main(["sign", "--dir", keys, "--ca-cert", ca_pem, "--ca-key", ca_key])
    d = o.state_dir(tmp_path)
    shutil.copy(tls["ca_pem"], os.path.join(d, "ca.pem"))
    with CsmsThread(cert=tls["cert"], key=tls["key"], client_ca=ca_pem,
                    client_cert_required=True) as csms:
        cfg = o.start_sim(csms, ocpp={"url": "wss://localhost:%d/" % csms.port,
                                      "ca": "ca.pem"}).config
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)  # what the deploy wrote
        cpcert.main(["install", "--dir", keys, "--device-dir", d])
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        assert cfg["ocpp"]["security_profile"] == 3
        assert cfg["ocpp"]["client_cert"] == "ocpp_cert.pem"
        with o.simrig.simlib.Sim(cfg, state_dir=d) as sim, o.report(sim, csms):
            o.booted(csms, timeout=40)
            c = connects(csms)
            assert c[0]["cert"] == "CP1" and not c[0]["basic"]
        o.no_violations(csms)


def test_what_install_refuses(tmp_path, capsys):
    keys, other = str(tmp_path / "keys"), str(tmp_path / "other")
    cpcert.make_key(keys, "CP1")
    cpcert.make_key(other, "CP2")
    ca_pem, ca_key = _ca(str(tmp_path))
    cpcert.sign(other, ca_pem, ca_key)
    d = str(tmp_path / "dev")
    os.mkdir(d)
    cfg = {"ocpp": {"url": "wss://csms.example/", "cp_id": "CP1", "ca": "ca.pem"}}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    with pytest.raises(SystemExit, match="not the box's cp_id 'CP1'"):
        cpcert.main(["install", "--dir", other, "--device-dir", d])
    shutil.copy(os.path.join(other, "cp_cert.pem"), os.path.join(keys, "cp_cert.pem"))
    with pytest.raises(SystemExit, match="not the certificate of cp_key.pem"):
        cpcert.main(["install", "--dir", keys, "--device-dir", d])
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"ocpp": dict(cfg["ocpp"], url="ws://csms.example/", cp_id="CP2")}, f)
    with pytest.raises(SystemExit, match="needs a wss:// ocpp.url"):
        cpcert.main(["install", "--dir", other, "--device-dir", d])
    assert not os.path.exists(os.path.join(d, "ocpp_key.pem"))
