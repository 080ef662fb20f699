# The OCPP transaction journal: the offline outbox. StartTransaction, StopTransaction and
# transaction MeterValues are pushed here BEFORE they are sent; they survive offline periods
# and reboots and go out oldest first (peek, send, ack).
#
# File: an append-only sequence of records, each a 16-byte header and a body:
#   kind u8, flags u8, body length u16, seq u32, ref i32, crc u32 (over the first 12 header
#   bytes and the body; binascii.crc32, else the CRC-16/Modbus kernel), little endian.
#   P push   seq, ref = the local transaction id it carries (<0) or 0, body action "\n" json
#   A ack    seq of the acked record
#   M map    ref = local id, body = the CSMS transactionId (i32); flag ENDED: its Stop was acked
#   L local  ref = a local id handed out by next_local_id()
#   S state  first record after a compaction: seq = next seq, ref = last local id,
#            body = dropped count (u32)
# Every call that changes the journal writes one record and flushes it (os.sync() where the
# port has it) before it returns (while the flash gate is open; else it waits in RAM, below).
# At open the file is scanned; the first record with a bad header or CRC ends it: that tail
# (a torn write, garbage) is dropped by rewriting the file.
# Compaction writes S, the pending P records (their bytes unchanged) and the live mappings to
# path + ".new", syncs it and renames it over the journal (firmware/persist.py: on FAT through
# path + ".ok", a complete copy): a power cut leaves the old or the new file; at open
# persist.recover takes a ".ok" and deletes a ".new" (never complete).
#
# Full policy: StartTransaction and StopTransaction are never dropped. When a push would make
# the file exceed max_bytes, the file is compacted; if the pending records would then fill more
# than 7/8 of max_bytes, the oldest droppable records (periodic MeterValues) are dropped, oldest
# first, until they fill at most 7/8 (counted in stats()["dropped"]); if dropping all of them
# still leaves no room for the new record, push raises
# JournalError("journal full ...") and changes nothing: the caller refuses a new transaction.
#
# Local transaction ids: the charge point starts a transaction with next_local_id() (negative,
# never repeated) before the CSMS gave it a transactionId. A record "needs" local id L when its
# payload's "l" is L (the caller keeps L beside the OCPP payload, {"l": L, "p": {...}}, and
# fills in the CSMS's id when it sends). map_tx(L, id) is kept while
# a pending record needs it and until the transaction's StopTransaction has been acked.
#
# RAM: the payloads stay on flash; per pending record only its file offset (array "I").
# While the flash gate is closed (contactor closed on a board where an erase blinds the safety
# path) records are kept in a bounded RAM tail instead and written when it opens (jram.py).
import json
import struct
from array import array


from .. import persist
from .jram import JournalError, RamTail

try:
    from binascii import crc32 as _crc32
except ImportError:
    _crc32 = None

_HDR = const(16)
_P = const(80)  # b"P"
_A = const(65)
_M = const(77)
_L = const(76)
_S = const(83)
_DROPPABLE = const(1)
_STOP = const(2)
_ENDED = const(1)
_MAX_BODY = const(16384)
_S_SIZE = const(20)  # S record: header + u32
_M_SIZE = const(20)
_RAM = const(0x20000000)  # offsets from here on are records in RAM (a file is never this big)


def _crc(hdr, body):
    if _crc32 is not None:
        return _crc32(body, _crc32(memoryview(hdr)[:12])) & 0xFFFFFFFF
    from drivers import kernels

    return kernels.crc16_modbus(bytes(hdr[:12]) + bytes(body))


class Journal(RamTail):
    def __init__(self, path="ocpp.jnl", max_bytes=65536, ram_bytes=persist.HELD_MAX):
        # the RAM tail's bound (jram.py) is shared with persist's held saves by default
        self.ram_max = ram_bytes
        self.settles = 0  # RAM tails written to flash
        self._ram_clear()
        self.path = path
        self.max_bytes = max_bytes
        self._hdr = bytearray(_HDR)
        self.recovered = 0  # valid records found at open
        self.torn_bytes = 0  # bytes dropped at open (torn write, garbage)
        self.compactions = 0
        persist.recover(path)
        self._offs = array("I")
        self._head = 0
        self._next_seq = 1
        self._last_local = 0
        self._dropped = 0
        self._pend_bytes = 0
        self._map = {}  # local id -> CSMS transactionId
        self._ended = []  # local ids whose StopTransaction was acked (a mapping is kept)
        self._refs = {}  # local id -> pending records that carry it
        self._open()
        f = self._f
        h = self._hdr
        pos = last = 0  # last: the last P record's seq
        while f is not None:  # replay the records; the first one that does not fit ends the file
            f.seek(pos)
            if f.readinto(h) != _HDR:
                break
            kind, flags, n, seq, ref = struct.unpack_from("<BBHIi", h, 0)
            if n > _MAX_BODY:
                break
            body = f.read(n) if n else b""
            if len(body) != n or _crc(h, body) != struct.unpack_from("<I", h, 12)[0]:
                break
            if kind == _P:
                if seq <= last:
                    break  # out of order: not a record this journal wrote here
                last = seq
                self._offs.append(pos)
                self._next_seq = max(self._next_seq, seq + 1)
                self._pend_bytes += _HDR + n
                if ref < 0:
                    self._refs[ref] = self._refs.get(ref, 0) + 1
            elif kind == _A:
                if self.pending() == 0:
                    break
                k = self._read_hdr(self._offs[self._head])
                if k[3] != seq:
                    break
                self._acked(k)
            elif kind == _M:
                self._map[ref] = struct.unpack("<i", body)[0]
                if flags & _ENDED and ref not in self._ended:
                    self._ended.append(ref)
            elif kind == _L:
                self._last_local = min(self._last_local, ref)
            elif kind == _S and pos == 0:  # S: only as the first record
                self._next_seq = seq
                self._last_local = ref
                self._dropped = struct.unpack("<I", body)[0]
            else:
                break  # an unknown kind
            pos += _HDR + n
            self.recovered += 1
        self._size = pos
        if f is not None:
            f.seek(0, 2)
            self.torn_bytes = f.tell() - pos
            if self.torn_bytes:
                self._compact()

    # ---- file records
    def _pack(self, kind, flags, seq, ref, body):
        h = bytearray(_HDR)
        struct.pack_into("<BBHIi", h, 0, kind, flags, len(body), seq, ref)
        struct.pack_into("<I", h, 12, _crc(h, body))
        return h

    def _read_hdr(self, off):
        """(kind, flags, length, seq, ref) of the record at off (in the file, or in RAM)."""
        if off >= _RAM:
            return struct.unpack_from("<BBHIi", self._ram[off], 0)
        f = self._f
        f.seek(off)
        if f.readinto(self._hdr) != _HDR:
            raise JournalError("journal: record at %d cut short" % off)
        return struct.unpack_from("<BBHIi", self._hdr, 0)

    def _append(self, kind, flags, seq, ref, body=b""):
        """Write one record (held in RAM while the gate is closed); its offset."""
        h = self._pack(kind, flags, seq, ref, body)
        if self._gated():
            return self._hold(kind, bytes(h) + body)
        off = self._size
        self._write_end((h, body))
        return off

    def _write_end(self, parts):
        """Write parts (bytes) at the file's end, flushed and synced."""
        if self._f is None:
            self._f = open(self.path, "w+b")
        f = self._f
        f.seek(self._size)
        n = 0
        for b in parts:
            if b:
                f.write(b)
                n += len(b)
        f.flush()
        persist.sync()
        self._size += n

    def _record(self, off):
        """(kind, flags, length, seq, ref), the whole record at off (header and body), from
        the file or RAM."""
        k = self._read_hdr(off)
        if off >= _RAM:
            return k, self._ram[off]
        rec = bytearray(self._hdr)
        rec.extend(self._f.read(k[2]))
        return k, rec

    def _open(self):
        try:
            self._f = open(self.path, "r+b")
        except OSError:
            self._f = None

    def _acked(self, k):
        """Bookkeeping once the head record (header k) is acked."""
        self._head += 1
        self._pend_bytes -= _HDR + k[2]
        ref = k[4]
        self._unref(ref)
        if ref < 0:
            if k[1] & _STOP and ref not in self._ended:
                self._ended.append(ref)
            if ref in self._ended and ref not in self._refs:
                self._ended.remove(ref)
                self._map.pop(ref, None)
        if self._head == len(self._offs):  # all delivered: the offsets start again (they would
            self._offs = array("I")  # hold every record since the last compaction)
            self._head = 0

    # ---- compaction
    def _live(self):
        return _S_SIZE + self._pend_bytes + _M_SIZE * len(self._map)

    def _compact(self, skip=()):
        """Rewrite S, the pending records except those at offsets in skip, the mappings."""
        new = self.path + ".new"
        g = open(new, "wb")
        offs = array("I")
        dropped = self._dropped + len(skip)
        try:
            body = struct.pack("<I", dropped)
            g.write(self._pack(_S, 0, self._next_seq, self._last_local, body))
            g.write(body)
            pos = _S_SIZE
            refs = {}
            for i in range(self._head, len(self._offs)):
                off = self._offs[i]
                if off in skip:
                    continue
                k, rec = self._record(off)
                g.write(rec)
                offs.append(pos)
                pos += len(rec)
                if k[4] < 0:
                    refs[k[4]] = refs.get(k[4], 0) + 1
            pend = pos - _S_SIZE
            for lid in self._map:
                if lid in self._ended and lid not in refs:
                    continue
                fl = _ENDED if lid in self._ended else 0
                body = struct.pack("<i", self._map[lid])
                g.write(self._pack(_M, fl, 0, lid, body))
                g.write(body)
                pos += _M_SIZE
            g.flush()
        finally:
            g.close()
        persist.sync()
        if self._f is not None:
            self._f.close()
            self._f = None
        persist.replace(new, self.path)
        persist.sync()
        self._open()
        self._offs = offs
        self._head = 0
        self._size = pos
        self._pend_bytes = pend
        self._refs = refs
        self._dropped = dropped
        for lid in list(self._ended):
            if lid not in refs:
                self._ended.remove(lid)
                self._map.pop(lid, None)
        self._ram_clear()  # its records are in the new file (held A/M/L: in S, _map, _head)
        self.compactions += 1

    # ---- public
    def push(self, action, payload, droppable=False):
        """Write one message; durable when it returns (or, while the flash gate is closed,
        once it opens: jram.py). Returns its seq."""
        if not isinstance(action, str) or not action or "\n" in action:
            raise JournalError("bad action %r" % (action,))
        fl = _STOP if action == "StopTransaction" else 0
        if droppable:
            if fl or action == "StartTransaction":
                raise JournalError("%s is never droppable" % action)
            fl = _DROPPABLE
        try:
            body = (action + "\n" + json.dumps(payload)).encode()
        except (TypeError, ValueError) as e:
            raise JournalError("%s payload not JSON: %s" % (action, e))
        need = _HDR + len(body)
        if len(body) > _MAX_BODY or need + _S_SIZE > self.max_bytes:
            raise JournalError("%s of %d bytes too large" % (action, len(body)))
        ref = payload.get("l") if isinstance(payload, dict) else 0
        if not isinstance(ref, int) or ref > 0:  # (a bool is never < 0)
            ref = 0
        self._room(need, droppable, action)
        seq = self._next_seq
        off = self._append(_P, fl, seq, ref, body)
        self._offs.append(off)
        self._next_seq = seq + 1
        self._pend_bytes += need
        if ref:
            self._refs[ref] = self._refs.get(ref, 0) + 1
        return seq

    def _make_room(self, need, action):
        # Drop down to 7/8 of max_bytes, not just to the byte, so that a journal full of
        # MeterValues is not rewritten on every push while the link stays down.
        live = self._live()
        target = self.max_bytes - self.max_bytes // 8
        skip = []
        if live + need > target:
            for i in range(self._head, len(self._offs)):
                k = self._read_hdr(self._offs[i])
                if k[1] & _DROPPABLE:
                    skip.append(self._offs[i])
                    live -= _HDR + k[2]
                    if live + need <= target:
                        break
            if live + need > self.max_bytes:
                raise JournalError("journal full: %s refused, %d pending in %d bytes"
                                   % (action, self.pending(), self._size))
        self._compact(skip)

    def peek(self):
        """(seq, action, payload) of the oldest pending record, or None."""
        if self.pending() == 0:
            return None
        k, rec = self._record(self._offs[self._head])
        body = bytes(rec[_HDR:])
        try:
            i = body.index(b"\n")
            return k[3], body[:i].decode(), json.loads(body[i + 1:])
        except ValueError as e:
            raise JournalError("journal record %d unreadable: %s" % (k[3], e))

    def ack(self, seq):
        """The oldest pending record (seq) was delivered; durable when it returns."""
        if self.pending() == 0:
            raise JournalError("ack %d: nothing pending" % seq)
        off = self._offs[self._head]
        k = self._read_hdr(off)
        if k[3] != seq:
            raise JournalError("ack %d: oldest pending %d" % (seq, k[3]))
        if off >= _RAM:  # never on flash: it leaves RAM, nothing is written
            self._ram_bytes -= len(self._ram.pop(off))
        else:
            self._append(_A, 0, seq, 0)
        self._acked(k)
        if persist.flash_ok() and self._size > self.max_bytes // 2 and (
                self._size - self._live() >= self._size // 2):
            self._compact()  # half the file or more is acked records: rewrite it

    def pending(self):
        return len(self._offs) - self._head

    def map_tx(self, local_id, tx_id):
        """The CSMS's transactionId for local id local_id; durable when it returns."""
        if not (isinstance(local_id, int) and local_id < 0 and isinstance(tx_id, int)
                and -0x80000000 <= tx_id <= 0x7FFFFFFF):  # (the file keeps an i32)
            raise JournalError("bad mapping %r -> %r" % (local_id, tx_id))
        if self._map.get(local_id) == tx_id:
            return
        self._append(_M, 0, 0, local_id, struct.pack("<i", tx_id))
        self._map[local_id] = tx_id

    def tx_id(self, local_id):
        return self._map.get(local_id)

    def open_locals(self):
        """Local ids of transactions whose StartTransaction is here (pending, or mapped) and
        whose StopTransaction never was: what a power cut left open. Reads the pending
        headers: for the boot, not for every step."""
        out = []
        for lid in list(self._refs) + list(self._map):
            if lid not in self._ended and lid not in out:
                out.append(lid)
        for i in range(self._head, len(self._offs)):
            k = self._read_hdr(self._offs[i])
            if k[1] & _STOP and k[4] in out:
                out.remove(k[4])
        return out

    def next_local_id(self):
        """A new local transaction id (negative), unique across reboots; durable."""
        lid = self._last_local - 1
        self._append(_L, 0, 0, lid)
        self._last_local = lid
        return lid

    def stats(self):
        return {"pending": self.pending(), "dropped": self._dropped, "bytes": self._size,
                "max_bytes": self.max_bytes, "recovered": self.recovered,
                "torn_bytes": self.torn_bytes, "compactions": self.compactions,
                "mappings": len(self._map), "ram_pending": len(self._ram),
                "ram_bytes": self._ram_bytes, "ram_max": self.ram_max, "settles": self.settles}

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
