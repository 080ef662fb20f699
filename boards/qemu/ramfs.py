# A filesystem in RAM for a board without flash storage (ports/qemu has only a read-only
# ROMFS): mounted at /, it takes config.json, the firmware's stores and what `make deploy`
# copies (mpremote's fs commands, imports of .mpy files, natmods). Lost at reset, as the
# emulator's RAM is. Implements MicroPython's VFS protocol (vfs.mount of a Python object);
# files are io.IOBase subclasses, so C code (import, json.load) can read them as streams.
import io

import vfs

_ENOENT = 2
_EEXIST = 17
_ENOTDIR = 20
_EISDIR = 21
_ENOTEMPTY = 39
_S_IFDIR = 0x4000
_S_IFREG = 0x8000
_STREAM_FLUSH = 1
_STREAM_SEEK = 2
_STREAM_CLOSE = 4


class RamFile(io.IOBase):
    def __init__(self, data, pos, text, writable):
        self._d = data  # the file's bytearray, shared with the filesystem
        self._pos = pos
        self._text = text
        self._w = writable

    def readinto(self, buf):
        d = self._d
        n = min(len(buf), len(d) - self._pos)
        if n > 0:
            buf[:n] = memoryview(d)[self._pos:self._pos + n]
            self._pos += n
        return max(n, 0)

    def read(self, n=-1):
        d = self._d
        end = len(d) if n is None or n < 0 else min(len(d), self._pos + n)
        out = bytes(d[self._pos:end])
        self._pos = max(self._pos, end)
        return out.decode() if self._text else out

    def readline(self):
        d = self._d
        k = d.find(b"\n", self._pos)
        end = len(d) if k < 0 else k + 1
        out = bytes(d[self._pos:end])
        self._pos = end
        return out.decode() if self._text else out

    def write(self, b):
        if not self._w:
            raise OSError(9)  # EBADF: opened for reading
        if isinstance(b, str):
            b = b.encode()
        d = self._d
        end = self._pos + len(b)
        if self._pos == len(d):
            d.extend(b)  # appending: no zero-filled copy first
        else:
            if end > len(d):
                d.extend(bytes(end - len(d)))
            d[self._pos:end] = b
        self._pos = end
        return len(b)

    def seek(self, off, whence=0):
        base = (0, self._pos, len(self._d))[whence]
        self._pos = max(0, base + off)
        return self._pos

    def tell(self):
        return self._pos

    def flush(self):
        pass

    def close(self):
        pass

    def ioctl(self, req, arg):
        if req in (_STREAM_FLUSH, _STREAM_CLOSE):
            return 0
        return -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RamFs:
    def __init__(self):
        self._files = {}  # absolute path -> bytearray
        self._dirs = {""}  # absolute paths of directories, "" = root
        self._cwd = ""

    def _abs(self, path):
        if not path.startswith("/"):
            path = self._cwd + "/" + path
        parts = []
        for p in path.split("/"):
            if p == "..":
                if parts:
                    parts.pop()
            elif p and p != ".":
                parts.append(p)
        return "/".join(parts)

    def _parent_ok(self, p):
        parent = p.rsplit("/", 1)[0] if "/" in p else ""
        if parent not in self._dirs:
            raise OSError(_ENOENT)

    # -- the VFS protocol -------------------------------------------------------------------
    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        p = self._abs(path)
        if p in self._dirs:
            raise OSError(_EISDIR)
        text = "b" not in mode
        if "r" in mode and "+" not in mode:
            if p not in self._files:
                raise OSError(_ENOENT)
            return RamFile(self._files[p], 0, text, False)
        self._parent_ok(p)
        if "w" in mode or p not in self._files:
            if "r" in mode and p not in self._files:
                raise OSError(_ENOENT)
            if "w" in mode or "a" in mode or "x" in mode:
                self._files[p] = bytearray()
        d = self._files[p]
        return RamFile(d, len(d) if "a" in mode else 0, text, True)

    def ilistdir(self, path):
        p = self._abs(path)
        if p not in self._dirs:
            raise OSError(_ENOENT if p not in self._files else _ENOTDIR)
        pre = p + "/" if p else ""
        for d in sorted(self._dirs):
            if d.startswith(pre) and d != p and "/" not in d[len(pre):]:
                yield (d[len(pre):], _S_IFDIR, 0)
        for f in sorted(self._files):
            if f.startswith(pre) and "/" not in f[len(pre):]:
                yield (f[len(pre):], _S_IFREG, 0, len(self._files[f]))

    def stat(self, path):
        p = self._abs(path)
        if p in self._dirs:
            return (_S_IFDIR, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        if p in self._files:
            return (_S_IFREG, 0, 0, 0, 0, 0, len(self._files[p]), 0, 0, 0)
        raise OSError(_ENOENT)

    def statvfs(self, path):
        import gc

        free = gc.mem_free() // 512
        used = sum(len(d) for d in self._files.values()) // 512
        return (512, 512, free + used, free, free, 0, 0, 0, 0, 255)

    def mkdir(self, path):
        p = self._abs(path)
        if p in self._dirs or p in self._files:
            raise OSError(_EEXIST)
        self._parent_ok(p)
        self._dirs.add(p)

    def rmdir(self, path):
        p = self._abs(path)
        if p not in self._dirs or not p:
            raise OSError(_ENOENT)
        pre = p + "/"
        if any(x.startswith(pre) for x in self._dirs) or any(
                x.startswith(pre) for x in self._files):
            raise OSError(_ENOTEMPTY)
        self._dirs.remove(p)

    def remove(self, path):
        p = self._abs(path)
        if p not in self._files:
            raise OSError(_ENOENT)
        del self._files[p]

    def rename(self, old, new):
        a, b = self._abs(old), self._abs(new)
        if a in self._files:
            self._parent_ok(b)
            self._files[b] = self._files.pop(a)
        elif a in self._dirs:
            raise OSError(1)  # EPERM: directories stay where they are
        else:
            raise OSError(_ENOENT)

    def chdir(self, path):
        p = self._abs(path)
        if p not in self._dirs:
            raise OSError(_ENOENT)
        self._cwd = p

    def getcwd(self):
        return "/" + self._cwd


def mount():
    """Mount a new RAM filesystem at / (once; later calls keep the one mounted)."""
    import os

    try:
        os.stat("/__ramfs__")
        return
    except OSError:
        pass
    fs = RamFs()
    vfs.mount(fs, "/")
    fs.mkdir("/__ramfs__")
    os.chdir("/")
