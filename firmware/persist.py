# Persistent files: one rule for every file the firmware writes (docs/safety.md, "Files on
# flash"). A value is written whole to path + ".new", flushed, synced, then renamed over the
# old file (on FAT through path + ".ok", see replace) and synced again, so a power cut at any
# instant leaves the old or the new content and a save that returned survives a cut.
# recover(path), called by every loader before it reads, settles a write cut short. Stores
# of records (the journal, the energy register) keep the same promise with checksums: a torn
# record is found and dropped at boot.
#
# The flash gate: on a board where a flash erase blinds the safety path (STM32: the flush runs
# in FLASH_IRQHandler and masks the reflex's timer) or where nothing covers a block (ESP32),
# board.flash_write_ok() is False while the contactor is closed. Then a whole-file save
# (Atomic, write_atomic, save_json, save_flag) is HELD in RAM, newest value per file (at most
# HELD_MAX bytes in all, the stores' RAM tails counted; past that FlashBusy), read back by
# read(), and written by settle() once the gate opens; stores of records hold their own tail
# (the OCPP journal) and register a writer with later(). A held value is lost by a power cut
# before the gate opens (the bounded-loss rule, docs/safety.md "Files on flash").
#
# The restart marker: the orderly restart path (firmware/restart.py) writes why it restarts;
# the next boot takes it (take_restart) and so tells a restart it chose from a power cut.
import io
import json
import os


RESTART_FILE = "restart"
# Why this boot happened, set once at boot by firmware.app.App: the marker's word
# (firmware/restart.py: ocpp-soft, ocpp-hard, supervisor, stopped, crash, ota), "watchdog"
# from the board's reset cause, or None (a power cut, a reset button: nothing chose it).
restart_reason = None

_gate = None  # the board's flash_write_ok(), or None: always allowed
# Bytes the gate may keep in RAM in all while it is closed: the held whole-file saves and the
# stores' own tails (the OCPP journal's, firmware/ocpp/jram.py) share it, so that a session on
# a 32 KB heap fits (docs/safety.md, "The flash gate").
HELD_MAX = const(4608)
_held = {}  # path -> (data, mode): saves waiting for the gate
_later = []  # stores that hold records in RAM: settle() calls their settle()


class FlashBusy(OSError):
    """A write the flash gate cannot take now and RAM cannot hold (the caller refuses)."""


def set_gate(fn):
    """The board's answer to "may the filesystem be written now?" (board.flash_write_ok:
    False while the contactor is closed on a board where a flash erase blinds the safety
    path, docs/boards.md). None: always."""
    global _gate
    _gate = fn


def flash_ok():
    """True when a write to the filesystem may erase flash now. Stores that can wait (the
    energy register's copy, the OCPP journal) ask before writing and keep the data in RAM
    meanwhile."""
    return _gate is None or _gate()


def check_flash(what):
    """Raise FlashBusy naming `what` while the gate is closed (stores that refuse rather
    than hold: the local list, the authorization cache)."""
    if not flash_ok():
        raise FlashBusy("flash busy (contactor closed): %s not written" % what)


def held_bytes():
    n = 0
    for p in _held:
        d = _held[p][0]
        n += 0 if d is None else len(d)
    return n


def ram_bytes():
    """What the gate keeps in RAM now: the held saves and the stores' tails (HELD_MAX)."""
    n = held_bytes()
    for x in _later:
        n += getattr(x, "_ram_bytes", 0)
    return n


def hold(path, data, mode="wb"):
    """Keep the whole content of path in RAM until the gate opens (the newest replaces an
    older one). FlashBusy past HELD_MAX."""
    old = _held.get(path)
    n = ram_bytes() - (len(old[0]) if old and old[0] is not None else 0) + len(data)
    if n > HELD_MAX:
        raise FlashBusy("flash busy (contactor closed): %s (%d bytes) cannot wait in RAM "
                        "(%d of %d bytes held)" % (path, len(data), n - len(data), HELD_MAX))
    _held[path] = (data, mode)


def later(store):
    """store.settle() writes what the store holds in RAM; settle() calls it once the gate
    opens."""
    for x in _later:
        if x is store:
            return
    _later.append(store)


def holding():
    return bool(_held or _later)


def settle():
    """Write what waits for the gate, if it is open: the held files, then the stores'
    writers. True when nothing waits any more. A write that fails stays held (retried)."""
    if not (_held or _later) or not flash_ok():
        return not (_held or _later)
    for p in list(_held):
        data, mode = _held.pop(p)
        if data is None:
            remove(p)
        else:
            try:
                write_atomic(p, data, mode)
            except OSError:
                _held[p] = (data, mode)
                raise
    while _later:
        _later[0].settle()
        _later.pop(0)
    return True


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def sync():
    """Push the filesystem's buffers to flash where the port can (os.sync)."""
    s = getattr(os, "sync", None)
    if s:
        s()


def remove(p):
    """Remove p if it is there (True if it was). While the gate is closed the removal is
    held like a save (read() then finds no file)."""
    if not flash_ok():
        h = _held.get(p)
        had = h[0] is not None if h is not None else exists(p)
        _held[p] = (None, "")
        return had
    _held.pop(p, None)
    try:
        os.remove(p)
        return True
    except OSError:
        return False


def replace(tmp, path):
    """Rename tmp (complete and synced) over path. Where rename cannot replace a file (FAT)
    tmp is first renamed to path + ".ok", which says it is complete, then path is removed
    and the .ok renamed: recover() finishes that after a cut at any point."""
    try:
        os.rename(tmp, path)
    except OSError:
        ok = path + ".ok"
        os.rename(tmp, ok)
        os.remove(path)
        os.rename(ok, path)


def recover(path):
    """Settle a write cut short: a .ok is complete and becomes the file (replacing it if
    the cut came before the old file was removed); a .new never is, and is dropped."""
    ok = path + ".ok"
    new = path + ".new"
    done = False
    if exists(ok):
        if exists(path):
            os.remove(path)
        os.rename(ok, path)
        done = True
    if exists(new):
        os.remove(new)
        done = True
    if done:
        sync()


class Atomic:
    """`with Atomic(path, "wb") as f: f.write(...)`: the file is path + ".new" until the
    block ends without an exception; then it is flushed, synced and renamed over path. On an
    exception the .new is removed and path is left as it was. While the flash gate is
    closed the block writes to RAM and the content is held (hold(): FlashBusy past
    HELD_MAX)."""

    def __init__(self, path, mode="wb"):
        self.path = path
        self.tmp = path + ".new"
        self.mode = mode
        self.held = not flash_ok()
        if self.held:
            self.f = io.BytesIO() if "b" in mode else io.StringIO()
        else:
            self.f = open(self.tmp, mode)

    def __enter__(self):
        return self.f

    def __exit__(self, kind, value, tb):
        f = self.f
        if self.held:
            if kind is None:
                hold(self.path, f.getvalue(), self.mode)
            return False
        if kind is not None:
            f.close()
            remove(self.tmp)
            return False
        try:
            f.flush()
        finally:
            f.close()
        sync()  # the data is on flash before the rename can make it the file
        replace(self.tmp, self.path)
        sync()  # and the rename too, before the caller goes on
        return False


def write_atomic(path, data, mode="wb"):
    with Atomic(path, mode) as f:
        f.write(data)


def read(path, mode="r"):
    """The whole content of path after recover() (a held save's while the gate is
    closed), or None if there is no such file."""
    h = _held.get(path)
    if h is not None:
        data = h[0]
        if data is None:
            return None
        if ("b" in mode) != (type(data) is not str):
            data = data.encode() if type(data) is str else bytes(data).decode()
        return data
    recover(path)
    try:
        f = open(path, mode)
    except OSError:
        return None
    with f:
        return f.read()


def save_json(path, obj):
    """Write obj as JSON atomically."""
    write_atomic(path, json.dumps(obj), "w")


def load_json(path):
    """The JSON value in path after recover(); None if there is no file. ValueError (saying
    which file) when it is not JSON."""
    try:
        text = read(path)
        if text is None:
            return None
        return json.loads(text)
    except ValueError as e:  # not JSON, or not even text
        raise ValueError("%s: not JSON (%s)" % (path, e))


def load_flag(name, default=False, bad=None):
    """A flag file ("1"/"0"): missing -> default; any other content -> bad (default if None)."""
    try:
        text = read(name)
    except ValueError:  # not text
        text = "?"
    if text is None:
        return default
    if text in ("0", "1"):
        return text == "1"
    return default if bad is None else bad


def save_flag(name, value):
    write_atomic(name, "1" if value else "0", "w")


def mark_restart(kind):
    """Write why the firmware restarts itself (the orderly restart path calls it last)."""
    write_atomic(RESTART_FILE, kind, "w")


def take_restart():
    """At boot: why the firmware restarted itself (the marker's text), or None (a power cut,
    a watchdog reset, a crash: nothing chose this restart). The marker is removed so that a
    later power cut is not taken for this restart; the value stays in `restart_reason`."""
    global restart_reason
    try:
        text = read(RESTART_FILE)
    except OSError:
        text = None
    except ValueError:  # a marker, unreadable
        text = "restart"
    if text is not None:
        remove(RESTART_FILE)
        sync()
        text = text.strip() or "restart"
    restart_reason = text
    return text
