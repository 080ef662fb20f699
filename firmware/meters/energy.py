# Energy register on flash, for meters whose register lives in the firmware (S0 pulses, CT
# integration) and for the Modbus meters' swap offset (firmware/meters/task.py).
#
# A record is 16 bytes: magic u16, sequence u32, total Wh u32, offset Wh i32, CRC-16/MODBUS
# of the 14 bytes before it, little-endian. Records go in turn to SLOTS files
# (<name>.0, <name>.1, ...), each file rewritten whole and synced before write() returns: a
# power cut tears at most the slot being written, the previous record stays in the other one.
# At boot the valid record with the newest sequence wins (sequence compared modulo 2^32).
#
# Width: the total is a u32 of Wh that wraps at 2^32 Wh (4295 MWh, over 40 years of a
# 11 kW box charging non-stop); "forward" is a difference modulo 2^32 below 2^31, so a
# wrap is one more step forward, never a step back.
#
# Wear: a record is written when the total has grown by step_wh since the last write
# (default 10 Wh: at 22 kW one write every 1.6 s, ~2000 per 20 kWh session; littlefs spreads
# them over its blocks) and on flush() (session end: the power dropped to 0). A power cut
# loses at most step_wh - 1 Wh plus the unsaved fraction of a Wh.
import struct


from drivers import kernels
from firmware import persist

_MAGIC = const(0x4557)  # "WE"
REC_LEN = const(16)
_BODY = const(14)
_FMT = "<HIIi"
_U32 = const(0xFFFFFFFF)
_HALF = const(0x80000000)
SLOTS = const(2)
STEP_WH = const(10)


def forward(new, old):
    """new - old modulo 2^32 as a signed difference (> 0: new is ahead)."""
    d = (new - old) & _U32
    return d - (1 << 32) if d >= _HALF else d


def pack(buf, seq, wh, offset):
    """Fill buf (REC_LEN bytes) with one record."""
    struct.pack_into(_FMT, buf, 0, _MAGIC, seq & _U32, wh & _U32, offset)
    crc = kernels.crc16_modbus(buf, _BODY)
    buf[_BODY] = crc & 0xFF
    buf[_BODY + 1] = crc >> 8


def unpack(buf, n):
    """(seq, wh, offset) of a valid record in buf[:n], else None."""
    if n != REC_LEN:
        return None
    crc = kernels.crc16_modbus(buf, _BODY)
    if buf[_BODY] != crc & 0xFF or buf[_BODY + 1] != crc >> 8:
        return None
    magic, seq, wh, offset = struct.unpack_from(_FMT, buf, 0)
    if magic != _MAGIC:
        return None
    return seq, wh, offset


class Files:
    """The real filesystem: read a whole slot, write a whole slot."""

    def read(self, path, buf):
        try:
            with open(path, "rb") as f:
                return f.readinto(buf) or 0
        except OSError:
            return -1  # missing

    def write(self, path, buf):
        with open(path, "wb") as f:
            f.write(buf)
            f.flush()
        persist.sync()  # on flash before write() says the record is saved


class EnergyStore:
    """The persistent total (Wh) of one meter and its swap offset. `add(wh)` counts energy
    and writes every step_wh; `flush()` writes what is unsaved; `set(wh, offset)` replaces
    both (a meter swap). Write errors are counted in `write_errors` and never raised."""

    def __init__(self, name, step_wh=STEP_WH, slots=SLOTS, fs=None):
        self.name = name
        self.step_wh = step_wh
        self.paths = [name + "." + str(k) for k in range(slots)]
        self.fs = fs if fs is not None else Files()
        self._buf = bytearray(REC_LEN)
        self.seq = 0
        self.wh = 0  # total, u32 Wh
        self.offset = 0  # Wh added to a Modbus meter's register (meter swaps)
        self.saved_wh = 0
        self.saved_offset = 0
        self.writes = 0
        self.write_errors = 0
        self.last_error = None
        self.bad_slots = 0  # slots that held no valid record at load
        self.loaded = False  # a valid record was found
        self.load()

    def load(self):
        best = None
        bad = 0
        for p in self.paths:
            rec = unpack(self._buf, self.fs.read(p, self._buf))
            if rec is None:
                bad += 1
            elif best is None or forward(rec[0], best[0]) > 0:
                best = rec
        self.bad_slots = bad
        self.loaded = best is not None
        if best is not None:
            self.seq, self.wh, self.offset = best
            self.saved_wh = self.wh
            self.saved_offset = self.offset
        return self.loaded

    def add(self, wh):
        """Count wh (>= 0) more; write once step_wh have gathered since the last write."""
        if wh > 0:
            self.wh = (self.wh + wh) & _U32
            if forward(self.wh, self.saved_wh) >= self.step_wh:
                self.write()

    def set(self, wh, offset):
        """Replace the total and the offset (a Modbus meter's view); written at the step
        or, for a new offset, at once."""
        self.wh = wh & _U32
        if offset != self.offset:
            self.offset = offset
            self.write()
        elif forward(self.wh, self.saved_wh) >= self.step_wh:
            self.write()

    @property
    def unsaved(self):
        return self.wh != self.saved_wh or self.offset != self.saved_offset

    def flush(self):
        """Write if anything is unsaved (session end)."""
        if self.unsaved:
            self.write()

    def write(self):
        seq = (self.seq + 1) & _U32
        pack(self._buf, seq, self.wh, self.offset)
        try:
            self.fs.write(self.paths[seq % len(self.paths)], self._buf)
        except OSError as e:
            self.write_errors += 1
            self.last_error = "energy %s: cannot write: %r" % (self.name, e)
            return False
        self.seq = seq
        self.saved_wh = self.wh
        self.saved_offset = self.offset
        self.writes += 1
        return True
