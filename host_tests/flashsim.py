# A simulated flash filesystem for power-cut tests, on CPython and on the MicroPython unix port
# (host_tests/mpy/check_persist_cuts.py runs the same scenarios there).
#
# Every step that changes the flash (create, truncate, write, rename, remove, sync) is counted;
# SimFlash(cut_at=k) raises Cut at step k instead (a write is torn: its first half lands).
# boot(mode) then gives the filesystem the next boot finds:
#   "eager"      everything done so far reached the flash (the torn half too),
#   "data"       the directory operations reached it in order, file data only where a sync
#                came after it (a file renamed before its data was synced is empty or old),
#   "last-sync"  nothing since the last sync (the whole state as of that sync).
# fat=True: rename does not replace an existing file (FAT); persist removes the old one first.
# on(flash, modules) points the modules' `open` and `os` at the simulated flash.
import io
import sys

MODES = ("eager", "data", "last-sync")
# MicroPython's json.load and stream functions take a Python object only through io.IOBase
_Base = io.IOBase if sys.implementation.name == "micropython" else object


class Cut(Exception):
    pass


class _Node:
    def __init__(self, data=b"", synced=b""):
        self.data = bytearray(data)
        self.synced = bytes(synced)


def _enoent(p):
    return OSError(2, "ENOENT: " + p)


class SimFlash:
    def __init__(self, fat=False, cut_at=None):
        self.fat = fat
        self.cut_at = cut_at
        self.steps = 0
        self.names = {}  # path -> _Node
        self.at_sync = {}  # path -> bytes: the state as of the last sync
        self.os = _Os(self)

    def step(self):
        if self.cut_at is not None and self.steps >= self.cut_at:
            raise Cut()
        self.steps += 1

    def sync(self):
        self.step()
        self.at_sync = {}
        for p in self.names:
            n = self.names[p]
            n.synced = bytes(n.data)
            self.at_sync[p] = n.synced

    def boot(self, mode="data", fat=None, cut_at=None):
        """The filesystem after a power cut now (mode: see MODES), synced throughout."""
        b = SimFlash(self.fat if fat is None else fat, cut_at)
        if mode == "last-sync":
            src = self.at_sync
        else:
            src = {}
            for p in self.names:
                n = self.names[p]
                src[p] = n.data if mode == "eager" else n.synced
        for p in src:
            b.names[p] = _Node(src[p], src[p])
            b.at_sync[p] = bytes(src[p])
        return b

    def files(self):
        return dict((p, bytes(self.names[p].data)) for p in self.names)

    def open(self, path, mode="r"):
        n = self.names.get(path)
        if "r" in mode:
            if n is None:
                raise _enoent(path)
            pos = 0
        elif "w" in mode:
            self.step()
            if n is None:
                n = self.names[path] = _Node()
            else:
                n.data = bytearray()
            pos = 0
        elif "a" in mode:
            if n is None:
                self.step()
                n = self.names[path] = _Node()
            pos = len(n.data)
        else:
            raise ValueError("mode " + mode)
        return _File(self, n, "b" not in mode, pos)


class _Os:
    def __init__(self, flash):
        self.flash = flash

    def stat(self, p):
        n = self.flash.names.get(p)
        if n is None:
            raise _enoent(p)
        return (0o100644, 0, 0, 1, 0, 0, len(n.data), 0, 0, 0)

    def remove(self, p):
        fl = self.flash
        if p not in fl.names:
            raise _enoent(p)
        fl.step()
        del fl.names[p]

    unlink = remove

    def rename(self, a, b):
        fl = self.flash
        if a not in fl.names:
            raise _enoent(a)
        if fl.fat and b in fl.names:
            raise OSError(17, "EEXIST: " + b)
        fl.step()
        fl.names[b] = fl.names.pop(a)

    def sync(self):
        self.flash.sync()

    def listdir(self, d=""):
        return sorted(self.flash.names)


class _File(_Base):
    def __init__(self, flash, node, text, pos):
        self.flash = flash
        self.node = node
        self.text = text
        self.pos = pos
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        self.closed = True

    def flush(self):
        pass

    def seek(self, off, whence=0):
        if whence == 1:
            off += self.pos
        elif whence == 2:
            off += len(self.node.data)
        self.pos = off
        return off

    def tell(self):
        return self.pos

    def write(self, b):
        if self.closed:
            raise ValueError("closed file")
        if self.text:
            b = b.encode()
        b = bytes(b)
        d = self.node.data
        try:
            self.flash.step()
        except Cut:
            b = b[:len(b) // 2]  # torn: the first half lands
            self._put(d, b)
            raise
        self._put(d, b)
        return len(b)

    def _put(self, d, b):
        end = self.pos + len(b)
        if len(d) < self.pos:
            d.extend(bytes(self.pos - len(d)))
        d[self.pos:end] = b
        self.pos = end

    def _read(self, n):
        d = self.node.data
        end = len(d) if n is None or n < 0 else min(len(d), self.pos + n)
        b = bytes(d[self.pos:end])
        self.pos = max(self.pos, end)
        return b

    def read(self, n=-1):
        b = self._read(n)
        return b.decode() if self.text else b

    def readinto(self, buf):
        b = self._read(len(buf))
        buf[:len(b)] = b
        return len(b)

    def readline(self):
        d = self.node.data
        i = d.find(b"\n", self.pos)
        end = len(d) if i < 0 else i + 1
        b = bytes(d[self.pos:end])
        self.pos = end
        return b.decode() if self.text else b


class on:
    """`with on(flash, modules):` the modules' file operations go to flash."""

    def __init__(self, flash, modules):
        self.flash = flash
        self.modules = modules
        self.saved = []

    def __enter__(self):
        for m in self.modules:
            self.saved.append((m, getattr(m, "os", None)))
            m.open = self.flash.open
            if getattr(m, "os", None) is not None:
                m.os = self.flash.os
        return self.flash

    def __exit__(self, *a):
        import builtins

        for m, o in self.saved:
            m.open = builtins.open
            if o is not None:
                m.os = o
        self.saved = []
