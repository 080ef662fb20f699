"""The esp32_wallbox board on the faithful esp32 port fake (host_tests/portfakes.py): the S0
impulses counted by the PCNT (machine.Counter) where the port has it, and what the
scheduled pin interrupt loses where it has not (issue 14, section 1, item 4)."""
import asyncio
import sys

import pytest
from portfakes import Dev
from test_board_ports import _load

from firmware.meter import Reading
from firmware.meters import roles

S0_CFG = {"ev": {"type": "s0", "imp_per_kwh": 1000, "save_wh": 10}}


@pytest.fixture
def esp(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    dev = Dev()
    mod, machine = _load(monkeypatch, "esp32_wallbox", dev)
    yield dev, mod, machine
    sys.modules.pop("boards.esp32_wallbox.board", None)


def _s0(dev, mod, logs):
    board = mod.build()
    ms = roles.build(board, S0_CFG, log=logs.append, clock=lambda: dev.t // 1000)
    assert not ms.errors, ms.errors
    return ms.get("ev")


def _impulse(dev, mod, on_ms=35, off_ms=100, bounce=False):
    if bounce:  # a glitch of 2 us before the edge: the unit's filter takes it away
        dev.edge(mod.S0_INPUT, 0)
        dev.advance(2)
        dev.edge(mod.S0_INPUT, 1)
        dev.advance(3)
    dev.edge(mod.S0_INPUT, 0)
    dev.advance(on_ms * 1000)
    dev.edge(mod.S0_INPUT, 1)
    dev.advance(off_ms * 1000)


def test_esp32_s0_impulses_inside_a_1s_block_are_all_counted(esp):
    """Seven impulses (35 ms on, 100 ms off) while the interpreter is blocked in C for 1 s (a
    TLS handshake, a flash erase): the port's pin interrupt is scheduled, its handler would
    read the idle pin and the block's end and count none. The PCNT counts all seven."""
    dev, mod, _ = esp
    logs = []
    task = _s0(dev, mod, logs)
    src = task.source
    dev.advance(200000)
    asyncio.run(src.poll(Reading()))
    t0 = dev.t
    for _ in range(7):
        _impulse(dev, mod, bounce=True)
    dev.until(t0 + 1000000)  # the block ends: the interpreter runs again
    dev.run_scheduled()
    r = Reading()
    asyncio.run(src.poll(r))
    assert src.impulses == 7, src.impulses
    assert r.energy_wh == 7  # 1 Wh an impulse at 1000 imp/kWh
    assert not [m for m in logs if "Counter" in m], logs


def test_esp32_s0_power_from_the_counter_polled_each_second(esp):
    """11 kW at 1000 imp/kWh is an impulse every 327 ms; the meter task polls every 1 s: the
    stamps are the polls (1 s resolution), the power is taken over >= 10 s of them."""
    dev, mod, _ = esp
    task = _s0(dev, mod, [])
    src = task.source
    period_us = 3600000000 // 11000  # us per impulse (1 Wh) at 11 kW
    next_poll = dev.t + 1000000
    seen = []
    for _ in range(200):  # 65 s of impulses
        start = dev.t
        _impulse(dev, mod, on_ms=35, off_ms=0)
        dev.until(start + period_us)
        if dev.t >= next_poll:
            r = Reading()
            asyncio.run(src.poll(r))
            seen.append(r.p_total_w)
            next_poll += 1000000
    late = seen[15:]  # after the first window
    assert late and all(abs(p - 11000) <= 1100 for p in late), seen
    assert src.excess == 0
    dev.advance(70000000)  # the EV stops: the power decays to 0
    r = Reading()
    asyncio.run(src.poll(r))
    assert r.p_total_w == 0


def test_esp32_s0_rate_ceiling_drops_bounce_counts(esp):
    """Contact bounce of ms is longer than the PCNT's 12.8 us filter: a poll takes at most one
    impulse per 2 x debounce_ms since the previous one; the rest is counted in excess."""
    dev, mod, _ = esp
    task = _s0(dev, mod, [])
    src = task.source
    asyncio.run(src.poll(Reading()))
    for _ in range(20):  # 20 releases 1 ms apart within 40 ms
        dev.edge(mod.S0_INPUT, 0)
        dev.advance(1000)
        dev.edge(mod.S0_INPUT, 1)
        dev.advance(1000)
    asyncio.run(src.poll(Reading()))
    assert src.impulses <= 2 and src.excess >= 18, (src.impulses, src.excess)
    import types as _types

    from firmware import diag

    lines = []
    diag.attach(_types.SimpleNamespace(meters=_types.SimpleNamespace(tasks=[task])))
    try:
        diag.meters(out=lines.append)
    finally:
        diag.attach(None)
    assert any("(counter, %d over the rate ceiling)" % src.excess in x for x in lines), lines


def test_esp32_without_counter_says_so_and_counts_in_the_pin_interrupt(monkeypatch, tmp_path):
    """A chip without PCNT (ESP32-C3) or a port before v1.26: the boot log says the impulses
    are counted in the scheduled pin interrupt, and that path still counts."""
    from portfakes import make_esp32

    monkeypatch.chdir(tmp_path)
    dev = Dev()
    mod, _ = _load(monkeypatch, "esp32_wallbox", dev)
    monkeypatch.setitem(sys.modules, "machine", make_esp32(dev, pcnt=False))
    logs = []
    task = _s0(dev, mod, logs)
    src = task.source
    assert src.counter is None
    assert [m for m in logs if "machine.Counter" in m and "lost" in m], logs
    dev.advance(100000)
    dev.edge(mod.S0_INPUT, 0)
    dev.run_scheduled()
    dev.advance(35000)
    dev.edge(mod.S0_INPUT, 1)
    dev.run_scheduled()
    assert src.impulses == 1
    sys.modules.pop("boards.esp32_wallbox.board", None)


# -- item 6: DNS lookups bounded --------------------------------------------------------------


def _wifi(dev, mod, monkeypatch, dns_world):
    """The board's Wi-Fi station up, on the esp32 socket fake and the device clock; the
    connect itself recorded (what is under test is the lookup before it)."""
    import types as _types

    from portfakes_esp32 import make_socket
    from test_board_ports import _Wlan

    from firmware import net as net_mod

    sock = make_socket(dev, dns_world)
    monkeypatch.setattr(net_mod, "socket", sock)
    try:
        from firmware import dns as dns_mod
    except ImportError:  # (the firmware before its bounded lookups)
        dns_mod = None
    if dns_mod is not None:
        monkeypatch.setattr(dns_mod, "socket", sock)
        monkeypatch.setattr(dns_mod, "_cache", {})
    nw = _types.ModuleType("network")
    nw.WLAN, nw.STA_IF = _Wlan, 0
    monkeypatch.setitem(sys.modules, "network", nw)
    board = mod.build()
    logs = []
    n = board.net({"ssid": "home", "password": "secret123"})
    n._log = logs.append
    n._link = lambda: True
    n._ip = lambda: "10.0.0.2"
    n._wlan = _Wlan()  # DNS server 10.0.0.1 (ifconfig()[3]; this network has no ipconfig)
    n._now = lambda: dev.t // 1000

    async def sleep_ms(ms):
        dev.advance(ms * 1000)
        await asyncio.sleep(0)

    n._sleep_ms = sleep_ms
    opened = []

    async def connect(host, port, ssl, server_hostname):
        sock.getaddrinfo(host, port)  # asyncio.open_connection's own lookup
        opened.append((host, port, ssl, server_hostname))
        return object(), object()

    n._connect = connect
    return board, n, sock, opened, logs


def _open_fed(dev, n, host):
    """net.open beside a watchdog feeder task: (exception or None, the longest time between
    two feeds in ms, the device time open took in ms)."""
    feeds = []

    async def feeder(stop):
        while not stop:
            feeds.append(dev.t)
            await n._sleep_ms(100)

    async def main():
        stop = []
        f = asyncio.ensure_future(feeder(stop))
        await asyncio.sleep(0)
        t0 = dev.t
        err = None
        try:
            await n.open(host, 443, ssl=True)
        except OSError as e:
            err = e
        took = dev.t - t0
        stop.append(1)
        await f
        return err, took

    err, took = asyncio.run(main())
    feeds.append(dev.t)
    gap = max(b - a for a, b in zip(feeds, feeds[1:]))
    return err, gap // 1000, took // 1000


def test_esp32_dns_lookup_on_a_dead_server_never_outlasts_the_watchdog(esp, monkeypatch):
    """The contactor open, a dead DNS server: the port's getaddrinfo would hold the
    interpreter for lwIP's 7 s of retries, past the 5 s watchdog (a reset loop). The lookup
    waits in asyncio instead (the feeder runs on) and gives up after 2 x 1 s."""
    from portfakes_esp32 import Dns

    from firmware import net as net_mod

    dev, mod, _ = esp
    board, n, sock, opened, _ = _wifi(dev, mod, monkeypatch, Dns(alive=False))
    err, gap_ms, took_ms = _open_fed(dev, n, "csms.example.org")
    assert [x for x in sock.lookups if x[1] > 0] == [], sock.lookups
    assert gap_ms <= 200, "the watchdog went unfed for %d ms" % gap_ms
    assert isinstance(err, net_mod.NetError) and "dns" in str(err), err
    assert took_ms <= 2500, took_ms
    assert not opened


def test_esp32_dns_answer_connects_by_address_and_tls_checks_the_name(esp, monkeypatch):
    from portfakes_esp32 import Dns

    dev, mod, _ = esp
    world = Dns({"csms.example.org": "10.0.0.9"})
    board, n, sock, opened, logs = _wifi(dev, mod, monkeypatch, world)
    err, gap_ms, _ = _open_fed(dev, n, "csms.example.org")
    assert err is None, err
    assert opened == [("10.0.0.9", 443, True, "csms.example.org")]
    assert world.queries == ["csms.example.org"]
    world.alive = False  # the DNS server dies: its last address is used, and said
    err, gap_ms, _ = _open_fed(dev, n, "csms.example.org")
    assert err is None and opened[-1][0] == "10.0.0.9" and gap_ms <= 200, (err, gap_ms)
    assert [m for m in logs if "last address 10.0.0.9" in m], logs
    world.alive = True
    err, _, _ = _open_fed(dev, n, "nothere.example.org")
    assert "no such name" in str(err), err


def test_esp32_ntp_lookup_blocks_at_most_2s(esp, monkeypatch):
    """ntptime looks its host up with getaddrinfo (7 s on a dead server) and waits 1 s for
    the answer: the board resolves the name itself, one try of 1 s, so the interpreter
    blocks 2 s at most, below the supervisor's 2.5 s hang limit and the 5 s watchdog."""
    from portfakes_esp32 import Dns

    dev, mod, _ = esp
    world = Dns({"pool.ntp.org": "10.0.0.123"}, alive=False)
    board, n, sock, _, _ = _wifi(dev, mod, monkeypatch, world)
    asked = []

    def ntp(host):  # boards/rtc.py's ntptime: getaddrinfo, then up to 1 s for the answer
        sock.getaddrinfo(host, 123)
        asked.append(host)
        dev.advance(1000000)
        return 1767225600

    monkeypatch.setattr(mod, "_ntp_s", ntp)
    t0 = dev.t
    with pytest.raises(OSError, match="dns"):
        board.ntp_s("pool.ntp.org")
    assert dev.t - t0 <= 2000000, dev.t - t0
    world.alive = True
    t0 = dev.t
    assert board.ntp_s("pool.ntp.org") == 1767225600
    assert asked == ["10.0.0.123"] and dev.t - t0 <= 2000000
