"""The real boards' clock hardware (boards/rtc.py) on the port fakes, and ESP32 wss:// after a
power-up: mbedTLS checks the CSMS certificate's dates against the system time (the RTC, at
2000-01-01 after a power cut), so the clock must be set before the first TLS connection."""
import asyncio
import sys
import time
import types

import pytest
from test_board_ports import _load

from boards import rtc as brtc
from firmware import timekeep
from firmware.ocpp import clock
from firmware.ocpp.keys import Keys
from firmware.ocpp.cp import Link
from portfakes import Dev

T = clock.parse("2027-01-15T08:00:07Z")  # a Friday


@pytest.fixture
def esp32(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    dev = Dev()
    mod, _ = _load(monkeypatch, "esp32_wallbox", dev)
    yield dev, mod
    sys.modules.pop("boards.esp32_wallbox.board", None)


def _ntptime(monkeypatch, answer, epoch_year=1970):
    """MicroPython's ntptime: seconds from the port's epoch, or OSError."""
    m = types.ModuleType("ntptime")
    m.host, m.timeout, m.asked = None, None, []

    def t():
        m.asked.append(m.host)
        if answer is None:
            raise OSError(110)  # ETIMEDOUT: no server answered
        return answer - brtc.epoch_shift(epoch_year)

    m.time = t
    monkeypatch.setitem(sys.modules, "ntptime", m)
    real = time.gmtime
    monkeypatch.setattr(time, "gmtime", lambda s=None: (
        (epoch_year,) + tuple(real(0))[1:] if s == 0 else real(s)))
    return m


def test_machine_rtc_reads_and_writes_epoch_seconds_with_the_ports_weekday():
    class Fake:
        dt = (2000, 1, 1, 6, 0, 0, 0, 0)

        def datetime(self, dt=None):
            if dt is None:
                return self.dt
            self.dt = dt

    f = Fake()
    r = brtc.MachineRtc(1, rtc=f)  # STM32: Monday is 1
    assert r.read_s() == 946684800
    r.write_s(T)
    assert f.dt == (2027, 1, 15, 5, 8, 0, 7, 0) and r.read_s() == T
    brtc.MachineRtc(0, rtc=f).write_s(T)  # ESP32: Monday is 0
    assert f.dt[3] == 4


def test_esp32_after_a_power_cut_the_rtc_is_not_believed(esp32):
    dev, mod = esp32
    board = mod.build()
    logs = []
    tk = timekeep.TimeKeeper(log=logs.append, now_ms=0, **timekeep.board_sources(board, ""))
    assert not tk.known and any("RTC not set" in m for m in logs)


def test_esp32_a_kept_rtc_is_believed_at_boot(esp32):
    dev, mod = esp32
    board = mod.build()
    board.rtc.write_s(T)  # set before a soft or watchdog reset
    tk = timekeep.TimeKeeper(log=lambda m: None, now_ms=0, **timekeep.board_sources(board, ""))
    assert tk.source == "rtc" and tk.now_s(0) == T


class _Stop(BaseException):
    """Ends the link's task (ws.connect and Link.run pass any BaseException on)."""


class _Net:
    """A link whose open() notes the system time when the (TLS) connection would start, then
    ends the link's task."""

    def __init__(self, dev):
        self.dev = dev
        self.seen = []

    async def up(self):
        return True

    async def open(self, host, port, ssl=None, server_hostname=None, timeout_ms=10000):
        self.seen.append(self.dev.rtc_datetime)
        raise _Stop


def _first_connection(board, dev, host="pool.ntp.org"):
    logs = []
    tk = timekeep.TimeKeeper(log=logs.append, now_ms=0, **timekeep.board_sources(board, host))
    net = _Net(dev)
    security = types.SimpleNamespace(connect_args=lambda cp_id: {}, refused=lambda e: None,
                                     connected=lambda: None)  # ws:// without a password
    cp = types.SimpleNamespace(section={"url": "ws://csms.example/ocpp", "cp_id": "CP1"},
                               rpc=None, keys=Keys(), security=security, say=logs.append, tk=tk)
    link = Link(cp, net=net)
    with pytest.raises(_Stop):
        asyncio.run(link.run())
    return net.seen[0], tk, logs


@pytest.mark.parametrize("epoch_year", [1970, 2000])
def test_esp32_sets_the_system_time_from_ntp_before_the_first_connection(
        esp32, monkeypatch, epoch_year):
    dev, mod = esp32
    board = mod.build()
    ntp = _ntptime(monkeypatch, T, epoch_year)
    at_connect, tk, _ = _first_connection(board, dev)
    assert ntp.asked == ["pool.ntp.org"]
    assert at_connect[:3] == (2027, 1, 15), at_connect  # mbedTLS sees today, not 2000
    assert tk.source == "ntp"


def test_esp32_without_a_time_source_says_so_and_keeps_2000(esp32, monkeypatch):
    dev, mod = esp32
    board = mod.build()
    _ntptime(monkeypatch, None)
    at_connect, tk, logs = _first_connection(board, dev)
    assert at_connect[0] == 2000 and not tk.known
    assert any("NTP failed" in m for m in logs)


def test_esp32_asks_no_ntp_while_the_contactor_is_closed(esp32, monkeypatch):
    dev, mod = esp32
    board = mod.build()
    ntp = _ntptime(monkeypatch, T)
    monkeypatch.setattr(board, "blocking_ok", lambda: False)
    at_connect, tk, _ = _first_connection(board, dev)
    assert ntp.asked == [] and not tk.known
