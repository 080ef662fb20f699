# A fake NXP PN532 that speaks the chip's host protocol (UM0701-02 section 6.2) on the two
# links the driver uses: as a machine.I2C (writeto / readfrom_into, a status byte before every
# read) or as a machine.UART in HSU mode (write / any / readinto, one byte stream, asleep
# until the 0x55 wake-up). Runs on CPython and on the MicroPython unix port; once built it
# allocates nothing, so the driver's polling can be checked with the heap locked.
#
# It checks what the host sends as the chip does: start code, LEN/LCS, TFI D4, DCS (a bad
# frame is ignored: no ACK). A good frame gets the ACK frame, then the answer:
#   02 GetFirmwareVersion -> D5 03 IC Ver Rev Support (IC 0x32, V1.6)
#   14 SAMConfiguration    -> D5 15 (leaves LowVbat; InListPassiveTarget before it: error)
#   12 SetParameters       -> D5 13 (bit 4 fAutomaticRATS: a card's ATS after its UID)
#   32 RFConfiguration     -> D5 33 (item 5 sets MxRtyPassiveActivation; 0xFF, the reset
#                             value, makes InListPassiveTarget wait for a card for ever)
#   4A InListPassiveTarget -> D5 4B 00, or D5 4B 01 01 SENS_RES SEL_RES len UID
#   anything else          -> the error frame 00 00 FF 01 FF 7F 81 00
# Host ACK aborts the command in progress; host NACK repeats the last answer.
# Faults, each a count of the next commands it hits: nack (a NACK instead of the ACK),
# error (the error frame instead of the answer), mute (ACK, then no answer), bad_dcs / bad_lcs
# (the answer's checksum corrupted; a repeat after NACK is right unless the count is still
# > 0), deaf (nothing at all). `gone` makes the chip vanish: I2C raises OSError (ENODEV) as
# the port does when no device acknowledges the address; HSU stays silent.
_QMAX = 128


class FakePn532:
    def __init__(self, mode="i2c", ic=0x32):
        self.mode = mode
        self.ic = ic
        self.asleep = mode == "hsu"
        self.sam = False
        self.passive_retries = 0xFF
        self.params = 0x14  # SetParameters flags after reset: fAutomaticATR_RES, ...RATS
        self.ats = None
        self.uid = bytearray(10)
        self.uid_len = 0  # no card
        self.delay = 0  # looks (status reads / any() calls) before an answer shows
        self.nack = self.error = self.mute = self.bad_dcs = self.bad_lcs = self.deaf = 0
        self.gone = False
        self.seen = [0] * 256  # commands received, by code
        self.acks = 0  # host ACKs (aborts)
        self.nacks = 0  # host NACKs (repeats)
        self.bad_frames = 0  # host frames ignored for a bad start, LCS, TFI or DCS
        self._q = bytearray(_QMAX)  # frames to send, back to back
        self._fl = [0, 0, 0, 0]  # their lengths
        self._fd = [0, 0, 0, 0]  # looks before each shows
        self._nf = 0
        self._qn = 0
        self._rpos = 0  # bytes of frame 0 already read (HSU)
        self._last = bytearray(64)  # the last answer, for a NACK
        self._last_n = 0
        self._f = bytearray(64)  # the answer being built
        self._fn = 0
        self._sum = 0
        self._waiting = False  # InListPassiveTarget waiting for a card (no finite retries)

    # -- the card ------------------------------------------------------------------------------
    def put_card(self, uid, ats=None):
        """A card in the field; `ats`: its ATS (an ISO 14443-4 card), sent after the UID
        while fAutomaticRATS is set (as after reset)."""
        for i in range(len(uid)):
            self.uid[i] = uid[i]
        self.uid_len = len(uid)
        self.ats = ats

    def take_card(self):
        self.uid_len = 0

    def power_cycle(self):
        """Power back on (after `gone`): asleep (HSU), not configured, faults cleared."""
        self.gone = False
        self.nack = self.error = self.mute = self.bad_dcs = self.bad_lcs = self.deaf = 0
        self.asleep = self.mode == "hsu"
        self.sam = False
        self.passive_retries = 0xFF
        self.params = 0x14
        self._clear()
        self._last_n = 0

    # -- machine.I2C ---------------------------------------------------------------------------
    def writeto(self, addr, buf):
        if self.gone or addr != 0x24:
            raise OSError(19)
        self._host(buf, len(buf))
        return len(buf)

    def readfrom_into(self, addr, buf):
        if self.gone or addr != 0x24:
            raise OSError(19)
        ready = self._look()
        buf[0] = 1 if ready else 0
        n = len(buf)
        if n == 1:
            return
        i = 1
        if ready:
            k = self._fl[0]
            q = self._q
            while i < n and i - 1 < k:
                buf[i] = q[i - 1]
                i += 1
            self._pop()
        while i < n:
            buf[i] = 0
            i += 1

    # -- machine.UART --------------------------------------------------------------------------
    def write(self, buf):
        self._host(buf, len(buf))
        return len(buf)

    def any(self):
        if not self._look():
            return 0
        n = 0
        for j in range(self._nf):
            if self._fd[j]:
                break
            n += self._fl[j]
        return n - self._rpos

    def readinto(self, buf, nbytes=-1):
        n = len(buf) if nbytes < 0 else nbytes
        got = 0
        q = self._q
        while got < n and self._nf and self._fd[0] == 0:
            buf[got] = q[self._rpos]
            got += 1
            self._rpos += 1
            if self._rpos == self._fl[0]:
                self._pop()
        return got

    # -- inside -------------------------------------------------------------------------------
    def _look(self):
        """One look at the link: the front frame's delay counts down; True if it shows."""
        if not self._nf:
            return False
        if self._fd[0]:
            self._fd[0] -= 1
            return False
        return True

    def _pop(self):
        k = self._fl[0]
        q = self._q
        for i in range(self._qn - k):
            q[i] = q[i + k]
        self._qn -= k
        for j in range(self._nf - 1):
            self._fl[j] = self._fl[j + 1]
            self._fd[j] = self._fd[j + 1]
        self._nf -= 1
        self._rpos = 0

    def _queue(self, src, n, delay):
        if self._nf == 4 or self._qn + n > _QMAX:
            return  # overrun: dropped, as a full chip buffer would
        q = self._q
        for i in range(n):
            q[self._qn + i] = src[i]
        self._qn += n
        self._fl[self._nf] = n
        self._fd[self._nf] = delay
        self._nf += 1

    def _clear(self):
        self._nf = self._qn = self._rpos = 0

    def _host(self, buf, n):
        i = 0
        if self.asleep:
            while i < n and buf[i] != 0x55:
                i += 1
            if i == n:
                return  # asleep: only the wake-up pulse reaches the chip
            self.asleep = False
        while i < n and buf[i] in (0x55, 0x00):
            i += 1
        # i is just past the preamble: expect FF (the 00 before it was skipped)
        if i >= n or buf[i] != 0xFF or i == 0 or buf[i - 1] != 0x00:
            if i < n:
                self.bad_frames += 1
            return
        if i + 2 >= n:
            self.bad_frames += 1
            return
        ln = buf[i + 1]
        lcs = buf[i + 2]
        if ln == 0x00 and lcs == 0xFF:
            self.acks += 1
            self._clear()
            self._waiting = False
            return
        if ln == 0xFF and lcs == 0x00:
            self.nacks += 1
            self._clear()
            n = self._last_n
            if n:
                for k in range(n):
                    self._f[k] = self._last[k]
                self._send(n)
            return
        d = i + 3
        if (ln + lcs) & 0xFF or ln < 2 or d + ln >= n or buf[d] != 0xD4:
            self.bad_frames += 1
            return
        s = 0
        for k in range(ln + 1):
            s += buf[d + k]
        if s & 0xFF:
            self.bad_frames += 1
            return
        if self.deaf:
            self.deaf -= 1
            return
        self._clear()
        self._waiting = False
        cmd = buf[d + 1]
        self.seen[cmd] += 1
        if self.nack:
            self.nack -= 1
            self._queue(b"\x00\x00\xff\xff\x00\x00", 6, 0)
            return
        self._queue(b"\x00\x00\xff\x00\xff\x00", 6, 0)
        if self.mute:
            self.mute -= 1
            return
        if self.error:
            self.error -= 1
            self._answer_error()
            return
        self._command(cmd, buf, d + 2, d + ln)

    def _command(self, cmd, buf, a, end):
        if cmd == 0x02:
            self._begin(0x03)
            self._put(self.ic)
            self._put(0x01)
            self._put(0x06)
            self._put(0x07)
        elif cmd == 0x14 and end - a >= 1 and buf[a] == 0x01:
            self.sam = True
            self._begin(0x15)
        elif cmd == 0x12 and end - a >= 1:
            self.params = buf[a]
            self._begin(0x13)
        elif cmd == 0x32 and end - a >= 1:
            if buf[a] == 0x05 and end - a >= 4:
                self.passive_retries = buf[a + 3]
            self._begin(0x33)
        elif cmd == 0x4A and self.sam and end - a >= 2 and buf[a] in (1, 2) and buf[a + 1] == 0:
            if not self.uid_len:
                if self.passive_retries == 0xFF:
                    self._waiting = True  # the chip waits for a card; only ACK aborts it
                    return
                self._begin(0x4B)
                self._put(0)
            else:
                k = self.uid_len
                self._begin(0x4B)
                self._put(1)  # NbTg
                self._put(1)  # Tg
                self._put(0x00)
                self._put(0x44 if k == 7 else (0x04 if k == 4 else 0x84))  # SENS_RES
                ats = self.ats if self.params & 0x10 else None
                # SEL_RES: MIFARE Classic 1K / NTAG, 0x20 an ISO 14443-4 card
                self._put(0x20 if self.ats else (0x08 if k == 4 else 0x00))
                self._put(k)
                for j in range(k):
                    self._put(self.uid[j])
                if ats:
                    self._put(len(ats) + 1)  # TL counts itself
                    for j in range(len(ats)):
                        self._put(ats[j])
        else:
            self._answer_error()
            return
        self._end()

    def _answer_error(self):
        self._queue(b"\x00\x00\xff\x01\xff\x7f\x81\x00", 8, self.delay)

    def _begin(self, code):
        f = self._f
        f[0] = 0x00
        f[1] = 0x00
        f[2] = 0xFF
        f[5] = 0xD5
        f[6] = code
        self._fn = 7
        self._sum = 0xD5 + code

    def _put(self, b):
        self._f[self._fn] = b
        self._fn += 1
        self._sum += b

    def _end(self):
        f = self._f
        n = self._fn
        ln = n - 5
        f[3] = ln
        f[4] = (256 - ln) & 0xFF
        f[n] = (256 - self._sum) & 0xFF
        f[n + 1] = 0x00
        n += 2
        last = self._last
        for i in range(n):
            last[i] = f[i]
        self._last_n = n
        self._send(n)

    def _send(self, n):
        """Queue the answer in _f[:n], corrupted if a fault says so."""
        f = self._f
        if self.bad_dcs:
            self.bad_dcs -= 1
            f[n - 2] ^= 0x5A
        if self.bad_lcs:
            self.bad_lcs -= 1
            f[4] ^= 0x01
        self._queue(f, n, self.delay)
