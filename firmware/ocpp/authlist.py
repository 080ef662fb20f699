# The OCPP 1.6 Local Authorization List (SendLocalList, GetLocalListVersion) and the
# Authorization Cache, on flash and never in RAM: a file of fixed-size records sorted by idTag,
# searched by bisection one record at a time (readinto a preallocated buffer).
#
# File: header magic "OAL1", version i32, count u32, crc u32 (CRC-32 of the first 12 header
# bytes XOR CRC-32 of all the records), then count records of 52 bytes:
#   key 20s   the idTag's UTF-8 with a-z upper-cased, zero-padded: idTags are
#             case-insensitive (CiString20)
#   parent 20s  parentIdTag's UTF-8 as given, zero-padded (empty: none)
#   status u8 (index in STATUSES), 3 bytes pad, expiry u32 (epoch s, 0: none),
#   stamp u32 (the cache: when it was put; the oldest is replaced)
# Every change writes a whole new file to path + ".new" (the old one merged with the sorted new
# entries, streamed) and renames it over: a power cut leaves the old list or the new one.
# A file with a bad header or CRC counts as no list (version 0) and says so in self.errors.
import struct


from .. import persist
from . import clock

try:
    from binascii import crc32 as _crc32
except ImportError:
    _crc32 = None

STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
_MAGIC = b"OAL1"
_HDR = const(16)
_REC = const(52)
_TAG = const(20)
_WAIT_MAX = const(4)  # cache entries kept in RAM while the flash gate is closed
_FMT = "<20s20sB3xII"
# 0xFFFFFFFF: 2106-02-07T06:28:15Z, the last second a record holds (written as a literal: not
# a small int on 32-bit ports, so no const())


def _crc(buf, c):
    if _crc32 is not None:
        return _crc32(buf, c) & 0xFFFFFFFF
    for b in buf:  # Fletcher-style fallback where binascii has no crc32
        c = (c + b + 1) * 31 & 0xFFFFFFFF
    return c


def _fits(s):
    """The UTF-8 of s if it fits a 20-byte field (1..20 bytes, no control character),
    else None. An idTag of 20 characters beyond ASCII may need up to 80 bytes: not stored."""
    if not isinstance(s, str) or not s:
        return None
    b = s.encode()
    if len(b) > _TAG:
        return None
    for c in b:
        if c < 32 or c == 127:
            return None
    return b


def _key(id_tag):
    """The stored form of an idTag (UTF-8, a-z upper-cased: the same on every port), or
    None if it cannot be stored."""
    b = _fits(id_tag)
    return None if b is None else b.upper()


def storable(id_tag):
    return _key(id_tag) is not None


def stored_info(info):
    """What the cache and the local list keep of an idTagInfo the CSMS gave (any
    schema-valid one): (status, expiry_s or None, parent or None, note). The expiry is
    clamped to what a record holds - before 1970: 1970-01-01T00:00:01Z (long expired),
    after 2106-02-07T06:28:15Z (0xFFFFFFFF): that one (OCPP.Core sends 2199-12-31 on every
    answer); an empty parentIdTag is none, one that does not fit 20 bytes is left out. note
    names what was changed (to be logged), or is None. An expiryDate that clock.parse cannot
    read at all gives None: such an entry is not stored."""
    note = None
    e = info.get("expiryDate")
    exp = None
    if e is not None:
        try:
            exp = clock.parse(e)
        except ValueError:
            if e[:4].isdigit() and e[:4] <= "1970":  # (a string: the schema, lax or not)
                exp = 0
            else:
                return None
        if not 0 < exp <= 0xFFFFFFFF:
            exp = 1 if exp < 1 else 0xFFFFFFFF
            note = "expiryDate %s kept as %s" % (e, clock.iso(exp))
    parent = info.get("parentIdTag")
    if parent is not None and _fits(parent) is None:
        if parent:
            note = (note + "; " if note else "") + "parentIdTag %r left out" % (parent,)
        parent = None
    return info["status"], exp, parent, note


class AuthListError(ValueError):
    pass


class _Store:
    """A sorted file of fixed-size idTag records (see the module comment)."""

    def __init__(self, path="ocpp_list.bin", max_entries=1000):  # LocalList's defaults
        self.path = path
        self.max_entries = max_entries
        self.errors = []
        self._rec = bytearray(_REC)
        self._probe = bytearray(_TAG)
        persist.recover(path)
        self.version = self._n = 0
        try:
            f = open(path, "rb")
        except OSError:
            return
        try:
            h = f.read(_HDR)
            if len(h) != _HDR or h[:4] != _MAGIC:
                raise AuthListError("bad header")
            version, n, want = struct.unpack_from("<iII", h, 4)
            c = 0
            rec = self._rec
            for _ in range(n):
                if f.readinto(rec) != _REC:
                    raise AuthListError("cut short (%d records)" % n)
                c = _crc(rec, c)  # (over records _pack wrote: a known status each)
            if c ^ _crc(h[:12], 0) != want or f.read(1):
                raise AuthListError("CRC mismatch")
            self.version, self._n = version, n
        except AuthListError as e:
            self.errors.append("%s: %s, treated as empty" % (path, e))
        finally:
            f.close()

    def __len__(self):
        return self._n

    def lookup(self, id_tag):
        """(status, expiry_s or None, parent_id_tag or None) or None if not in the file.
        Bisection, one record at a time read into self._rec."""
        key = _key(id_tag)
        if key is None or not self._n:
            return None
        r, p = self._rec, self._probe
        for i in range(_TAG):
            p[i] = key[i] if i < len(key) else 0  # zero-padded as the records' keys
        lo, hi = 0, self._n
        with open(self.path, "rb") as f:
            while lo < hi:
                mid = (lo + hi) >> 1
                f.seek(_HDR + mid * _REC)
                f.readinto(r)
                i = 0
                while i < _TAG and r[i] == p[i]:
                    i += 1
                if i == _TAG:
                    break  # found: r holds it
                if r[i] < p[i]:
                    lo = mid + 1
                else:
                    hi = mid
            else:
                return None
        _, parent, st, exp, _ = struct.unpack(_FMT, r)
        return STATUSES[st], exp or None, str(parent.rstrip(b"\0"), "utf-8") if parent[0] else None

    def _records(self):
        """Every record in key order, one at a time (the buffer is reused)."""
        if not self._n:
            return
        with open(self.path, "rb") as f:
            f.seek(_HDR)
            for _ in range(self._n):
                f.readinto(self._rec)
                yield self._rec

    def _write(self, version, items):
        """Write version and the records of `items` (an iterator of 52-byte buffers in key
        order) to path.new and rename it over (persist.Atomic: synced before and after the
        rename; on an error the .new is removed); AuthListError past max_entries."""
        persist.check_flash(self.path)  # too big to hold in RAM: refused while closed
        n = c = 0
        try:
            with persist.Atomic(self.path) as g:
                g.write(bytes(_HDR))
                for rec in items:
                    n += 1
                    if n > self.max_entries:
                        raise AuthListError("more than %d entries" % self.max_entries)
                    c = _crc(rec, c)
                    g.write(rec)
                h = _MAGIC + struct.pack("<iI", version, n)
                g.seek(0)
                g.write(h + struct.pack("<I", _crc(h, 0) ^ c))
        except (AuthListError, OSError):
            if hasattr(items, "close"):
                items.close()  # closes the old file it was reading
            raise
        self.version, self._n = version, n
        del self.errors[:]

    def _merge(self, changes, drop=None):
        """The old records merged with changes (an iterator of (key, record or None to
        remove) in key order); the old record with key `drop` is left out."""
        cur = next(changes, None)
        for rec in self._records():
            k = bytes(rec[:_TAG]).rstrip(b"\0")
            same = False  # a change for k replaces (or removes) the old record
            while cur is not None and cur[0] <= k:
                same = cur[0] == k  # (keys are unique and sorted: only the last can be k)
                if cur[1] is not None:
                    yield cur[1]
                cur = next(changes, None)
            if not same and k != drop:
                yield rec
        while cur is not None:
            if cur[1] is not None:
                yield cur[1]
            cur = next(changes, None)


def _pack(key, info, stamp=0, rec=None):
    """The record of key and info (status, expiry or None, parent or None) into rec if given,
    or AuthListError naming what is wrong with info."""
    status, expiry, parent = info
    pb = b"" if parent is None else _fits(parent)
    if status not in STATUSES:
        bad = "status"
    elif expiry is not None and (not isinstance(expiry, int) or not 0 < expiry <= 0xFFFFFFFF):
        bad = "expiry"
    elif pb is None:
        bad = "parentIdTag"
    else:
        if rec is None:
            rec = bytearray(_REC)
        struct.pack_into(_FMT, rec, 0, key, pb, STATUSES.index(status), expiry or 0, stamp)
        return rec
    raise AuthListError("bad %s in %r for %s" % (bad, info, key))


def _changes(entries, buf):
    """Sorts entries in place by idTag and yields (key, record in buf or None) one at a time,
    AuthListError at a bad or repeated idTag: a big update is never packed into RAM as a
    whole."""
    entries.sort(key=lambda e: _key(e[0]) or b"")  # bad idTags first: refused below
    prev = None
    for tag, info in entries:  # (idTag, info or None) each (remote.SendLocalList)
        key = _key(tag)
        if key is None or key == prev:
            raise AuthListError(("bad idTag %r" if key is None else "idTag %r twice") % (tag,))
        prev = key
        yield key, None if info is None else _pack(key, info, 0, buf)


class LocalList(_Store):
    def update(self, version, entries, full):
        """SendLocalList (entries: a list of (idTag, info or None to remove)): "Accepted" or
        "VersionMismatch"; AuthListError or OSError (the flash) say why it failed, the list
        unchanged."""
        if version < 0:  # an integer (the schema)
            raise AuthListError("bad listVersion %r" % (version,))
        if not full and version <= self.version:
            return "VersionMismatch"
        ch = _changes(entries, bytearray(_REC))  # _write: at most max_entries
        # a full update has nothing to remove: an entry without info is left out
        self._write(version, (r for _, r in ch if r) if full else self._merge(ch))
        return "Accepted"


class AuthCache(_Store):
    def __init__(self, path="ocpp_cache.bin", max_entries=64):
        _Store.__init__(self, path, max_entries)
        self._wait = []  # puts while the flash gate is closed (the newest _WAIT_MAX)

    def put(self, id_tag, status, expiry, parent, stamp):
        """Remember the idTagInfo the CSMS gave (replacing the oldest entry when full).
        While the flash gate is closed (a session on a board where an erase blinds the
        safety path) it waits in RAM and is written when the gate opens (settle).
        stamp: now (epoch s), the oldest entry goes first."""
        key = _key(id_tag)
        if key is None:
            raise AuthListError("bad idTag %r" % (id_tag,))
        rec = _pack(key, (status, expiry, parent), stamp & 0xFFFFFFFF)  # a bad one: refused
        if not persist.flash_ok():
            w = self._wait
            w.append((id_tag, status, expiry, parent, stamp))
            if len(w) > _WAIT_MAX:
                del w[0]
            persist.later(self)
            return
        drop = None
        if self._n >= self.max_entries and self.lookup(id_tag) is None:
            oldest = None
            for r in self._records():
                t = struct.unpack_from("<I", r, 48)[0]
                if oldest is None or t < oldest:
                    oldest, drop = t, bytes(r[:_TAG]).rstrip(b"\0")
        self._write(0, self._merge(iter(((key, rec),)), drop))

    def clear(self):
        self._write(0, iter(()))
        self._wait = []

    def settle(self):
        """Write the puts that waited for the flash gate (persist.settle calls it)."""
        w, self._wait = self._wait, []
        for e in w:
            self.put(*e)
