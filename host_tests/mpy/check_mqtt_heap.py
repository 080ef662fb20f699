# Runs on the MicroPython unix port (host_tests/test_micropython.py): the heap the MQTT client
# (firmware/mqtt/client.py) holds for a connection while it is idle, on a fake broker link
# (a CONNACK, then silence): its tasks, their frames, the streams. Issue 19's budget is the
# whole firmware within 48 KB; the sender used to wait for work through wait_for (a task and
# its runner held for the whole connection: 336 B more on the 32-bit build). Then a failure
# of the link ends the connection at once (not at the session's next tick).
import asyncio
import gc
import sys

from firmware.mqtt import client

HELD_MAX = 3000 if sys.maxsize > 1 << 32 else 1500  # bytes (2,656 x64, 1,328 32-bit; 3,328 and
# 1,664 with wait_for)
FAILED = []


def check(ok, msg):
    if not ok:
        FAILED.append(msg)
        print("FAIL", msg)


class Link:
    """The broker's side: a CONNACK, then nothing (or a failure when `broken`)."""

    def __init__(self):
        self.data = b"\x20\x02\x00\x00"
        self.broken = False
        self.closed = False
        self.out = 0

    async def readexactly(self, n):
        while len(self.data) < n:
            if self.broken:
                raise OSError(104)
            await asyncio.sleep_ms(5)
        d = self.data[:n]
        self.data = self.data[n:]
        return d

    def write(self, b):
        self.out += len(b)

    async def drain(self):
        pass

    def close(self):
        self.closed = True


async def main():
    links = []

    async def fake_open():
        links.append(Link())
        return links[-1], links[-1]

    c = client.Client("broker", 1883, "wallbox-heap", keepalive_s=60,
                      subs=[("wb/+/set", 1), ("wb/set", 1)], log=lambda m: None)
    c._open = fake_open
    gc.collect()
    before = gc.mem_alloc()
    task = asyncio.create_task(c.run())
    for _ in range(200):
        if c.connected:
            break
        await asyncio.sleep_ms(5)
    check(c.connected, "not connected to the fake broker")
    await asyncio.sleep_ms(100)
    gc.collect()
    held = gc.mem_alloc() - before
    print("MQTT connection held, idle: %d B" % held)
    check(held <= HELD_MAX, "an idle connection held %d B (at most %d)" % (held, HELD_MAX))
    # a message goes out at once
    n = links[0].out
    c.publish("wb/status", "Charging", True)
    await asyncio.sleep_ms(20)
    check(links[0].out > n and c.sent == 1, "publish: %d bytes written" % (links[0].out - n))
    # the link fails: the connection ends at once, not at the next keepalive tick
    links[0].broken = True
    for _ in range(40):
        if links[0].closed:
            break
        await asyncio.sleep_ms(5)
    check(links[0].closed and not c.connected, "the failed link is not closed within 200 ms")
    check(c.last_error is not None, "no error recorded")
    task.cancel()
    print("DONE %d failed" % len(FAILED))


asyncio.run(main())
