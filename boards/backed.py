# A storage backend for firmware/meters/energy.py's EnergyStore (its `fs`: read(path, buf),
# write(path, buf)) that keeps the running register where a write costs no flash erase: a
# few 32-bit words the board provides (STM32: RTC backup registers on VBAT; ESP32: RTC slow
# memory) - and copies it to the filesystem only while the board allows flash writes
# (board.flash_write_ok(): not while the contactor is closed), at most once per COPY_MS
# unless a session ended since the last copy. At boot the words win when they hold a valid
# record (the newer one); after a loss of the words (VBAT or power cut) the flash copy does.
# Flash wear: each copy rewrites one 16-byte slot file (the newest record): at most one per
# session end spaced >= MIN_COPY_MS (6 h), else one per COPY_MS (a day): <= 4 a day, against
# one every 10 Wh (~2000 per 20 kWh) when the register lived in a file.

from firmware.meters import energy

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython host tests pass their own clock
    ticks_ms = None

    def ticks_diff(a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000

WORDS_PER_SLOT = const(4)  # one 16-byte record
COPY_MS = const(86400000)  # a register that keeps counting without sessions: once a day
MIN_COPY_MS = const(21600000)  # session-end copies at most every 6 h


class Mem32Words:
    """`n` 32-bit words at `addr` read and written through machine.mem32 (STM32 RTC->BKPxR:
    no erase, kept by VBAT)."""

    def __init__(self, mem32, addr, n):
        self._mem = mem32
        self._addr = addr
        self.n = n

    def __getitem__(self, k):
        return self._mem[self._addr + 4 * k] & 0xFFFFFFFF

    def __setitem__(self, k, v):
        self._mem[self._addr + 4 * k] = v


class RtcWords:
    """`n` 32-bit words in the ESP32's RTC slow memory (machine.RTC().memory(): kept through
    a reset, a watchdog reset and deep sleep; lost on a power cut). Every write stores the
    whole block (the port's API)."""

    def __init__(self, n, rtc=None):
        if rtc is None:
            from machine import RTC

            rtc = RTC()
        self._rtc = rtc
        self.n = n
        old = rtc.memory()
        self._buf = bytearray(4 * n)
        k = min(len(old), 4 * n)
        self._buf[:k] = old[:k]

    def __getitem__(self, k):
        b = self._buf
        o = 4 * k
        return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)

    def __setitem__(self, k, v):
        b = self._buf
        o = 4 * k
        for i in range(4):
            b[o + i] = (v >> (8 * i)) & 0xFF
        self._rtc.memory(b)


class BackedEnergy:
    """`words`: indexable u32 words (>= slots x 4 from `first`); `flash_ok()`: may the
    filesystem be written now; `files`: the flash backend (energy.Files())."""

    def __init__(self, words, first, flash_ok, files=None, clock=None, slots=2):
        if first + slots * WORDS_PER_SLOT > words.n:
            raise ValueError("backup words %d..%d do not exist (only %d)" % (
                first, first + slots * WORDS_PER_SLOT - 1, words.n))
        self._w = words
        self._first = first
        self._ok = flash_ok
        self._files = files if files is not None else energy.Files()
        self._clock = clock if clock is not None else ticks_ms
        self._last_copy = None  # ticks of the last flash copy
        self._held = False  # written while flash was not allowed (a session): copy when open
        self.copies = 0
        self.deferred = 0  # writes that stayed in the words only
        self._pending = None  # (path, record) newest record not yet copied

    def _slot(self, path):
        return self._first + WORDS_PER_SLOT * int(path[path.rindex(".") + 1:])

    def read(self, path, buf):
        base = self._slot(path)
        w = self._w
        for k in range(WORDS_PER_SLOT):
            v = w[base + k]
            for b in range(4):
                buf[4 * k + b] = (v >> (8 * b)) & 0xFF
        if energy.unpack(buf, energy.REC_LEN) is not None:
            return energy.REC_LEN
        return self._files.read(path, buf)

    def write(self, path, buf):
        base = self._slot(path)
        w = self._w
        for k in range(WORDS_PER_SLOT):
            o = 4 * k
            w[base + k] = buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | (buf[o + 3] << 24)
        self._pending = (path, bytes(buf))
        if not self._ok():
            self._held = True
            self.deferred += 1
            return
        now = self._clock()
        last = self._last_copy
        due = last is None or ticks_diff(now, last) >= COPY_MS or (
            self._held and ticks_diff(now, last) >= MIN_COPY_MS)
        if due:
            self.copy(now)

    def copy(self, now=None):
        """Write the newest record not yet on flash (if flash writes are allowed now); load
        takes the newest valid record of words and files, so one slot file is enough."""
        if not self._ok():
            return False
        if self._pending is not None:
            self._files.write(self._pending[0], self._pending[1])
            self._pending = None
        self._held = False
        self._last_copy = self._clock() if now is None else now
        self.copies += 1
        return True
