# RSA-PSS signature verification (RFC 8017, RSASSA-PSS with SHA-256 and MGF1-SHA-256) in pure
# Python: MicroPython has big integers and three-argument pow, hashlib has SHA-256, and that is
# all a verifier needs. Only the public key is on the device. docs/ota.md says why PSS.
import hashlib


_HLEN = const(32)  # SHA-256
_TRAILER = const(0xBC)
_MAX_BITS = const(4096)
_MIN_BITS = const(2048)


class SignatureError(Exception):
    pass


class PublicKey:
    """An RSA public key: modulus n and exponent e (ints)."""

    def __init__(self, n, e, kid=""):
        bits = _bit_length(n)
        if bits < _MIN_BITS or bits > _MAX_BITS:
            raise SignatureError("RSA key %s: %d bits (2048..4096 accepted)" % (kid, bits))
        if e < 3 or not e & 1:
            raise SignatureError("RSA key %s: bad public exponent %d" % (kid, e))
        self.n = n
        self.e = e
        self.bits = bits
        self.size = (bits + 7) // 8
        self.kid = kid


def key_from_json(d):
    """A PublicKey from {"kid": ..., "n": "<hex>", "e": 65537} (ota_keys.json)."""
    try:
        return PublicKey(int(d["n"], 16), int(d.get("e", 65537)), str(d.get("kid", "")))
    except (KeyError, ValueError, TypeError) as e:
        raise SignatureError("bad key entry (%r)" % (e,))


def _bit_length(n):
    bits = 0
    while n >> (bits + 64):
        bits += 64
    while n >> bits:
        bits += 1
    return bits


# DigestInfo of SHA-256 in an EMSA-PKCS1-v1_5 block (RFC 8017, 9.2 note 1)
_V15_SHA256 = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"


def _is_pkcs1_v15(block):
    """00 01 FF..FF 00 DigestInfo(SHA-256) hash: a PKCS#1 v1.5 signature block."""
    k = len(block)
    pad_end = k - _HLEN - len(_V15_SHA256) - 1
    if block[0] != 0 or block[1] != 1 or block[pad_end] != 0:
        return False
    for i in range(2, pad_end):
        if block[i] != 0xFF:
            return False
    return block[pad_end + 1:k - _HLEN] == _V15_SHA256


def _mgf1(seed, length):
    out = bytearray()
    c = 0
    while len(out) < length:
        out.extend(hashlib.sha256(seed + c.to_bytes(4, "big")).digest())
        c += 1
    return out[:length]


def verify_pss(key, message_hash, sig):
    """Check sig (bytes) over a message whose SHA-256 is message_hash, with any salt length
    (as OpenSSL's verifier does by default for PSS). Raises SignatureError saying why."""
    if len(sig) != key.size:
        raise SignatureError("signature is %d bytes, key %s needs %d" % (len(sig), key.kid,
                                                                          key.size))
    s = int.from_bytes(sig, "big")
    if s >= key.n:
        raise SignatureError("signature out of range")
    m = pow(s, key.e, key.n)
    em_bits = key.bits - 1
    em_len = (em_bits + 7) // 8
    if m >> (8 * em_len):
        raise SignatureError("signature does not match key %s" % key.kid)
    if _is_pkcs1_v15(m.to_bytes(key.size, "big")):
        # what `openssl dgst -sign` makes without -sigopt rsa_padding_mode:pss: never accepted
        raise SignatureError("signature is PKCS#1 v1.5, bundles need RSA-PSS")
    em = m.to_bytes(em_len, "big")
    if em[-1] != _TRAILER:
        raise SignatureError("signature does not match key %s" % key.kid)
    db_len = em_len - _HLEN - 1
    h = em[db_len:em_len - 1]
    mask = _mgf1(h, db_len)
    db = bytearray(db_len)
    for i in range(db_len):
        db[i] = em[i] ^ mask[i]
    top = 8 * em_len - em_bits  # leftmost bits that must be zero
    if em[0] >> (8 - top):
        raise SignatureError("signature does not match key %s" % key.kid)
    db[0] &= 0xFF >> top
    i = 0
    while i < db_len and db[i] == 0:
        i += 1
    if i == db_len or db[i] != 1:
        raise SignatureError("signature does not match key %s" % key.kid)
    salt = bytes(db[i + 1:])
    if hashlib.sha256(bytes(8) + message_hash + salt).digest() != h:
        raise SignatureError("signature does not match key %s" % key.kid)
    return True


def verify_pkcs1_v15(key, message_hash, sig):
    """Check an RSASSA-PKCS1-v1_5 signature with SHA-256 (what X.509 certificates signed
    sha256WithRSAEncryption carry): the whole block is compared, not parsed."""
    if len(sig) != key.size:
        raise SignatureError("signature is %d bytes, key %s needs %d" % (len(sig), key.kid,
                                                                          key.size))
    s = int.from_bytes(sig, "big")
    if s >= key.n:
        raise SignatureError("signature out of range")
    block = pow(s, key.e, key.n).to_bytes(key.size, "big")
    if not _is_pkcs1_v15(block) or block[key.size - _HLEN:] != message_hash:
        raise SignatureError("signature does not match key %s" % key.kid)
    return True
