# Update bundles for the tests (host_tests/test_ota_bundle.py on CPython, and through
# host_tests/mpy/ota_rig.py on the MicroPython unix port): one good bundle and every way a
# bundle is refused, each with the words its refusal must contain.
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bundle as tool  # noqa: E402  (tools/bundle.py)

RUNNING = {"version": "0.8.0", "board": "sim", "mpy": 6 | 3 << 8 | 2 << 10, "hw": 2}


def mpy(body, arch=None):
    """A stand-in .mpy file: the header mpy-cross writes (v6; arch x64 sub 3 if native)."""
    flags = 0 if arch is None else (tool.ARCHS.index(arch) << 2) | 3
    return bytes([0x4D, 6, flags, 31]) + body


FILES = [("firmware/app.mpy", mpy(b"app" * 700)),
         ("firmware/ota/slots.mpy", mpy(bytes(range(256)) * 9)),
         ("boards/sim/main.mpy", mpy(b"", "x64")),
         ("firmware/empty.mpy", mpy(b""))]


def _sig_pkcs1(key, mbytes):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    return key.sign(mbytes, padding.PKCS1v15(), hashes.SHA256())


def _with_manifest(key, **change):
    m = tool.manifest_for(FILES, "0.9.0", "sim", 1)
    m.update(change)
    return tool.make_bundle(key, FILES, None, manifest=m)


def _head_len(data):
    return 7 + 4 + int.from_bytes(data[7:11], "big")


def cases(key, foreign):
    """[(name, bundle bytes, words the refusal must contain or None for good)]."""
    good = tool.make_bundle(key, FILES, "0.9.0", "sim")
    mlen = _head_len(good)
    body = mlen + 2 + int.from_bytes(good[mlen:mlen + 2], "big")
    mbytes = good[11:mlen]
    out = [("good", good, None)]

    def flip(at):
        b = bytearray(good)
        b[at] ^= 0x01
        return bytes(b)
    out.append(("corrupted byte in a file", flip(body + 1000), "firmware/app.mpy: SHA-256"))
    out.append(("corrupted byte in the last file", flip(len(good) - 3),
                "firmware/empty.mpy: SHA-256"))
    out.append(("corrupted byte in the manifest", flip(40), "bad signature"))
    out.append(("corrupted byte in the signature", flip(mlen + 10), "bad signature"))
    out.append(("truncated in the manifest", good[:30], "truncated in the manifest"))
    out.append(("truncated in the signature", good[:mlen + 50], "truncated in the signature"))
    out.append(("truncated in a file", good[:body + 3000], "truncated in firmware/ota/"))
    out.append(("one byte short", good[:-1], "truncated in"))
    out.append(("bytes after the last file", good + b"x", "bytes after the last file"))
    out.append(("not a bundle", b"PK\x03\x04" + good[4:], "bad magic"))
    out.append(("unsigned", good[:mlen] + b"\x00\x00" + good[body:], "unsigned"))
    out.append(("wrong key", tool.make_bundle(foreign, FILES, "0.9.0", "sim"),
                "bad signature"))
    v15 = _sig_pkcs1(key, mbytes)
    out.append(("PKCS#1 v1.5 signature", tool.pack(mbytes, FILES, v15), "PKCS#1 v1.5"))
    out.append(("wrong board", tool.make_bundle(key, FILES, "0.9.0", "esp32_wallbox"),
                "for board 'esp32_wallbox'"))
    out.append(("older version", tool.make_bundle(key, FILES, "0.7.9", "sim"),
                "older than the running 0.8.0"))
    out.append(("same version", tool.make_bundle(key, FILES, "0.8.0", "sim"),
                "already running"))
    out.append(("bad version", _with_manifest(key, version="1.0"), "MAJOR.MINOR.PATCH"))
    out.append(("other mpy version", _with_manifest(
        key, mpy={"version": 5, "sub": None, "arch": None}), ".mpy v5"))
    out.append(("other arch", _with_manifest(
        key, mpy={"version": 6, "sub": 3, "arch": "xtensawin"}), "native code is for xtensawin"))
    out.append(("newer hardware", tool.make_bundle(key, FILES, "0.9.0", "sim", min_hw=3),
                "hardware revision 3"))
    bad = tool.manifest_for(FILES, "0.9.0", "sim")
    bad["files"] = bad["files"].replace("firmware/app.mpy", "../main.mpy", 1)
    out.append(("path outside the slot", tool.make_bundle(key, FILES, None, manifest=bad),
                "bad file path '../main.mpy'"))
    return out


def write_cases(d, key, foreign):
    """Each case as d/NN.wbota, and d/cases.json (name, file, words) + d/keys.json."""
    index = []
    for i, (name, data, words) in enumerate(cases(key, foreign)):
        fn = "%02d.wbota" % i
        with open(os.path.join(d, fn), "wb") as f:
            f.write(data)
        index.append([name, fn, words])
    with open(os.path.join(d, "cases.json"), "w") as f:
        json.dump({"cases": index, "running": RUNNING,
                   "files": [[p, len(b)] for p, b in FILES]}, f)
    with open(os.path.join(d, "keys.json"), "w") as f:
        json.dump({"keys": [tool.public_json(key)]}, f)
    return index
