# The MicroPython image update on ESP32 (docs/ota.md, "The MicroPython image (ESP32)"),
# through esp32.Partition (ports/esp32/esp32_partition.c). A bundle may carry the image (the
# port's micropython.bin) after its .mpy files; its manifest then says
#   "image": {"size": 1572864, "sha256": "<hex>"}
# and the signature covers that as it covers every file. slots.install() calls:
#   target(entry)        before anything is written: this board has an OTA partition table
#                        (get_next_update()) and the image fits the next partition;
#   write(f, entry, part) the image streamed from the bundle into it, 4096 bytes at a time
#                        (writeblocks(n, buf) without an offset erases the block first), then
#                        read back and hashed: BundleError unless it is the manifest's image;
#   part.set_boot()      the next reset boots it (esp_ota_set_boot_partition checks the image).
# The slot and the image go on trial together: the trial entry of the boot pointer names the
# image's partition. After the first boot, the ESP-IDF bootloader boots the image once more
# only if mark_app_valid_cancel_rollback() was called (MicroPython builds enable
# CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE in boards/sdkconfig.base): the trial's health check
# calls it (mark_valid()) just before the slot confirms; a failed check restarts unmarked and
# the bootloader returns to the previous image (MicroPython has no "mark invalid").
# The bundle's .mpy version must be the running one (bundle.check), so either image runs
# either slot whatever a power cut leaves.
import hashlib


from firmware.ota.bundle import BundleError

BLOCK = const(4096)  # the native erase size (NATIVE_BLOCK_SIZE_BYTES)
_ESP_MAGIC = const(0xE9)  # an ESP app image's first byte (esp_image_header_t.magic)


def _partition():
    """esp32.Partition, or None on a port without it."""
    try:
        import esp32
    except ImportError:
        return None
    return getattr(esp32, "Partition", None)


def check_entry(e):
    """The manifest's image entry, checked (bundle.check): BundleError naming what is wrong."""
    if not isinstance(e, dict):
        raise BundleError("manifest: image must be {\"size\": N, \"sha256\": hex}")
    size = e.get("size")
    digest = e.get("sha256")
    if not isinstance(size, int) or size < BLOCK or size > 16 * 1048576:
        raise BundleError("manifest: image size %r out of range" % (size,))
    if (not isinstance(digest, str) or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)):
        raise BundleError("manifest: image: bad sha256")


def running_label():
    """The label of the partition MicroPython runs from (None without esp32.Partition)."""
    P = _partition()
    if P is None:
        return None
    return P(P.RUNNING).info()[4]


def target(entry):
    """The partition the image will go to; BundleError (nothing written) when this board
    cannot install it."""
    P = _partition()
    if P is None:
        raise BundleError("bundle carries a MicroPython image; this board has no "
                          "esp32.Partition to install it")
    from firmware import persist

    if not persist.flash_ok():  # esp32_wallbox: not while the contactor is closed
        raise BundleError("image: the flash gate is closed (the contactor is closed): "
                          "erasing a partition now would stall the safety path")
    try:
        part = P(P.RUNNING).get_next_update()
    except OSError as e:
        raise BundleError("bundle carries a MicroPython image; this board's partition "
                          "table has no OTA partition (%r)" % (e,))
    info = part.info()
    if entry["size"] > info[3]:
        raise BundleError("image of %d bytes does not fit partition %s (%d bytes)" % (
            entry["size"], info[4], info[3]))
    return part


def _hex(b):
    return "".join("%02x" % x for x in b)


def write(f, entry, part, buf=None):
    """Stream the image (f positioned at it) into part, block by block, then read it back;
    BundleError if the bundle is short, has bytes after the image, or the partition does not
    hold the manifest's image. Returns the blocks written."""
    size = entry["size"]
    buf = buf or bytearray(BLOCK)
    mv = memoryview(buf)
    h = hashlib.sha256()
    left = size
    block = 0
    while left:
        want = min(left, BLOCK)
        got = 0
        while got < want:
            n = f.readinto(mv[got:want])
            if not n:
                raise BundleError("truncated in the image (%d of %d bytes)" % (
                    size - left + got, size))
            got += n
        if block == 0 and buf[0] != _ESP_MAGIC:
            raise BundleError("image: not an ESP app image (first byte 0x%02x)" % buf[0])
        h.update(mv[:want])
        for i in range(want, BLOCK):
            buf[i] = 0xFF  # the erased value: the last block padded to a whole block
        part.writeblocks(block, buf)  # no offset: erases the block, then writes it
        left -= want
        block += 1
    if f.read(1):
        raise BundleError("bytes after the image")
    if _hex(h.digest()) != entry["sha256"]:
        raise BundleError("image: SHA-256 does not match the manifest")
    read_back(entry, part, buf)
    return block


def read_back(entry, part, buf=None):
    """Hash what the partition holds (a write can fail silently on a worn sector):
    BundleError unless it is the manifest's image."""
    buf = buf or bytearray(BLOCK)
    mv = memoryview(buf)
    h = hashlib.sha256()
    left = entry["size"]
    b = 0
    while left > 0:
        part.readblocks(b, buf)
        n = min(left, BLOCK)
        h.update(mv[:n])
        left -= n
        b += 1
    if _hex(h.digest()) != entry["sha256"]:
        raise BundleError("image: partition %s does not read back the image written" %
                          part.info()[4])


def hex_digest(h):
    return _hex(h.digest())


def set_boot(part):
    """The next reset boots part (ESP-IDF checks the image first: OSError if it is bad)."""
    try:
        part.set_boot()
    except OSError as e:
        raise BundleError("image: set_boot refused it (%r)" % (e,))


def not_booted(label):
    """At boot of a trial that carries an image: why the trial cannot run (the bootloader
    did not start the new image: it is not the running one), or None."""
    run = running_label()
    if run != label:
        return "the new MicroPython image (%s) did not boot, %s runs" % (label, run)
    return None


def mark_valid():
    """The healthy trial's image stays: the bootloader will not roll it back. OSError when
    the bootloader has no rollback (the caller fails the trial)."""
    P = _partition()
    P.mark_app_valid_cancel_rollback()
