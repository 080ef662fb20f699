# The certificate store of the OCPP 1.6 security extensions (whitepaper ed. 3, docs/security.md):
# InstallCertificate, DeleteCertificate and GetInstalledCertificateIds for the two types 1.6
# has. ManufacturerRootCertificate -> cert_mf.pem (what signed firmware updates chain to,
# firmware/ota/signed.py); CentralSystemRootCertificate -> the file the config's ocpp.ca names
# (the CA the wss:// link verifies the CSMS with; the next connection uses the new content),
# cert_cs.pem when it names none. Each is a PEM file at the filesystem root (outside the
# update slots: every update and rollback keeps it), rewritten whole through persist's atomic
# write. Certificates are read by firmware/ota/x509.py: a root must be a CA and valid now; at
# most CertificateStoreMaxLength (8) per type. The hash data: SHA-256 of the issuer's DER name
# and of the issuer's public key bits, the serial in hex (RFC 6960's CertID, as OCPP asks).
import binascii
import hashlib


from firmware import persist

MF_FILE = "cert_mf.pem"
CS_FILE = "cert_cs.pem"
MAX_PER_TYPE = const(8)
_TYPES = ("CentralSystemRootCertificate", "ManufacturerRootCertificate")


def _path(cp, kind):
    if kind == "ManufacturerRootCertificate":
        return MF_FILE
    return cp.section.get("ca") or CS_FILE


def _load(path):
    """[(der, Cert)] of the store file (none when it is missing)."""
    from firmware.ota import x509

    try:
        text = persist.read(path)
    except OSError:
        return []
    if not text:
        return []
    return [(d, x509.Cert(d)) for d in x509.pem_blocks(text)]


def _pem(der):
    b = binascii.b2a_base64(der).replace(b"\n", b"")
    lines = [b[i:i + 64].decode() for i in range(0, len(b), 64)]
    return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % "\n".join(lines)


def _save(cp, kind, entries):
    path = _path(cp, kind)
    text = "".join(_pem(d) for d, _ in entries)
    if text:
        persist.write_atomic(path, text, "w")
    else:
        persist.remove(path)
    if kind == "CentralSystemRootCertificate" and path == cp.section.get("ca"):
        cp.security.cadata = text or None  # the next wss:// connection verifies with it


def hash_data(c, entries):
    """OCPP CertificateHashData of Cert c; its issuer's key from the store when there, else
    its own (a self-signed root)."""
    key = c.spk
    for _, o in entries:
        if o.subject == c.issuer:
            key = o.spk
            break
    return {"hashAlgorithm": "SHA256",
            "issuerNameHash": binascii.hexlify(hashlib.sha256(c.issuer).digest()).decode(),
            "issuerKeyHash": binascii.hexlify(hashlib.sha256(key).digest()).decode(),
            "serialNumber": c.serial}


def install(cp, p):
    from firmware.ota import x509

    kind = p["certificateType"]
    try:
        ders = x509.pem_blocks(p["certificate"])
        if len(ders) != 1:
            raise x509.CertError("one certificate per InstallCertificate, got %d" % len(ders))
        c = x509.Cert(ders[0])
        now = cp.now_s()
        if now is not None and not c.not_before <= now <= c.not_after:
            raise x509.CertError("certificate %r is not valid now" % c.cn)
        if not c.ca:
            raise x509.CertError("certificate %r is not a CA (a root is)" % c.cn)
        entries = _load(_path(cp, kind))
    except x509.CertError as e:
        cp.log("certs: InstallCertificate %s rejected: %s" % (kind, e))
        return {"status": "Rejected"}
    if any(d == ders[0] for d, _ in entries):
        return {"status": "Accepted"}  # already there
    if len(entries) >= MAX_PER_TYPE:
        cp.log("certs: InstallCertificate %s rejected: %d installed, the most" % (
            kind, len(entries)))
        return {"status": "Rejected"}
    try:
        _save(cp, kind, entries + [(ders[0], c)])
    except OSError as e:
        cp.log("certs: InstallCertificate %s failed: %r" % (kind, e))
        return {"status": "Failed"}
    cp.log("certs: %s %r installed" % (kind, c.cn))
    return {"status": "Accepted"}


def _same(h, mine):
    if h.get("hashAlgorithm") != "SHA256":
        return False
    serial = str(h.get("serialNumber", "")).lower().lstrip("0") or "0"
    return (serial == mine["serialNumber"]
            and str(h.get("issuerNameHash", "")).lower() == mine["issuerNameHash"]
            and str(h.get("issuerKeyHash", "")).lower() == mine["issuerKeyHash"])


def delete(cp, p):
    from firmware.ota import x509

    h = p["certificateHashData"]
    for kind in _TYPES:
        try:
            entries = _load(_path(cp, kind))
        except x509.CertError:
            continue
        for k, (_, c) in enumerate(entries):
            if not _same(h, hash_data(c, entries)):
                continue
            if (kind == "CentralSystemRootCertificate" and len(entries) == 1
                    and cp.security.tls):
                cp.log("certs: DeleteCertificate: the last CSMS root stays (the link needs it)")
                return {"status": "Failed"}
            try:
                _save(cp, kind, entries[:k] + entries[k + 1:])
            except OSError as e:
                cp.log("certs: DeleteCertificate failed: %r" % (e,))
                return {"status": "Failed"}
            cp.log("certs: %s %r deleted" % (kind, c.cn))
            return {"status": "Accepted"}
    return {"status": "NotFound"}


def installed_ids(cp, p):
    from firmware.ota import x509

    try:
        entries = _load(_path(cp, p["certificateType"]))
    except x509.CertError as e:
        cp.log("certs: the %s store cannot be read: %s" % (p["certificateType"], e))
        entries = []
    if not entries:
        return {"status": "NotFound"}
    return {"status": "Accepted",
            "certificateHashData": [hash_data(c, entries) for _, c in entries]}
