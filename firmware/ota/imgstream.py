# The MicroPython image streamed from the network into the next OTA partition while the bundle
# downloads (docs/ota.md, "The MicroPython image (ESP32)"), so that the filesystem never holds
# it: ESP32's 4 MB OTA layout has ~960 KB of filesystem for a ~1.5 MB image. The download
# (firmware/ota/download.py) hands every byte to put(): the head (magic, manifest, signature)
# and the .mpy files go to the download's file; once the head is whole on that file it is
# checked (bundle.check: signature, board, version, ... refused before another byte is
# written), which also tells where the image starts (the head's length + the files' sizes);
# from there each byte goes through SHA-256 into Partition(RUNNING).get_next_update(), 4096
# bytes at a time (writeblocks without an offset erases the block first), and the digest is
# compared with the manifest's once the last byte is there. After a dropped connection the
# download resumes (Range) from the last whole block in the partition: resume() says where,
# rehash() hashes those blocks again. The download awaits the board's flash gate before each
# piece, so no block is written while it is closed. slots.install(..., streamed=True) then
# reads the partition back and hashes it again before set_boot, as for an image in the file.
import hashlib


from firmware.ota import bundle, image

_HEAD = const(13)  # magic (7) + manifest length (4) + signature length (2)


class Stream:
    """One download's image part: `Download(..., sink=Stream(keys, running))`."""

    def __init__(self, keys, running):
        self.keys = keys
        self.running = running
        self.buf = None  # the block buffer, made once the head says an image follows
        self.reset()

    def reset(self):
        """From the bundle's first byte again (a server that answered 200 to a Range)."""
        self.head = None  # the head's length once known
        self.start = None  # where the image starts once the head was checked; -1: no image
        self.entry = self.part = None
        self.block = self.fill = self.got = 0
        self.h = hashlib.sha256()
        self.done = False  # the whole image is in the partition and matched the manifest

    def _head_len(self, path, out, n):
        """The head's length, or the bytes still needed to learn it (n on file)."""
        out.flush()
        with open(path, "rb") as f:
            if f.read(len(bundle.MAGIC)) != bundle.MAGIC:
                raise bundle.BundleError("not an update bundle (bad magic)")
            m = int.from_bytes(f.read(4), "big")
            if m == 0 or m > 65536:
                raise bundle.BundleError("manifest length %d out of range" % m)
            if n < _HEAD + m:
                return _HEAD + m, False
            f.seek(11 + m)
            return _HEAD + m + int.from_bytes(f.read(2), "big"), True

    def limit(self, path, out, n):
        """The bundle offset up to which the download's file takes bytes, n bytes being
        there; None: every byte goes to the file (a bundle without an image)."""
        while self.start is None:
            want = _HEAD
            if n >= _HEAD:
                want, known = self._head_len(path, out, n)
                if known and n >= want:
                    self._check(path, out, want)
                    break
            if want > n:
                return want
        return None if self.start < 0 else self.start

    def _check(self, path, out, head):
        out.flush()
        with open(path, "rb") as f:
            mbytes, sig = bundle.read_head(f, True)
            m = bundle.check(mbytes, sig, self.keys, self.running)
        self.head = head
        if "image" not in m:
            self.start = -1
            return
        from firmware.ota import slots

        t = slots.load().get("trial")
        if t:  # the next partition holds the waiting trial's image, or the running trial's
            # fallback: overwritten, a failed trial would have nothing to return to
            raise bundle.BundleError("an update (%s) is already waiting for its trial boot" %
                                     t.get("version"))
        self.entry = m["image"]
        self.part = image.target(self.entry)  # refused here: no partition, too small, gate
        if self.buf is None:
            self.buf = bytearray(image.BLOCK)
        self.start = head + m["size"]

    def put(self, mv):
        """Image bytes (a memoryview), in the order they come."""
        size = self.entry["size"]
        if self.got + len(mv) > size:
            raise bundle.BundleError("bytes after the image")
        buf = self.buf
        i = 0
        while i < len(mv):
            k = min(len(mv) - i, image.BLOCK - self.fill)
            buf[self.fill:self.fill + k] = mv[i:i + k]
            self.fill += k
            self.got += k
            i += k
            if self.block == 0 and self.fill and buf[0] != 0xE9:
                raise bundle.BundleError("image: not an ESP app image (first byte 0x%02x)" %
                                         buf[0])
            if self.fill == image.BLOCK or self.got == size:
                self._write()

    def _write(self):
        buf = self.buf
        self.h.update(memoryview(buf)[:self.fill])
        for i in range(self.fill, image.BLOCK):
            buf[i] = 0xFF  # the last block padded with the erased value
        self.part.writeblocks(self.block, buf)  # erases the block, then writes it
        self.block += 1
        self.fill = 0
        if self.got == self.entry["size"]:
            if image.hex_digest(self.h) != self.entry["sha256"]:
                raise bundle.BundleError("image: SHA-256 does not match the manifest")
            self.done = True

    def finish(self):
        """The download ended: BundleError unless the image (if any) came whole."""
        if self.start is None:
            raise bundle.BundleError("truncated in the header")
        if self.start >= 0 and not self.done:
            raise bundle.BundleError("truncated in the image (%d of %d bytes)" % (
                self.got, self.entry["size"]))

    def resume(self, have):
        """Where a resumed download starts, the file holding have bytes: after the last
        whole block in the partition (a partial block in RAM is asked for again)."""
        if self.start is None or self.start < 0 or have < self.start:
            self.block = self.fill = self.got = 0
            return have
        if self.done:
            self.block -= 1  # the last block is asked for and written again
        self.done = False
        self.fill = 0
        self.got = self.block * image.BLOCK
        return self.start + self.got

    def rehash(self, sha):
        """The blocks already in the partition hashed again (into sha, the download's
        hash, too) for a resumed download."""
        self.h = hashlib.sha256()
        if self.start is None or self.start < 0:
            return
        buf = self.buf
        for b in range(self.block):
            self.part.readblocks(b, buf)
            self.h.update(buf)
            sha.update(buf)
