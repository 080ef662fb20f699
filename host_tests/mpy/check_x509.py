# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the X.509
# reader (firmware/ota/x509.py) on the committed vectors (host_tests/x509_cases.py made them):
# names, dates, keys, the chain to the root and each refusal; the firmware signature, RSA-PSS
# and PKCS#1 v1.5, with the signing certificate's key. test_x509.py runs the same on CPython
# with fresh certificates.
import hashlib
import json
from binascii import unhexlify

from firmware.ota import rsa, x509

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


with open(__file__.rsplit("/", 1)[0] + "/x509_vectors.json") as f:
    V = json.load(f)
roots = [x509.Cert(d) for d in x509.pem_blocks(V["root"])]
check("root: CA, RSA-2048, its name", roots[0].ca and roots[0].key.bits == 2048
      and roots[0].cn == "Wallbox Test Root" and roots[0].subject == roots[0].issuer)
leaf = None
for name, (pem, words) in sorted(V["cases"].items()):
    try:
        c = x509.chain(pem, roots, V["now"])
        got = None
    except x509.CertError as e:
        got = str(e)
    ok = got is None if words is None else got is not None and words in got
    check("chain %s: %s" % (name, got), ok)
    if name == "signing":
        leaf = c
check("leaf: not a CA, valid now, issuer = root's subject", leaf is not None and not leaf.ca
      and leaf.not_before < V["now"] < leaf.not_after and leaf.issuer == roots[0].subject)
ec = x509.chain(V["cases"]["ec"][0], roots, V["now"])
check("an EC leaf is read, its key named", ec.key is None and ec.key_alg == "ec")
h = hashlib.sha256(unhexlify(V["data_hex"])).digest()
check("firmware signature, RSA-PSS", rsa.verify_pss(leaf.key, h, unhexlify(V["sig_pss_hex"])))
check("firmware signature, PKCS#1 v1.5", rsa.verify_pkcs1_v15(leaf.key, h,
                                                              unhexlify(V["sig_v15_hex"])))
bad = bytearray(unhexlify(V["sig_v15_hex"]))
bad[5] ^= 1
try:
    rsa.verify_pkcs1_v15(leaf.key, h, bytes(bad))
    check("a changed v1.5 signature is refused", False)
except rsa.SignatureError:
    check("a changed v1.5 signature is refused", True)
for junk in (b"", b"\x30\x05\x02\x01", b"\x30\x84\x00\x00\x00\x01\x00"):
    try:
        x509.Cert(junk)
        check("junk DER %r refused" % junk, False)
    except x509.CertError as e:
        check("junk DER refused: %s" % e, True)
try:
    x509.pem_blocks("hello")
    check("no PEM refused", False)
except x509.CertError as e:
    check("no PEM refused: %s" % e, True)
# the certificate store (firmware/certstore.py) on MicroPython's files, binascii and hashlib
import os  # noqa: E402

from firmware import certstore  # noqa: E402


class _Sec:
    cadata = None
    tls = False


class _CP:
    section = {}
    security = _Sec()
    logs = []

    def log(self, m):
        self.logs.append(m)

    def now_s(self):
        return V["now"]


D = "/tmp/wbx509_%d" % V["now"]
try:
    os.mkdir(D)
except OSError:
    pass
os.chdir(D)
cp = _CP()
MF = {"certificateType": "ManufacturerRootCertificate"}
check("store: install a root", certstore.install(cp, dict(MF, certificate=V["root"])) == {
    "status": "Accepted"})
check("store: a leaf is rejected", certstore.install(cp, dict(
    MF, certificate=V["cases"]["signing"][0])) == {"status": "Rejected"})
ids = certstore.installed_ids(cp, MF)
h = ids.get("certificateHashData", [{}])[0]
check("store: hash data %r" % h, ids["status"] == "Accepted" and h["serialNumber"] == roots[
    0].serial and len(h["issuerNameHash"]) == 64 and len(h["issuerKeyHash"]) == 64)
check("store: read back as the same root", x509.Cert(x509.pem_blocks(
    open("cert_mf.pem").read())[0]).subject == roots[0].subject)
check("store: delete", certstore.delete(cp, {"certificateHashData": h}) == {
    "status": "Accepted"} and certstore.installed_ids(cp, MF) == {"status": "NotFound"})
print("DONE %d failed" % len(FAILS))
