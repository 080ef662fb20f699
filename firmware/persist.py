# Atomic files. A value is written to path + ".new", flushed, then renamed over the old file,
# so a power cut leaves either the old or the new content; recover() settles a write cut
# short at boot. Used by the lockout flag and every OCPP store (journal compaction, keys,
# local list, profiles, availability, the open transaction).
import json
import os

_gate = None  # the board's flash_write_ok(), or None: always allowed


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


def replace(tmp, path):
    """Rename tmp over path; where rename cannot replace (FAT) remove path first."""
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)
        os.rename(tmp, path)


def recover(path):
    """A write cut short: with the old file still there the .new is dropped; without it (FAT
    order: the old file was removed first) the .new is the file."""
    new = path + ".new"
    if exists(new):
        if exists(path):
            os.remove(new)
        else:
            os.rename(new, path)


def save_json(path, obj):
    """Write obj as JSON atomically."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(json.dumps(obj))
        f.flush()
    replace(tmp, path)
    sync()


def load_flag(name, default=False):
    try:
        with open(name) as f:
            return f.read(1) == "1"
    except OSError:
        return default


def save_flag(name, value):
    tmp = name + ".new"
    with open(tmp, "w") as f:
        f.write("1" if value else "0")
    replace(tmp, name)
