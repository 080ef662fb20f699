# NXP PN532 NFC reader (user manual UM0701-02, firmware V1.6) over I2C or HSU (UART), as a
# reader of ISO 14443A card UIDs (MIFARE Classic/Ultralight/DESFire, NTAG).
#
# Host protocol (UM0701-02 section 6.2): every command is an information frame
#   00 00 FF LEN LCS D4 CMD data.. DCS 00   (LEN counts D4..data; LEN+LCS = 0, sum+DCS = 0)
# the PN532 acknowledges it with the ACK frame 00 00 FF 00 FF 00, then answers with a frame
# whose TFI is D5 and whose first byte is CMD + 1. A host may send NACK (00 00 FF FF 00 00)
# to have the last answer sent again, and ACK to abort the running command. A well-formed
# frame the firmware cannot run is acknowledged and answered with the error frame
# 00 00 FF 01 FF 7F 81 00.
#
# The driver is a state machine with no asyncio in it: start(op) begins a transaction and
# step(now_ms) advances it without blocking (PENDING while the chip works), so the reader
# task (drivers/rfid.py ReaderTask) calls it between asyncio sleeps. Every frame is built once
# in the constructor and received into preallocated buffers (readinto / readfrom_into into
# fixed memoryviews): a poll allocates nothing.

from drivers.rfid import (
    E_BUS, E_CHECKSUM, E_CHIP, E_FRAME, E_NACK, E_TIMEOUT, E_VERSION, OP_INIT, PENDING,
    R_CARD, R_NONE, R_OK)

from drivers.ticks import ticks_add, ticks_diff


I2C_ADDR = const(0x24)  # 7-bit address (0x48 write, 0x49 read)
HSU_BAUD = const(115200)  # the HSU's rate after power-up
IC_PN532 = const(0x32)  # GetFirmwareVersion's IC byte

_TFI_HOST = const(0xD4)
_TFI_CHIP = const(0xD5)
_APP_ERROR = const(0x7F)
_CMD_VERSION = const(0x02)
_CMD_SAM = const(0x14)
_CMD_RFCONFIG = const(0x32)
_CMD_PARAMS = const(0x12)
# SetParameters flags: only fAutomaticATR_RES (bit 2). fAutomaticRATS (bit 4, set after
# reset) would have InListPassiveTarget send RATS to every ISO 14443-4 card (DESFire, bank
# cards) and append its ATS (up to ~20 bytes, more for some) to the answer; the UID needs
# none of it, and without it the longest answer is 18 bytes (a 10-byte UID).
_PARAM_FLAGS = const(0x04)
_CMD_LIST = const(0x4A)
# RFConfiguration item 5 (MaxRetries): MxRtyATR, MxRtyPSL, MxRtyPassiveActivation. The last
# is 0xFF after reset: InListPassiveTarget then waits for a card for ever. A finite count
# makes it answer "no target" after a few activation attempts (~tens of ms).
_CFG_RETRIES = const(0x05)
_PASSIVE_RETRIES = const(0x02)

ACK_MS = const(30)  # ACK after a command (the PN532 sends it within a few ms)
ANSWER_MS = const(250)  # answer to the commands used here, MaxRetries above included
CHECK_MS = const(4)  # the reader task's wait between two looks at the link
_WAKE_MS = const(2)  # HSU: quiet time after the wake-up pulse before the first command
_MAX_DATA = const(24)  # TFI + answer we accept: a 10-byte UID's needs 18 (no ATS, above)
_HSU_CHUNK = const(24)

# parser results (feed)
_MORE = const(0)
_GOT_ACK = const(1)
_GOT_NACK = const(2)
_GOT_FRAME = const(3)
_GOT_APP_ERROR = const(4)
_BAD_LCS = const(5)
_BAD_DCS = const(6)
_BAD_FRAME = const(7)

# parser states
_HUNT = const(0)
_LEN = const(1)
_LCS = const(2)
_DATA = const(3)
_DCS = const(4)
_DONE = const(5)

# transaction phases
_IDLE = const(0)
_SEND = const(1)
_WAIT_ACK = const(2)
_WAIT_ANSWER = const(3)

ACK_FRAME = b"\x00\x00\xff\x00\xff\x00"
NACK_FRAME = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
# HSU wake-up from power-down / LowVbat: 0x55 pulses, then a long preamble (UM0701-02 7.2.11).
_HSU_WAKE = b"\x55\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"


def host_frame(data):
    """The information frame carrying `data` (command code first) from host to PN532."""
    n = len(data) + 1
    if n > 254:
        raise ValueError("pn532: frame data of %d bytes needs an extended frame" % n)
    out = bytearray(n + 7)
    out[2] = 0xFF
    out[3] = n
    out[4] = (256 - n) & 0xFF
    out[5] = _TFI_HOST
    s = _TFI_HOST
    for i in range(len(data)):
        out[6 + i] = data[i]
        s += data[i]
    out[n + 5] = (256 - s) & 0xFF
    return out


class FrameParser:
    """Byte-by-byte reader of PN532 frames into a preallocated buffer: feed(b) says when an
    ACK, a NACK, an error frame or an information frame (in .data[:.n]) is complete, or what
    was wrong with it. Bytes before a start code (preamble, I2C padding) are skipped."""

    def __init__(self):
        self.data = bytearray(_MAX_DATA)
        self.n = 0
        self.reset()

    def reset(self):
        self._st = _HUNT
        self._prev = 0xAA
        self._len = 0
        self._sum = 0
        self.n = 0

    def feed(self, b):
        st = self._st
        if st == _HUNT:
            if b == 0xFF and self._prev == 0x00:
                self._st = _LEN
            self._prev = b
            return _MORE
        if st == _LEN:
            self._len = b
            self._st = _LCS
            return _MORE
        if st == _LCS:
            n = self._len
            self._st = _DONE
            if n == 0x00 and b == 0xFF:
                return _GOT_ACK
            if n == 0xFF and b == 0x00:
                return _GOT_NACK
            if (n + b) & 0xFF:
                return _BAD_LCS  # includes the extended frame (FF FF): never asked for here
            if n == 0 or n > _MAX_DATA:
                return _BAD_FRAME
            self._st = _DATA
            self._sum = 0
            self.n = 0
            return _MORE
        if st == _DATA:
            self.data[self.n] = b
            self.n += 1
            self._sum += b
            if self.n == self._len:
                self._st = _DCS
            return _MORE
        if st == _DCS:
            self._st = _DONE
            if (self._sum + b) & 0xFF:
                return _BAD_DCS
            if self.n == 1 and self.data[0] == _APP_ERROR:
                return _GOT_APP_ERROR
            return _GOT_FRAME
        return _MORE  # _DONE: the rest (postamble, padding) is ignored until reset()


class I2cLink:
    """The PN532 on an I2C bus (machine.I2C, 100-400 kHz). Each read starts with the status
    byte (bit 0: an ACK or answer is ready); the frame follows it."""

    def __init__(self, i2c, addr=I2C_ADDR):
        self._i2c = i2c
        self._addr = addr
        buf = bytearray(1 + _MAX_DATA + 8)
        mv = memoryview(buf)
        self._buf = buf
        self._status = mv[:1]
        self._ack = mv[:1 + len(ACK_FRAME)]
        self._full = mv

    def wake(self):
        pass  # the address match wakes a PN532 from LowVbat on I2C

    def send(self, frame):
        self._i2c.writeto(self._addr, frame)

    def discard(self):
        pass  # an I2C read is a whole frame: nothing to drain

    def receive(self, parser, ack):
        """Feed what the chip has ready into parser: its result, or _MORE (nothing yet)."""
        i2c = self._i2c
        i2c.readfrom_into(self._addr, self._status)
        buf = self._buf
        if not buf[0] & 1:
            return _MORE
        view = self._ack if ack else self._full
        i2c.readfrom_into(self._addr, view)
        for i in range(1, len(view)):
            r = parser.feed(buf[i])
            if r != _MORE:
                return r
        return _BAD_FRAME  # ready, but no whole frame in the read


class UartLink:
    """The PN532 in HSU mode on a UART (115200 8N1). The bytes come as a stream: an ACK and
    the answer may arrive in one read, so a chunk is consumed across receive() calls."""

    def __init__(self, uart):
        self._uart = uart
        self._buf = bytearray(_HSU_CHUNK)
        self._pos = 0
        self._n = 0

    def wake(self):
        self._uart.write(_HSU_WAKE)

    def send(self, frame):
        self._uart.write(frame)

    def discard(self):
        """Drop stale bytes (an answer to an aborted command)."""
        u = self._uart
        while u.any():
            u.readinto(self._buf, _HSU_CHUNK)
        self._pos = self._n = 0

    def receive(self, parser, ack):
        buf = self._buf
        while True:
            while self._pos < self._n:
                b = buf[self._pos]
                self._pos += 1
                r = parser.feed(b)
                if r != _MORE:
                    return r
            n = self._uart.any()
            if not n:
                return _MORE
            self._n = self._uart.readinto(buf, min(n, _HSU_CHUNK)) or 0
            self._pos = 0


class Pn532:
    """The reader chip: start(OP_INIT) checks the firmware version and configures it
    (SAMConfiguration normal mode, finite passive-activation retries, no automatic RATS);
    start(OP_POLL) lists
    one ISO 14443A target. step(now_ms) -> PENDING, R_OK, R_CARD (uid[:uid_len]), R_NONE or
    an E_* error (drivers/rfid.py)."""

    name = "pn532"
    check_ms = CHECK_MS

    def __init__(self, link, wake=False):
        self.link = link
        self._wake_first = wake  # HSU: the first command after power-up needs the wake-up
        self.parser = FrameParser()
        self.uid = bytearray(10)
        self.uid_len = 0
        self.version = 0  # firmware version and revision (0x0106 for V1.6) once known
        self.nacks_sent = 0
        self.aborts_sent = 0
        self._init = (
            host_frame(bytes((_CMD_VERSION,))),
            host_frame(bytes((_CMD_SAM, 0x01, 0x14, 0x01))),  # normal mode, 1 s, IRQ used
            host_frame(bytes((_CMD_RFCONFIG, _CFG_RETRIES, 0xFF, 0x01, _PASSIVE_RETRIES))),
            host_frame(bytes((_CMD_PARAMS, _PARAM_FLAGS))),
        )
        self._poll = (host_frame(bytes((_CMD_LIST, 0x01, 0x00))),)  # 1 target, 106 kbps A
        self._seq = self._poll
        self._idx = 0
        self._phase = _IDLE
        self._due = 0
        self._nacked = False

    def version_text(self):
        return "v%d.%d" % (self.version >> 8, self.version & 0xFF)

    def start(self, op, now):
        self._seq = self._init if op == OP_INIT else self._poll
        self._idx = 0
        self._phase = _SEND
        self._due = now
        if op == OP_INIT and self._wake_first:
            self.link.wake()
            self._due = ticks_add(now, _WAKE_MS)

    def step(self, now):
        try:
            return self._step(now)
        except OSError:  # I2C: no device acknowledged the address (ENODEV/EIO/ETIMEDOUT)
            self._phase = _IDLE
            return E_BUS

    def _step(self, now):
        ph = self._phase
        link = self.link
        if ph == _SEND:
            if ticks_diff(now, self._due) < 0:
                return PENDING
            link.discard()
            self.parser.reset()
            link.send(self._seq[self._idx])
            self._phase = _WAIT_ACK
            self._nacked = False
            self._due = ticks_add(now, ACK_MS)
            return PENDING
        if ph == _IDLE:
            return E_FRAME  # step() without start()
        got = link.receive(self.parser, ph == _WAIT_ACK)
        if got == _MORE:
            if ticks_diff(now, self._due) < 0:
                return PENDING
            if ph == _WAIT_ANSWER:
                link.send(ACK_FRAME)  # abort the command: the chip is free for the next
                self.aborts_sent += 1
            self._phase = _IDLE
            return E_TIMEOUT
        if ph == _WAIT_ACK:
            if got == _GOT_ACK:
                self._phase = _WAIT_ANSWER
                self.parser.reset()
                self._due = ticks_add(now, ANSWER_MS)
                return PENDING
            self._phase = _IDLE
            if got == _GOT_NACK:
                return E_NACK
            if got == _BAD_LCS:
                return E_CHECKSUM
            return E_FRAME  # an answer without its ACK: out of step
        # waiting for the answer
        if got == _BAD_DCS or got == _BAD_LCS:
            if not self._nacked:
                # UM0701-02 6.2.1.3: a NACK has the PN532 send its last answer again.
                self._nacked = True
                self.nacks_sent += 1
                self.parser.reset()
                link.discard()
                link.send(NACK_FRAME)
                self._due = ticks_add(now, ACK_MS)
                return PENDING
            self._phase = _IDLE
            return E_CHECKSUM
        self._phase = _IDLE
        if got == _GOT_APP_ERROR:
            return E_CHIP
        if got != _GOT_FRAME:
            return E_NACK if got == _GOT_NACK else E_FRAME
        r = self._answer(self._seq[self._idx][6])
        if r != R_OK or self._idx + 1 == len(self._seq):
            return r
        self._idx += 1
        self._phase = _SEND
        self._due = now
        return self._step(now)

    def _answer(self, cmd):
        p = self.parser
        d = p.data
        n = p.n
        if n < 2 or d[0] != _TFI_CHIP or d[1] != cmd + 1:
            return E_FRAME
        if cmd == _CMD_VERSION:
            if n < 6:
                return E_FRAME
            if d[2] != IC_PN532:
                return E_VERSION
            self.version = (d[3] << 8) | d[4]
            return R_OK
        if cmd != _CMD_LIST:
            return R_OK
        # D5 4B NbTg [Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1.. (ATS)]
        if n < 3 or d[2] > 1:
            return E_FRAME
        if d[2] == 0:
            return R_NONE
        if n < 8:
            return E_FRAME
        k = d[7]
        if (k != 4 and k != 7 and k != 10) or n < 8 + k:
            return E_FRAME
        uid = self.uid
        for i in range(k):
            uid[i] = d[8 + i]
        self.uid_len = k
        return R_CARD
