# Runs on the MicroPython unix port (64-bit, or the 32-bit build), started by
# tools/bench_ota.py in a scratch folder that plays the device's filesystem root (it holds
# keys.json): downloads URL with firmware/ota/download.py, installs it into a slot with
# firmware/ota/slots.py, and prints one JSON line: download and install times (ms, device
# clock), the signature check's times (us), and with --heap the live data's peak above what
# was there before the update (every module of the update imported first, as a board has them
# frozen in flash), sampled after a collection every 10 ms during the download, and during the
# install (which does not yield to the scheduler) every 4 reads of the bundle and right after
# the manifest is parsed.
#
#   micropython ota_bench_rig.py URL [--heap]
import asyncio
import gc
import hashlib
import json
import sys
import time

from firmware.ota import bundle, rsa, slots
from firmware.ota.download import Download

URL = sys.argv[1]
HEAP = "--heap" in sys.argv
PEAK = [0]


def sample():
    gc.collect()
    m = gc.mem_alloc()
    if m > PEAK[0]:
        PEAK[0] = m


class Sampled:
    """The bundle file, sampling the heap every 4 reads."""

    def __init__(self, f):
        self.f = f
        self.n = 0

    def _tick(self):
        self.n += 1
        if HEAP and self.n % 4 == 0:
            sample()

    def read(self, n=-1):
        self._tick()
        return self.f.read(n)

    def readinto(self, b):
        self._tick()
        return self.f.readinto(b)

    def seek(self, *a):
        return self.f.seek(*a)

    def tell(self):
        return self.f.tell()


class _Json:
    """bundle.py's json, sampling the heap right after the manifest is parsed (its bytes and
    the parsed result both alive): check() runs between two reads of the bundle."""

    @staticmethod
    def loads(b):
        r = json.loads(b)
        if HEAP:
            sample()
        return r


bundle.json = _Json


async def sampler():
    while True:
        sample()
        await asyncio.sleep_ms(10)


async def download():
    d = Download(URL, "ota_download.wbota", log=lambda m: None)
    t = asyncio.create_task(sampler()) if HEAP else None
    t0 = time.ticks_ms()
    await d.run(0, 1000)
    ms = time.ticks_diff(time.ticks_ms(), t0)
    if t is not None:
        t.cancel()
    return d, ms


def main():
    with open("keys.json") as f:
        keys = [rsa.key_from_json(k) for k in json.load(f)["keys"]]
    running = {"version": "0.0.1", "board": "sim",
               "mpy": getattr(sys.implementation, "_mpy", 0), "hw": 1}
    gc.collect()
    base = gc.mem_alloc()
    PEAK[0] = base
    d, dl_ms = asyncio.run(download())
    dl_peak = PEAK[0] - base
    PEAK[0] = base
    t0 = time.ticks_ms()
    with open("ota_download.wbota", "rb") as f:
        m = slots.install(Sampled(f), keys, running)
    inst_ms = time.ticks_diff(time.ticks_ms(), t0)
    inst_peak = PEAK[0] - base
    with open("ota_download.wbota", "rb") as f:
        mbytes, sig = bundle.read_head(f)
    h = hashlib.sha256(mbytes).digest()
    us = []
    for _ in range(11):
        t0 = time.ticks_us()
        rsa.verify_pss(keys[0], h, sig)
        us.append(time.ticks_diff(time.ticks_us(), t0))
    us.sort()
    print(json.dumps({"size": d.size, "download_ms": dl_ms, "install_ms": inst_ms,
                      "files": m["count"], "version": m["version"],
                      "verify_us": us, "key_bits": len(sig) * 8,
                      "heap_download": dl_peak if HEAP else None,
                      "heap_install": inst_peak if HEAP else None}))


main()
