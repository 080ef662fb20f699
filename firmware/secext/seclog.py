# The security log (OCPP 1.6 security whitepaper, edition 3: security events are logged on
# the charge point; GetLog SecurityLog uploads it). Two files on flash, `seclog` (being
# written) and `seclog.1` (the one before), each at most MAX_BYTES: when a line would make
# `seclog` larger it becomes `seclog.1` (the older one dropped: rotation) and a new one
# starts, so the log keeps the newest 2 x MAX_BYTES. One line per event:
#   <crc32 of the rest, 8 hex> <time> <type> <techInfo>\n
# time: epoch seconds, or b<boot>+<uptime s> while the clock is unknown (timekeep stamps).
# A line is appended and synced before record() returns (firmware/persist.py's rule for
# stores of records: a torn or garbled line fails its CRC and is skipped when read). While
# the flash gate is closed (contactor closed on some boards) up to _HELD lines wait in RAM
# (persist.later) and the rest are counted as lost; the next line written says how many.

from firmware import persist

try:
    from binascii import crc32 as _crc32
except ImportError:  # a port built without it: the CRC-16/Modbus kernel (as the journal)
    _crc32 = None

PATH = "seclog"
OLD = "seclog.1"
MAX_BYTES = const(4096)
_HELD = const(8)
_INFO_MAX = const(255)


def _crc(s):
    if _crc32 is not None:
        return "%08x" % (_crc32(s.encode()) & 0xFFFFFFFF)
    from drivers import kernels

    return "%08x" % kernels.crc16_modbus(s.encode())


def stamp_text(st):
    if type(st) is int:
        return str(st)
    return "b%d+%d" % (st[0], st[1])


def stamp_of(text):
    """The stamp a line's time field holds (epoch int or [boot, uptime]); ValueError."""
    if text.startswith("b"):
        b, u = text[1:].split("+")
        return [int(b), int(u)]
    return int(text)


class SecurityLog:
    def __init__(self, path=PATH, old=OLD, max_bytes=MAX_BYTES):
        self.path = path
        self.old = old
        self.max_bytes = max_bytes
        self._held = []
        self.lost = 0  # lines the flash gate could not hold (said in the next line written)
        persist.recover(path)
        persist.recover(old)

    def _size(self):
        try:
            return persist.os.stat(self.path)[6]
        except OSError:
            return 0

    def record(self, stamp, kind, info=""):
        """Append one event (kind: the whitepaper's type name; info: techInfo)."""
        info = str(info).replace("\n", " ")[:_INFO_MAX]
        body = "%s %s %s" % (stamp_text(stamp), kind, info)
        line = "%s %s\n" % (_crc(body), body)
        if not persist.flash_ok():
            if len(self._held) < _HELD:
                self._held.append(line)
                persist.later(self)
            else:
                self.lost += 1
            return
        if self.lost:
            body = "%s LinesLost %d lines not logged: flash busy" % (stamp_text(stamp),
                                                                    self.lost)
            self.lost = 0
            self._write(["%s %s\n" % (_crc(body), body), line])
        else:
            self._write([line])

    def settle(self):
        held, self._held = self._held, []
        if held:
            self._write(held)

    def _write(self, lines):
        n = sum(len(x) for x in lines)
        if self._size() + n > self.max_bytes:
            persist.sync()
            persist.replace(self.path, self.old)  # rotation: the older file is dropped
            persist.sync()
        with open(self.path, "a") as f:
            for x in lines:
                f.write(x)
        persist.sync()

    def lines(self):
        """(stamp, type, techInfo) of every readable line, oldest first (a generator: one
        line in RAM at a time); lines that fail their CRC are skipped."""
        for p in (self.old, self.path):
            try:
                f = open(p)
            except OSError:
                continue
            with f:
                for line in f:
                    if not line.endswith("\n") or len(line) < 12:
                        continue
                    body = line[9:-1]
                    if line[:8] != _crc(body):
                        continue
                    parts = body.split(" ", 2)
                    try:
                        st = stamp_of(parts[0])
                    except (ValueError, IndexError):
                        continue
                    yield st, parts[1] if len(parts) > 1 else "", (
                        parts[2] if len(parts) > 2 else "")

    def clear(self):
        """Remove both files (the caller records SecurityLogWasCleared afterwards)."""
        self._held = []
        persist.remove(self.path)
        persist.remove(self.old)
        persist.sync()
