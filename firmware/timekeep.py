# The firmware's wall clock (docs/ocpp.md, "Clock"): where the time comes from, what a record
# made before it was known carries, and which time it is sent with.
#
# Sources, best first (a worse one never overrides a better one in the same boot):
#   csms  currentTime of BootNotification.conf and Heartbeat.conf: the reference that OCPP
#         records are judged by (billing at the CSMS), taken whenever it comes;
#   ntp   the board's NTP client (board.ntp_s), asked before a connection while nothing
#         better is known - on ESP32 wss:// cannot connect without it (certificate dates);
#   rtc   the board's RTC (board.rtc) read once at boot, believed only when it is not before
#         the latest time this firmware has known (it was not reset).
# Every time taken from ntp or csms is written to the RTC, so the next boot starts right.
#
# Records (transaction messages in the journal, statuses) are stamped with stamp(): the epoch
# seconds when the time is known, else [boot, seconds since that boot's start]. A boot-relative
# stamp is turned into a wall time when it is sent (resolve): exact if that boot's clock became
# known (its offset is kept in clock.json), else a lower bound: the latest time known before
# that boot started + the seconds since it started (never later than now).
from array import array


from firmware import boardcaps, persist
from firmware.ocpp import clock
from firmware.ticks import ticks_diff, ticks_ms

STATE_FILE = "clock.json"
FLOOR_S = 1767225600  # 2026-01-01T00:00:00Z: no time before this firmware was built is true
NTP_HOST = "pool.ntp.org"
_KEEP = const(16)  # boots whose offset and floor clock.json remembers
_UNSET = -0x7FFFFFFFFFFFFFFF - 1  # a boot whose offset was never known (None in clock.json)
_RANK = {"rtc": 1, "ntp": 2, "csms": 3}
_NTP_RETRY_MS = const(60000)  # an NTP server that did not answer is asked again after this
_NTP_AGAIN_MS = const(21600000)  # ... and one that did, every 6 h while no CSMS time came
_SAVE_MS = const(3600000)  # the latest known time is saved at most hourly (flash wear)
_STEP_LOG_S = const(60)  # a step larger than this is logged and saved


def board_sources(board, host=NTP_HOST):
    """The clock sources a board offers: {"rtc", "ntp", "gate"} for TimeKeeper(**...)."""
    boardcaps.probe(board)
    ntp, rtc, wall = board.ntp_s, board.rtc, board.wall_s
    if rtc is None and wall is not None:  # a clock that is always right (test rigs)
        rtc = _Fixed(wall)
    return {"rtc": rtc,
            "ntp": (lambda: ntp(host)) if ntp is not None and host else None,
            "gate": board.blocking_ok}


def load_state(path=STATE_FILE):
    """clock.json as (latest known time, [[boot, offset or None, floor], ...]); None when
    there is none (the first boot), False when it is unreadable."""
    try:
        d = persist.load_json(path)
    except (OSError, ValueError):
        return False
    if d is None:
        return None
    try:
        last, boots = d["last"], d["boots"]
        ok = type(last) is int and type(boots) is list and all(
            type(e) is list and len(e) == 3 and type(e[0]) is int
            and type(e[2]) is int and (e[1] is None or type(e[1]) is int) for e in boots)
    except (KeyError, TypeError):
        ok = False
    return (last, boots) if ok else False


class _Fixed:
    def __init__(self, read):
        self.read_s = read

    def write_s(self, t):
        pass


class TimeKeeper:
    def __init__(self, rtc=None, ntp=None, gate=None, log=print, path=STATE_FILE,
                 now_ms=None):
        self.rtc = rtc  # .read_s() -> epoch seconds as the RTC counts, .write_s(t)
        self.ntp = ntp  # () -> epoch seconds (blocks up to ~1 s), OSError when unreachable
        self.gate = gate  # () -> False while a blocking call is not allowed (ESP32 charging)
        self.log = log
        self.path = path
        now = ticks_ms() if now_ms is None else now_ms
        self.wall = clock.Clock()  # wall time carried on ticks_ms
        self.up = clock.Clock()  # seconds since this boot started
        self.up.set(0, now)
        self.source = None  # where the time in force came from: None, "rtc", "ntp", "csms"
        self.on_step = None  # fn(step_s, source): a step past _STEP_LOG_S (a security event)
        self._off = None  # wall - uptime of this boot, once known
        # boot id, offset (_UNSET: never known), floor per boot, oldest first: 3 words of 64
        # bits each (as lists of 32-bit big ints it was 1.9 KB for 16 boots, now 0.4)
        self._boots = array("q")
        self._last = FLOOR_S  # the latest wall time known (a lower bound for the next boot)
        self._saved_ms = now
        self._ntp_ms = None  # ticks of the last NTP question
        self._ntp_said = None  # the last NTP failure logged (said once, not every retry)
        self._dirty = False  # clock.json waits for persist.flash_ok() (no erase while charging)
        self._load()
        b = self._boots
        self.boot = b[-3] + 1 if b else 1
        self.floor = self._last  # nothing in this boot happened before it
        for x in (self.boot, _UNSET, self.floor):
            b.append(x)
        if len(b) > 3 * _KEEP:
            self._boots = b[-3 * _KEEP:]
        self._save()
        if rtc is not None:
            self._from_rtc(now)

    # -- sources -------------------------------------------------------------------------
    def _from_rtc(self, now):
        try:
            t = self.rtc.read_s()
        except (OSError, ValueError) as e:
            self.log("clock: RTC unreadable: %r" % (e,))
            return
        if t is None or t < self.floor:
            self.log("clock: RTC not set (%s); time unknown until NTP or the CSMS" % (
                "unset" if t is None else clock.iso(max(0, t))))
            return
        self.set(t, "rtc", now)

    def set(self, t, source, now_ms):
        """Take the time t (epoch seconds) from `source`; False when a better source already
        set it in this boot or t is not believable (before FLOOR_S, from NTP or the RTC)."""
        t = int(t)
        if self.source is not None and _RANK[self.source] > _RANK[source]:
            return False
        if t < FLOOR_S and source != "csms":
            self.log("clock: %s time %s is before %s, ignored" % (
                source, clock.iso(max(0, t)), clock.iso(FLOOR_S)))
            return False
        step = self.wall.set(t, now_ms)
        first = self._off is None
        self._off = t - self.up.now_s(now_ms)
        self.source = source
        if first:
            self.log("clock: %s from %s" % (clock.iso(t), source))
        elif abs(step) > _STEP_LOG_S:
            self.log("clock: stepped %d s by %s" % (step, source))
            if self.on_step is not None:
                self.on_step(step, source)
        if first or abs(step) > _STEP_LOG_S or ticks_diff(
                now_ms, self._saved_ms) >= _SAVE_MS:
            self._boots[-2] = self._off
            self._last = t  # the best source now: a wrong time it corrected does not stay
            self._saved_ms = now_ms
            self._save()
        if source != "rtc" and self.rtc is not None:
            self._to_rtc(t)
        return True

    def _to_rtc(self, t):
        try:
            r = self.rtc.read_s()
            if r is None or abs(r - t) > 1:
                self.rtc.write_s(t)
        except (OSError, ValueError) as e:
            self.log("clock: RTC not written: %r" % (e,))

    def ntp_due(self, now_ms):
        """True when NTP should be asked now: no better time than the RTC's, or the last
        NTP time is 6 h old, and the last try is a minute ago."""
        if self.ntp is None or self.source == "csms":
            return False
        if self._ntp_ms is None:
            return True
        age = ticks_diff(now_ms, self._ntp_ms)
        return age >= (_NTP_AGAIN_MS if self.source == "ntp" else _NTP_RETRY_MS)

    def sync_ntp(self, now_ms=None):
        """Ask NTP if due (blocking, up to the client's timeout); True when it set the time."""
        now = ticks_ms() if now_ms is None else now_ms
        if not self.ntp_due(now):
            return False
        if self.gate is not None and not self.gate():
            return False  # no blocking call now (ESP32 while charging): asked next time
        self._ntp_ms = now
        try:
            t = self.ntp()
        except (OSError, ValueError) as e:
            why = repr(e)
            if why != self._ntp_said:
                self._ntp_said = why
                self.log("clock: NTP failed: %s" % why)
            return False
        self._ntp_said = None
        return self.set(t, "ntp", ticks_ms() if now_ms is None else now_ms)

    async def before_connect(self):
        """The OCPP link calls this before it opens a connection (TLS checks dates)."""
        self.sync_ntp()

    # -- reading the time ----------------------------------------------------------------
    @property
    def known(self):
        return self._off is not None

    def uptime_s(self, now_ms):
        return self.up.now_s(now_ms)

    def now_s(self, now_ms):
        """Epoch seconds now, or None while the time is unknown."""
        self.up.now_s(now_ms)  # keeps its anchor fresh (it must be read every few days)
        if self._dirty:
            self._save()
        return self.wall.now_s(now_ms)

    def stamp(self, now_ms):
        """What a record made now carries: epoch seconds, or [boot, uptime s] when unknown."""
        t = self.now_s(now_ms)
        return t if t is not None else [self.boot, self.up.now_s(now_ms)]

    def wall_of(self, stamp, now_ms):
        """Epoch seconds of a stamp (exact, or the lower bound when its boot's time was
        never known); ValueError for something that is not a stamp."""
        if type(stamp) is int:
            return stamp
        if type(stamp) not in (list, tuple) or len(stamp) != 2:
            raise ValueError("not a time stamp: %r" % (stamp,))
        b, u = stamp
        if b == self.boot and self._off is not None:
            return self._off + u
        floor = FLOOR_S
        h = self._boots
        for i in range(0, len(h), 3):
            if h[i] == b:
                if h[i + 1] != _UNSET:
                    return h[i + 1] + u
                floor = h[i + 2]
        t = floor + u
        now = self.now_s(now_ms)
        return t if now is None or t < now else now

    def iso(self, stamp, now_ms):
        return clock.iso(self.wall_of(stamp, now_ms))

    def iso_now(self, now_ms):
        """RFC 3339 now: the time, or this boot's lower bound while it is unknown."""
        return clock.iso(self.wall_of(self.stamp(now_ms), now_ms))

    def describe(self, now_ms):
        """One line for diag: the time and its source, or what is sent while unknown."""
        if self._off is None:
            return "unknown (boot %d: records stamped on uptime, lower bound %s)" % (
                self.boot, self.iso_now(now_ms))
        return "%s from %s (boot %d)" % (self.iso_now(now_ms), self.source, self.boot)

    def age_s(self, stamp, now_ms):
        """Seconds since stamp (statuses: MinimumStatusDuration)."""
        if type(stamp) is not int and stamp[0] == self.boot:
            return self.up.now_s(now_ms) - stamp[1]
        return self.wall_of(self.stamp(now_ms), now_ms) - self.wall_of(stamp, now_ms)

    def resolve(self, p, now_ms):
        """A copy of payload p whose stamps are RFC 3339 times: "timestamp" at the top and in
        each meterValue / transactionData entry; p itself is not changed."""
        q = dict(p)
        ts = q.get("timestamp")
        if ts is not None and type(ts) is not str:
            q["timestamp"] = self.iso(ts, now_ms)
        for k in ("meterValue", "transactionData"):
            mv = q.get(k)
            if type(mv) is list:
                q[k] = [self._mv(m, now_ms) for m in mv]
        return q

    def _mv(self, m, now_ms):
        ts = m.get("timestamp") if type(m) is dict else None
        if ts is None or type(ts) is str:
            return m
        m = dict(m)
        m["timestamp"] = self.iso(ts, now_ms)
        return m

    # -- clock.json ------------------------------------------------------------------------
    def history(self):
        """The boots kept, oldest first: [[boot id, offset or None, floor], ...]."""
        h = self._boots
        return [[h[i], None if h[i + 1] == _UNSET else h[i + 1], h[i + 2]]
                for i in range(0, len(h), 3)]

    def _load(self):
        d = load_state(self.path)
        if d is False:
            self.log("clock: %s unreadable, boot history lost" % self.path)
        elif d is not None:
            try:
                h = array("q")
                for e in d[1][-_KEEP:]:
                    for x in (e[0], _UNSET if e[1] is None else e[1], e[2]):
                        h.append(x)
            except (OverflowError, ValueError):  # a number past 64 bits: not ours
                self.log("clock: %s unreadable, boot history lost" % self.path)
                return
            self._last = max(FLOOR_S, d[0])
            self._boots = h

    def _save(self):
        """Write clock.json now if the board allows a flash write, else at the first chance
        (now_s is called every 250 ms by the OCPP task)."""
        self._dirty = not persist.flash_ok()
        if self._dirty:
            return
        try:
            persist.save_json(self.path, {"last": self._last, "boots": self.history()})
        except OSError as e:
            self.log("clock: %s not saved: %r" % (self.path, e))
