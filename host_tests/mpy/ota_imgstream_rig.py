# Runs on the MicroPython unix port, started by host_tests/test_ota_imgstream.py with a folder
# holding keys.json, running.json and image.wbota (a bundle with a MicroPython image): the
# download streams the image into host_tests/fake_esp32.py's next partition with MicroPython's
# own asyncio, hashlib and memoryview, the connection cut once in the middle of an image block
# (resumed with Range from the last whole block), then the install reads it back and boots it.
# Prints "PASS name" or "FAIL name: why", then "DONE n failed".
import asyncio
import json
import os
import sys
import time

sys.path.append(__file__.rsplit("/", 2)[0])  # host_tests: fake_esp32

import fake_esp32  # noqa: E402
from firmware.ota import download, imgstream, rsa, slots  # noqa: E402

D = sys.argv[1]
with open(D + "/keys.json") as f:
    KEYS = [rsa.key_from_json(k) for k in json.load(f)["keys"]]
with open(D + "/running.json") as f:
    RUNNING = json.load(f)
with open(D + "/image.wbota", "rb") as f:
    BODY = f.read()
IMG = int(sys.argv[2])  # the image's length (the bundle's last bytes)
OLD = b"MicroPython v1.27 " * 300


class Conn:
    def __init__(self, srv):
        self.srv = srv
        self.req = b""
        self.out = b""

    def write(self, b):
        self.req += b

    async def drain(self):
        start = 0
        for line in self.req.decode().split("\r\n"):
            if line.startswith("Range: bytes="):
                start = int(line[13:-1])
        self.srv.requests.append(start)
        cut = self.srv.drops.pop(0) if self.srv.drops else len(BODY)
        if start:
            head = "HTTP/1.1 206 P\r\nContent-Range: bytes %d-%d/%d\r\n" % (
                start, len(BODY) - 1, len(BODY))
        else:
            head = "HTTP/1.1 200 OK\r\n"
        head += "Content-Length: %d\r\n\r\n" % (len(BODY) - start)
        self.out = head.encode() + BODY[start:max(start, cut)]

    async def readline(self):
        i = self.out.find(b"\n") + 1 or len(self.out)
        b, self.out = self.out[:i], self.out[i:]
        return b

    async def read(self, n):
        b, self.out = self.out[:n], self.out[n:]
        return b

    def close(self):
        pass


class Server:
    def __init__(self, drops):
        self.drops = drops
        self.requests = []

    async def opener(self, host, port, ssl=None, server_hostname=None):
        c = Conn(self)
        return c, c


def _stream():
    os.mkdir(D + "/dev")
    os.chdir(D + "/dev")
    flash = fake_esp32.Flash()
    flash.flash_image("ota_0", OLD)
    flash.reset()
    sys.modules["esp32"] = flash.module()
    start = len(BODY) - IMG
    srv = Server([start + 4096 + 1000])
    s = imgstream.Stream(KEYS, RUNNING)
    d = download.Download("http://w.test/b", "dl.wbota", opener=srv.opener,
                          log=lambda m: None, sink=s)
    t0 = time.ticks_ms()
    asyncio.run(d.run(2, 10))
    ms = time.ticks_diff(time.ticks_ms(), t0)
    assert srv.requests == [0, start + 4096], srv.requests
    assert s.done and os.stat("dl.wbota")[6] == start, os.stat("dl.wbota")
    with open("dl.wbota", "rb") as f:
        slots.install(f, KEYS, RUNNING, streamed=True)
    flash.reset()
    slots.check_image()
    assert slots.pick() == "a" and flash.running == "ota_1"
    assert flash.payload("ota_1") is not None
    print("streamed a %d-byte bundle (image %d bytes) with one drop: %d ms" % (
        len(BODY), IMG, ms))


failed = 0
try:
    _stream()
    print("PASS the image streams into its partition")
except Exception as e:  # noqa: BLE001 - reported as this scenario's failure
    failed += 1
    print("FAIL the image streams into its partition: %r" % (e,))
print("DONE %d failed" % failed)
