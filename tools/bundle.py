"""Build and sign a firmware update bundle on the host (docs/ota.md).

    python tools/bundle.py keys [--dir keys]          a new RSA-3072 signing key pair
    python tools/bundle.py build [--board sim] [--march x64] [--key keys/ota_sign.pem]
                                 [--version V] [--min-hw N] [--out build/ota/NAME.wbota]
                                 [--image micropython.bin]   (ESP32: the MicroPython image)
    python tools/bundle.py verify BUNDLE [--keys keys/ota_keys.json] [--board sim]

`keys` writes the private key (ota_sign.pem: keep it off the devices and out of git) and the
public key the devices trust (ota_keys.json, to copy to the device's root next to
config.json, docs/ota.md). The signature is RSASSA-PSS with SHA-256, MGF1-SHA-256 and a
32-byte salt, made with PyPI `cryptography`; the device checks it with firmware/ota/rsa.py.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, ROOT)
import build  # noqa: E402

MAGIC = b"WBOTA1\n"
ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
         "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")


def _crypto():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    return hashes, serialization, padding, rsa


def new_key(bits=3072):
    _, _, _, rsa = _crypto()
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def load_key(path):
    _, serialization, _, _ = _crypto()
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def key_pem(key):
    _, serialization, _, _ = _crypto()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_json(key, kid="ota"):
    """The entry a device trusts: {"kid", "n" (hex), "e"}."""
    nums = key.public_key().public_numbers()
    return {"kid": kid, "n": "%x" % nums.n, "e": nums.e}


def sign(key, data):
    hashes, _, padding, _ = _crypto()
    return key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                    hashes.SHA256())


def mpy_header(data):
    """(version, sub, arch name or None) from a .mpy file's header."""
    if len(data) < 4 or data[0:1] != b"M":
        raise ValueError("not a .mpy file")
    return data[1], data[2] & 3, ARCHS[data[2] >> 2] if data[2] >> 2 < len(ARCHS) else None


def firmware_files(board="sim", march="x64"):
    """[(path, bytes)] of the board's device files compiled to .mpy."""
    with tempfile.TemporaryDirectory() as d:
        built, errors = build.compile_all(d, board=board, march=march)
        if errors:
            raise SystemExit("mpy-cross failed:\n" + "\n".join(errors))
        out = []
        for p in sorted(built):
            if not p.endswith(".mpy"):
                continue  # the web pages: a bundle carries .mpy files only (docs/ota.md)
            with open(p, "rb") as f:
                out.append((os.path.relpath(p, d).replace(os.sep, "/"), f.read()))
    return out


def running_version():
    ns = {}
    with open(os.path.join(ROOT, "firmware", "version.py")) as f:
        exec(f.read(), ns)
    return ns["VERSION"]


def manifest_for(files, version, board, min_hw=1):
    versions = set()
    arch = sub = None  # the sub-version only counts for native code (py/persistentcode.c)
    for p, data in files:
        v, s, a = mpy_header(data)
        versions.add(v)
        if a is not None:
            if arch not in (None, a) or sub not in (None, s):
                raise ValueError("native code for two targets: %s and %s" % (arch, a))
            arch, sub = a, s
    if len(versions) != 1:
        raise ValueError("files of several .mpy versions: %r" % sorted(versions))
    v = versions.pop()
    return {"format": 1, "version": version, "board": board, "min_hw": min_hw,
            "mpy": {"version": v, "sub": sub, "arch": arch},
            "files": "".join("%s %d %s\n" % (p, len(d), hashlib.sha256(d).hexdigest())
                             for p, d in files)}


def pack(manifest, files, signature, image=None):
    """The bundle's bytes (the layout of firmware/ota/bundle.py); image (bytes: the
    MicroPython image for ESP32, firmware/ota/image.py) after the files."""
    mbytes = manifest if isinstance(manifest, bytes) else json.dumps(
        manifest, separators=(",", ":")).encode()
    out = io.BytesIO()
    out.write(MAGIC)
    out.write(len(mbytes).to_bytes(4, "big"))
    out.write(mbytes)
    out.write(len(signature).to_bytes(2, "big"))
    out.write(signature)
    for _, d in files:
        out.write(d)
    if image is not None:
        out.write(image)
    return out.getvalue()


def image_entry(image):
    """The manifest's "image" entry for a MicroPython image (bytes)."""
    if image[:1] != b"\xe9":
        raise ValueError("not an ESP app image (its first byte is not 0xE9): give the port's "
                         "micropython.bin, not firmware.bin (bootloader + partition table)")
    return {"size": len(image), "sha256": hashlib.sha256(image).hexdigest()}


def make_bundle(key, files, version, board="sim", min_hw=1, manifest=None, image=None):
    """A signed bundle of files [(path, bytes)] and optionally a MicroPython image (bytes);
    manifest overrides the computed one."""
    m = manifest or manifest_for(files, version, board, min_hw)
    if image is not None and manifest is None:
        m["image"] = image_entry(image)
    mbytes = json.dumps(m, separators=(",", ":")).encode()
    return pack(mbytes, files, sign(key, mbytes), image)


def cmd_keys(a):
    os.makedirs(a.dir, exist_ok=True)
    priv = os.path.join(a.dir, "ota_sign.pem")
    if os.path.exists(priv) and not a.force:
        raise SystemExit("%s exists (use --force to replace it: devices that trust the old "
                         "key will refuse bundles signed with the new one)" % priv)
    key = new_key(a.bits)
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem(key))
    with open(os.path.join(a.dir, "ota_keys.json"), "w") as f:
        json.dump({"keys": [public_json(key, a.kid)]}, f, indent=1)
    print("wrote %s (private: keep it safe) and %s (for the devices)" % (
        priv, os.path.join(a.dir, "ota_keys.json")))


def cmd_build(a):
    key = load_key(a.key)
    version = a.version or running_version()
    files = firmware_files(a.board, a.march)
    image = None
    if a.image:
        with open(a.image, "rb") as f:
            image = f.read()
    try:
        data = make_bundle(key, files, version, a.board, a.min_hw, image=image)
    except ValueError as e:
        raise SystemExit("%s: %s" % (a.image, e))
    out = a.out or os.path.join(ROOT, "build", "ota", "%s-%s.wbota" % (a.board, version))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as f:
        f.write(data)
    print("%s: %d files, %d bytes, version %s, board %s%s" % (
        out, len(files), len(data), version, a.board,
        ", MicroPython image %d bytes" % len(image) if image else ""))


def cmd_verify(a):
    """The device's own check (firmware/ota/bundle.py) on the host, into a scratch folder."""
    if "micropython" not in sys.modules:  # the device code's const() on CPython
        import types
        shim = types.ModuleType("micropython")
        shim.const = lambda x: x
        sys.modules["micropython"] = shim
    from firmware.ota import bundle, rsa
    with open(a.keys) as f:
        keys = [rsa.key_from_json(k) for k in json.load(f)["keys"]]
    running = {"version": a.running, "board": a.board, "mpy": a.mpy, "hw": a.hw}
    with open(a.bundle, "rb") as f, tempfile.TemporaryDirectory() as d:
        try:
            m = bundle.verify_stream(f, keys, running, d)
        except bundle.BundleError as e:
            raise SystemExit("refused: %s" % e)
        if "image" in m:  # the device streams it into a partition (firmware/ota/image.py)
            rest = f.read()
            if hashlib.sha256(rest).hexdigest() != m["image"]["sha256"] or len(rest) != m[
                    "image"]["size"]:
                raise SystemExit("refused: image: SHA-256 or size does not match the manifest")
            print("image: %d bytes, SHA-256 matches" % len(rest))
    print("good: version %s for %s, %d files" % (m["version"], m["board"], m["count"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keys")
    k.add_argument("--dir", default=os.path.join(ROOT, "keys"))
    k.add_argument("--bits", type=int, default=3072)
    k.add_argument("--kid", default="ota")
    k.add_argument("--force", action="store_true")
    b = sub.add_parser("build")
    b.add_argument("--board", default="sim")
    b.add_argument("--march", default="x64")
    b.add_argument("--key", default=os.path.join(ROOT, "keys", "ota_sign.pem"))
    b.add_argument("--version")
    b.add_argument("--min-hw", type=int, default=1)
    b.add_argument("--out")
    b.add_argument("--image", help="the ESP32 port's micropython.bin, installed through "
                   "esp32.Partition with the .mpy files")
    v = sub.add_parser("verify")
    v.add_argument("bundle")
    v.add_argument("--keys", default=os.path.join(ROOT, "keys", "ota_keys.json"))
    v.add_argument("--board", default="sim")
    v.add_argument("--running", default="0.0.0", help="the version the device runs")
    v.add_argument("--mpy", type=int, default=6 | 3 << 8 | 2 << 10,
                   help="the device's sys.implementation._mpy (default: x64 unix port)")
    v.add_argument("--hw", type=int, default=1)
    a = ap.parse_args()
    {"keys": cmd_keys, "build": cmd_build, "verify": cmd_verify}[a.cmd](a)


if __name__ == "__main__":
    main()
