# The Modbus master and meters on the real MicroPython unix port.
#   no arguments (host_tests/test_micropython.py): frames, CRC, the integer decoders on
#     MicroPython's ints, faults, and steady polling of two meters under heap_lock() on an
#     in-process fake bus; prints "DONE 0 failed".
#   PORT BAUD TIMEOUT_MS RETRIES ADDR=PROFILE[,ADDR=PROFILE] (host_tests/test_modbus_pty.py):
#     the master on a pty served by pymodbus (tools/meter_emu.py); commands on stdin, one
#     answer line each: "poll ADDR", "steady ADDR,ADDR N" (heap locked), "stats", "quit".
import sys
import time

import asyncio
import micropython

from drivers import kernels, modbus
from drivers.modbus import ModbusError, ModbusMaster
from firmware.meter import UNKNOWN, Reading
from firmware.meters.modbus_meter import MeterError, ModbusMeter, f32_scaled

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


class FakeBus:
    """Slaves answering from register images, into preallocated buffers (no allocation):
    reads only; `mode` per address: 0 answer, 1 silent, 2 bad CRC, 3 exception 02."""

    def __init__(self):
        self.images = {}
        self.mode = {}
        self.out = bytearray(256)
        self.n = 0
        self.pos = 0

    def write(self, req):
        a = req[0]
        img = self.images.get(a)
        mode = self.mode.get(a, 0)
        if img is None or mode == 1:
            return len(req)
        out = self.out
        reg = (req[2] << 8) | req[3]
        cnt = (req[4] << 8) | req[5]
        out[0] = a
        if mode == 3:
            out[1] = req[1] | 0x80
            out[2] = 2
            n = 3
        else:
            out[1] = req[1]
            out[2] = 2 * cnt
            for k in range(2 * cnt):
                out[3 + k] = img[2 * reg + k]
            n = 3 + 2 * cnt
        crc = kernels.crc16_modbus(out, n)
        out[n] = crc & 0xFF
        out[n + 1] = (crc >> 8) ^ (0x55 if mode == 2 else 0)
        self.n = n + 2
        self.pos = 0
        return len(req)

    def any(self):
        return self.n - self.pos

    def readinto(self, buf, nbytes=-1):
        n = self.n - self.pos
        if 0 <= nbytes < n:
            n = nbytes
        out = self.out
        p = self.pos
        for k in range(n):
            buf[k] = out[p + k]
        self.pos = p + n
        return n

    def flush(self):
        pass


def put_f32(img, reg, hi, lo):
    img[2 * reg] = hi >> 8
    img[2 * reg + 1] = hi & 0xFF
    img[2 * reg + 2] = lo >> 8
    img[2 * reg + 3] = lo & 0xFF


def sdm630_image():
    img = bytearray(2 * 0x4C)
    put_f32(img, 0x00, 0x4366, 0x199A)  # 230.1 V
    put_f32(img, 0x06, 0x4181, 0x999A)  # 16.2 A
    put_f32(img, 0x0C, 0x4567, 0x4000)  # 3700 W
    put_f32(img, 0x0E, 0xC55A, 0xC000)  # -3500 W
    put_f32(img, 0x34, 0x43FA, 0x0000)  # 500 W
    put_f32(img, 0x46, 0x4248, 0x147B)  # 50.02 Hz
    put_f32(img, 0x48, 0x449A, 0x5000)  # 1234.5 kWh
    return img


def local_checks():
    buf = bytearray(16)
    n = modbus.build_read(buf, 1, 4, 0, 2)
    check("read frame", bytes(buf[:n]) == bytes(b"\x01\x04\x00\x00\x00\x02\x71\xcb"))
    n = modbus.build_write(buf, 1, 0x1C, [0x4000, 0])
    check("write frame", bytes(buf[-3 + n:n]) == b"\x00\xe7\x36")
    check("crc 123456789", kernels.crc16_modbus(b"123456789") == 0x4B37)
    check("f32 230.1 V -> dV", f32_scaled(0x4366, 0x199A, 10, 1) == 2301)
    check("f32 -3500 W", f32_scaled(0xC55A, 0xC000, 1, 1) == -3500)
    check("f32 scaled 0.001 A", f32_scaled(0x467D, 0x2000, 1, 100) == 162)  # 16200.0

    bus = FakeBus()
    bus.images[1] = sdm630_image()
    bus.images[2] = sdm630_image()
    m = ModbusMaster(bus, baud=115200, timeout_ms=20, retries=1)
    m1 = ModbusMeter(m, 1, "sdm630")
    m2 = ModbusMeter(m, 2, "sdm630", inverted=True)
    r1 = Reading()
    r2 = Reading()

    async def errors():
        out = []
        for mode in (1, 2, 3):
            bus.mode[1] = mode
            try:
                await m1.poll(r1)
                out.append("ok")
            except ModbusError as e:
                out.append(e.kind)
        bus.mode[1] = 0
        put_f32(bus.images[1], 0x02, 0x7FC0, 0)  # NaN voltage L2
        try:
            await m1.poll(r1)
            out.append("ok")
        except MeterError as e:
            out.append(str(e))
        put_f32(bus.images[1], 0x02, 0x4366, 0x199A)
        return out

    async def steady(n):
        for _ in range(3):
            await m1.poll(r1)
            await m2.poll(r2)
        err = None
        micropython.heap_lock()
        try:
            for k in range(n):
                await m1.poll(r1)
                r1.stamp(time.ticks_ms())
                await m2.poll(r2)
                r2.stamp(time.ticks_ms())
        except MemoryError as e:
            err = e
        micropython.heap_unlock()
        return err

    got = asyncio.run(errors())
    check("faults: %r" % (got,), got[:3] == ["timeout", "crc", "exception"]
          and got[3] == "meter 1: voltage L2 is not a number")
    err = asyncio.run(steady(200))
    check("steady polling of two meters allocates nothing (heap locked): %r" % (err,),
          err is None)
    check("values", list(r1.v_dv)[0] == 2301 and list(r1.i_da)[:2] == [162, 0]
          and r1.p_w[1] == -3500 and r1.energy_wh == 1234500 and r1.freq_chz == 5002)
    check("inverted", r2.i_da[0] == -162 and r2.p_total_w == -500 and r2.export_wh == 1234500
          and r2.energy_wh == 0)
    check("unknown stays unknown", r1.i_max_da == 162 and UNKNOWN not in list(r1.p_w))
    s = m.stats_dict()
    check("stats count requests and retries", s["ok"] >= 406 and s["retries"] == 2)
    print("DONE %d failed" % len(FAILS))


def fmt(r):
    return "i=%s v=%s p=%s pt=%d e=%d x=%d f=%d imax=%d" % (
        ",".join(str(x) for x in r.i_da), ",".join(str(x) for x in r.v_dv),
        ",".join(str(x) for x in r.p_w), r.p_total_w, r.energy_wh, r.export_wh, r.freq_chz,
        r.i_max_da)


def pty_mode(argv):
    from boards.sim.uart import PtyUart

    port, baud, timeout_ms, retries, spec = argv
    uart = PtyUart(port, int(baud))
    master = ModbusMaster(uart, baud=int(baud), timeout_ms=int(timeout_ms),
                          retries=int(retries))
    meters = {}
    readings = {}
    for item in spec.split(","):
        a, p = item.split("=")
        meters[int(a)] = ModbusMeter(master, int(a), p)
        readings[int(a)] = Reading()

    async def poll(a):
        try:
            await meters[a].poll(readings[a])
            return "OK %d %s" % (a, fmt(readings[a]))
        except (ModbusError, MeterError) as e:
            return "ERR %d %s %s" % (a, getattr(e, "kind", "meter"), e)

    async def steady(addrs, n):
        for a in addrs:
            await meters[a].poll(readings[a])
        done = 0
        micropython.heap_lock()
        try:
            for _ in range(n):
                for a in addrs:
                    await meters[a].poll(readings[a])
                done += 1
            err = None
        except MemoryError as e:
            err = e
        except Exception as e:  # a failed poll: reported, not a crash
            err = e
        micropython.heap_unlock()
        return "STEADY %d of %d %r" % (done, n, err)

    print("READY")
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "poll":
            out = asyncio.run(poll(int(words[1])))
        elif words[0] == "steady":
            out = asyncio.run(steady([int(a) for a in words[1].split(",")], int(words[2])))
        elif words[0] == "stats":
            out = "STATS %r" % (master.stats_dict(),)
        else:
            out = "BAD %s" % line.strip()
        print(out)


if len(sys.argv) > 1:
    pty_mode(sys.argv[1:])
else:
    local_checks()
