# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the retry
# policy's figures, the Wi-Fi and Ethernet link logic on fake `network` modules and a fake
# clock, and the simulator's link (boards/sim/net.py) cutting real connections to an echo
# server in this same process.
import asyncio
import os

from boards.sim.net import SimNet
from firmware import net as fnet
from firmware.backoff import Backoff
from firmware.net import NetError
from firmware.net_lan import LanNet
from firmware.net_wlan import WlanNet

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


# -- Backoff: the same figures as CPython (host_tests/test_net.py SEED1) ----------------------
SEED1 = [868, 2252, 4863, 7619, 14506, 24538, 61382, 54375, 55322, 71195]
b = Backoff(seed=1)
check("backoff seed 1 as on CPython", [b.next_ms() for _ in range(10)] == SEED1)
ok = True
for seed in range(200):
    b = Backoff(seed=seed * 7919)
    base = 1000
    for n in range(10):
        w = b.next_ms()
        ok = ok and base * 3 // 4 <= w <= base * 5 // 4
        base = min(base * 2, 60000)
check("backoff within +/-25 % of 1 s doubling to 60 s, 200 seeds", ok)


# -- fakes ------------------------------------------------------------------------------------
class Clock:
    t = 0

    def now(self):
        return self.t

    async def sleep_ms(self, ms):
        self.t += ms
        await asyncio.sleep_ms(0)


class FakeWlan:
    def __init__(self, nw):
        self.nw = nw
        self.connects = []
        self.up_at = None
        self.on = False

    def active(self, v=None):
        if v is None:
            return self.on
        self.on = v

    def config(self, **kw):
        self.nw.calls.append(("config", kw))

    def connect(self, ssid, key):
        self.nw.calls.append(("connect", ssid, key))
        self.connects.append(self.nw.clock.t)
        if len(self.connects) >= self.nw.ok_after:
            self.up_at = self.nw.clock.t + 2000

    def disconnect(self):
        self.up_at = None

    def isconnected(self):
        return self.up_at is not None and self.nw.clock.t >= self.up_at

    def status(self, what=None):
        if what == "rssi":
            return -70
        return 1010 if self.isconnected() else 202

    def ifconfig(self):
        return ("192.168.4.23", "255.255.255.0", "192.168.4.1", "192.168.4.1")


class FakeNetwork:
    STA_IF = 0
    STAT_IDLE = 1000
    STAT_GOT_IP = 1010
    STAT_WRONG_PASSWORD = 202

    def __init__(self, clock, ok_after):
        self.clock = clock
        self.ok_after = ok_after
        self.calls = []
        self.wlan = None

    def WLAN(self, ifc):
        self.wlan = FakeWlan(self)
        return self.wlan

    def hostname(self, name):
        self.calls.append(("hostname", name))


def on_clock(net, clock):
    net._now = clock.now
    net._sleep_ms = clock.sleep_ms
    net._since = clock.now()
    return net


# -- the Wi-Fi link -----------------------------------------------------------------------------
async def wifi():
    clock = Clock()
    nw = FakeNetwork(clock, ok_after=3)
    net = on_clock(WlanNet({"ssid": "garage", "password": "secret123", "hostname": "wb",
                            "connect_timeout_s": 5}, network=nw, log=None, seed=1), clock)
    await net.up()
    check("wifi joins on the 3rd connect, after 5 s timeouts and the backoff waits",
          nw.wlan.connects == [0, 5000 + 868, 10000 + 868 + 2252])
    check("wifi driver retries off, hostname before connect",
          nw.calls[:2] == [("config", {"reconnects": 0}), ("hostname", "wb")])
    check("wifi names the failure",
          net.last_error == "not up after 5 s ('garage': wrong password)")
    nw.wlan.up_at = None  # the access point is gone
    info = net.info()
    check("wifi drop seen", not info["up"] and info["last_error"] == "link lost")
    await net.up()
    info = net.info()
    check("wifi back, counted", info["up"] and info["reconnects"] == 1 and info["rssi"] == -70
          and info["ip"] == "192.168.4.23")
    try:
        await WlanNet({"password": "secret123"}, network=nw, log=None).up()
        check("wifi without ssid refused", False)
    except NetError as e:
        check("wifi without ssid refused: " + str(e),
              str(e).startswith("network: ssid missing"))


class FakeLan:
    def __init__(self, clock):
        self.clock = clock
        self.on = False

    def active(self, v=None):
        if v is None:
            return self.on
        self.on = v

    def isconnected(self):
        return self.on and self.clock.t >= 12000

    def status(self):
        return 3 if self.isconnected() else 0

    def ifconfig(self):
        return ("10.0.0.9", "255.0.0.0", "10.0.0.1", "10.0.0.1")


class FakeLanNetwork:
    def __init__(self, clock):
        self.clock = clock

    def LAN(self):
        return FakeLan(self.clock)


async def lan():
    clock = Clock()
    net = on_clock(LanNet({"connect_timeout_s": 10}, network=FakeLanNetwork(clock), log=None,
                          seed=1), clock)
    await net.up()
    check("ethernet up once the cable is in (during the backoff pause)",
          12000 <= clock.t < 12250 and net.info()["ip"] == "10.0.0.9")


# -- the simulator's link, real sockets ---------------------------------------------------------
async def echo(r, w):
    try:
        while True:
            d = await r.read(64)
            if not d:
                break
            w.write(d)
            await w.drain()
    except OSError:
        pass
    w.close()
    await w.wait_closed()


class NoDns:
    SOCK_STREAM = 1

    @staticmethod
    def getaddrinfo(*a):
        raise OSError("[addrinfo error -2]")


async def expect_error(name, coro, words):
    try:
        await coro
        check(name, False)
    except NetError as e:
        check(name + ": " + str(e), words in str(e))


async def sim():
    # The unix port's Server does not tell its port: try free-looking ones from a random start.
    first = 20000 + int.from_bytes(os.urandom(2), "little") % 30000
    for port in range(first, first + 200):
        try:
            srv = await asyncio.start_server(echo, "127.0.0.1", port)
            break
        except OSError:
            pass
    net = SimNet(log=None)
    await net.up()
    r, w = await net.open("127.0.0.1", port)
    w.write(b"hello")
    await w.drain()
    check("sim echo", await asyncio.wait_for_ms(r.read(16), 5000) == b"hello")
    pending = asyncio.create_task(r.read(16))
    await asyncio.sleep_ms(20)
    net.set_state("down")
    got = await asyncio.wait_for_ms(pending, 5000)
    check("sim down: a waiting reader sees EOF", got == b"")
    try:
        w.write(b"x")
        check("sim down: the writer raises", False)
    except OSError:
        check("sim down: the writer raises", True)
    check("sim down: isup False, no connection left",
          not net.isup() and net.info()["conns"] == 0)
    await expect_error("sim down: open refused", net.open("127.0.0.1", port), "link down")
    waiter = asyncio.create_task(net.up())
    await asyncio.sleep_ms(300)
    check("sim down: up() waits", not waiter.done())
    net.set_state("up")
    await asyncio.wait_for_ms(waiter, 5000)
    info = net.info()
    check("sim up again: up() returned, reconnect counted", info["up"] and info["reconnects"] == 1)
    r, w = await net.open("localhost", port)
    w.write(b"again")
    check("sim reconnected echo", await asyncio.wait_for_ms(r.readexactly(5), 5000) == b"again")
    net.set_state("down")
    try:
        await asyncio.wait_for_ms(r.readexactly(2), 5000)
        check("sim down: readexactly raises EOFError", False)
    except EOFError:
        check("sim down: readexactly raises EOFError", True)
    net.set_state("up")
    real = fnet.socket
    fnet.socket = NoDns
    try:
        await expect_error("dns", net.open("csms.example", port),
                           "dns: cannot resolve 'csms.example'")
    finally:
        fnet.socket = real
    srv.close()
    await srv.wait_closed()  # nothing listens on the port now
    await expect_error("refused", net.open("127.0.0.1", port), "refused: 127.0.0.1:%d" % port)


async def main():
    await wifi()
    await lan()
    await sim()


asyncio.run(main())
print("DONE %d failed" % len(FAILS))
