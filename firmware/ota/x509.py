# A small DER / X.509 reader for signed firmware updates (docs/ota.md, "SignedUpdateFirmware"):
# a certificate's signed part (tbsCertificate), its issuer and subject (raw DER, compared as
# bytes), validity dates (epoch seconds), RSA public key, CA flag and signature; check() ties a
# certificate to its issuer: names, dates, CA flag and the issuer key's signature over the
# tbsCertificate (sha256WithRSAEncryption, or RSASSA-PSS with SHA-256). EC keys and other
# algorithms are named and refused. PEM text in, one certificate per BEGIN/END block.
import binascii
import hashlib


from firmware.ota import rsa

_SEQ = const(0x30)
_MAX_DER = const(4096)
_OID_RSA = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"
_OID_RSA_SHA256 = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b"
_OID_PSS = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a"
_OID_EC = b"\x2a\x86\x48\xce\x3d\x02\x01"
_OID_ECDSA_SHA256 = b"\x2a\x86\x48\xce\x3d\x04\x03\x02"
_OID_CN = b"\x55\x04\x03"
_OID_BASIC = b"\x55\x1d\x13"


class CertError(Exception):
    """A certificate that cannot be read or does not check out; the message says why."""


def tlv(b, i):
    """(tag, start, end) of the DER element at b[i]: its value is b[start:end]."""
    if i + 2 > len(b):
        raise CertError("DER truncated")
    tag = b[i]
    n = b[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 3 or i + k > len(b):
            raise CertError("DER length not supported")
        n = int.from_bytes(bytes(b[i:i + k]), "big")
        i += k
    if i + n > len(b):
        raise CertError("DER truncated")
    return tag, i, i + n


def _expect(b, i, tag, what):
    t, s, e = tlv(b, i)
    if t != tag:
        raise CertError("%s: DER tag 0x%02x, expected 0x%02x" % (what, t, tag))
    return s, e


def pem_blocks(text):
    """The DER bytes of each CERTIFICATE block of PEM text (str or bytes)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode()
    out = []
    begin = "-----BEGIN CERTIFICATE-----"
    end = "-----END CERTIFICATE-----"
    i = text.find(begin)
    while i >= 0:
        j = text.find(end, i)
        if j < 0:
            raise CertError("PEM: no END CERTIFICATE line")
        body = "".join(text[i + len(begin):j].split())
        try:
            der = binascii.a2b_base64(body)
        except ValueError:
            raise CertError("PEM: bad base64")
        if len(der) > _MAX_DER:
            raise CertError("certificate of %d bytes, at most %d" % (len(der), _MAX_DER))
        out.append(der)
        i = text.find(begin, j)
    if not out:
        raise CertError("no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return out


def _time(b, s, e, tag):
    t = bytes(b[s:e]).decode()
    if tag == 0x17 and len(t) == 13:  # UTCTime YYMMDDHHMMSSZ
        y = int(t[:2])
        t = ("20" if y < 50 else "19") + t
    elif tag != 0x18 or len(t) != 15:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise CertError("validity: unsupported time %r" % t)
    if t[-1] != "Z":
        raise CertError("validity: time %r is not UTC" % t)
    from firmware.ocpp import clock

    try:
        return clock.parse("%s-%s-%sT%s:%s:%sZ" % (t[:4], t[4:6], t[6:8], t[8:10], t[10:12],
                                                  t[12:14]))
    except ValueError:
        raise CertError("validity: bad time %r" % t)


def _cn(name):
    """The commonName of a Name's DER (for messages), or ""."""
    s, e = _expect(name, 0, _SEQ, "name")
    while s < e:
        _, rs, re_ = tlv(name, s)  # RelativeDistinguishedName SET
        s = re_
        while rs < re_:
            _, as_, ae = tlv(name, rs)  # AttributeTypeAndValue
            rs = ae
            _, os_, oe = tlv(name, as_)
            if bytes(name[os_:oe]) == _OID_CN:
                _, vs, ve = tlv(name, oe)
                return bytes(name[vs:ve]).decode()
    return ""


class Cert:
    """One parsed certificate: tbs (bytes signed), issuer and subject (DER), cn, serial
    (hex, no leading zeros), spk (the subjectPublicKey's bits),
    not_before / not_after (epoch s), key (rsa.PublicKey or None), key_alg, ca (bool),
    sig_alg ("rsa-sha256", "pss-sha256" or the OID's name), sig (bytes)."""

    def __init__(self, der):
        b = memoryview(der)
        s, e = _expect(b, 0, _SEQ, "certificate")
        if e != len(b):
            raise CertError("bytes after the certificate")
        t, ts, te = tlv(b, s)
        if t != _SEQ:
            raise CertError("tbsCertificate: not a SEQUENCE")
        self.tbs = bytes(b[s:te])
        i = te
        a_s, a_e = _expect(b, i, _SEQ, "signatureAlgorithm")
        self.sig_alg = _alg_name(b, a_s)
        bs, be = _expect(b, a_e, 0x03, "signatureValue")
        self.sig = bytes(b[bs + 1:be])
        self._read_tbs(b, ts, te)

    def _read_tbs(self, b, i, end):
        if b[i] == 0xA0:  # [0] version
            i = tlv(b, i)[2]
        ss, i = _expect(b, i, 0x02, "serialNumber")
        self.serial = binascii.hexlify(bytes(b[ss:i])).decode().lstrip("0") or "0"
        i = _expect(b, i, _SEQ, "signature")[1]
        t, s, e = tlv(b, i)
        self.issuer = bytes(b[i:e])
        vs, ve = _expect(b, e, _SEQ, "validity")
        t, s, e2 = tlv(b, vs)
        self.not_before = _time(b, s, e2, t)
        t, s, e3 = tlv(b, e2)
        self.not_after = _time(b, s, e3, t)
        t, s, e = tlv(b, ve)
        self.subject = bytes(b[ve:e])
        self.cn = _cn(self.subject)
        self._read_key(b, e)
        i = tlv(b, e)[2]
        self.ca = False
        while i < end:
            t, s, e = tlv(b, i)
            i = e
            if t == 0xA3:  # [3] extensions
                self._read_exts(b, s, e)

    def _read_key(self, b, i):
        s, e = _expect(b, i, _SEQ, "subjectPublicKeyInfo")
        a_s, a_e = _expect(b, s, _SEQ, "algorithm")
        _, os_, oe = tlv(b, a_s)
        oid = bytes(b[os_:oe])
        self.key = None
        self.key_alg = "rsa" if oid == _OID_RSA else "ec" if oid == _OID_EC else "other"
        ks, ke = _expect(b, a_e, 0x03, "subjectPublicKey")
        self.spk = bytes(b[ks + 1:ke])  # the key's bits (issuerKeyHash hashes them)
        if oid != _OID_RSA:
            return
        ns, ne = _expect(b, ks + 1, _SEQ, "RSAPublicKey")
        n_s, n_e = _expect(b, ns, 0x02, "modulus")
        e_s, e_e = _expect(b, n_e, 0x02, "publicExponent")
        try:
            self.key = rsa.PublicKey(int.from_bytes(bytes(b[n_s:n_e]), "big"),
                                     int.from_bytes(bytes(b[e_s:e_e]), "big"), self.cn)
        except rsa.SignatureError as x:
            raise CertError(str(x))

    def _read_exts(self, b, s, e):
        s, e = _expect(b, s, _SEQ, "extensions")
        while s < e:
            _, xs, xe = tlv(b, s)
            s = xe
            _, os_, oe = tlv(b, xs)
            if bytes(b[os_:oe]) != _OID_BASIC:
                continue
            t, vs, ve = tlv(b, oe)
            if t == 0x01:  # critical BOOLEAN
                t, vs, ve = tlv(b, ve)
            bs, be = _expect(b, vs, _SEQ, "basicConstraints")
            if bs < be and b[bs] == 0x01:
                self.ca = b[tlv(b, bs)[1]] != 0


def _alg_name(b, i):
    _, s, e = tlv(b, i)
    oid = bytes(b[s:e])
    if oid == _OID_RSA_SHA256:
        return "rsa-sha256"
    if oid == _OID_PSS:
        return "pss-sha256"  # its parameters are trusted to say SHA-256 (checked by the hash)
    if oid == _OID_ECDSA_SHA256:
        return "ecdsa-sha256"
    return "oid " + binascii.hexlify(oid).decode()


def check(cert, issuer, now_s):
    """cert was issued by issuer (a CA) and both are valid at now_s; CertError why not."""
    for c in (cert, issuer):
        if now_s < c.not_before:
            raise CertError("certificate %r is not valid yet" % c.cn)
        if now_s > c.not_after:
            raise CertError("certificate %r has expired" % c.cn)
    if cert.issuer != issuer.subject:
        raise CertError("certificate %r is not issued by %r" % (cert.cn, issuer.cn))
    if not issuer.ca:
        raise CertError("certificate %r is not a CA" % issuer.cn)
    if issuer.key is None:
        raise CertError("certificate %r: %s keys are not supported (RSA only)" % (
            issuer.cn, issuer.key_alg))
    h = hashlib.sha256(cert.tbs).digest()
    try:
        if cert.sig_alg == "rsa-sha256":
            rsa.verify_pkcs1_v15(issuer.key, h, cert.sig)
        elif cert.sig_alg == "pss-sha256":
            rsa.verify_pss(issuer.key, h, cert.sig)
        else:
            raise CertError("certificate %r: signature %s not supported" % (cert.cn,
                                                                            cert.sig_alg))
    except rsa.SignatureError:
        raise CertError("certificate %r: bad signature by %r" % (cert.cn, issuer.cn))


def chain(pem, roots, now_s):
    """The leaf Cert of pem (leaf first, then any intermediates) once it chains to one of
    roots (Certs) at now_s; CertError why not."""
    certs = [Cert(d) for d in pem_blocks(pem)]
    for k in range(len(certs) - 1):
        check(certs[k], certs[k + 1], now_s)
    top = certs[-1]
    why = None
    for r in roots:
        if r.subject == top.issuer:
            try:
                check(top, r, now_s)
                return certs[0]
            except CertError as e:
                why = e
    if why is not None:
        raise why
    raise CertError("certificate %r: its issuer is not an installed manufacturer root" % (
        top.cn,))
