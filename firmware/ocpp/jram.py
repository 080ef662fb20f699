# The OCPP journal's RAM tail and its sender side.
# The RAM tail (docs/ocpp.md, "The journal while the contactor is closed").
# While the flash gate is closed (firmware/persist.py: board.flash_write_ok() is False while
# the contactor is closed on a board where a flash erase blinds the safety path), the journal
# writes nothing to its file:
# - a pushed record (P) is kept in RAM under an offset at or above RAM, beside the file's
#   offsets in the journal's pending list: peek, ack and the sender read it as they read a
#   file record;
# - an ack of a RAM record drops it from RAM: it never reaches flash at all;
# - the other records (A for a record on flash, M, L) wait in order in a short list;
# - the RAM tail is bounded (ram_max bytes, persist.HELD_MAX by default, less what
#   persist holds: one RAM budget for the gate): past it the oldest droppable records in RAM
#   (periodic MeterValues; never the head, which the sender may have in flight) are
#   dropped, counted like the file's drops; a record that is never droppable (Start, Stop)
#   is always taken;
# - once the gate opens, settle() writes the waiting records and then the pending RAM
#   records at the file's end in one write and one sync (or compacts, when the file would
#   pass max_bytes). It runs at the journal's next call, from persist.settle() (the OCPP
#   observer's loop) and from the orderly restart path.
# A power cut while the gate is closed loses the RAM tail: the bounded-loss rule is in
# docs/safety.md ("Files on flash").
#
# The journal's sender side (send_next, at the end of this file): the sender task takes the
# oldest transaction message (StartTransaction, MeterValues, StopTransaction) from the
# journal, fills in the CSMS's transactionId, sends it and acknowledges it once answered.
# Policy (docs/ocpp.md):
# - once the CSMS has answered, the record is acknowledged whatever the answer holds: a
#   StartTransaction sent again would open a second transaction at the CSMS;
# - a CALLERROR or timeout while online is an attempt; MeterValues and StopTransaction are
#   given up after TransactionMessageAttempts, a StartTransaction never (its MeterValues and
#   Stop wait behind it for the id the CSMS gives);
# - the idTagInfo of Start/Stop answers goes into the cache as authlist.stored_info keeps it
#   (txn.Transactions.started and remember: what the answer means for the transaction).
import time
from array import array


from .. import persist
from . import rpc

_RAM = const(0x20000000)  # offsets from here on are records in RAM (as in journal.py)
_HDR = const(16)
_P = const(80)
_DROPPABLE = const(1)


class JournalError(Exception):
    pass


class RamTail:
    """The RAM half of Journal (its base class): needs _offs, _head, _read_hdr, _refs,
    _pend_bytes, _dropped, _size, max_bytes, _write_end, _make_room and _compact."""

    def _unref(self, ref):
        """One pending record of transaction `ref` (a local id, < 0) fewer."""
        if ref < 0:
            c = self._refs.get(ref, 1) - 1
            if c:
                self._refs[ref] = c
            else:
                self._refs.pop(ref, None)

    def _ram_clear(self):
        self._ram = {}  # offset (>= _RAM) -> a pending P record (header + body)
        self._held = []  # A, M, L records waiting for the gate, in order
        self._ram_next = _RAM
        self._ram_bytes = 0

    def _gated(self):
        """True while the flash gate is closed. When it is open, what RAM holds goes to the
        file first, so that the file keeps the records' order."""
        if not persist.flash_ok():
            return True
        self.settle()
        return False

    def _hold(self, kind, rec):
        """Keep record rec (bytes) in RAM; a P record's offset, else -1."""
        off = -1
        if kind == _P:
            off = self._ram_next
            self._ram[off] = rec
            self._ram_next = off + len(rec)
        else:
            self._held.append(rec)
        self._ram_bytes += len(rec)
        persist.later(self)
        return off

    def _room(self, need, droppable, action):
        """Room for a record of need bytes: in the file while the gate is open (_make_room),
        else in RAM: the oldest droppable RAM records go (not the head). A droppable record
        that still finds none is refused (JournalError)."""
        if not self._gated():
            if self._size + need > self.max_bytes:
                self._make_room(need, action)
            return
        # the held whole-file saves (persist.hold) take from the same RAM budget
        over = self._ram_bytes + persist.held_bytes() + need - self.ram_max
        if over <= 0:
            return
        drop = []
        for i in range(self._head + 1, len(self._offs)):
            off = self._offs[i]
            if off >= _RAM:
                k = self._read_hdr(off)
                if k[1] & _DROPPABLE:
                    drop.append(off)
                    over -= _HDR + k[2]
                    if over <= 0:
                        break
        if over > 0 and droppable:
            raise JournalError("journal RAM full (%d of %d bytes): %s refused" % (
                self._ram_bytes, self.ram_max, action))
        if not drop:
            return
        offs = array("I")
        for i in range(self._head, len(self._offs)):
            off = self._offs[i]
            if off not in drop:
                offs.append(off)
                continue
            k = self._read_hdr(off)
            n = len(self._ram.pop(off))
            self._ram_bytes -= n
            self._pend_bytes -= n
            self._dropped += 1
            self._unref(k[4])
        self._offs = offs
        self._head = 0

    def settle(self):
        """Write the RAM tail to the file if the gate is open."""
        if not (self._ram or self._held) or not persist.flash_ok():
            return
        if self._size + self._ram_bytes > self.max_bytes:
            try:
                self._make_room(0, "the RAM tail")  # compacts: RAM records included
            except JournalError:
                self._compact()  # Start and Stop are never dropped: the file grows
        else:
            recs = list(self._held)
            pos = self._size
            for r in recs:
                pos += len(r)
            moved = []
            for i in range(self._head, len(self._offs)):
                off = self._offs[i]
                if off >= _RAM:
                    rec = self._ram[off]
                    recs.append(rec)
                    moved.append((i, pos))
                    pos += len(rec)
            self._write_end(recs)  # raises before anything below changes: all stays in RAM
            for i, p in moved:
                self._offs[i] = p
            self._ram_clear()
        self.settles += 1


async def send_next(tx):
    """At most one transaction message; True when one was sent (or dropped)."""
    cp = tx.cp
    j = cp.journal
    rec = j.peek()
    if rec is None:
        return False
    seq, action, body = rec
    start = action == "StartTransaction"
    if tx.attempts and time.ticks_diff(time.ticks_ms(), tx.retry_ms) < 0:
        return False
    # times stamped before the clock was known get their wall time now (timekeep.py)
    p = cp.tk.resolve(body["p"], time.ticks_ms())
    local = body.get("l")  # none: a status notification (firmware/secext.notify)
    if local is not None and not start:
        tid = j.tx_id(local)
        if tid is None:  # its Start was answered with an id the journal cannot keep
            cp.say("%s of transaction %s dropped: no transactionId" % (action, local))
            j.ack(seq)
            return True
        p["transactionId"] = tid
    try:
        conf = await cp.rpc.call(action, p)
    except rpc.RpcError as e:
        if not cp.link.connected:
            raise  # offline: not an attempt; resent after the reconnect
        why = "%s %s" % (e.code, e.description)
        if local is None and e.code != "Timeout":  # a notification refused (NotSupported)
            cp.say("%s dropped: %s" % (action, why))
        else:
            # one attempt. A StartTransaction is retried every TransactionMessageRetryInterval
            # x TransactionMessageAttempts once the attempts are used, never given up; other
            # messages are given up after the attempts.
            k = cp.keys
            n = tx.attempts = tx.attempts + 1
            most = max(1, k.get("TransactionMessageAttempts"))
            if n < most or start:
                wait = max(1, k.get("TransactionMessageRetryInterval")) * min(n, most)
                tx.retry_ms = time.ticks_add(time.ticks_ms(), 1000 * wait)
                cp.say("%s attempt %d failed (%s), retry in %d s" % (action, n, why, wait))
                return True
            cp.say("%s given up after %d attempts: %s" % (action, n, why))
            tx.attempts = 0
        j.ack(seq)
        return True
    # Answered: from here on nothing may keep the record from being acknowledged.
    tx.attempts = 0
    if start:
        try:
            j.map_tx(local, conf["transactionId"])
        except JournalError as e:
            cp.say("transaction %s: %s; its MeterValues, Stop cannot be sent" % (
                local, e))
    j.ack(seq)
    try:
        if start:
            tx.started(local, p["idTag"], conf)
        elif action == "StopTransaction" and "idTagInfo" in conf and "idTag" in p:
            tx.remember(p["idTag"], conf["idTagInfo"])
    except Exception as e:  # a fault here must not undo the delivery: say it, count it
        cp.fault("after %s.conf" % action, e)
    return True
