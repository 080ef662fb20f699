# The MicroPython image update on STM32 through mboot (docs/ota.md, "The MicroPython image
# (STM32, mboot)"): the firmware writes the new image as a .dfu.gz on its filesystem, then hands
# mboot (MicroPython's STM32 bootloader, ports/stm32/mboot, built with MBOOT_FSLOAD) a list of
# elements through machine.bootloader(elements): mount this filesystem, load that file, write
# the outcome to this address, end. mboot checks the whole file (gzip, DfuSe header, CRC) in a
# first pass, programs it in a second, writes 0 or -errno to the status address and resets.
# Element layout (mboot/README.md): <type:u8> <len:u8> <payload>; MOUNT (2): mount point,
# filesystem type, base address, length, block size (u32 little-endian); FSLOAD (3): mount point
# and file name; STATUS (4): the address (u32); END (1).
# Not wired into UpdateFirmware (docs/ota.md says why: no rollback of the image, and a power cut
# while mboot programs leaves the board in USB DFU mode).
import struct


_END = const(1)
_MOUNT = const(2)
_FSLOAD = const(3)
_STATUS = const(4)
_PENDING = const(1)  # written before entering mboot; mboot replaces it with 0 or -errno
_MOUNT_POINT = const(1)
FS_TYPES = {"fat": 1, "lfs1": 2, "lfs2": 3}  # mboot's VFS_FAT, VFS_LFS1, VFS_LFS2
_DFU_MAGIC = b"DfuSe\x01"
# mboot.h's MBOOT_ERRNO_*: what a failed load writes (negated) to the status word
ERRORS = {200: "flash erase not allowed", 201: "flash erase failed",
          202: "flash read not allowed", 203: "flash write not allowed",
          210: "bad DFU header", 211: "bad DFU target", 212: "bad DFU size",
          213: "too many DFU targets", 214: "DFU read error", 215: "DFU CRC does not match",
          220: "no FSLOAD element", 221: "no MOUNT element", 222: "bad MOUNT element",
          240: "FAT mount failed", 241: "FAT open failed", 242: "littlefs v1 mount failed",
          243: "littlefs v1 open failed", 244: "littlefs v2 mount failed",
          245: "littlefs v2 open failed", 250: "gunzip failed"}


class MbootError(Exception):
    pass


def _elem(kind, body):
    return bytes((kind, len(body))) + body


def elements(path, fs):
    """The bytes for machine.bootloader(): mboot mounts fs and programs the .dfu.gz at path
    (relative to that filesystem's root), then writes its outcome to fs["status"].
    fs: {"type": "fat"/"lfs1"/"lfs2", "base": flash address, "len": bytes, "block": littlefs
    block size, "status": address of a word kept through a reset (an RTC backup register)}."""
    t = FS_TYPES.get(fs.get("type"))
    if t is None:
        raise MbootError("filesystem type %r: mboot loads from fat, lfs1 or lfs2" % (
            fs.get("type"),))
    block = fs.get("block", 0)
    if t != 1 and not block:
        raise MbootError("a littlefs filesystem needs its block size")
    name = path.lstrip("/").encode()
    if not name or len(name) > 200:
        raise MbootError("file name %r" % (path,))
    out = _elem(_MOUNT, struct.pack("<BBLLL", _MOUNT_POINT, t, fs["base"], fs["len"], block))
    out += _elem(_FSLOAD, bytes((_MOUNT_POINT,)) + name)
    out += _elem(_STATUS, struct.pack("<L", fs["status"]))
    return out + _elem(_END, b"")


def check_file(path):
    """MbootError unless path is a gzip'd DfuSe file (what mboot's FSLOAD loads)."""
    import deflate

    try:
        with open(path, "rb") as f:
            head = deflate.DeflateIO(f, deflate.GZIP).read(6)
    except (OSError, ValueError, EOFError) as e:
        raise MbootError("%s: not a .dfu.gz (%r)" % (path, e))
    if head != _DFU_MAGIC:
        raise MbootError("%s: not a DfuSe file (starts %r)" % (path, head))


def present(mem8, base=0x08000000, size=0x8000):
    """The mboot version string at the end of its flash sector ("mboot-v1.x..."), or None:
    without mboot, machine.bootloader() enters the ST ROM bootloader, which waits for USB."""
    at = base + size - 64
    s = ""
    for i in range(64):
        c = mem8[at + i]
        if c in (0, 0xFF):
            break
        s += chr(c)
    return s if s.startswith("mboot-") else None


def start(path, fs, machine, mem8):
    """Hand the file to mboot: it programs it and resets (this does not return on a board).
    Checked first: mboot is there, the file is a .dfu.gz, the elements build."""
    if present(mem8) is None:
        raise MbootError("no mboot on this board: machine.bootloader() would stop in the ROM "
                         "bootloader")
    check_file(path)
    elems = elements(path, fs)
    machine.mem32[fs["status"]] = _PENDING
    machine.bootloader(elems)


def outcome(fs, mem32):
    """After the reset that followed start() (the caller recorded that it asked for one):
    "" when mboot programmed the image, else why it did not."""
    v = mem32[fs["status"]] & 0xFFFFFFFF
    if v == 0:
        return ""
    if v == _PENDING:
        return "mboot did not run (the status word is as it was left)"
    if v & 0x80000000:
        e = 0x100000000 - v
        return "mboot: %s (error %d)" % (ERRORS.get(e, "unknown"), e)
    return "mboot: status word 0x%08x" % v
