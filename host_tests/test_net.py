"""The retry policy (firmware/backoff.py), the network manager's link logic on fake
`network` modules (firmware/net.py, net_wlan.py, net_lan.py) with a fake clock - every wait is
computed, none slept - and Net.open's errors against real loopback servers (CPython)."""
import asyncio
import socket
import ssl
import sys
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

import simrig  # noqa: E402  (tools/ on sys.path: simlib)
from firmware import net as fnet
from firmware.backoff import Backoff
from firmware.net import Net, NetError
from firmware.net_lan import LanNet
from firmware.net_wlan import WlanNet
from firmware.supervisor import BACKOFF_MAX_MS, BACKOFF_MS, Task

# The same figures on MicroPython: host_tests/mpy/check_net.py holds this list too.
SEED1 = [868, 2252, 4863, 7619, 14506, 24538, 61382, 54375, 55322, 71195]


# -- Backoff --------------------------------------------------------------------------------------
def test_seeded_sequence_is_the_documented_one():
    b = Backoff(seed=1)
    assert [b.next_ms() for _ in range(10)] == SEED1


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_wait_is_within_25_percent_of_a_doubling_base_capped_at_60_s(seed):
    b = Backoff(seed=seed)
    base = 1000
    for n in range(12):
        w = b.next_ms()
        assert type(w) is int
        assert base * 3 // 4 <= w <= base * 5 // 4, (n, base, w)
        base = min(base * 2, 60000)
    assert base == 60000


def test_jitter_spreads_a_fleet_over_the_whole_band():
    firsts = [Backoff(seed=s).next_ms() for s in range(1000)]
    assert min(firsts) < 800 and max(firsts) > 1200  # both ends of 750..1250 are used
    assert len(set(firsts)) > 300  # not a handful of values: boxes do not come back together
    assert Backoff(seed=5).next_ms() == Backoff(seed=5).next_ms()


def test_reset_starts_again_from_the_first_wait():
    b = Backoff(100, 1000, jitter=0, seed=3)
    assert [b.next_ms() for _ in range(6)] == [100, 200, 400, 800, 1000, 1000]
    b.reset()
    assert b.next_ms() == 100 and b.count == 1


def test_bad_backoff_arguments_are_named():
    with pytest.raises(ValueError, match="first_ms"):
        Backoff(0)
    with pytest.raises(ValueError, match="max_ms"):
        Backoff(1000, 500)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)


def test_supervisor_restarts_back_off_1_s_doubling_to_60_s_with_jitter():
    t = Task("probe", None, False, None, 0)
    waits = [t.backoff.next_ms() for _ in range(9)]
    for n, w in enumerate(waits):
        base = min(BACKOFF_MS << n, BACKOFF_MAX_MS)
        assert base * 3 // 4 <= w <= base * 5 // 4
    assert (BACKOFF_MS, BACKOFF_MAX_MS) == (1000, 60000)


# -- fakes: clock, network module -----------------------------------------------------------------
class Clock:
    def __init__(self):
        self.t = 0

    def now(self):
        return self.t

    async def sleep_ms(self, ms):
        assert ms > 0
        self.t += ms
        await asyncio.sleep(0)


def fake_network(clock, ok_after=1, join_ms=3000, fail=201):
    """A `network` module whose WLAN joins on the ok_after-th connect(), join_ms later;
    before, status() says `fail` (201 = STAT_NO_AP_FOUND)."""
    nw = types.SimpleNamespace(
        STA_IF=0, STAT_IDLE=1000, STAT_CONNECTING=1001, STAT_GOT_IP=1010,
        STAT_NO_AP_FOUND=201, STAT_WRONG_PASSWORD=202, STAT_BEACON_TIMEOUT=200, calls=[])

    class WLAN:
        def __init__(self, ifc):
            nw.calls.append(("WLAN", ifc))
            nw.wlan = self
            self.connects = []
            self.up_at = None
            self.on = False
            self.reason = fail

        def active(self, v=None):
            if v is None:
                return self.on
            nw.calls.append(("active", v))
            self.on = v

        def config(self, **kw):
            nw.calls.append(("config", kw))

        def connect(self, ssid, key):
            assert self.on, "connect() on an inactive interface"
            nw.calls.append(("connect", ssid, key))
            self.connects.append(clock.t)
            if len(self.connects) >= ok_after:
                self.up_at = clock.t + join_ms

        def disconnect(self):
            nw.calls.append(("disconnect",))
            self.up_at = None

        def isconnected(self):
            return self.up_at is not None and clock.t >= self.up_at

        def status(self, what=None):
            if what == "rssi":
                return -61
            return 1010 if self.isconnected() else self.reason

        def ifconfig(self):
            return ("192.168.4.23", "255.255.255.0", "192.168.4.1", "192.168.4.1")

        def drop(self):  # the access point went away
            self.up_at = None
            self.reason = 200

    nw.WLAN = WLAN
    nw.hostname = lambda name: nw.calls.append(("hostname", name))
    return nw


def on_clock(net, clock):
    net._now = clock.now
    net._sleep_ms = clock.sleep_ms
    net._since = clock.now()
    return net


def run(coro):
    return asyncio.run(coro)


# -- the Wi-Fi link -------------------------------------------------------------------------------
def test_wifi_retries_with_backoff_until_it_joins():
    clock = Clock()
    nw = fake_network(clock, ok_after=4, join_ms=2000)
    log = []
    net = on_clock(WlanNet({"ssid": "garage", "password": "secret123", "connect_timeout_s": 5,
                            "hostname": "wallbox-7"}, network=nw, log=log.append, seed=9),
                   clock)
    run(net.up())
    assert net.isup()
    expect = Backoff(seed=9)
    waits = [expect.next_ms() for _ in range(3)]
    t = [0]
    for w in waits:  # each failed attempt: the 5 s timeout, then the backoff wait
        t.append(t[-1] + 5000 + w)
    assert nw.wlan.connects == t
    assert clock.t == t[-1] + 2000  # up 2 s after the 4th connect (within a 250 ms poll)
    assert net.attempts == 0 and net.reconnects == 0
    assert net.last_error == "not up after 5 s ('garage': network not found)"
    assert sum("attempt 3 failed, next in %d ms" % waits[2] in m for m in log) == 1
    # The driver's own endless retries are off, the hostname set before the first connect.
    first = nw.calls.index(("connect", "garage", "secret123"))
    assert ("config", {"reconnects": 0}) in nw.calls[:first]
    assert ("hostname", "wallbox-7") in nw.calls[:first]
    assert ("active", True) in nw.calls[:first]


def test_wifi_comes_back_after_a_drop_and_counts_it():
    clock = Clock()
    nw = fake_network(clock, ok_after=1, join_ms=1000)
    net = on_clock(WlanNet({"ssid": "garage", "password": ""}, network=nw, log=None), clock)
    run(net.up())
    info = net.info()
    assert info == {"kind": "wlan", "up": True, "ip": "192.168.4.23", "reconnects": 0,
                    "attempts": 0, "last_error": None, "since_ms": 0, "ssid": "garage",
                    "rssi": -61}
    clock.t += 90000
    assert net.info()["since_ms"] == 90000
    nw.wlan.drop()
    info = net.info()
    assert (info["up"], info["ip"], info["rssi"], info["last_error"]) == (
        False, None, None, "link lost")
    run(net.up())
    info = net.info()
    assert info["up"] and info["reconnects"] == 1 and info["since_ms"] == 0
    assert len(nw.wlan.connects) == 2
    assert ("connect", "garage", "") in nw.calls  # an open network: no key


def test_wifi_backoff_cap_comes_from_the_config():
    clock = Clock()
    nw = fake_network(clock, ok_after=10**6)
    net = on_clock(WlanNet({"ssid": "x", "backoff_max_s": 5, "connect_timeout_s": 5},
                           network=nw, log=None, seed=2), clock)

    async def some_attempts():
        task = asyncio.ensure_future(net.up())
        while not hasattr(nw, "wlan") or len(nw.wlan.connects) < 10:
            await asyncio.sleep(0)
        task.cancel()

    run(some_attempts())
    gaps = [b - a - 5000 for a, b in zip(nw.wlan.connects, nw.wlan.connects[1:])]
    assert gaps[:3] == [w for w in _waits(Backoff(1000, 5000, seed=2), 3)]
    assert all(3750 <= g <= 6250 for g in gaps[3:])  # 5 s +/- 25 %, never 60 s
    assert net.attempts == 9 and not net.isup()


def _waits(b, n):
    return [b.next_ms() for _ in range(n)]


def test_a_driver_error_is_one_failed_attempt_not_a_crash():
    clock = Clock()
    nw = fake_network(clock, ok_after=2, join_ms=500)
    orig = nw.WLAN.connect

    def connect(self, ssid, key):
        orig(self, ssid, key)
        if len(self.connects) == 1:
            raise OSError("Wifi Internal Error")

    nw.WLAN.connect = connect
    net = on_clock(WlanNet({"ssid": "x"}, network=nw, log=None, seed=1), clock)
    run(net.up())
    assert net.isup() and nw.wlan.connects == [0, SEED1[0]]


@pytest.mark.parametrize("section, words", [
    (None, ["ssid missing"]),
    ({}, ["ssid missing"]),
    ({"ssid": ""}, ["ssid refused: ''", "1..32 bytes"]),
    ({"ssid": "x" * 33}, ["ssid refused"]),
    ({"ssid": 7}, ["ssid not a string"]),
    ({"ssid": "a", "password": "short"}, ["password refused: 5 characters", "8..63"]),
    ({"ssid": "a", "pasword": "12345678"}, ["unknown key 'pasword' (did you mean 'password'?)"]),
    ({"ssid": "a", "backoff_max_s": "60"}, ["backoff_max_s not an integer"]),
    ({"ssid": "a", "connect_timeout_s": 1}, ["connect_timeout_s=1 out of range", "5..120"]),
    ({"ssid": "a", "hostname": "-box"}, ["hostname refused: '-box'"]),
    (["ssid"], ["must be a JSON object"]),
])
def test_a_bad_config_says_what_to_fix_and_up_refuses(section, words):
    nw = fake_network(Clock())
    net = WlanNet(section, network=nw, log=None)
    with pytest.raises(NetError) as e:
        run(net.up())
    for w in words:
        assert w in str(e.value), str(e.value)
    assert str(e.value) in net.info()["last_error"]
    assert nw.calls == []  # no radio touched
    assert "short" not in str(e.value)  # never a password in a message


def test_good_configs_pass():
    for section in ({"ssid": "a"}, {"ssid": "Café 5G", "password": "a" * 63},
                    {"ssid": "a", "password": "0123456789abcdef" * 4, "hostname": "wb-1"}):
        assert WlanNet.validate(section) == [], section
    assert Net.validate(None) == [] and LanNet.validate({}) == []


# -- the Ethernet link ----------------------------------------------------------------------------
def fake_lan_network(clock, plugged_at, dhcp_ms=1500):
    nw = types.SimpleNamespace(calls=[])

    class LAN:
        def __init__(self, **kw):
            nw.calls.append(("LAN", kw))
            nw.lan = self
            self.on = False

        def active(self, v=None):
            if v is None:
                return self.on
            self.on = v

        def status(self):
            if not self.on or clock.t < plugged_at:
                return 0
            return 2 if clock.t < plugged_at + dhcp_ms else 3

        def isconnected(self):
            return self.status() == 3

        def ifconfig(self):
            return ("10.0.0.9", "255.0.0.0", "10.0.0.1", "10.0.0.1")

    nw.LAN = LAN
    return nw


@pytest.mark.parametrize("plugged_at, dhcp_ms", [(31000, 1500), (20900, 500)])
def test_ethernet_comes_up_when_the_cable_is_plugged_even_during_a_backoff_pause(
        plugged_at, dhcp_ms):
    clock = Clock()
    nw = fake_lan_network(clock, plugged_at, dhcp_ms)
    net = on_clock(LanNet({"connect_timeout_s": 10}, network=nw, log=None, seed=1,
                          lan_args={"phy_type": 1}), clock)
    run(net.up())
    # Attempts end at 10 s and 20.868 s (after an 868 ms pause), then a 2252 ms pause: a link
    # up at 32.5 s is seen by the third attempt's next 250 ms poll, one up at 21.4 s by the
    # pause's, not 1.7 s later when the pause would have ended.
    up_ms = plugged_at + dhcp_ms
    assert up_ms <= clock.t < up_ms + 250
    assert net.info()["ip"] == "10.0.0.9" and net.attempts == 0
    assert nw.calls == [("LAN", {"phy_type": 1})]
    assert "ethernet: no link (cable unplugged or switch off)" in net.last_error


# -- Net.open against real loopback servers -------------------------------------------------------
class Up(Net):
    kind = "test"

    def _link(self):
        return True


async def _echo(reader, writer):
    while data := await reader.read(100):
        writer.write(data)
        await writer.drain()
    writer.close()


def test_open_connects_and_names_each_failure(monkeypatch):
    async def main():
        srv = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        net = Up(log=None)
        r, w = await net.open("127.0.0.1", port)
        w.write(b"ping")
        assert await asyncio.wait_for(r.readexactly(4), 10) == b"ping"
        w.close()
        with pytest.raises(NetError, match=r"^refused: 127\.0\.0\.1:%d$" % _free_port_closed):
            await net.open("127.0.0.1", _free_port_closed)
        with pytest.raises(NetError, match="bad port"):
            await net.open("127.0.0.1", 70000)

        def no_dns(*a):
            raise socket.gaierror(-2, "Name or service not known")

        monkeypatch.setattr(fnet.socket, "getaddrinfo", no_dns)
        with pytest.raises(NetError, match=r"^dns: cannot resolve 'csms\.example' \(Name or"):
            await net.open("csms.example", port)
        srv.close()

    _free_port_closed = simrig.simlib._free_port()
    run(main())


def test_open_names_a_tls_handshake_that_never_ends_a_timeout():
    async def silent(reader, writer):
        await reader.read()  # says nothing until the client gives up

    async def main():
        srv = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(NetError, match=r"^timeout: no connection to 127\.0\.0\.1:%d in "
                                           r"300 ms$" % port):
            await Up(log=None).open("127.0.0.1", port, ssl=ssl.create_default_context(),
                                    server_hostname="localhost", timeout_ms=300)
        srv.close()

    run(main())


def test_open_names_a_server_that_does_not_speak_tls():
    async def http(reader, writer):
        await reader.read(10)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main():
        srv = await asyncio.start_server(http, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(NetError, match=r"^tls: 127\.0\.0\.1:%d: " % port):
            await Up(log=None).open("127.0.0.1", port, ssl=ssl.create_default_context(),
                                    timeout_ms=10000)
        srv.close()

    run(main())


def test_open_on_a_link_that_is_down_says_so():
    with pytest.raises(NetError, match="^link down$"):
        run(Net(log=None).open("127.0.0.1", 80))
    assert issubclass(NetError, OSError)  # code written for open_connection's errors


def test_simnet_cut_closes_open_connections_on_cpython_too():
    from boards.sim.net import SimNet

    async def main():
        srv = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        net = SimNet(log=None)
        r, w = await net.open("127.0.0.1", port)
        assert net.info()["conns"] == 1
        net.set_state("down")
        assert await asyncio.wait_for(r.read(10), 10) == b""
        with pytest.raises(NetError, match="link down"):
            await net.open("127.0.0.1", port)
        with pytest.raises(ValueError, match="up.*down.*'sideways'"):
            net.set_state("sideways")
        net.set_state("up")
        r, w = await net.open("127.0.0.1", port)
        w.write(b"x")
        assert await asyncio.wait_for(r.readexactly(1), 10) == b"x"
        assert net.info()["reconnects"] == 1
        w.close()
        srv.close()

    run(main())


def test_boards_give_their_network_object(monkeypatch):
    fake = types.ModuleType("machine")
    fake.ADC = fake.PWM = fake.WDT = fake.Pin = fake.reset = object
    pyb = types.ModuleType("pyb")
    for name, mod in (("machine", fake), ("pyb", pyb), ("network", fake_network(Clock()))):
        monkeypatch.setitem(sys.modules, name, mod)
    from boards.esp32_wallbox.board import Esp32Board
    from boards.stm32_wallbox.board import Stm32Board

    esp = Esp32Board.__new__(Esp32Board)  # the pins are not needed for this
    n = esp.net({"ssid": "garage"})
    assert isinstance(n, WlanNet) and esp.net({"ssid": "garage"}) is n and n.kind == "wlan"
    assert Stm32Board.net(Stm32Board.__new__(Stm32Board), {"ssid": "garage"}) is None
    for mod in ("boards.esp32_wallbox.board", "boards.stm32_wallbox.board"):
        sys.modules.pop(mod, None)


@pytest.mark.sim
def test_sim_net_command_cuts_the_link_while_charging_goes_on():
    from simrig import charge, start, status

    with start() as sim:
        n = charge(sim)
        sim.do("net", state="down")
        assert sim.wait_for({"k": "net"}, 5, since=n)["state"] == "down"
        sim.wait_for({"k": "log", "msg": "network: sim link lost"}, 5, since=n)
        m = len(sim.obs)
        sim.send({"do": "net", "state": "sideways"})  # past the host-side check
        err = sim.wait_for({"k": "error"}, 5, since=m)
        assert "net state must be up or down, got 'sideways'" in err["msg"]
        sim.do("net", state="up")
        sim.wait_for({"k": "log", "msg": "network: sim up, address 127.0.0.1"}, 5, since=m)
        assert not any(status(s)(o) for o in sim.obs[n:] for s in ("Faulted", "SuspendedEVSE"))
        assert sim.state()["status"] == "Charging"
