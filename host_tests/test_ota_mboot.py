"""The STM32 image update's firmware side (firmware/ota/mboot.py) against a fake mboot written
from MicroPython's ports/stm32/mboot (README.md's element layout, main.c's handling of the
elements and the status word, fsload.c's two passes: the whole .dfu.gz checked, gunzip, DfuSe
header and CRC, before anything is programmed). Untested without a board: the real mboot, the
RTC backup register as the status word across its reset, the flash addresses."""
import gzip
import struct
import sys
import types
import zlib

import pytest

from firmware.ota import mboot

FS = {"type": "fat", "base": 0x08020000, "len": 0x60000, "status": 0x40002854}


def dfu(payload):
    """A DfuSe file's bytes as mboot checks them: the "DfuSe\\x01" prefix, and a suffix whose
    last 4 bytes make the CRC over the whole file come out 0 (fsload.c)."""
    body = b"DfuSe\x01" + payload + b"\xff\xff\xff\xff\xff\xff\x1a\x01UFD\x10"
    crc = zlib.crc32(body) ^ 0xFFFFFFFF  # uzlib_crc32: no final inversion
    return body + struct.pack("<L", crc)


class FakeBoard:
    """machine.mem32 / mem8, machine.bootloader() handing the elements to a fake mboot, and the
    flash's application image."""

    def __init__(self, files, mboot_version="mboot-v1.3.0"):
        self.files = files  # the filesystem mboot mounts: name -> bytes
        self.words = {}
        self.app = b"old image"
        self.resets = 0
        ver = mboot_version.encode() if mboot_version else b""
        self.flash = dict((0x08008000 - 64 + i, c) for i, c in enumerate(ver))
        board = self

        class Mem:
            def __init__(self, d, default):
                self.d, self.default = d, default

            def __getitem__(self, a):
                return self.d.get(a, self.default)

            def __setitem__(self, a, v):
                self.d[a] = v & 0xFFFFFFFF

        self.mem32 = Mem(self.words, 0)
        self.mem8 = Mem(self.flash, 0xFF)
        self.machine = types.SimpleNamespace(mem32=self.mem32,
                                             bootloader=lambda elems: board.mboot(elems))

    def mboot(self, elems):
        """main.c: the elements up to END; fsload: MOUNT + FSLOAD, then the status word, reset."""
        e = {}
        i = 0
        while i + 2 <= len(elems):
            t, n = elems[i], elems[i + 1]
            e[t] = bytes(elems[i + 2:i + 2 + n])
            i += 2 + n
            if t == 1:
                break
        assert 1 in e and e[1] == b"", "no END element: mboot ignores the request"
        ret = self.fsload(e)
        if 4 in e and len(e[4]) == 4:
            self.mem32[struct.unpack("<L", e[4])[0]] = ret
        self.resets += 1

    def fsload(self, e):
        if 3 not in e:
            return -220
        if 2 not in e:
            return -221
        m = e[2]
        if len(m) != 14:
            return -222
        mp, fstype, base, length, block = struct.unpack("<BBLLL", m)
        assert (mp, fstype, base, length) == (1, 1, FS["base"], FS["len"]), m
        name = e[3][1:].decode()
        if e[3][0] != mp:
            return -221
        data = self.files.get(name)
        if data is None:
            return -241  # FAT open failed
        for program in (False, True):  # pass 0 checks the whole file, pass 1 programs
            try:
                raw = gzip.decompress(data)
            except (OSError, EOFError):
                return -250
            if raw[:6] != b"DfuSe\x01":
                return -210
            if zlib.crc32(raw) ^ 0xFFFFFFFF != 0:
                return -215
            if program:
                self.app = raw[6:-16]
        return 0


@pytest.fixture(autouse=True)
def deflate(monkeypatch):
    """MicroPython's deflate module as the firmware uses it, over CPython's gzip."""
    m = types.ModuleType("deflate")
    m.GZIP = 3
    m.DeflateIO = lambda f, fmt: gzip.GzipFile(fileobj=f)
    monkeypatch.setitem(sys.modules, "deflate", m)


def test_mboot_programs_the_file_and_reports_success(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = gzip.compress(dfu(b"new image"))
    (tmp_path / "ota_image.dfu.gz").write_bytes(data)
    b = FakeBoard({"ota_image.dfu.gz": data})
    mboot.start("ota_image.dfu.gz", FS, b.machine, b.mem8)
    assert b.resets == 1 and b.app == b"new image"
    assert mboot.outcome(FS, b.mem32) == ""


def test_a_corrupted_file_is_refused_by_mboot_before_it_programs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = bytearray(dfu(b"new image" * 50))
    raw[100] ^= 1
    data = gzip.compress(bytes(raw))
    (tmp_path / "img.dfu.gz").write_bytes(data)
    b = FakeBoard({"img.dfu.gz": data})
    mboot.start("img.dfu.gz", FS, b.machine, b.mem8)
    assert b.app == b"old image"
    assert mboot.outcome(FS, b.mem32) == "mboot: DFU CRC does not match (error 215)"


def test_mboot_that_never_ran_is_told(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = gzip.compress(dfu(b"x"))
    (tmp_path / "img.dfu.gz").write_bytes(data)
    b = FakeBoard({"img.dfu.gz": data})
    b.machine.bootloader = lambda elems: None  # a power cut before mboot wrote its status
    mboot.start("img.dfu.gz", FS, b.machine, b.mem8)
    assert "did not run" in mboot.outcome(FS, b.mem32)


@pytest.mark.parametrize("case", ["no mboot", "not gzip", "not dfu", "lfs without block",
                                  "bad fs"])
def test_refused_before_entering_mboot(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    fs = dict(FS)
    data = gzip.compress(dfu(b"x"))
    version = "mboot-v1.3.0"
    words = {"no mboot": "no mboot on this board", "not gzip": "not a .dfu.gz",
             "not dfu": "not a DfuSe file", "lfs without block": "needs its block size",
             "bad fs": "filesystem type 'ntfs'"}[case]
    if case == "no mboot":
        version = None
    elif case == "not gzip":
        data = dfu(b"x")
    elif case == "not dfu":
        data = gzip.compress(b"micropython.bin")
    elif case == "lfs without block":
        fs["type"] = "lfs2"
    else:
        fs["type"] = "ntfs"
    (tmp_path / "img.dfu.gz").write_bytes(data)
    b = FakeBoard({"img.dfu.gz": data}, mboot_version=version)
    with pytest.raises(mboot.MbootError, match=words):
        mboot.start("img.dfu.gz", fs, b.machine, b.mem8)
    assert b.resets == 0 and b.words == {}  # mboot never entered, status untouched


def test_littlefs_elements_carry_the_block_size():
    e = mboot.elements("/ota_image.dfu.gz", dict(FS, type="lfs2", block=4096))
    assert e[:2] == bytes((2, 14))
    assert struct.unpack("<BBLLL", e[2:16]) == (1, 3, FS["base"], FS["len"], 4096)
    assert e[16:18] == bytes((3, 17)) and e[18:35] == b"\x01ota_image.dfu.gz"
    assert e[35:41] == bytes((4, 4)) + struct.pack("<L", FS["status"])
    assert e[41:] == bytes((1, 0))
