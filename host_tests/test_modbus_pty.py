"""The Modbus master on the real MicroPython unix port against meters emulated by pymodbus
(tools/meter_emu.py) over a socat pty pair: two meters with different profiles on one bus,
every fault of the emulator, recovery, and steady polling with the heap locked."""
import os
import selectors
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build  # noqa: E402
import meter_emu  # noqa: E402
import simlib  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")

BAUD = 115200
TIMEOUT_MS = 200
SDM = dict(v=(230.1, 231.7, 229.4), i=(16.2, 15.9, 0.4), p=(3700.0, -3500.0, 80.0),
           energy_wh=1234500, export_wh=45600, freq=50.02)
ABB = dict(v=(229.0, 230.0, 231.0), i=(6.01, 6.02, 6.03), p=(1380.0, 1385.0, 1390.0),
           energy_wh=98760, freq=49.98)


class Client:
    """check_modbus.py in pty mode: one command line in, one answer line out."""

    def __init__(self, port, spec, retries=0):
        mpy_dir = os.path.join(ROOT, "build", "mpy")
        _, errors = build.compile_all(mpy_dir)
        assert not errors
        env = dict(os.environ, MICROPYPATH=mpy_dir + os.pathsep + ".frozen")
        self.p = subprocess.Popen(
            [simlib.micropython_exe(), os.path.join(ROOT, "host_tests", "mpy",
                                                    "check_modbus.py"),
             port, str(BAUD), str(TIMEOUT_MS), str(retries), spec],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.p.stdout, selectors.EVENT_READ)
        assert self._line() == "READY"

    def _line(self, timeout=30):
        if not self.sel.select(timeout):
            raise AssertionError("no answer from micropython within %d s" % timeout)
        line = self.p.stdout.readline()
        assert line, "micropython exited: rc %r" % self.p.poll()
        return line.strip()

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self._line()

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            self.p.wait(10)
        except Exception:
            self.p.kill()


@pytest.fixture
def bus():
    b = meter_emu.start_bus({1: "sdm630", 2: "abb_b23"}, baud=BAUD)
    b.emu.set(1, **SDM)
    b.emu.set(2, **ABB)
    c = Client(b.master_port, "1=sdm630,2=abb_b23")
    yield b, c
    c.close()
    b.stop()


def test_two_meters_with_different_profiles_on_one_bus(bus):
    b, c = bus
    assert c.cmd("poll 1") == ("OK 1 i=162,-159,4 v=2301,2317,2294 p=3700,-3500,80 pt=280 "
                               "e=1234500 x=45600 f=5002 imax=162")
    assert c.cmd("poll 2") == ("OK 2 i=60,60,60 v=2290,2300,2310 p=1380,1385,1390 pt=4155 "
                               "e=98760 x=0 f=4998 imax=60")  # ABB: its export register
    b.emu.set(1, i=(8.0, 8.0, 8.0), p=(1840.0, 1840.0, 1840.0))
    assert c.cmd("poll 1").startswith("OK 1 i=80,80,80 ")
    assert b.emu.requests(1) == 2 and b.emu.requests(2) == 2  # blocks: SDM 1, ABB 2


@pytest.mark.parametrize("fault,arg,kinds", [
    ("silent", 0, ("timeout",)),
    ("crc", 0, ("crc",)),
    ("exception", 2, ("exception",)),
    ("garbage", 0, ("crc", "length", "function", "address", "timeout")),
    ("slow", 600, ("timeout",)),
])
def test_each_fault_fails_the_poll_and_the_meter_recovers(bus, fault, arg, kinds):
    b, c = bus
    assert c.cmd("poll 1").startswith("OK 1 ")
    b.emu.fault(1, fault, arg)
    out = c.cmd("poll 1")
    assert out.startswith("ERR 1 "), out
    assert out.split()[2] in kinds, out
    if fault == "exception":
        assert "meter 1: exception 02 illegal address" in out
    assert c.cmd("poll 2").startswith("OK 2 "), "the other meter on the bus still answers"
    b.emu.fault(1, None)
    out = c.cmd("poll 1")
    if fault == "slow":  # the late reply is dropped before the next request
        assert out.startswith("OK 1 ") or out.split()[2] == "length", out
        out = c.cmd("poll 1")
    assert out.startswith("OK 1 i=162,-159,4 "), out


def test_energy_jump_reads_through(bus):
    b, c = bus
    b.emu.fault(1, "jump", 5000000)  # the meter's register jumps by 5 MWh: the task judges it
    assert " e=6234500 " in c.cmd("poll 1")


def test_steady_polling_on_the_pty_allocates_nothing(bus):
    b, c = bus
    out = c.cmd("steady 1,2 50")
    assert out == "STEADY 50 of 50 None", out
    stats = c.cmd("stats")
    assert "'timeout': 0" in stats and "'crc': 0" in stats


def test_every_profile_answers_through_pymodbus_within_its_personality():
    # Every profile on one bus, each emulated with its own maker's map and limits (read
    # length, registers it has): the master on the unix port reads each without a refusal.
    from firmware.meters import profiles

    names = sorted(profiles.PROFILES)
    meters = {a: p for a, p in enumerate(names, start=1)}
    b = meter_emu.start_bus(meters, baud=BAUD)
    try:
        for a in meters:
            b.emu.set(a, **SDM)
        c = Client(b.master_port, ",".join("%d=%s" % (a, p) for a, p in meters.items()))
        try:
            for a, p in meters.items():
                out = c.cmd("poll %d" % a)
                assert out.startswith("OK %d " % a) and " e=1234500 x=45600 " in out, (p, out)
                assert b.emu.refused(a) == [], p
        finally:
            c.close()
    finally:
        b.stop()


def test_a_register_the_meter_lacks_gets_exception_02_on_the_wire():
    # The SDM72D-M v2 map read from a first SDM72D-M (reduced register set).
    b = meter_emu.start_bus({1: "sdm72dm_v1"}, baud=BAUD)
    try:
        b.emu.set(1, **SDM)
        c = Client(b.master_port, "1=sdm72dm_v2")
        try:
            out = c.cmd("poll 1")
            assert out.startswith("ERR 1 exception") and "exception 02" in out, out
            assert b.emu.refused(1)[0][3] == 2
        finally:
            c.close()
    finally:
        b.stop()


def test_a_meter_on_its_factory_line_never_answers_a_bus_on_another():
    # An iEM3x5x leaves the factory at 19200 8E1; on a 115200 8N1 bus it hears only framing
    # errors: the poll times out, and the config check's hint names both lines.
    from firmware.meters import roles
    from firmware.meters.profiles import PROFILES

    b = meter_emu.start_bus({1: "iem3x5x"}, baud=BAUD)
    try:
        b.emu.set(1, **SDM)
        b.emu.line(1, "factory")
        c = Client(b.master_port, "1=iem3x5x")
        try:
            assert c.cmd("poll 1").startswith("ERR 1 timeout")
            b.emu.line(1, BAUD, "N")  # the installer sets the meter to the bus's line
            assert c.cmd("poll 1").startswith("OK 1 ")
        finally:
            c.close()
    finally:
        b.stop()
    meters, bus, errors = roles.check({"ev": {"type": "modbus", "profile": "iem3x5x"},
                                       "bus": {"baud": BAUD}}, PROFILES)
    assert roles.serial_hints(meters, bus, PROFILES) == [
        "meters: ev meter iem3x5x leaves the factory at 19200 8E1; the bus runs 115200 8N1: "
        "set the meter to the bus's line"]


def test_dtsu666_behind_100_to_5_cts_reads_the_primary_side_on_the_unix_port():
    b = meter_emu.start_bus({1: "dtsu666"}, baud=BAUD)
    try:
        b.emu.wire(1, ct=20)  # IrAt 20: the meter shows the secondary side
        b.emu.set(1, **SDM)
        assert b.emu.words(1, 0x200C, 2) == [0x444A, 0x8000]  # 810.0 mA on the meter
        c = Client(b.master_port, "1=dtsu666")
        try:
            assert c.cmd("poll 1") == ("OK 1 i=162,-159,4 v=2301,2317,2294 p=3700,-3500,80 "
                                       "pt=280 e=-1 x=-1 f=5002 imax=162")
        finally:
            c.close()
    finally:
        b.stop()
