# SHA-1 (FIPS 180-4) in Python, for a measuring build of the unix port compiled without
# mbedTLS (tools/bench_ocpp.py's 32-bit heap figure), whose hashlib has no sha1: the
# WebSocket upgrade needs it for Sec-WebSocket-Accept. Never used on a board.
import struct

_M = 0xFFFFFFFF


def _rol(x, n):
    return ((x << n) | (x >> (32 - n))) & _M


class sha1:
    def __init__(self, data=b""):
        self._h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
        self._buf = b""
        self._n = 0
        self.update(data)

    def update(self, data):
        self._buf += bytes(data)
        self._n += len(data)
        while len(self._buf) >= 64:
            self._block(self._buf[:64])
            self._buf = self._buf[64:]

    def _block(self, b):
        w = list(struct.unpack(">16I", b))
        for i in range(16, 80):
            w.append(_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1))
        a, b_, c, d, e = self._h
        for i in range(80):
            if i < 20:
                f, k = (b_ & c) | (~b_ & d), 0x5A827999
            elif i < 40:
                f, k = b_ ^ c ^ d, 0x6ED9EBA1
            elif i < 60:
                f, k = (b_ & c) | (b_ & d) | (c & d), 0x8F1BBCDC
            else:
                f, k = b_ ^ c ^ d, 0xCA62C1D6
            a, b_, c, d, e = (_rol(a, 5) + (f & _M) + e + k + w[i]) & _M, a, _rol(b_, 30), c, d
        self._h = [(x + y) & _M for x, y in zip(self._h, (a, b_, c, d, e))]

    def digest(self):
        h = self._h[:]
        buf, n = self._buf, self._n
        tail = buf + b"\x80" + b"\x00" * ((55 - len(buf)) % 64) + struct.pack(">Q", 8 * n)
        for k in range(0, len(tail), 64):
            self._block(tail[k:k + 64])
        out = struct.pack(">5I", *self._h)
        self._h = h
        return out


def install():
    """Where the port's hashlib lacks sha1, modules imported after this get a hashlib that
    has it (the port's other hashes kept)."""
    import sys

    import hashlib

    if hasattr(hashlib, "sha1"):
        return

    class _Hashlib:
        pass

    shim = _Hashlib()
    for name in ("sha256", "md5"):
        if hasattr(hashlib, name):
            setattr(shim, name, getattr(hashlib, name))
    shim.sha1 = sha1
    sys.modules["hashlib"] = shim
