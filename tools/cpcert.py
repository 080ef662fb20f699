"""The charge point's key and certificate for OCPP security profile 3 (mutual TLS,
docs/security.md), made on the host: the box cannot make a key itself (stock MicroPython has
no key generation or CSR API).

    python tools/cpcert.py key --cp-id CP01 [--org "My CPO"] [--dir keys/CP01]
        a new RSA-2048 key (cp_key.pem, keep it private) and a CSR (cp.csr) whose commonName
        is the charge point id, as the security whitepaper asks: give the CSR to the CSMS
        operator's certificate authority, which returns the signed certificate
    python tools/cpcert.py sign --dir keys/CP01 --ca-cert ca.pem --ca-key ca_key.pem [--days N]
        for a test or lab CA only: sign the CSR into cp_cert.pem
    python tools/cpcert.py install --dir keys/CP01 (--port /dev/ttyUSB0 | --device-dir D)
        check that cp_cert.pem matches cp_key.pem and names the config's cp_id, copy both to
        the box (ocpp_cert.pem, ocpp_key.pem) and set the config's ocpp.client_cert,
        client_key and security_profile 3 (the URL must already be wss:// with a CA)

The key is written unencrypted (MicroPython's ssl cannot read an encrypted one) with mode 0600.
"""
import argparse
import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
CERT_FILE, KEY_FILE = "ocpp_cert.pem", "ocpp_key.pem"  # on the box


class CertToolError(Exception):
    pass


def _x():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    return x509, hashes, serialization, rsa, NameOID


def make_key(d, cp_id, org=None):
    x509, hashes, serialization, rsa, NameOID = _x()
    os.makedirs(d, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(
        key, hashes.SHA256())
    fd = os.open(os.path.join(d, "cp_key.pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    with open(os.path.join(d, "cp.csr"), "wb") as f:
        f.write(csr.public_bytes(serialization.Encoding.PEM))


def sign(d, ca_cert, ca_key, days=365):
    x509, hashes, serialization, _, _ = _x()
    with open(os.path.join(d, "cp.csr"), "rb") as f:
        csr = x509.load_pem_x509_csr(f.read())
    with open(ca_cert, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(ca_key, "rb") as f:
        cakey = serialization.load_pem_private_key(f.read(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(cakey, hashes.SHA256()))
    with open(os.path.join(d, "cp_cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def checked_pair(d, cp_id):
    """(certificate PEM, key PEM) after checking they belong together, that the certificate is
    valid now and that its commonName is cp_id; CertToolError naming what is wrong."""
    x509, _, serialization, _, NameOID = _x()
    try:
        with open(os.path.join(d, "cp_cert.pem"), "rb") as f:
            cpem = f.read()
        with open(os.path.join(d, "cp_key.pem"), "rb") as f:
            kpem = f.read()
    except OSError as e:
        raise CertToolError("%s (run `key`, then get the CSR signed into cp_cert.pem)" % e)
    cert = x509.load_pem_x509_certificate(cpem)
    key = serialization.load_pem_private_key(kpem, password=None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, pub)
            != key.public_key().public_bytes(serialization.Encoding.DER, pub)):
        raise CertToolError("cp_cert.pem is not the certificate of cp_key.pem")
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn or cn[0].value != cp_id:
        raise CertToolError("the certificate's commonName %r is not the box's cp_id %r" % (
            cn[0].value if cn else None, cp_id))
    now = datetime.datetime.now(datetime.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertToolError("the certificate is not valid now (%s .. %s)" % (
            cert.not_valid_before_utc, cert.not_valid_after_utc))
    return cpem, kpem


def with_profile3(cfg):
    """The config dict with ocpp.client_cert/client_key and security_profile 3."""
    o = cfg.get("ocpp")
    if not isinstance(o, dict) or not o.get("cp_id"):
        raise CertToolError("the box's config has no ocpp section with a cp_id")
    if not str(o.get("url", "")).startswith("wss://") or not o.get("ca"):
        raise CertToolError("security profile 3 needs a wss:// ocpp.url and ocpp.ca first")
    o = dict(o, client_cert=CERT_FILE, client_key=KEY_FILE, security_profile=3)
    return dict(cfg, ocpp=o)


def install_dir(d, device_dir):
    """Install into a folder that is the box's filesystem (the simulator, tests)."""
    path = os.path.join(device_dir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cpem, kpem = checked_pair(d, (cfg.get("ocpp") or {}).get("cp_id"))
    new = with_profile3(cfg)
    for name, data in ((CERT_FILE, cpem), (KEY_FILE, kpem)):
        with open(os.path.join(device_dir, name), "wb") as f:
            f.write(data)
    with open(path + ".new", "w") as f:
        json.dump(new, f)
    os.replace(path + ".new", path)


def install_port(d, port):
    """Install over the serial REPL (tools/deploy.py's mpremote session)."""
    import deploy

    dev = deploy.Device(port)
    try:
        cfg = json.loads(dev.run("print(open('config.json').read())"))
        cpem, kpem = checked_pair(d, (cfg.get("ocpp") or {}).get("cp_id"))
        new = with_profile3(cfg)
        dev.write(CERT_FILE, cpem)
        dev.write(KEY_FILE, kpem)
        dev.write("config.json", json.dumps(new).encode())
    finally:
        dev.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("key")
    k.add_argument("--cp-id", required=True)
    k.add_argument("--org")
    k.add_argument("--dir")
    s = sub.add_parser("sign")
    s.add_argument("--dir", required=True)
    s.add_argument("--ca-cert", required=True)
    s.add_argument("--ca-key", required=True)
    s.add_argument("--days", type=int, default=365)
    i = sub.add_parser("install")
    i.add_argument("--dir", required=True)
    g = i.add_mutually_exclusive_group(required=True)
    g.add_argument("--port")
    g.add_argument("--device-dir")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "key":
            d = a.dir or os.path.join(ROOT, "keys", a.cp_id)
            make_key(d, a.cp_id, a.org)
            print("wrote %s (private) and %s (give it to the CSMS's CA)" % (
                os.path.join(d, "cp_key.pem"), os.path.join(d, "cp.csr")))
        elif a.cmd == "sign":
            sign(a.dir, a.ca_cert, a.ca_key, a.days)
            print("wrote %s" % os.path.join(a.dir, "cp_cert.pem"))
        elif a.device_dir:
            install_dir(a.dir, a.device_dir)
            print("installed into %s: security profile 3" % a.device_dir)
        else:
            install_port(a.dir, a.port)
            print("installed on %s: security profile 3 at the next start" % a.port)
    except CertToolError as e:
        raise SystemExit("cpcert: %s" % e)


if __name__ == "__main__":
    main()
