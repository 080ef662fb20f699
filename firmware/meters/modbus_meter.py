# A Modbus energy meter: reads its profile's register blocks over a shared ModbusMaster,
# decodes them with integer arithmetic (no float objects: a float allocates on most ports),
# checks every value, and writes a firmware.meter.Reading in place - all or nothing. The
# meter task (docs/meters.md) stamps the reading after a good poll; this class never does.
#
# poll() returns the meter itself, a reusable awaitable (as drivers.modbus.Transaction is),
# so `await meter.poll(reading)` allocates nothing once warmed up.
from array import array


from drivers.modbus import Awaitable, ModbusError
from firmware.meter import UNKNOWN
from firmware.meters import profiles as pf

_NAN = const(-0x20000001)  # decoder results that reject the poll
_BIG = const(-0x20000002)
_MAX = const(0x3FFFFFFF)
_NSLOTS = const(13)
_E = const(10)  # slot of the import energy; 11 export, 12 frequency, 9 total power
# An array: frozen, a tuple of these would hold long ints (above 8191) that allocate per use
_LIMITS = array("i", (10000, 10000, 10000, 5000, 5000, 5000, 1000000, 1000000, 1000000,
                      3000000, 1000000000, 1000000000, 10000))  # fmt: skip
_SIGNED = b"\x01\x01\x01\x00\x00\x00\x01\x01\x01\x01\x00\x00\x00"  # may be negative
_UNITS = ("dA", "dA", "dA", "dV", "dV", "dV", "W", "W", "W", "W", "Wh", "Wh", "cHz")
_POW10 = (1, 10, 100, 1000)


class MeterError(Exception):
    """A reply that decoded but failed its checks (names the value)."""


def f32_scaled(hi, lo, k, d):
    """round(v * k / d) (half away from zero) of the float32 whose words are hi, lo, in
    integers below 2**30; _NAN for NaN/inf, _BIG from |v * k| >= 2**28. k < 2**14 (the
    partial products stay below 2**26), d <= 100000."""
    e = (hi >> 7) & 0xFF
    if e == 0xFF:
        return _NAN
    if e == 0:
        return 0  # zero, or a subnormal (far below any unit here)
    m = ((hi & 0x7F) << 16) | lo | 0x800000
    mh = (m >> 12) * k
    ml = (m & 0xFFF) * k
    sh = 149 - e  # t = floor(m * k / 2**sh) = floor(2 * v * k)
    if sh >= 40:
        t = 0
    elif sh >= 12:
        t = (mh + (ml >> 12)) >> (sh - 12)
    elif sh > -7:  # t < 2**30 (a small int on 32-bit ports) when |v * k| < 2**28
        if mh >= 1 << (17 + sh):
            return _BIG
        t = (mh << (12 - sh)) + ((ml >> sh) if sh >= 0 else (ml << -sh))
    else:
        return _BIG
    r = (t + d) // (2 * d)
    return -r if hi & 0x8000 else r


def int_raw(enc, b, o):
    """The integer at b[o:] in encoding enc; UNKNOWN for the invalid markers (all-0xFF
    unsigned, 0x7FFF... signed), _BIG when |raw| >= 2**30."""
    w0 = (b[o] << 8) | b[o + 1]
    if enc == pf.U16:
        return UNKNOWN if w0 == 0xFFFF else w0
    if enc == pf.I16:
        if w0 == 0x7FFF:
            return UNKNOWN
        return w0 - 0x10000 if w0 & 0x8000 else w0
    w1 = (b[o + 2] << 8) | b[o + 3]
    if enc == pf.U64 or enc == pf.I64:
        w2 = (b[o + 4] << 8) | b[o + 5]
        w3 = (b[o + 6] << 8) | b[o + 7]
        if enc == pf.U64:
            if w0 == w1 == w2 == w3 == 0xFFFF:
                return UNKNOWN
            if w0 or w1:
                return _BIG
        else:
            if (w0 == 0x7FFF and w1 == w2 == w3 == 0xFFFF) or (
                    w0 == 0x8000 and w1 == w2 == w3 == 0):  # Schneider: not available
                return UNKNOWN
            if not (w0 == w1 == 0 or (w0 == w1 == 0xFFFF and w2 & 0x8000)):
                return _BIG
        return _i32(w2, w3, enc == pf.I64)
    if enc == pf.I32_CDAB:
        w0, w1 = w1, w0
    if enc == pf.U32:
        if w0 == w1 == 0xFFFF:
            return UNKNOWN
        return _i32(w0, w1, False)
    if w0 == 0x7FFF and w1 == 0xFFFF:
        return UNKNOWN
    return _i32(w0, w1, True)


def _i32(hi, lo, signed):
    if signed and hi & 0x8000:
        if hi < 0xC000:
            return _BIG
        return -(((hi ^ 0xFFFF) << 16) | (lo ^ 0xFFFF)) - 1
    if hi >= 0x4000:
        return _BIG
    return (hi << 16) | lo


def decode(enc, b, o, k, d):
    """A value at b[o:] in the reading's unit: round(raw * k / d); UNKNOWN, _NAN or _BIG."""
    if enc == pf.F32:
        hi = (b[o] << 8) | b[o + 1]
        lo = (b[o + 2] << 8) | b[o + 3]
        if hi == lo == 0xFFFF:
            return UNKNOWN
        return f32_scaled(hi, lo, k, d)
    raw = int_raw(enc, b, o)
    if raw == UNKNOWN or raw == _BIG:
        return raw
    if k > 1:
        if raw > _MAX // k or raw < -(_MAX // k):
            return _BIG
        raw *= k
    if d > 1:
        q = raw // d
        if 2 * (raw - q * d) >= d:
            q += 1
        return q
    return raw


class ModbusMeter(Awaitable):
    """A meter at `addr` on `master`; `profile` a name in profiles.PROFILES; `inverted`
    for a meter wired upside down (negates currents and powers, swaps import/export)."""

    def __init__(self, master, addr, profile, inverted=False):
        p = pf.PROFILES.get(profile)
        if p is None:
            raise ValueError("unknown meter profile %r (known: %s)"
                             % (profile, ", ".join(sorted(pf.PROFILES))))
        if not 1 <= addr <= 247:
            raise ValueError("meter address must be 1..247, got %r" % (addr,))
        self.master = master
        self.addr = addr
        self.profile = profile
        self.inverted = inverted
        self._fc = p["fc"]
        self.res_wh = p.get("res_wh", 1)  # the energy guard's register step
        self._nan_absent = p.get("nan_absent", False)
        flds = pf.fields(p)
        self.blocks = pf.blocks(flds, p.get("max_regs", 100), p.get("gap", pf.DENSE))
        # CT/PT ratio registers (DTSU666): read first in every poll; its values are the
        # secondary side, so currents x CT, voltages x PT, powers x both; the energy
        # registers are then unknown (docs/meters.md: not settled which side they count).
        ratios = p.get("ratios")
        self._rb = 0 if ratios else -1  # the block of the ratio registers
        if ratios:
            self.blocks.insert(0, (ratios[0], 2))
        self.ct = 1  # the ratios last read (1 and 10: a meter connected directly)
        self.pt10 = 10
        n = len(flds)
        self._slot = bytearray(n)
        self._blk = bytearray(n)
        self._enc = bytearray(n)
        self._off = array("H", bytes(2 * n))
        self._k = array("H", bytes(2 * n))
        self._d = array("H", bytes(2 * n))
        for j, (slot, reg, enc, exp) in enumerate(flds):
            for b, (start, count) in enumerate(self.blocks):
                if start <= reg and reg + pf.WORDS[enc] <= start + count:
                    break
            self._slot[j] = slot
            self._blk[j] = b
            self._enc[j] = enc
            self._off[j] = 3 + 2 * (reg - start)  # in the master's reply buffer
            self._k[j] = _POW10[exp] if exp > 0 else 1
            self._d[j] = _POW10[-exp] if exp < 0 else 1
        self._vals = array("i", [UNKNOWN] * _NSLOTS)
        self._tr = master.transaction()
        self._reading = None
        self._b = -1  # block being read; -1 idle
        self._stop = StopIteration()

    def poll(self, reading):
        """Await it: reads, decodes and checks every value, then writes them into `reading`
        (all or nothing; not stamped). Raises ModbusError or MeterError."""
        self._reading = reading
        self._b = 0
        self._start_block()
        return self

    def _start_block(self):
        start, count = self.blocks[self._b]
        self._tr.read(self.addr, self._fc, start, count)

    def throw(self, typ, val=None, tb=None):
        self._b = -1
        return self._tr.throw(typ, val, tb)

    def close(self):
        self._b = -1
        self._tr.close()

    def __next__(self):
        if self._b < 0:
            raise ModbusError("meter %d: poll awaited without poll()" % self.addr, "function")
        while True:
            try:
                return self._tr.__next__()
            except StopIteration:
                pass
            except Exception:
                self._b = -1
                raise
            self._decode_block(self._b)  # raises MeterError for a bad value
            self._b += 1
            if self._b == len(self.blocks):
                break
            self._start_block()
        self._b = -1
        self._commit(self._reading)
        stop = self._stop
        stop.__traceback__ = None
        raise stop

    def _ratios(self, rx):
        ct = (rx[3] << 8) | rx[4]
        pt10 = (rx[5] << 8) | rx[6]
        if not 1 <= ct <= 9999 or not 1 <= pt10 <= 9999:
            self._b = -1
            raise MeterError("meter %d: CT ratio %d / PT ratio %d out of range 1..9999"
                             % (self.addr, ct, pt10))
        self.ct = ct
        self.pt10 = pt10

    def _scaled(self, slot, v):
        """A secondary-side power or energy on the primary side (a meter behind CT/PT);
        currents and voltages are scaled in the decoder (no rounding before the ratio)."""
        if slot < 10:
            return v * self.ct * self.pt10 // 10
        if slot < 12:
            return UNKNOWN  # energy: which side it counts is not settled
        return v

    def _decode_block(self, b):
        rx = self.master.rx
        if b == self._rb:
            self._ratios(rx)
            return
        scaled = self._rb >= 0 and (self.ct != 1 or self.pt10 != 10)
        vals = self._vals
        for j in range(len(self._slot)):
            if self._blk[j] != b:
                continue
            slot = self._slot[j]
            k = self._k[j]
            d = self._d[j]
            if scaled and slot < 6:
                if slot < 3:
                    k *= self.ct
                else:
                    k *= self.pt10
                    d *= 10
            v = decode(self._enc[j], rx, self._off[j], k, d)
            if v == _NAN and slot < 9 and self._nan_absent:
                v = UNKNOWN  # a phase that is not wired (single-phase use)
            if scaled and slot >= 6 and v != UNKNOWN and v != _NAN and v != _BIG:
                v = self._scaled(slot, v)
            if v == _NAN:
                self._b = -1
                raise MeterError("meter %d: %s is not a number"
                                 % (self.addr, pf.SLOT_NAMES[slot]))
            if v != UNKNOWN:
                lim = _LIMITS[slot]
                low = -lim if _SIGNED[slot] else 0
                if v == _BIG or v > lim or v < low:
                    self._b = -1
                    raise MeterError("meter %d: %s %s out of range %d..%d %s" % (
                        self.addr, pf.SLOT_NAMES[slot], "too large" if v == _BIG else v,
                        low, lim, _UNITS[slot]))
            vals[slot] = v

    def _commit(self, r):
        vals = self._vals
        inv = self.inverted
        imax = -1
        for k in range(3):
            i = vals[k]
            p = vals[6 + k]
            if i != UNKNOWN:
                if i < 0:
                    i = -i
                if imax < i:
                    imax = i
                if p != UNKNOWN and p < 0:
                    i = -i
                if inv:
                    i = -i
            if inv and p != UNKNOWN:
                p = -p
            r.i_da[k] = i
            r.v_dv[k] = vals[3 + k]
            r.p_w[k] = p
        pt = vals[9]
        r.p_total_w = -pt if inv and pt != UNKNOWN else pt
        e = vals[_E]
        x = vals[_E + 1]
        if inv:
            e, x = x, e
        r.energy_wh = -1 if e == UNKNOWN else e
        r.export_wh = -1 if x == UNKNOWN else x
        f = vals[_E + 2]
        r.freq_chz = -1 if f == UNKNOWN else f
        r.i_max_da = imax

    async def read_raw(self, fc, reg, count):
        """Registers as a list of ints (the installer's REPL helper)."""
        mv = await self.master.read(self.addr, fc, reg, count)
        return [(mv[2 * k] << 8) | mv[2 * k + 1] for k in range(count)]
