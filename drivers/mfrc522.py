# NXP MFRC522 13.56 MHz reader IC (datasheet MFRC522 rev. 3.9) on SPI, as a reader of
# ISO/IEC 14443A card UIDs - the RC522 modules SmartEVSE-class wallboxes use.
#
# SPI (datasheet 8.1.2): mode 0, MSB first, up to 10 Mbit/s. Address byte: bit 7 = 1 to
# read, bits 6..1 the register, bit 0 = 0. Cards are spoken to through the FIFO with the
# Transceive command; the chip's timer ends a wait for an answer that never comes (TimerIRq).
#
# One poll, ISO/IEC 14443-3 type A: WUPA (7-bit short frame 0x52, wakes HALTed cards too,
# so a card held on the reader answers every poll) -> ATQA; per cascade level SEL/NVB 0x20
# anticollision -> 4 UID bytes + BCC (their XOR); SELECT (SEL, 0x70, the 5 bytes, CRC_A) ->
# SAK + CRC_A; SAK bit 2 set means the UID continues at the next level (the first byte was
# the cascade tag 0x88); then HLTA (0x50 0x00 + CRC_A, no answer) puts the card to sleep
# until the next WUPA. CRC_A (ISO/IEC 14443-3 annex B) is computed here, not by the chip.
#
# Same interface as drivers/pn532.py: start(op, now_ms), step(now_ms) -> PENDING or a result
# (drivers/rfid.py); every buffer is preallocated, a poll allocates nothing.

from drivers.rfid import (
    E_BUS, E_CHECKSUM, E_CHIP, E_FRAME, E_TIMEOUT, E_VERSION, OP_INIT, PENDING, R_CARD, R_NONE,
    R_OK)

from drivers.ticks import ticks_add, ticks_diff


# registers
COMMAND = const(0x01)
COM_IRQ = const(0x04)
ERROR = const(0x06)
FIFO_DATA = const(0x09)
FIFO_LEVEL = const(0x0A)
CONTROL = const(0x0C)
BIT_FRAMING = const(0x0D)
MODE = const(0x11)
TX_CONTROL = const(0x14)
TX_ASK = const(0x15)
T_MODE = const(0x2A)
T_PRESCALER = const(0x2B)
T_RELOAD_H = const(0x2C)
T_RELOAD_L = const(0x2D)
VERSION = const(0x37)
# commands
CMD_IDLE = const(0x00)
CMD_TRANSCEIVE = const(0x0C)
CMD_SOFT_RESET = const(0x0F)
_POWER_DOWN = const(0x10)  # CommandReg bit: set until the oscillator runs after a reset
# ComIrqReg bits
_RX_IRQ = const(0x20)
_IDLE_IRQ = const(0x10)
_ERR_IRQ = const(0x02)
_TIMER_IRQ = const(0x01)
# ErrorReg bits
_COLL_ERR = const(0x08)
_CRC_ERR = const(0x04)
_FRAME_ERRS = const(0x13)  # BufferOvfl, ParityErr, ProtocolErr
# ISO/IEC 14443-3
_WUPA = const(0x52)
_SEL = b"\x93\x95\x97"
_CASCADE_TAG = const(0x88)
_SAK_MORE = const(0x04)

RESET_MS = const(50)  # soft reset: the oscillator is running well within this
ANSWER_MS = const(40)  # software guard over the chip's own 25 ms timer
CHECK_MS = const(2)
# VersionReg: 0x91 v1.0, 0x92 v2.0, 0x88 FM17522 (a common second source), 0x12 and 0xB2
# seen on RC522 modules; 0x00 / 0xFF is no chip on the bus.
VERSIONS = b"\x91\x92\x88\x12\xb2"

# poll phases
_IDLE = const(0)
_RESET = const(1)
_START = const(2)
_WAKE = const(3)
_ANTI = const(4)
_SELECT = const(5)
_HALT = const(6)
# what a transceive got
_GOT = const(1)
_SILENT = const(2)  # the chip's timer ran out: no card answered
_COLLISION = const(3)


def crc_a(buf, n, out, at):
    """CRC_A of buf[:n] (preset 0x6363, x^16 + x^12 + x^5 + 1 LSB first) into out[at],
    out[at + 1], low byte first as it is sent."""
    crc = 0x6363
    for i in range(n):
        b = (buf[i] ^ crc) & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
    out[at] = crc & 0xFF
    out[at + 1] = (crc >> 8) & 0xFF


class Mfrc522:
    """The reader chip on SPI (machine.SPI, mode 0) with its chip-select pin (active low).
    start(OP_INIT) soft-resets and configures it (25 ms answer timer, 100 % ASK, antenna on);
    start(OP_POLL) looks for one card."""

    name = "mfrc522"
    check_ms = CHECK_MS

    def __init__(self, spi, cs):
        self._spi = spi
        self._cs = cs
        cs.value(1)
        self._a = bytearray(1)
        self._b = bytearray(1)
        self._tx = bytearray(9)
        self._rx = bytearray(16)
        self._crc = bytearray(2)
        self._rn = 0
        self.uid = bytearray(10)
        self.uid_len = 0
        self.version = 0
        self.collisions = 0
        self._ph = _IDLE
        self._due = 0
        self._level = 0
        self._want = 0

    # -- registers -----------------------------------------------------------------------------
    def version_text(self):
        v = self.version
        return "v1.0" if v == 0x91 else ("v2.0" if v == 0x92 else "0x%02X" % v)

    def _wr(self, reg, val):
        self._a[0] = (reg << 1) & 0x7E
        self._b[0] = val
        cs = self._cs
        cs.value(0)
        self._spi.write(self._a)
        self._spi.write(self._b)
        cs.value(1)

    def _rd(self, reg):
        self._a[0] = 0x80 | ((reg << 1) & 0x7E)
        cs = self._cs
        cs.value(0)
        self._spi.write(self._a)
        self._spi.readinto(self._b, 0)
        cs.value(1)
        return self._b[0]

    # -- one exchange with the card ------------------------------------------------------------
    def _send(self, n, last_bits, want, now):
        self._wr(COMMAND, CMD_IDLE)
        self._wr(COM_IRQ, 0x7F)  # clear every request bit
        self._wr(FIFO_LEVEL, 0x80)  # flush
        tx = self._tx
        for i in range(n):
            self._wr(FIFO_DATA, tx[i])
        self._wr(BIT_FRAMING, last_bits)
        self._wr(COMMAND, CMD_TRANSCEIVE)
        self._wr(BIT_FRAMING, 0x80 | last_bits)  # StartSend
        self._want = want
        self._due = ticks_add(now, ANSWER_MS)

    def _receive(self, now):
        """PENDING, _GOT (rx[:rn]), _SILENT, _COLLISION or an E_* error."""
        irq = self._rd(COM_IRQ)
        if irq == 0xFF:
            return E_BUS  # MISO stuck high: no chip
        if not irq & (_RX_IRQ | _IDLE_IRQ | _TIMER_IRQ | _ERR_IRQ):
            return PENDING if ticks_diff(now, self._due) < 0 else E_TIMEOUT
        self._wr(BIT_FRAMING, 0)
        err = self._rd(ERROR)
        if err & _COLL_ERR:
            return _COLLISION
        if err & _FRAME_ERRS:
            return E_FRAME
        if not irq & _RX_IRQ:
            return _SILENT
        n = self._rd(FIFO_LEVEL) & 0x7F
        if n != self._want:
            return E_FRAME
        rx = self._rx
        for i in range(n):
            rx[i] = self._rd(FIFO_DATA)
        self._rn = n
        return _GOT

    # -- the chip driver interface -------------------------------------------------------------
    def start(self, op, now):
        self._due = now
        if op == OP_INIT:
            self._ph = _RESET
            self._wr(COMMAND, CMD_SOFT_RESET)
            self._due = ticks_add(now, RESET_MS)
        else:
            self._ph = _START
            self._level = 0
            self.uid_len = 0

    def step(self, now):
        try:
            return self._step(now)
        except OSError:
            self._ph = _IDLE
            return E_BUS

    def _step(self, now):
        ph = self._ph
        if ph == _RESET:
            if self._rd(COMMAND) & _POWER_DOWN:
                if ticks_diff(now, self._due) < 0:
                    return PENDING
                return self._end(E_TIMEOUT)
            return self._end(self._configure())
        if ph == _IDLE:
            return E_FRAME  # step() without start()
        if ph == _START:
            v = self._rd(VERSION)  # every poll: is the chip still there?
            if v != self.version:
                return self._end(E_BUS if v == 0x00 or v == 0xFF else E_VERSION)
            if self._rd(TX_CONTROL) & 0x03 != 0x03:
                # The antenna is off: the chip was reset (a brown-out) and lost its setup.
                # It would report "no card" for ever; an error makes the task set it up again.
                return self._end(E_CHIP)
            self._tx[0] = _WUPA
            self._ph = _WAKE
            self._send(1, 7, 2, now)  # a short frame: 7 bits
            return PENDING
        r = self._receive(now)
        if r == PENDING:
            return r
        if r < 0:
            return self._end(r)
        if ph == _HALT:
            return self._end(R_CARD)  # HLTA has no answer: silence is success
        if r == _COLLISION:
            self.collisions += 1  # two cards at once: neither is presented
            return self._end(R_NONE)
        if r == _SILENT:
            return self._end(R_NONE)  # no card (or it left during the exchange)
        tx = self._tx
        rx = self._rx
        if ph == _SELECT:
            more = self._sak()
            if more < 0:
                return self._end(more)
            if not more:  # UID complete: this level's 4 bytes, then HLTA
                k = 3 * self._level
                for i in range(4):
                    self.uid[k + i] = tx[2 + i]
                self.uid_len = k + 4
                tx[0] = 0x50
                tx[1] = 0x00
                crc_a(tx, 2, tx, 2)
                self._ph = _HALT
                self._send(4, 0, 0, now)
                return PENDING
            self._level += 1
        if ph == _WAKE or ph == _SELECT:  # anticollision at this cascade level
            tx[0] = _SEL[self._level]
            tx[1] = 0x20  # NVB: no UID bits known yet
            self._ph = _ANTI
            self._send(2, 0, 5, now)
            return PENDING
        # _ANTI: 4 UID bytes and their BCC -> SELECT them
        if rx[0] ^ rx[1] ^ rx[2] ^ rx[3] != rx[4]:
            return self._end(E_CHECKSUM)
        tx[1] = 0x70  # NVB: all 40 bits
        for i in range(5):
            tx[2 + i] = rx[i]
        crc_a(tx, 7, tx, 7)
        self._ph = _SELECT
        self._send(9, 0, 3, now)
        return PENDING

    def _sak(self):
        """1: the UID goes on at the next level (this level's 3 bytes kept), 0: complete,
        or an error (CRC_A of the SAK wrong, a cascade that makes no sense)."""
        rx = self._rx
        c = self._crc
        crc_a(rx, 1, c, 0)
        if c[0] != rx[1] or c[1] != rx[2]:
            return E_CHECKSUM
        if not rx[0] & _SAK_MORE:
            return 0
        tx = self._tx
        if tx[2] != _CASCADE_TAG or self._level == 2:
            return E_FRAME
        k = 3 * self._level
        for i in range(3):
            self.uid[k + i] = tx[3 + i]
        return 1

    def _end(self, r):
        self._ph = _IDLE
        return r

    def _configure(self):
        v = self._rd(VERSION)
        if v == 0x00 or v == 0xFF:
            return E_BUS
        for k in VERSIONS:
            if k == v:
                break
        else:
            return E_VERSION
        self.version = v
        self._wr(T_MODE, 0x80)  # TAuto: the timer starts at the end of each transmission
        self._wr(T_PRESCALER, 0xA9)  # 13.56 MHz / (2 * 169 + 1) = 40 kHz, 25 us a tick
        self._wr(T_RELOAD_H, 0x03)  # 1000 ticks = 25 ms without an answer: TimerIRq
        self._wr(T_RELOAD_L, 0xE8)
        self._wr(TX_ASK, 0x40)  # 100 % ASK, as type A needs
        self._wr(MODE, 0x3D)  # CRC preset 0x6363 (CRC_A)
        self._wr(TX_CONTROL, self._rd(TX_CONTROL) | 0x03)  # antenna: TX1 and TX2 on
        return R_OK
