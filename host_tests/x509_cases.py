"""Certificates for the X.509 reader's tests (firmware/ota/x509.py) and signed updates, made
with PyPI `cryptography`: a manufacturer root, a firmware signing certificate it issued (and
one through an intermediate, one signed RSA-PSS), and every kind the device refuses: expired,
not yet valid, issued by a foreign root, an EC key, a leaf posing as an issuer.

    python host_tests/x509_cases.py > host_tests/mpy/x509_vectors.json   (for check_x509.py)
"""
import datetime
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

DAY = datetime.timedelta(days=1)
NOW = datetime.datetime(2026, 12, 4, tzinfo=datetime.timezone.utc)


def _key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Wallbox Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def cert(cn, key, issuer_cn=None, issuer_key=None, ca=False, start=None, end=None,
         pss=False, now=NOW):
    issuer_key = issuer_key or key
    b = (x509.CertificateBuilder().subject_name(_name(cn))
         .issuer_name(_name(issuer_cn or cn)).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(start or now - 365 * DAY).not_valid_after(end or now + 3650 * DAY)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    kw = {}
    if pss:
        kw["rsa_padding"] = padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                        salt_length=padding.PSS.DIGEST_LENGTH)
    return b.sign(issuer_key, hashes.SHA256(), **kw)


def pem(*certs):
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def sign_pss(key, data):
    return key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                    hashes.SHA256())


def pki(now=NOW):
    """{name: value}: keys (private, for signing), PEM texts, the root's PEM; valid at now
    (the expired and not-yet-valid ones relative to it)."""
    root_k, foreign_k, inter_k, sign_k = _key(), _key(), _key(), _key()
    NOW = now  # noqa: N806

    def cert(*a, **k):
        return globals()["cert"](*a, now=now, **k)

    root = cert("Wallbox Test Root", root_k, ca=True)
    foreign = cert("Someone Else Root", foreign_k, ca=True)
    inter = cert("Wallbox Test Intermediate", inter_k, "Wallbox Test Root", root_k, ca=True)
    return {
        "root_key": root_k, "sign_key": sign_k, "foreign_key": foreign_k,
        "root": pem(root), "foreign_root": pem(foreign),
        "signing": pem(cert("Firmware Signing", sign_k, "Wallbox Test Root", root_k)),
        "signing_pss": pem(cert("Firmware Signing PSS", sign_k, "Wallbox Test Root", root_k,
                                pss=True)),
        "via_intermediate": pem(cert("Firmware Signing 2", sign_k,
                                     "Wallbox Test Intermediate", inter_k), inter),
        "expired": pem(cert("Firmware Signing Old", sign_k, "Wallbox Test Root", root_k,
                            start=NOW - 800 * DAY, end=NOW - 30 * DAY)),
        "not_yet": pem(cert("Firmware Signing Future", sign_k, "Wallbox Test Root", root_k,
                            start=NOW + 30 * DAY)),
        "foreign": pem(cert("Firmware Signing", sign_k, "Someone Else Root", foreign_k)),
        "forged": pem(cert("Firmware Signing", sign_k, "Wallbox Test Root", foreign_k)),
        "leaf_issuer": pem(cert("Firmware Signing 3", sign_k, "Firmware Signing", sign_k),
                           cert("Firmware Signing", sign_k, "Wallbox Test Root", root_k)),
        "ec": pem(cert("Firmware Signing EC", ec.generate_private_key(ec.SECP256R1()),
                       "Wallbox Test Root", root_k)),
    }


# what the device must say of each (None: accepted), at NOW
EXPECT = {"signing": None, "signing_pss": None, "via_intermediate": None,
          "expired": "has expired", "not_yet": "not valid yet",
          "foreign": "not an installed manufacturer root", "forged": "bad signature",
          "leaf_issuer": "is not a CA", "ec": None}


def vectors():
    p = pki()
    data = b"firmware bytes " * 100
    return {"now": int(NOW.timestamp()), "root": p["root"],
            "cases": {k: [p[k], EXPECT[k]] for k in EXPECT},
            "data_hex": data.hex(), "sig_pss_hex": sign_pss(p["sign_key"], data).hex(),
            "sig_v15_hex": p["sign_key"].sign(data, padding.PKCS1v15(),
                                              hashes.SHA256()).hex()}


if __name__ == "__main__":
    json.dump(vectors(), sys.stdout, indent=0)
