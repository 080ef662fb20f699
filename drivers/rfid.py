# The card reader seam. A board's reader driver (drivers/pn532.py, polled by ReaderTask
# below, or a Wiegand reader on two pin interrupts) calls present(uid) with the card's UID;
# the OCPP charge point takes it. present() stores into a small preallocated ring and sets a
# ThreadSafeFlag, so it may be called from a soft interrupt or another thread (the
# simulator's control channel). A reader that reports a card continuously while it is held
# reports it here once per presentation (ReaderTask's debounce does that for polled chips).
import asyncio


from drivers.ticks import ticks_add, ticks_diff, ticks_ms


if hasattr(asyncio, "sleep_ms"):
    _sleep_ms = asyncio.sleep_ms  # MicroPython: one preallocated generator, no allocation
else:

    def _sleep_ms(ms):
        return asyncio.sleep(ms / 1000)

_SLOTS = const(4)
MAX_LEN = const(20)  # an OCPP 1.6 idTag


class CardReader:
    def __init__(self):
        self._ring = [None] * _SLOTS
        self._head = 0
        self._tail = 0
        # CPython (host tests) has no ThreadSafeFlag; an Event answers the same set()/wait().
        self.flag = getattr(asyncio, "ThreadSafeFlag", asyncio.Event)()
        self.refused = 0
        # Why the reader cannot read cards now (its driver sets it), or None: for a status
        # report (OCPP 1.6 ChargePointErrorCode ReaderFailure on connector 0).
        self.fault = None

    def present(self, uid):
        """A card seen: uid as hex text (upper case), at most 20 characters."""
        if type(uid) is not str or not 0 < len(uid) <= MAX_LEN:
            self.refused += 1
            return False
        nxt = (self._head + 1) % _SLOTS
        if nxt == self._tail:
            self.refused += 1  # nobody is taking cards: drop the newest
            return False
        self._ring[self._head] = uid
        self._head = nxt
        self.flag.set()
        return True

    def take(self):
        """The oldest card not yet taken, or None."""
        if self._tail == self._head:
            return None
        uid = self._ring[self._tail]
        self._ring[self._tail] = None
        self._tail = (self._tail + 1) % _SLOTS
        return uid


# -- reader chips ------------------------------------------------------------------------------
# A chip driver (drivers/pn532.py) is a non-blocking state machine: start(op, now_ms) begins
# OP_INIT (find and configure the chip) or OP_POLL (look for one card); step(now_ms) returns
# PENDING while it works, then one result. uid[:uid_len] holds the card's UID after R_CARD;
# name, check_ms (the wait between two steps), version (0: not known yet), version_text().
OP_INIT = const(1)
OP_POLL = const(2)
PENDING = const(0)
R_OK = const(1)
R_NONE = const(2)  # no card in the field
R_CARD = const(3)
E_TIMEOUT = const(-1)  # no ACK or no answer in time
E_NACK = const(-2)
E_CHECKSUM = const(-3)  # LCS or DCS wrong (after one NACK for a repeat)
E_FRAME = const(-4)  # malformed or unexpected frame
E_CHIP = const(-5)  # the chip's error frame
E_BUS = const(-6)  # the bus itself failed (I2C: nobody acknowledged the address)
E_VERSION = const(-7)  # something answered that is not the configured chip
ERRORS = {E_TIMEOUT: "timeout", E_NACK: "nack", E_CHECKSUM: "checksum", E_FRAME: "bad frame",
          E_CHIP: "chip error", E_BUS: "bus error", E_VERSION: "not the configured chip"}

LOST_AFTER = const(3)  # failed exchanges in a row that make the reader lost
_HEX = b"0123456789ABCDEF"


def uid_text(uid, n):
    """The idTag for a UID: upper-case hex, two digits per byte, in the order the card sends
    them (UID0 first, as in ISO 14443-3 anticollision), no separators: 04A2B3C4D5E680."""
    out = bytearray(2 * n)
    for i in range(n):
        out[2 * i] = _HEX[uid[i] >> 4]
        out[2 * i + 1] = _HEX[uid[i] & 0x0F]
    return str(out, "ascii")


class ReaderTask:
    """Polls a chip every poll_ms and feeds `ring` (a CardReader): one presentation per card
    put on the reader; the same UID is presented again only after polls that worked saw no
    card for gone_ms in a row (a failed poll or a sighting starts that count again).
    LOST_AFTER failures in a row make the reader lost: reported once (log, event "rfid lost",
    ring.fault), then re-initialised after waits from `backoff` (next_ms(), reset()) until it
    answers ("rfid back")."""

    def __init__(self, chip, ring, backoff, poll_ms=200, gone_ms=1000, log=print,
                 events=None):
        self.chip = chip
        self.ring = ring
        self.backoff = backoff
        self.poll_ms = poll_ms
        self.gone_ms = gone_ms
        self._log = log
        self._events = events
        self.ready = False  # the chip answered the init and is being polled
        self.lost = False
        self.polls = 0
        self.errors = 0
        self.presented = 0
        self.in_row = 0  # failures in a row
        self.last_error = 0
        self.last_ms = 0  # last step, for the supervisor's beat
        self._cur = bytearray(10)  # the card on the reader now
        self._cur_len = 0
        self._empty = False  # polls that worked have seen no card since _empty_ms
        self._empty_ms = 0
        self._op = 0
        self._due = 0

    def tick(self, now):
        """One step at now_ms; returns how long to wait before the next."""
        self.last_ms = now
        chip = self.chip
        if self._op == 0:
            wait = ticks_diff(self._due, now)
            if wait > 0:
                return wait
            self._op = OP_POLL if self.ready else OP_INIT
            chip.start(self._op, now)
        r = chip.step(now)
        if r == PENDING:
            return chip.check_ms
        op = self._op
        self._op = 0
        if r < 0:
            return self._failed(r, now)
        self.in_row = 0
        if op == OP_INIT:
            self.ready = True
            self.backoff.reset()
            if self.lost:
                self.lost = False
                self.ring.fault = None
                self._report("rfid back", "%s answers again" % chip.name, now)
        elif r == R_CARD:
            self.polls += 1
            self._card(chip.uid, chip.uid_len, now)
        else:
            self.polls += 1
            if self._cur_len:
                if not self._empty:
                    self._empty = True
                    self._empty_ms = now
                elif ticks_diff(now, self._empty_ms) >= self.gone_ms:
                    self._cur_len = 0  # taken away: the next sighting is a new presentation
                    self._empty = False
        self._due = ticks_add(now, self.poll_ms)
        return self.poll_ms

    def _card(self, uid, n, now):
        cur = self._cur
        same = n == self._cur_len
        if same:
            for i in range(n):
                if cur[i] != uid[i]:
                    same = False
                    break
        self._empty = False
        if same:
            return
        for i in range(n):
            cur[i] = uid[i]
        self._cur_len = n
        self.presented += 1
        self.ring.present(uid_text(uid, n))

    def _failed(self, r, now):
        self.errors += 1
        self.in_row += 1
        self.last_error = r
        # While a card lies on the reader, a failed poll counts as seeing it: only polls that
        # worked, one after the other for gone_ms, can say it is gone, so a glitch or a lost
        # reader never turns one presentation into two.
        self._empty = False
        if self.in_row < LOST_AFTER:  # a glitch (or a chip still waking up): try again soon
            self._due = ticks_add(now, self.poll_ms)
            return self.poll_ms
        self.ready = False
        wait = self.backoff.next_ms()
        if not self.lost:
            self.lost = True
            self.ring.fault = "%s not answering" % self.chip.name
            self._report("rfid lost", "%s not answering (%s); retrying with backoff" % (
                self.chip.name, ERRORS.get(r, r)), now)
        self._due = ticks_add(now, wait)
        return wait

    def _report(self, code, text, now):
        self._log("rfid: " + text)
        if self._events is not None:
            self._events.record(now, code, self.chip.name)

    def state(self):
        return "lost" if self.lost else ("ok" if self.ready else "starting")

    def diag(self, out=print):
        chip = self.chip
        ver = " " + chip.version_text() if chip.version else ""
        out("rfid       %s%s %s  polls %d  cards %d  errors %d%s" % (
            chip.name, ver, self.state(), self.polls, self.presented, self.errors,
            " (last: %s)" % ERRORS.get(self.last_error, self.last_error)
            if self.last_error else ""))

    async def run(self):
        sleep = _sleep_ms
        while True:
            await sleep(self.tick(ticks_ms()))
