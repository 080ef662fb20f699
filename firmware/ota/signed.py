# SignedUpdateFirmware (OCPP 1.6 security whitepaper, edition 3; docs/ota.md): the signing
# certificate is checked before anything else (x509.chain to a manufacturer root in
# cert_mf.pem, at the CSMS's time): a bad one is answered InvalidCertificate and nothing is
# downloaded. Then the job of updater.py runs with SignedFirmwareStatusNotification and the
# request's requestId; after the download the signature over the whole file (base64 in the
# request) is checked with the certificate's RSA key, RSA-PSS (the whitepaper's scheme) or
# PKCS#1 v1.5 (what `openssl dgst -sign` makes): SignatureVerified or InvalidSignature. The
# bundle's own manifest signature may then be by ota_keys.json's keys or by the certificate's.
import binascii

ROOTS_FILE = "cert_mf.pem"  # manufacturer roots, PEM, outside the slots (certstore.MF_FILE)


def roots():
    from firmware.ota import x509

    from firmware import persist

    text = persist.read(ROOTS_FILE)  # written by firmware/certstore.py (or by hand)
    return [x509.Cert(d) for d in x509.pem_blocks(text)] if text else []


def signing_key(pem, now_s):
    """The RSA key of the signing certificate pem once it chains to an installed
    manufacturer root at now_s; (None, why) otherwise."""
    from firmware.ota import x509

    if now_s is None:
        return None, "the time is not known (no BootNotification.conf yet): dates unchecked"
    try:
        rs = roots()
        if not rs:
            return None, "no manufacturer root certificate installed (%s)" % ROOTS_FILE
        leaf = x509.chain(pem, rs, now_s)
    except x509.CertError as e:
        return None, str(e)
    if leaf.key is None:
        return None, "certificate %r: %s keys are not supported (RSA only)" % (leaf.cn,
                                                                               leaf.key_alg)
    return leaf.key, None


def check_file(key, sha256_hex, sig):
    """Why the firmware file (its SHA-256, hex) does not carry sig by key, or None."""
    from firmware.ota import rsa

    h = binascii.unhexlify(sha256_hex)
    try:
        rsa.verify_pss(key, h, sig)
        return None
    except rsa.SignatureError as e:
        if "PKCS#1 v1.5" not in str(e):
            return str(e)
    try:
        rsa.verify_pkcs1_v15(key, h, sig)
        return None
    except rsa.SignatureError as e:
        return str(e)


def request(cp, p):
    """SignedUpdateFirmware.req (schema-checked) -> {"status": ...}."""
    fw = p["firmware"]
    up = cp.updater
    get = getattr(up, "get", None)
    if get is not None:  # ota.Lazy until now
        up = get()
    key, why = signing_key(fw["signingCertificate"], cp.now_s())
    if key is None:
        cp.log("ota: SignedUpdateFirmware: InvalidCertificate: %s" % why)
        from firmware import secext

        secext.security_event(cp, "InvalidFirmwareSigningCertificate", why)
        return {"status": "InvalidCertificate"}
    try:
        sig = binascii.a2b_base64(fw["signature"])
    except ValueError:
        cp.log("ota: SignedUpdateFirmware: the signature is not base64")
        return {"status": "Rejected"}
    started = up.start({"location": fw["location"], "retrieve": fw["retrieveDateTime"],
                        "retries": p.get("retries"), "interval": p.get("retryInterval"),
                        "req": p["requestId"], "key": key, "sig": sig, "cancel": True,
                        "install": fw.get("installDateTime")}, "SignedUpdateFirmware")
    if not started:
        return {"status": "Rejected"}  # the one under way is installing already
    return {"status": "AcceptedCanceled" if up.canceled else "Accepted"}

