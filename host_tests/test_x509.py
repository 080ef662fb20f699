"""The X.509 reader of signed updates (firmware/ota/x509.py) on CPython, against PyPI
`cryptography`'s reading of fresh certificates (host_tests/x509_cases.py): names, dates, key,
CA flag, the chain to the manufacturer root and each refusal. The same on the MicroPython unix
port: host_tests/mpy/check_x509.py (committed vectors)."""
import hashlib

import pytest
from cryptography import x509 as cx

import x509_cases as xc
from firmware.ota import rsa, x509


@pytest.fixture(scope="module")
def pki():
    return xc.pki()


def test_the_fields_match_what_cryptography_reads(pki):
    for name in ("root", "signing", "expired", "signing_pss"):
        ref = cx.load_pem_x509_certificate(pki[name].encode())
        c = x509.Cert(x509.pem_blocks(pki[name])[0])
        assert c.tbs == ref.tbs_certificate_bytes and c.sig == ref.signature
        assert c.subject == ref.subject.public_bytes() and c.issuer == ref.issuer.public_bytes()
        assert c.cn == ref.subject.get_attributes_for_oid(cx.NameOID.COMMON_NAME)[0].value
        assert c.not_before == int(ref.not_valid_before_utc.timestamp())
        assert c.not_after == int(ref.not_valid_after_utc.timestamp())
        nums = ref.public_key().public_numbers()
        assert (c.key.n, c.key.e) == (nums.n, nums.e)
        assert c.ca == ref.extensions.get_extension_for_class(cx.BasicConstraints).value.ca
    assert x509.Cert(x509.pem_blocks(pki["signing_pss"])[0]).sig_alg == "pss-sha256"


@pytest.mark.parametrize("name", sorted(xc.EXPECT))
def test_the_chain_to_the_manufacturer_root(pki, name):
    roots = [x509.Cert(d) for d in x509.pem_blocks(pki["root"])]
    now = int(xc.NOW.timestamp())
    words = xc.EXPECT[name]
    if words is None:
        leaf = x509.chain(pki[name], roots, now)
        assert leaf.issuer != leaf.subject and not leaf.ca
    else:
        with pytest.raises(x509.CertError, match=words):
            x509.chain(pki[name], roots, now)


def test_the_firmware_signature_with_the_certificates_key(pki):
    leaf = x509.Cert(x509.pem_blocks(pki["signing"])[0])
    data = b"\x00firmware" * 999
    h = hashlib.sha256(data).digest()
    assert rsa.verify_pss(leaf.key, h, xc.sign_pss(pki["sign_key"], data))
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    v15 = pki["sign_key"].sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert rsa.verify_pkcs1_v15(leaf.key, h, v15)
    with pytest.raises(rsa.SignatureError):
        rsa.verify_pkcs1_v15(leaf.key, hashlib.sha256(data + b"x").digest(), v15)
    with pytest.raises(rsa.SignatureError):  # another key's
        rsa.verify_pkcs1_v15(leaf.key, h, pki["root_key"].sign(data, padding.PKCS1v15(),
                                                               hashes.SHA256()))


def test_a_root_that_expired_or_bad_der_is_named(pki):
    import datetime
    root = x509.Cert(x509.pem_blocks(pki["root"])[0])
    later = int((xc.NOW + datetime.timedelta(days=365 * 20)).timestamp())
    with pytest.raises(x509.CertError, match="has expired"):
        x509.chain(pki["signing"], [root], later)
    der = x509.pem_blocks(pki["signing"])[0]
    for cut in (1, 10, len(der) // 2, len(der) - 1):
        with pytest.raises(x509.CertError):
            x509.Cert(der[:cut])
    with pytest.raises(x509.CertError, match="bytes after"):
        x509.Cert(der + b"\x00")
