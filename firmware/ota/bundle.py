# The update bundle (docs/ota.md, "Bundle format"), read as a stream so that no more than one
# 1 KB buffer of it is in RAM:
#   magic b"WBOTA1\n" | manifest length (4 bytes, big-endian) | manifest (JSON, UTF-8)
#   | signature length (2 bytes) | RSA-PSS signature of the manifest's bytes
#   | every file's bytes, in the manifest's order
# The manifest: {"format": 1, "version": "0.9.0", "board": "sim", "min_hw": 1,
#   "mpy": {"version": 6, "sub": 3 or null, "arch": "x64" or null (no native code)},
#   "files": "firmware/app.mpy 5120 <sha-256 hex>\nboards/sim/main.mpy ...\n"}
# The signature covers the manifest, the manifest covers every file by its SHA-256. Every check
# that can be made before a byte is written (signature, board, version, mpy, hardware) is made
# by check(); unpack() then hashes each file while it writes it into a staging slot that is
# only booted once every file matched (firmware/ota/slots.py).
import hashlib
import json
import os


from firmware.ota import rsa

MAGIC = b"WBOTA1\n"
FORMAT = const(1)
_MAX_MANIFEST = const(65536)
_MAX_SIG = const(1024)
_MAX_FILES = const(400)
_MAX_FILE = const(1048576)
_BUF = const(1024)
# sys.implementation._mpy >> 10 (py/persistentcode.h's MP_NATIVE_ARCH_*)
ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
         "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")
_PATH_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./"
_FILES_KEY = b'"files":"'
_PIECE = const(256)  # bytes read at a time from a manifest on flash
_LINE = const(256)  # the longest file line read from flash
_MAX_KEEP = const(2048)  # the manifest's JSON before (and after) its files text


class BundleError(Exception):
    """A bundle refused; the message says why (it goes to the log and the CSMS)."""


def parse_version(text):
    """"1.2.3" -> (1, 2, 3); a pre-release or build suffix after "-" or "+" is ignored."""
    core = str(text).split("+")[0].split("-")[0]
    parts = core.split(".")
    try:
        v = tuple(int(p) for p in parts)
    except ValueError:
        v = ()
    if len(v) != 3 or min(v) < 0:
        raise BundleError("version %r is not MAJOR.MINOR.PATCH" % (text,))
    return v


def mpy_of(code):
    """sys.implementation._mpy -> {"version", "sub", "arch"}."""
    a = code >> 10
    return {"version": code & 0xFF, "sub": (code >> 8) & 3,
            "arch": ARCHS[a] if a < len(ARCHS) else "arch%d" % a}


def _read(f, n, what):
    b = f.read(n)
    if b is None or len(b) != n:
        raise BundleError("truncated in the %s" % what)
    return b


def read_head(f, on_flash=False):
    """(manifest bytes, signature) from the start of the bundle stream f; with on_flash (f
    is a seekable file) the manifest is an OnFlash instead: never all in RAM."""
    if f.read(len(MAGIC)) != MAGIC:
        raise BundleError("not an update bundle (bad magic)")
    n = int.from_bytes(_read(f, 4, "header"), "big")
    if n == 0 or n > _MAX_MANIFEST:
        raise BundleError("manifest length %d out of range" % n)
    mbytes = OnFlash(f, n) if on_flash else _read(f, n, "manifest")
    ns = int.from_bytes(_read(f, 2, "header"), "big")
    if ns == 0:
        raise BundleError("unsigned bundle")
    if ns > _MAX_SIG:
        raise BundleError("signature length %d out of range" % ns)
    return mbytes, _read(f, ns, "signature")


def verify_signature(mbytes, sig, keys):
    """The key (of the trusted keys) whose RSA-PSS signature sig is; BundleError if none."""
    if not keys:
        raise BundleError("no trusted update key on this device (ota_keys.json)")
    h = mbytes.digest if isinstance(mbytes, OnFlash) else hashlib.sha256(mbytes).digest()
    why = None
    for k in keys:
        try:
            rsa.verify_pss(k, h, sig)
            return k
        except rsa.SignatureError as e:
            why = e
    if len(keys) == 1:
        raise BundleError("bad signature: %s" % why)
    raise BundleError("bad signature: not made by any of the %d trusted keys" % len(keys))


class Files:
    """The manifest's files text left where it is (JSON-escaped: each line ends in the two
    characters \\n), not parsed into a string: in the manifest's bytes (buf), or on flash (f:
    the bundle file, read a line at a time), from start to end."""

    def __init__(self, buf, start, end, f=None):
        self.buf = buf
        self.f = f
        self.start = start
        self.end = end


class OnFlash:
    """The manifest of a bundle file, read in pieces and never held whole: its SHA-256
    (digest), the JSON without the files text (head), and the files text as Files on the
    file. The 136-file sim firmware's manifest is 13 KB; this holds a few hundred bytes."""

    def __init__(self, f, n):
        h = hashlib.sha256()
        keep = b""  # the JSON before the files text, then also the JSON after it
        state = 0  # 0: before "files":" 1: in the text 2: after it
        off = start = 0
        base = f.tell()
        files = None
        while off < n:
            b = _read(f, min(_PIECE, n - off), "manifest")
            boff = off  # the manifest offset of b[0]
            off += len(b)
            h.update(b)
            if state == 0:
                keep += b
                i = keep.find(_FILES_KEY)
                if i < 0:
                    if len(keep) > _MAX_KEEP:
                        raise BundleError("manifest: no files text in its first %d bytes" %
                                          _MAX_KEEP)
                    continue
                start = i + len(_FILES_KEY)
                b, boff, keep = keep[start:], start, keep[:start]
                state = 1
            if state == 1:
                j = b.find(b'"')
                if j >= 0:
                    files = Files(None, base + start, base + boff + j, f)
                    keep += b[j:]
                    state = 2
                continue
            keep += b
            if len(keep) > 2 * _MAX_KEEP:
                raise BundleError("manifest: too long after its files text")
        self.digest = h.digest()
        self.head = keep
        self.files = files


def _lines(files):
    """The raw lines of a files text (str or Files)."""
    if not isinstance(files, Files):
        buf, i, n, sep = files, 0, len(files), "\n"
    elif files.f is None:
        buf, i, n, sep = files.buf, files.start, files.end, b"\\n"
    else:
        f = files.f
        i, n = files.start, files.end
        while i < n:
            back = f.tell()
            f.seek(i)
            chunk = f.read(min(_LINE, n - i))
            f.seek(back)
            j = chunk.find(b"\\n")
            if j < 0:
                if i + len(chunk) < n:
                    raise BundleError("manifest: a file line longer than %d bytes" % _LINE)
                j = len(chunk)
            yield chunk[:j]
            i += j + 2
        return
    while i < n:
        j = buf.find(sep, i, n)
        if j < 0:
            j = n
        yield buf[i:j]
        i = j + len(sep)


def entries(files):
    """(path, size, sha256 hex) of each line "path size sha256" of the manifest's files text
    (a str, or Files), one at a time (the list is never built: 100 files would hold ~40 KB of
    heap as lists)."""
    for line in _lines(files):
        if not line:
            continue
        if type(line) is not str:
            line = line.decode()
        parts = line.split(" ")
        if len(parts) != 3:
            raise BundleError("manifest: file line %r is not 'path size sha256'" % line[:80])
        try:
            size = int(parts[1])
        except ValueError:
            size = -1
        yield parts[0], size, parts[2]


def _check_files(files):
    """(count, total bytes) after every entry was checked."""
    if not (isinstance(files, str) and files or isinstance(files, Files)
            and files.end > files.start):
        raise BundleError("manifest: files must be the text 'path size sha256' per line")
    count = total = 0
    for p, size, digest in entries(files):
        if (not p or p[0] in "./" or ".." in p or "//" in p
                or any(c not in _PATH_OK for c in p) or not p.endswith(".mpy")):
            raise BundleError("manifest: bad file path %r" % (p,))
        if size < 0 or size > _MAX_FILE:
            raise BundleError("manifest: %s: bad size" % p)
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise BundleError("manifest: %s: bad sha256" % p)
        count += 1
        total += size
    if count > _MAX_FILES:
        raise BundleError("manifest: %d files, at most %d" % (count, _MAX_FILES))
    return count, total


def check(mbytes, sig, keys, running):
    """The manifest (dict) once the signature is good and the bundle fits this device.
    running: {"version": "0.8.0", "board": "sim", "mpy": sys.implementation._mpy, "hw": 1}."""
    verify_signature(mbytes, sig, keys)  # first: nothing unsigned is even parsed further
    files = None
    i = -1
    if isinstance(mbytes, OnFlash):  # the files text stays on flash
        files, mbytes = mbytes.files, mbytes.head
    else:
        i = mbytes.find(_FILES_KEY)
    if i >= 0:  # tools/bundle.py's layout: the files text stays in mbytes (Files)
        start = i + len(_FILES_KEY)
        end = mbytes.find(b'"', start)
        if end > start:
            files = Files(mbytes, start, end)
            mbytes = mbytes[:start] + mbytes[end:]  # the rest of the manifest, to parse
    try:
        m = json.loads(mbytes)
    except ValueError:
        raise BundleError("manifest is not JSON")
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BundleError("manifest format %r, this firmware reads %d" % (
            m.get("format") if isinstance(m, dict) else None, FORMAT))
    if m.get("board") != running["board"]:
        raise BundleError("bundle is for board %r, this is %r" % (m.get("board"),
                                                                  running["board"]))
    new = parse_version(m.get("version"))
    old = parse_version(running["version"])
    if new < old:
        raise BundleError("version %s is older than the running %s" % (m["version"],
                                                                      running["version"]))
    if new == old:
        raise BundleError("version %s is already running" % m["version"])
    want = m.get("mpy")
    have = mpy_of(running["mpy"])
    if not isinstance(want, dict):
        raise BundleError("manifest: no mpy entry")
    if want.get("version") != have["version"]:
        raise BundleError("bundle has .mpy v%s, this MicroPython loads v%d" % (
            want.get("version"), have["version"]))
    if want.get("arch") is not None and (want.get("arch"), want.get("sub")) != (
            have["arch"], have["sub"]):
        raise BundleError("bundle's native code is for %s (v%s.%s), this is %s (v%d.%d)" % (
            want.get("arch"), want.get("version"), want.get("sub"), have["arch"],
            have["version"], have["sub"]))
    hw = m.get("min_hw", 1)
    if not isinstance(hw, int) or hw > running.get("hw", 1):
        raise BundleError("bundle needs hardware revision %r, this is %d" % (
            hw, running.get("hw", 1)))
    if files is not None:
        m["files"] = files
    m["count"], m["size"] = _check_files(m.get("files"))
    if "image" in m:  # a MicroPython image after the files (firmware/ota/image.py)
        from firmware.ota import image

        image.check_entry(m["image"])
    return m


def _makedirs(path):
    """Make the folders above the file path."""
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d:
            try:
                os.mkdir(d)
            except OSError:
                pass  # there already


def unpack(f, manifest, dest, buf=None):
    """Write every file of the bundle (f positioned after the signature) under dest/,
    hashing while it writes; BundleError (naming the file) on a mismatch or a short
    bundle. The caller removes dest on an error. Returns the bytes written."""
    buf = buf or bytearray(_BUF)
    mv = memoryview(buf)
    total = 0
    for p, size, digest in entries(manifest["files"]):
        path = dest + "/" + p
        _makedirs(path)
        h = hashlib.sha256()
        left = size
        with open(path, "wb") as out:
            while left:
                n = f.readinto(mv[:min(left, _BUF)])
                if not n:
                    raise BundleError("truncated in %s (%d of %d bytes)" % (p, size - left,
                                                                           size))
                h.update(mv[:n])
                out.write(mv[:n])
                left -= n
        total += size
        if _hex(h.digest()) != digest:
            raise BundleError("%s: SHA-256 does not match the manifest" % p)
    if "image" not in manifest and f.read(1):  # an image follows the files
        raise BundleError("bytes after the last file")
    return total


def _hex(b):
    return "".join("%02x" % x for x in b)


def verify_stream(f, keys, running, dest):
    """read_head + check + unpack: the manifest of a good bundle now in dest/ (from a file,
    its "files" is read from f: valid while f is open)."""
    mbytes, sig = read_head(f, hasattr(f, "seek"))
    m = check(mbytes, sig, keys, running)
    del mbytes, sig  # the parsed manifest is all that is needed from here
    unpack(f, m, dest)
    return m
