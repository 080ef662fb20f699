"""A fake `esp32` module (esp32.Partition) and the ESP-IDF bootloader's app rollback, for the
image update (firmware/ota/image.py) on the host. Written from MicroPython's
ports/esp32/esp32_partition.c and docs/library/esp32.rst, and the ESP-IDF behaviour they call
(esp_partition_*, esp_ota_*, the bootloader's otadata states); CPython and MicroPython alike.

What it does as the real one does:
- Partition(Partition.RUNNING / Partition.BOOT / "label", block_size=4096); ENOENT (OSError 2)
  for a partition that is not there (esp32_partition_new with NULL).
- info() -> (type, subtype, address, size, label, encrypted).
- readblocks(n, buf[, offset]) reads at n * block_size + offset.
- writeblocks(n, buf) without an offset erases [n * 4096, + len(buf)) first
  (esp_partition_erase_range: the length must be a multiple of 4096, else OSError), then
  writes; writeblocks(n, buf, offset) writes without erasing. NOR flash: a write can only
  clear bits (the flash holds old & new), erased bytes are 0xFF.
- ioctl(4) block count, ioctl(5) block size, ioctl(6, n) erases block n.
- get_next_update(): the next OTA app partition after this one, wrapping (ota_0 -> ota_1 ->
  ota_0); ENOENT when the table has no OTA partition.
- set_boot(): checks the image (esp_image_verify; here: see image() below), OSError
  -0x1503 (ESP_ERR_OTA_VALIDATE_FAILED) if bad; otherwise otadata names it, state NEW
  (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, set in MicroPython's boards/sdkconfig.base).
  The otadata write is atomic (ESP-IDF keeps two sectors with a sequence number and a CRC).
- mark_app_valid_cancel_rollback() (a class method): the running image becomes VALID;
  OSError(-261) (ESP_ERR_NOT_FOUND) without an otadata partition, OSError(1) (ESP_FAIL) when
  otadata names nothing yet (a board flashed with esptool).
- reset() is the bootloader: the otadata's partition, if its image is valid and its state is
  not ABORTED: NEW -> PENDING_VERIFY and booted; PENDING_VERIFY (it booted and was not
  marked) -> ABORTED and the other valid image boots (the rollback).

The image format is the fake's own (a real one has segments, a checksum and an appended
SHA-256 that esp_image_verify checks): byte 0 is 0xE9 (the ESP image magic), bytes 1..4 the
payload length (little-endian), then the payload, then the SHA-256 of all before it.

Power cuts: Flash(cut_at=k) raises Cut at the k-th flash operation (a sector erase, a write,
the otadata write); a write cut in the middle lands its first half.
"""
import hashlib

BLOCK = 4096
TYPE_APP, TYPE_DATA = 0, 1
BOOT, RUNNING = 0, 1
NEW, PENDING, VALID, ABORTED = "new", "pending-verify", "valid", "aborted"


class Cut(Exception):
    pass


def image(payload):
    """A fake app image around payload (bytes)."""
    head = bytes([0xE9]) + len(payload).to_bytes(4, "little") + payload
    return head + hashlib.sha256(head).digest()


def payload_of(data):
    """The payload of a valid image at the start of data, or None (esp_image_verify)."""
    if len(data) < 37 or data[0] != 0xE9:
        return None
    n = int.from_bytes(bytes(data[1:5]), "little")
    if 5 + n + 32 > len(data):
        return None
    head = bytes(data[:5 + n])
    if hashlib.sha256(head).digest() != bytes(data[5 + n:5 + n + 32]):
        return None
    return head[5:]


class Flash:
    """The flash's app partitions and otadata, kept across resets (the test's device)."""

    def __init__(self, size=16 * BLOCK, labels=("ota_0", "ota_1"), otadata=True,
                 running="ota_0", cut_at=None):
        self.size = size
        self.labels = list(labels)
        self.data = dict((lb, bytearray(b"\xff" * size)) for lb in self.labels)
        self.otadata = otadata  # an otadata partition is in the table
        self.boot = None  # the partition otadata names (None: blank, the first app boots)
        self.state = {}  # label -> NEW / PENDING / VALID / ABORTED
        self.running = running
        self.cut_at = cut_at
        self.ops = 0
        self.resets = 0

    def op(self):
        if self.cut_at is not None and self.ops >= self.cut_at:
            raise Cut()
        self.ops += 1

    def flash_image(self, label, payload):
        """What esptool does: the image written, otadata left as it is."""
        img = image(payload)
        self.data[label][:len(img)] = img

    def payload(self, label):
        return payload_of(self.data[label])

    def reset(self):
        """The ESP-IDF bootloader: which image runs after a reset (the rollback)."""
        self.resets += 1
        self.cut_at = None
        sel = self.boot
        if sel is not None:
            st = self.state.get(sel)
            if st == NEW and self.payload(sel) is not None:
                self.state[sel] = PENDING
                self.running = sel
                return sel
            if st == PENDING:
                self.state[sel] = ABORTED  # booted once, never marked: rolled back
            if self.state.get(sel) != ABORTED and self.payload(sel) is not None:
                self.running = sel
                return sel
        for lb in self.labels:  # the other valid image
            if lb != sel and self.state.get(lb) != ABORTED and self.payload(lb) is not None:
                self.running = lb
                if sel is not None:
                    self.boot = lb
                return lb
        raise AssertionError("no bootable image: the board is bricked")

    def module(self):
        """The `esp32` module as this flash's firmware sees it."""
        flash = self

        class Partition:
            BOOT = 0
            RUNNING = 1
            TYPE_APP = TYPE_APP
            TYPE_DATA = TYPE_DATA

            def __init__(self, id, block_size=BLOCK):
                if id == RUNNING:
                    label = flash.running
                elif id == BOOT:
                    label = flash.boot or flash.labels[0]
                elif id in flash.labels:
                    label = id
                elif isinstance(id, int):
                    raise ValueError()
                else:
                    raise OSError(2)
                self.label = label
                self.block_size = block_size

            def info(self):
                i = flash.labels.index(self.label)
                return (TYPE_APP, 0x10 + i, 0x10000 + i * flash.size, flash.size, self.label,
                        False)

            def readblocks(self, n, buf, offset=0):
                at = n * self.block_size + offset
                if at + len(buf) > flash.size:
                    raise OSError(-0x104)  # ESP_ERR_INVALID_SIZE
                buf[:] = flash.data[self.label][at:at + len(buf)]

            def _write(self, at, buf):
                if at + len(buf) > flash.size:
                    raise OSError(-0x104)
                d = flash.data[self.label]
                n = len(buf)
                if flash.cut_at is not None and flash.ops >= flash.cut_at:
                    n = n // 2  # torn: its first half lands
                    for i in range(n):
                        d[at + i] &= buf[i]
                    raise Cut()
                flash.op()
                for i in range(n):
                    d[at + i] &= buf[i]  # NOR: bits only go from 1 to 0

            def _erase(self, at, n):
                if at % BLOCK or n % BLOCK:
                    raise OSError(-0x102 if at % BLOCK else -0x104)
                if at + n > flash.size:
                    raise OSError(-0x104)
                for s in range(at, at + n, BLOCK):
                    flash.op()
                    flash.data[self.label][s:s + BLOCK] = b"\xff" * BLOCK

            def writeblocks(self, n, buf, offset=None):
                at = n * self.block_size
                if offset is None:
                    if self.block_size < BLOCK:
                        raise NotImplementedError("the fake erases whole 4096-byte blocks")
                    self._erase(at, len(buf))
                else:
                    at += offset
                self._write(at, buf)

            def ioctl(self, cmd, arg):
                if cmd in (1, 2, 3):
                    return 0
                if cmd == 4:
                    return flash.size // self.block_size
                if cmd == 5:
                    return self.block_size
                if cmd == 6:
                    if self.block_size != BLOCK:
                        return -22
                    self._erase(arg * BLOCK, BLOCK)
                    return 0
                return None

            def set_boot(self):
                if payload_of(flash.data[self.label]) is None:
                    raise OSError(-0x1503)  # ESP_ERR_OTA_VALIDATE_FAILED
                flash.op()
                flash.boot = self.label
                flash.state[self.label] = NEW

            def get_next_update(self):
                if not flash.otadata or len(flash.labels) < 2:
                    raise OSError(2)
                i = flash.labels.index(self.label)
                return Partition(flash.labels[(i + 1) % len(flash.labels)])

            @classmethod
            def mark_app_valid_cancel_rollback(cls):
                if not flash.otadata:
                    raise OSError(-261)
                if flash.boot is None:
                    raise OSError(1)
                flash.op()
                flash.state[flash.running] = VALID

        class Esp32:
            pass

        m = Esp32()
        m.Partition = Partition
        return m
