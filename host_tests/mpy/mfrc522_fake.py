# A fake NXP MFRC522 on SPI with ISO/IEC 14443A cards in its field, for the driver's tests on
# CPython and on the MicroPython unix port (it allocates nothing once built).
#
# The bus: `spi` (write / readinto, as machine.SPI) and `cs` (a Pin: value(0) starts a
# transaction, value(1) ends it). The first byte of a transaction is the address byte
# (bit 7 read, bits 6..1 the register); the bytes after it are written to that register
# (FIFODataReg: each one pushed) or read from it (FIFODataReg: each one popped).
#
# The chip: registers, a 64-byte FIFO, SoftReset (back to reset values, PowerDown for the
# first `reset_reads` reads of CommandReg), Transceive started by BitFramingReg.StartSend,
# the timer (TimerIRq when no card answers) only when TModeReg.TAuto is set, antenna from
# TxControlReg bits 0-1 (off after reset: no card hears anything).
#
# The cards (ISO/IEC 14443-3): IDLE/READY/ACTIVE/HALT. REQA (0x26) and WUPA (0x52) count only
# as 7-bit short frames; WUPA also wakes HALT. SEL + NVB 0x20 answers the UID bytes of that
# cascade level and their BCC (two cards that differ: CollErr); SEL + 0x70 + 5 bytes with a
# right CRC_A selects (SAK + CRC_A; SAK 0x04 while the UID goes on); HLTA (0x50 0x00 CRC_A)
# halts an ACTIVE card. Anything unexpected (REQA/WUPA to a READY or ACTIVE card too) sends
# the card back to IDLE with no answer.
# Faults: bad_crc (count: the next SAKs' CRC_A wrong), noise (count: a UID bit flipped in the
# next anticollision answers), odd_sak (count: SAKs that claim more UID bytes), gone (every
# read gives 0x00, writes are lost: the module unplugged), stuck (commands never finish: no
# interrupt bits).
_REG = 64

_COMMAND = 0x01
_COM_IRQ = 0x04
_ERROR = 0x06
_FIFO_DATA = 0x09
_FIFO_LEVEL = 0x0A
_CONTROL = 0x0C
_BIT_FRAMING = 0x0D
_COLL = 0x0E
_TX_CONTROL = 0x14
_T_MODE = 0x2A
_VERSION = 0x37

_IDLE, _READY, _ACTIVE, _HALT = 0, 1, 2, 3


def crc_a(buf, n):
    """CRC_A, bit by bit (ISO/IEC 14443-3 annex B): an implementation of its own, not the
    driver's, so the test checks one against the other."""
    crc = 0x6363
    for i in range(n):
        crc ^= buf[i]
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


class Card:
    def __init__(self, uid):
        self.uid = bytearray(uid)
        self.state = _IDLE
        self.level = 0

    def level_bytes(self, level, out):
        """This card's 4 bytes at a cascade level (CT 0x88 + 3 UID bytes while it goes on)."""
        u = self.uid
        n = len(u)
        if n == 4 or (n == 7 and level == 1) or (n == 10 and level == 2):
            k = n - 4
            for i in range(4):
                out[i] = u[k + i]
            return False
        out[0] = 0x88
        for i in range(3):
            out[1 + i] = u[3 * level + i]
        return True


class FakeMfrc522:
    def __init__(self, version=0x92):
        self.version = version
        self.regs = bytearray(_REG)
        self.cards = []
        self.reset_reads = 2
        self.bad_crc = 0
        self.noise = 0  # count: the next anticollision answers get one UID bit flipped
        self.odd_sak = 0  # count: the next SAKs claim "UID not complete" (right CRC_A)
        self.gone = False
        self.stuck = False
        self.frames = 0  # frames the antenna sent
        self.halts = 0
        self._fifo = bytearray(64)
        self._fn = 0
        self._fr = 0
        self._addr = -1
        self._pd = 0
        self._lvl = bytearray(4)
        self._cmp = bytearray(4)
        self._out = bytearray(8)
        self.cs = _Cs(self)
        self.spi = _Spi(self)
        self._reset()

    def put_card(self, uid):
        self.cards.append(Card(uid))

    def take_cards(self):
        self.cards = []

    def _reset(self):
        r = self.regs
        for i in range(_REG):
            r[i] = 0
        r[_COMMAND] = 0x20 | 0x10  # RcvOff clear, PowerDown while the oscillator starts
        r[_COM_IRQ] = 0x14
        r[_FIFO_LEVEL] = 0
        r[_CONTROL] = 0x10
        r[_TX_CONTROL] = 0x80  # antenna off
        r[_VERSION] = self.version
        self._fn = self._fr = 0
        self._pd = self.reset_reads

    # -- register access -----------------------------------------------------------------------
    def _read(self, reg):
        if self.gone:
            return 0x00
        r = self.regs
        if reg == _COMMAND and self._pd:
            self._pd -= 1
            if not self._pd:
                r[_COMMAND] &= 0xEF
        if reg == _FIFO_DATA:
            if self._fr < self._fn:
                b = self._fifo[self._fr]
                self._fr += 1
                return b
            return 0
        if reg == _FIFO_LEVEL:
            return self._fn - self._fr
        return r[reg]

    def _write(self, reg, v):
        if self.gone:
            return
        r = self.regs
        if reg == _FIFO_DATA:
            if self._fn < 64:
                self._fifo[self._fn] = v
                self._fn += 1
            return
        if reg == _FIFO_LEVEL:
            if v & 0x80:
                self._fn = self._fr = 0
            return
        if reg == _COM_IRQ:
            if v & 0x80:
                r[reg] |= v & 0x7F
            else:
                r[reg] &= ~v & 0x7F
            return
        if reg == _COMMAND:
            cmd = v & 0x0F
            if cmd == 0x0F:
                self._reset()
                return
            r[reg] = (r[reg] & 0xF0) | cmd
            return
        r[reg] = v
        if reg == _BIT_FRAMING and v & 0x80 and (r[_COMMAND] & 0x0F) == 0x0C:
            self._transceive(v & 0x07)

    # -- the air -------------------------------------------------------------------------------
    def _transceive(self, last_bits):
        r = self.regs
        if self.stuck:
            return
        f = self._fifo
        n = self._fn
        self._fn = self._fr = 0
        r[_ERROR] = 0
        irq = 0x40  # TxIRq
        got = self._air(f, n, last_bits) if r[_TX_CONTROL] & 0x03 else -1
        if got > 0:
            out = self._out
            for i in range(got):
                f[i] = out[i]
            self._fn = got
            irq |= 0x20 | 0x10
        elif got == -2:  # two cards answered different bits
            r[_ERROR] = 0x08
            r[_COLL] = 0x01
            irq |= 0x20 | 0x02
        elif r[_T_MODE] & 0x80:
            irq |= 0x01  # the timer ran out: nobody answered
        r[_COM_IRQ] |= irq

    def _air(self, f, n, last_bits):
        """One frame to the cards in the field: the answer's length in _out, 0 (silence)
        or -2 (a collision)."""
        self.frames += 1
        out = self._out
        cards = self.cards
        if n == 1 and last_bits == 7 and (f[0] == 0x26 or f[0] == 0x52):
            k = 0
            for c in cards:
                if c.state == _IDLE or (f[0] == 0x52 and c.state == _HALT):
                    c.state = _READY
                    c.level = 0
                    k += 1
                elif c.state != _HALT:
                    c.state = _IDLE  # READY or ACTIVE: not a command there; silent
            if not k:
                return 0
            out[0] = 0x44 if len(cards[0].uid) > 4 else 0x04
            out[1] = 0x00
            return 2
        if last_bits:
            self._all_idle()
            return 0
        sel = (0x93, 0x95, 0x97)
        if n == 2 and f[0] in sel and f[1] == 0x20:
            lvl = sel.index(f[0])
            k = 0
            for c in cards:
                if c.state == _READY and c.level == lvl:
                    c.level_bytes(lvl, self._lvl if k == 0 else self._cmp)
                    if k and self._lvl != self._cmp:
                        return -2
                    k += 1
            if not k:
                return 0
            b = self._lvl
            for i in range(4):
                out[i] = b[i]
            out[4] = b[0] ^ b[1] ^ b[2] ^ b[3]
            if self.noise:
                self.noise -= 1
                out[1] ^= 0x10  # the BCC no longer matches
            return 5
        if n == 9 and f[0] in sel and f[1] == 0x70:
            crc = crc_a(f, 7)
            if f[7] != crc & 0xFF or f[8] != crc >> 8:
                self._all_idle()
                return 0
            lvl = sel.index(f[0])
            for c in cards:
                if c.state != _READY or c.level != lvl:
                    continue
                more = c.level_bytes(lvl, self._lvl)
                b = self._lvl
                if (b[0] != f[2] or b[1] != f[3] or b[2] != f[4] or b[3] != f[5]
                        or f[6] != b[0] ^ b[1] ^ b[2] ^ b[3]):
                    continue
                if more:
                    c.level = lvl + 1
                else:
                    c.state = _ACTIVE
                out[0] = 0x04 if more else (0x08 if len(c.uid) == 4 else 0x00)
                if self.odd_sak:
                    self.odd_sak -= 1
                    out[0] |= 0x04
                crc = crc_a(out, 1)
                out[1] = crc & 0xFF
                out[2] = crc >> 8
                if self.bad_crc:
                    self.bad_crc -= 1
                    out[2] ^= 0x21
                return 3
            return 0
        if n == 4 and f[0] == 0x50 and f[1] == 0x00:
            crc = crc_a(f, 2)
            if f[2] == crc & 0xFF and f[3] == crc >> 8:
                for c in cards:
                    if c.state == _ACTIVE:
                        c.state = _HALT
                        self.halts += 1
            return 0
        self._all_idle()
        return 0

    def _all_idle(self):
        for c in self.cards:
            if c.state != _HALT:
                c.state = _IDLE


class _Cs:
    def __init__(self, chip):
        self._chip = chip

    def value(self, v=None):
        if v is None:
            return 1 if self._chip._addr < 0 else 0
        self._chip._addr = -1 if v else -2  # -2: selected, no address byte yet


class _Spi:
    def __init__(self, chip):
        self._chip = chip

    def write(self, buf):
        c = self._chip
        for i in range(len(buf)):
            if c._addr == -1:
                raise OSError(5)  # clocked with CS high: the test's wiring is wrong
            if c._addr == -2:
                c._addr = buf[i]
            elif not c._addr & 0x80:
                c._write((c._addr >> 1) & 0x3F, buf[i])

    def readinto(self, buf, write=0):
        c = self._chip
        for i in range(len(buf)):
            if c._addr < 0 or not c._addr & 0x80:
                buf[i] = 0
            else:
                buf[i] = c._read((c._addr >> 1) & 0x3F)
