"""The MicroPython image streamed from the network into the next OTA partition while the bundle
downloads (firmware/ota/imgstream.py through firmware/ota/download.py), on the fake
esp32.Partition of host_tests/fake_esp32.py, with an in-process server (fake connections)
that drops the connection at chosen bundle offsets and answers Range: a 4 MB ESP32 layout
whose filesystem is smaller than the image installs it, drops resume from the last whole block,
a power cut during the stream leaves the old image booting, a refused head writes nothing,
a tampered image byte is refused before set_boot, and nothing is written while the flash
gate is closed."""
import asyncio
import io
import sys

import pytest

import fake_esp32
import ota_cases
from firmware import persist
from firmware.ota import bundle, download, imgstream, rsa, slots

sys.path.insert(0, ota_cases.os.path.join(ota_cases.ROOT, "tools"))
import bundle as tool  # noqa: E402

OLD_IMG = b"MicroPython v1.27 " * 300
NEW_IMG = b"MicroPython v1.28 " * 700  # 12.6 KB: four blocks, the last one partial
FS_4MB = 0xF0000  # the vfs of MicroPython's partitions-4MiB-ota.csv: 960 KB
APP_4MB = 0x180000  # its ota_0 / ota_1: 1.5 MB each


@pytest.fixture(scope="module")
def key():
    return tool.new_key(2048)


def _keys(key):
    return [rsa.key_from_json(tool.public_json(key))]


def _bundle(key, img=NEW_IMG, **kw):
    return tool.make_bundle(key, ota_cases.FILES, "0.9.0", "sim",
                            image=fake_esp32.image(img), **kw)


def _device(monkeypatch, tmp_path, size=16 * fake_esp32.BLOCK):
    monkeypatch.chdir(tmp_path)
    flash = fake_esp32.Flash(size=size)
    flash.flash_image("ota_0", OLD_IMG)
    assert flash.reset() == "ota_0"
    monkeypatch.setitem(sys.modules, "esp32", flash.module())
    return flash


class _Conn:
    """One connection to the fake server: the answer to the request, cut at `cut`."""

    def __init__(self, srv):
        self.srv = srv
        self.out = b""
        self.req = b""

    def write(self, b):
        self.req += b

    async def drain(self):
        lines = self.req.decode().split("\r\n")
        rng = [x for x in lines if x.startswith("Range: bytes=")]
        start = int(rng[0][13:-1]) if rng else 0
        self.srv.requests.append(start)
        body = self.srv.body
        cut = self.srv.drops.pop(0) if self.srv.drops else len(body)
        if start:
            head = "HTTP/1.1 206 Partial\r\nContent-Range: bytes %d-%d/%d\r\n" % (
                start, len(body) - 1, len(body))
        else:
            head = "HTTP/1.1 200 OK\r\n"
        head += "Content-Length: %d\r\n\r\n" % (len(body) - start)
        self.out = head.encode() + body[start:max(start, cut)]

    async def readline(self):
        i = self.out.find(b"\n") + 1 or len(self.out)
        b, self.out = self.out[:i], self.out[i:]
        return b

    async def read(self, n):
        b, self.out = self.out[:n], self.out[n:]
        return b

    def close(self):
        pass


class _Server:
    def __init__(self, body, drops=()):
        self.body = body
        self.drops = list(drops)  # bundle offsets where a connection is cut, in turn
        self.requests = []  # the Range start of each request (0: none)

    async def opener(self, host, port, ssl=None, server_hostname=None):
        c = _Conn(self)
        return c, c


class _Quota:
    """open() for the download: a filesystem of `free` bytes (ENOSPC past it)."""

    def __init__(self, free):
        self.free = free
        self.peak = 0

    def __call__(self, path, mode="r"):
        f = open(path, mode)
        if "r" in mode:
            return f
        q = self

        class W:
            def __enter__(self):
                return self

            def __exit__(self, *a):
                f.close()

            def write(self, b):
                if f.tell() + len(b) > q.free:
                    raise OSError(28, "ENOSPC: the filesystem is full")
                f.write(b)
                q.peak = max(q.peak, f.tell())

            def flush(self):
                f.flush()
        return W()


def _download(srv, key, sink=True, retries=6, sleep_ms=None, quota=None, monkeypatch=None):
    s = imgstream.Stream(_keys(key), ota_cases.RUNNING) if sink else None
    if quota is not None:
        monkeypatch.setattr(download, "open", quota, raising=False)

    async def nap(ms):
        pass
    d = download.Download("http://wallbox.test/b", "ota_download.wbota", opener=srv.opener,
                          log=lambda m: None, sink=s, sleep_ms=sleep_ms or nap)
    asyncio.run(d.run(retries=retries, retry_ms=10))
    return d, s


def _install(key, s):
    with open("ota_download.wbota", "rb") as f:
        return slots.install(f, _keys(key), ota_cases.RUNNING, streamed=s is not None and s.done)


def _boot(flash):
    flash.reset()
    slots.check_image()
    return flash.payload(flash.running), slots.pick()


def test_a_4mb_layout_installs_an_image_larger_than_its_filesystem(key, tmp_path, monkeypatch):
    big = bytes((i * 31 + i // 4096) & 0xFF for i in range(1400000))  # 1.4 MB
    flash = _device(monkeypatch, tmp_path, size=APP_4MB)
    data = _bundle(key, img=big)
    srv = _Server(data)
    with pytest.raises(download.DownloadError, match="ENOSPC"):  # the whole bundle on the fs
        _download(srv, key, sink=False, retries=0, quota=_Quota(FS_4MB),
                  monkeypatch=monkeypatch)
    assert flash.ops == 0
    quota = _Quota(FS_4MB)
    d, s = _download(srv, key, quota=quota, monkeypatch=monkeypatch)
    assert s.done and d.size == len(data)
    assert quota.peak == len(data) - len(fake_esp32.image(big)) < 20000  # head + files only
    m = _install(key, s)
    assert m["version"] == "0.9.0" and flash.boot == "ota_1"
    assert _boot(flash) == (big, "a")


@pytest.mark.parametrize("where", ["head", "files", "image start", "mid block",
                                   "block edge", "last bytes", "several"])
def test_a_dropped_connection_resumes_at_the_last_whole_block(key, tmp_path, monkeypatch,
                                                              where):
    flash = _device(monkeypatch, tmp_path)
    data = _bundle(key)
    start = len(data) - len(fake_esp32.image(NEW_IMG))
    B = fake_esp32.BLOCK
    cuts = {"head": [20], "files": [start - 100], "image start": [start],
            "mid block": [start + B + 1000], "block edge": [start + 2 * B],
            "last bytes": [len(data) - 3],
            "several": [300, start + 10, start + B + 5, start + 3 * B + 7]}[where]
    srv = _Server(data, drops=cuts)
    d, s = _download(srv, key)
    want = [0] + [c if c <= start else start + (c - start) // B * B for c in cuts]
    assert srv.requests == want
    assert s.done and d.sha256 == tool.hashlib.sha256(data).hexdigest()
    _install(key, s)
    assert _boot(flash) == (NEW_IMG, "a")


def test_a_power_cut_during_the_image_stream_boots_the_old_image(key, tmp_path, monkeypatch):
    data = _bundle(key)
    flash = _device(monkeypatch, tmp_path)
    _download(_Server(data), key)
    n = flash.ops  # the sector erases and block writes of the stream
    assert n == 8
    for k in range(n):
        d = tmp_path / ("cut%d" % k)
        d.mkdir()
        flash = _device(monkeypatch, d)
        flash.cut_at = k
        with pytest.raises(fake_esp32.Cut):
            _download(_Server(data), key)
        assert _boot(flash) == (OLD_IMG, "base"), k  # the stream never touched ota_0
        d2, s = _download(_Server(data), key)
        _install(key, s)
        assert _boot(flash) == (NEW_IMG, "a"), k


@pytest.mark.parametrize("case", ["wrong board", "older", "wrong key", "bad magic"])
def test_a_refused_head_writes_nothing_after_it(key, tmp_path, monkeypatch, case):
    flash = _device(monkeypatch, tmp_path)
    words = {"wrong board": "for board 'nope'", "older": "older than",
             "wrong key": "bad signature", "bad magic": "bad magic"}[case]
    if case == "wrong board":
        data = tool.make_bundle(key, ota_cases.FILES, "0.9.0", "nope",
                                image=fake_esp32.image(NEW_IMG))
    elif case == "older":
        data = tool.make_bundle(key, ota_cases.FILES, "0.7.0", "sim",
                                image=fake_esp32.image(NEW_IMG))
    elif case == "wrong key":
        data = _bundle(tool.new_key(2048))
    else:
        data = b"WBOTA2\n" + _bundle(key)[7:]
    with pytest.raises(bundle.BundleError, match=words):
        _download(_Server(data), key)
    assert flash.ops == 0 and flash.boot is None
    mbytes_len = int.from_bytes(data[7:11], "big")
    head = 13 + mbytes_len + int.from_bytes(data[11 + mbytes_len:13 + mbytes_len], "big")
    with open("ota_download.wbota.part", "rb") as f:
        assert len(f.read()) <= (13 if case == "bad magic" else head)


def test_a_tampered_image_byte_is_refused_before_set_boot(key, tmp_path, monkeypatch):
    flash = _device(monkeypatch, tmp_path)
    b = bytearray(_bundle(key))
    b[-5000] ^= 1
    with pytest.raises(bundle.BundleError, match="image: SHA-256 does not match"):
        _download(_Server(bytes(b)), key)
    assert flash.boot is None and _boot(flash) == (OLD_IMG, "base")
    # streamed whole and good, then a block that does not read back (a worn sector)
    d, s = _download(_Server(_bundle(key)), key)
    flash.data["ota_1"][5000] ^= 0x01
    with pytest.raises(bundle.BundleError, match="does not read back"):
        _install(key, s)
    assert flash.boot is None and slots.load()["trial"] is None
    assert _boot(flash) == (OLD_IMG, "base")


def test_nothing_is_written_to_the_partition_while_the_gate_is_closed(key, tmp_path,
                                                                     monkeypatch):
    flash = _device(monkeypatch, tmp_path)
    data = _bundle(key)
    start = len(data) - len(fake_esp32.image(NEW_IMG))
    gate = {"open": True, "naps": 0}
    seen = []
    real_put = imgstream.Stream.put

    def put(self, mv):  # closes the gate once the image has begun
        real_put(self, mv)
        if self.block == 2 and not gate["naps"]:
            gate["open"] = False
    monkeypatch.setattr(imgstream.Stream, "put", put)
    monkeypatch.setattr(persist, "_gate", lambda: gate["open"])

    async def nap(ms):
        seen.append(flash.ops)
        gate["naps"] += 1
        if gate["naps"] == 50:
            gate["open"] = True
    d, s = _download(_Server(data), key, sleep_ms=nap)
    assert gate["naps"] == 50 and len(set(seen)) == 1  # no flash operation while closed
    assert s.done and start < len(data)
    _install(key, s)
    assert _boot(flash) == (NEW_IMG, "a")


def test_a_bundle_without_an_image_downloads_whole_to_the_file(key, tmp_path, monkeypatch):
    flash = _device(monkeypatch, tmp_path)
    data = tool.make_bundle(key, ota_cases.FILES, "0.9.0", "sim")
    d, s = _download(_Server(data, drops=[500]), key)
    with open("ota_download.wbota", "rb") as f:
        assert f.read() == data
    assert flash.ops == 0 and not s.done and s.buf is None  # no 4 KB block buffer either
    m = slots.install(io.BytesIO(data), _keys(key), ota_cases.RUNNING)
    assert "image" not in m


def test_the_stream_on_micropython(key, tmp_path):
    """On the unix port: MicroPython's asyncio, hashlib and memoryview through the stream,
    a drop in the middle of an image block, the install reading the partition back."""
    import json
    import subprocess

    import simlib
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [tool.public_json(key)]}))
    (tmp_path / "running.json").write_text(json.dumps(ota_cases.RUNNING))
    (tmp_path / "image.wbota").write_bytes(_bundle(key))
    mpy_dir = ota_cases.os.path.join(ota_cases.ROOT, "build", "mpy")
    _, errors = tool.build.compile_all(mpy_dir)
    assert not errors
    env = dict(ota_cases.os.environ, MICROPYPATH=mpy_dir + ":.frozen")
    rig = ota_cases.os.path.join(ota_cases.ROOT, "host_tests", "mpy", "ota_imgstream_rig.py")
    r = subprocess.run([simlib.micropython_exe(), rig, str(tmp_path),
                        str(len(fake_esp32.image(NEW_IMG)))],
                       capture_output=True, text=True, env=env, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "DONE 0 failed" in out and "PASS " in out, out
    print("\n" + out)


class _Cp:
    """What firmware/ota/updater.py's job uses of the OCPP client."""

    def __init__(self):
        self.lines = []
        self.restarts = []
        self.tx = type("Tx", (), {"open": None})()
        self.journal = type("J", (), {"pending": lambda self: 0})()
        self.security = None
        cp = self

        class R:
            async def now(self, kind, wait_ms=100):
                cp.restarts.append(kind)
        self.restart = R()

    def log(self, m):
        self.lines.append(m)

    def now_s(self):
        return None


def _job(key, monkeypatch, data, quota=None, signed=None):
    """Updater._job on CPython: the UpdateFirmware job, the download from the fake server."""
    import json

    from firmware import secext
    from firmware.ota import updater

    told = []
    monkeypatch.setattr(secext, "notify", lambda cp, what, p: told.append(p["status"]))
    monkeypatch.setattr(secext, "security_event", lambda cp, kind, why: told.append(kind))

    async def sleep_ms(ms):
        pass
    monkeypatch.setattr(asyncio, "sleep_ms", sleep_ms, raising=False)
    monkeypatch.setattr(updater.time, "ticks_ms", lambda: 0, raising=False)
    monkeypatch.setattr(updater.time, "ticks_diff", lambda a, b: a - b, raising=False)
    monkeypatch.setattr(download, "_open", _Server(data, drops=[len(data) - 4000]).opener)
    if quota is not None:
        monkeypatch.setattr(download, "open", quota, raising=False)
    monkeypatch.setattr(updater.Updater, "running", lambda self: ota_cases.RUNNING)
    with open(updater.KEYS_FILE, "w") as f:
        json.dump({"keys": [tool.public_json(key)]}, f)
    cp = _Cp()
    u = updater.Updater(cp, None)
    job = {"location": "http://wallbox.test/b", "retrieve": None, "retries": 2, "interval": 0}
    job.update(signed or {})
    u.req = job.get("req")
    asyncio.run(u._job(job))
    return told, cp


def test_the_updater_streams_the_image_on_a_4mb_layout(key, tmp_path, monkeypatch):
    big = bytes((i * 29) & 0xFF for i in range(1400000))
    flash = _device(monkeypatch, tmp_path, size=APP_4MB)
    told, cp = _job(key, monkeypatch, _bundle(key, img=big), quota=_Quota(FS_4MB))
    assert told == ["Downloading", "Downloaded", "Installing"], cp.lines
    assert cp.restarts == ["ota"] and flash.boot == "ota_1"
    assert not ota_cases.os.path.exists("ota_download.wbota")
    assert _boot(flash) == (big, "a")


def test_the_updater_reports_a_head_refused_while_downloading(key, tmp_path, monkeypatch):
    flash = _device(monkeypatch, tmp_path)
    data = tool.make_bundle(key, ota_cases.FILES, "0.9.0", "nope",
                            image=fake_esp32.image(NEW_IMG))
    told, cp = _job(key, monkeypatch, data)
    assert told == ["Downloading", "InstallationFailed"], cp.lines
    assert "bundle is for board 'nope'" in cp.lines[-1]
    assert flash.ops == 0 and cp.restarts == []
    assert sorted(ota_cases.os.listdir(".")) == ["ota_keys.json"]  # no download left


@pytest.mark.parametrize("booted", [False, True])
def test_a_stream_never_overwrites_a_trial_s_image_or_its_fallback(key, tmp_path, monkeypatch,
                                                                   booted):
    """While an update waits for its trial boot the next partition holds its image; once the
    trial runs (ota_1), the next partition is ota_0: the image a failed trial returns to.
    Another bundle's stream is refused before it writes either."""
    flash = _device(monkeypatch, tmp_path)
    d, s = _download(_Server(_bundle(key)), key)
    _install(key, s)
    if booted:
        assert _boot(flash) == (NEW_IMG, "a") and slots.running_trial() is not None
    ops = flash.ops
    other = tool.make_bundle(key, ota_cases.FILES, "0.9.1", "sim",
                             image=fake_esp32.image(b"MicroPython v1.29 " * 500))
    with pytest.raises(bundle.BundleError, match=r"an update \(0.9.0\) is already waiting"):
        _download(_Server(other), key)
    assert flash.ops == ops
    assert flash.payload("ota_0") == OLD_IMG and flash.payload("ota_1") == NEW_IMG
    if booted:
        slots.fail("health check failed")
    assert _boot(flash) == ((OLD_IMG, "base") if booted else (NEW_IMG, "a"))


@pytest.mark.parametrize("img", [NEW_IMG, b"x" * (4 * fake_esp32.BLOCK - 37)])  # 4 whole blocks
def test_a_drop_after_the_image_s_last_byte_asks_for_its_last_block_again(key, tmp_path,
                                                                        monkeypatch, img):
    """A chunked answer cut after the last data byte (before its end chunk): the resume
    starts at the last block again, never past the end of the image."""
    flash = _device(monkeypatch, tmp_path)
    data = _bundle(key, img=img)
    size = len(fake_esp32.image(img))
    start = len(data) - size
    with open("b.part", "wb") as out:
        s = imgstream.Stream(_keys(key), ota_cases.RUNNING)
        at = 0
        while at < start:  # the head and the files, to the file
            lim = s.limit("b.part", out, at)
            out.write(data[at:lim])
            at = lim
        s.put(memoryview(data[start:]))
    assert s.done
    last = (size - 1) // fake_esp32.BLOCK * fake_esp32.BLOCK
    assert s.resume(start) == start + last and not s.done
    s.rehash(tool.hashlib.sha256())
    s.put(memoryview(data[start + last:]))
    s.finish()
    assert s.done and flash.payload("ota_1") == img


@pytest.mark.parametrize("good", [True, False])
def test_a_signed_update_s_file_signature_covers_the_streamed_image(key, tmp_path, monkeypatch,
                                                                  good):
    """SignedUpdateFirmware: the signature over the whole firmware file is checked against
    the download's SHA-256, which covers the image that went to the partition (and, after the
    drop in the image, the blocks hashed again)."""
    flash = _device(monkeypatch, tmp_path)
    data = _bundle(key)
    signed = data if good else data[:-1] + bytes([data[-1] ^ 1])
    told, cp = _job(key, monkeypatch, data, signed={
        "req": 7, "key": _keys(key)[0], "sig": tool.sign(key, signed), "install": None})
    if good:
        assert told == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                        "InstallRebooting"], cp.lines
        assert _boot(flash) == (NEW_IMG, "a")
    else:
        assert told[:3] == ["Downloading", "Downloaded", "InvalidFirmwareSignature"], told
        assert told[-1] == "InvalidSignature" and flash.boot is None
