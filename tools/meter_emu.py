"""Emulated Modbus RTU energy meters on pymodbus (an independent Modbus stack), for the
master in drivers/modbus.py to talk to over a pty pair from socat.

pymodbus's serial server (RTU framer) answers every request: it parses the request, checks
it, builds the reply and its CRC. This module only supplies the registers (a store with one
image per address, encoded with the meter's profile from firmware/meters/profiles.py) and
the faults a real bus has, per address:
  silent      no reply (the reply pymodbus built is dropped)
  crc         the reply's last CRC byte flipped
  exception   an exception reply with the given code (pymodbus builds it from the store's
              answer)
  garbage     the reply replaced by as many pseudo-random bytes (seeded: deterministic)
  slow        the reply delayed by the given ms (the store answers late)
  jump        the energy register jumps by the given Wh (once, when set)

Python:  bus = start_bus({1: "sdm630", 2: "abb_b23"}); bus.emu.set(1, v=(230, 231, 229), ...)
         ... master on bus.master_port ...; bus.stop()
CLI:     .venv/bin/python tools/meter_emu.py 1=sdm630 2=em340 [--baud 9600]
         prints the master's pty path and serves until Ctrl-C.
"""
import argparse
import array
import asyncio
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
if "micropython" not in sys.modules:  # profiles.py is device code
    _shim = types.ModuleType("micropython")
    _shim.const = lambda x: x
    sys.modules["micropython"] = _shim

from pymodbus.constants import ExcCodes  # noqa: E402
from pymodbus.exceptions import NoSuchIdException  # noqa: E402
from pymodbus.framer import FramerType  # noqa: E402
from pymodbus.server import ModbusSerialServer  # noqa: E402
from pymodbus.simulator import SimData, SimDevice  # noqa: E402

from firmware.meters import profiles as pf  # noqa: E402

FAULTS = ("silent", "crc", "exception", "garbage", "slow", "jump")
# physical unit -> the Reading's unit, per profile key
_TO_READING = {"v": 10, "i": 10, "p": 1, "p_total": 1, "energy": 1, "export": 1, "freq": 100}


class EmuError(Exception):
    pass


def encode(enc, raw):
    """Registers (list of ints) holding raw in encoding enc (profiles.F32 ...)."""
    if enc == pf.F32:
        b = struct.pack(">f", raw)
    else:
        n = round(raw)
        if enc == pf.U16:
            b = struct.pack(">H", n)
        elif enc == pf.I16:
            b = struct.pack(">h", n)
        elif enc == pf.U32:
            b = struct.pack(">I", n)
        elif enc == pf.I32:
            b = struct.pack(">i", n)
        elif enc == pf.I32_CDAB:
            b = struct.pack(">i", n)
            b = b[2:] + b[:2]
        elif enc == pf.U64:
            b = struct.pack(">Q", n)
        elif enc == pf.I64:
            b = struct.pack(">q", n)
        else:
            raise EmuError("unknown encoding %r" % (enc,))
    return list(struct.unpack(">%dH" % (len(b) // 2), b))


def image_values(profile_name, **values):
    """{register: [words]} for physical values (V, A, W, Wh, Hz) in a profile's encoding.
    Keys: v, i, p (per phase tuples), p_total, energy_wh, export_wh, freq."""
    prof = pf.PROFILES[profile_name]
    out = {}
    keys = {"energy_wh": "energy", "export_wh": "export"}
    for name, val in values.items():
        if val is None:
            continue
        key = keys.get(name, name)
        spec = prof.get(key)
        if spec is None:
            continue
        if key in ("v", "i", "p"):
            pairs = [(s, x) for s, x in zip(spec, val) if s is not None]
        else:
            pairs = [(spec, val)]
        for (reg, enc, exp), x in pairs:
            raw = x * _TO_READING[key] / 10 ** exp
            out[reg] = encode(enc, raw)
    return out


class _Meter:
    def __init__(self, addr, profile):
        pf.PROFILES[profile]  # KeyError names an unknown profile
        self.addr = addr
        self.profile = profile
        self.tables = {fc: array.array("H", bytes(2 * 65536)) for fc in (3, 4)}
        self.fault = None
        self.arg = 0
        self.requests = 0
        self.energy_wh = 0

    @property
    def table(self):
        return self.tables[pf.PROFILES[self.profile]["fc"]]


class _Store:
    """What pymodbus's request handler asks for the registers (its datastore interface)."""

    def __init__(self, emu):
        self.emu = emu

    def device_ids(self):
        return list(self.emu.meters)

    def _meter(self, dev_id):
        m = self.emu.meters.get(dev_id)
        if m is None:
            raise NoSuchIdException("no meter at %d" % dev_id)  # silent, as on a bus
        return m

    async def async_getValues(self, dev_id, fc, address, count=1):
        m = self._meter(dev_id)
        m.requests += 1
        if m.fault == "slow":
            await asyncio.sleep(m.arg / 1000)
        if m.fault == "exception":
            return ExcCodes(m.arg)
        if fc not in (3, 4) or address + count > 65536:
            return ExcCodes.ILLEGAL_ADDRESS
        with self.emu.lock:
            return list(m.tables[fc][address:address + count])

    async def async_setValues(self, dev_id, fc, address, values):
        m = self._meter(dev_id)
        m.requests += 1
        if m.fault == "exception":
            return ExcCodes(m.arg)
        with self.emu.lock:
            t = m.tables[3]
            for k, v in enumerate(values):
                t[address + k] = v
        return None


class MeterEmu:
    """Meters {addr: profile name} served by pymodbus on the pty `port_path`."""

    def __init__(self, port_path, meters, baud=9600, seed=1):
        self.port = port_path
        self.baud = baud
        self.meters = {a: _Meter(a, p) for a, p in meters.items()}
        self.lock = threading.Lock()
        self._rand = random.Random(seed)
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None

    # -- registers -------------------------------------------------------------------------
    def set(self, addr, v=None, i=None, p=None, p_total=None, energy_wh=None, export_wh=None,
            freq=None):
        """Physical values (V, A, W, Wh, Hz); per-phase ones as tuples. p_total defaults to
        the sum of p."""
        m = self.meters[addr]
        prof = pf.PROFILES[m.profile]
        if p_total is None and p is not None:
            one = prof.get("p") and prof["p"][1] is None  # single phase
            p_total = p[0] if one else sum(p)
        if energy_wh is not None:
            m.energy_wh = energy_wh
        img = image_values(m.profile, v=v, i=i, p=p, p_total=p_total, energy_wh=energy_wh,
                           export_wh=export_wh, freq=freq)
        self.set_words(addr, img)

    def set_words(self, addr, image):
        """Raw registers {register: [words]} in the meter's table."""
        m = self.meters[addr]
        with self.lock:
            t = m.table
            for reg, words in image.items():
                for k, w in enumerate(words):
                    t[reg + k] = w

    def words(self, addr, reg, count, fc=None):
        m = self.meters[addr]
        t = m.tables[fc] if fc else m.table
        return list(t[reg:reg + count])

    def fault(self, addr, kind=None, arg=0):
        """Switch a fault on for one address (kind in FAULTS), or off (kind None)."""
        if kind is not None and kind not in FAULTS:
            raise EmuError("unknown fault %r (known: %s)" % (kind, ", ".join(FAULTS)))
        m = self.meters[addr]
        if kind == "jump":
            self.set(addr, energy_wh=m.energy_wh + arg)
            kind = None
        m.fault = kind
        m.arg = arg

    def requests(self, addr):
        return self.meters[addr].requests

    # -- pymodbus --------------------------------------------------------------------------
    def _trace_packet(self, sending, data):
        if not sending or not data:
            return data
        m = self.meters.get(data[0])
        if m is None or m.fault is None:
            return data
        if m.fault == "silent":
            return b""
        if m.fault == "crc":
            return data[:-1] + bytes([data[-1] ^ 0x5A])
        if m.fault == "garbage":
            return bytes(self._rand.randrange(256) for _ in data)
        return data

    async def _serve(self):
        try:
            server = ModbusSerialServer(
                [SimDevice(a, simdata=[SimData(0, values=0)]) for a in self.meters],
                framer=FramerType.RTU, port=self.port, baudrate=self.baud,
                ignore_missing_devices=True, trace_packet=self._trace_packet)
            server.context = _Store(self)  # the registers and the store-side faults
            self._server = server
            self._loop = asyncio.get_running_loop()
            await server.serve_forever(background=True)
        except Exception as e:  # reported by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        await server.serving

    def start(self):
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise EmuError("emulator did not start on %s: %r" % (self.port, self._error))
        return self

    def stop(self):
        if self._loop is not None and self._server is not None:
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(5)
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(5)


class Bus:
    """socat's pty pair with meters on one end: master_port for the master."""

    def __init__(self, meters, baud=9600, workdir=None):
        if shutil.which("socat") is None:
            raise EmuError("socat is not installed")
        self.dir = workdir or tempfile.mkdtemp(prefix="meterbus-")
        self.master_port = os.path.join(self.dir, "master")
        self.meter_port = os.path.join(self.dir, "meters")
        self.socat = subprocess.Popen(
            ["socat", "-d", "-d", "pty,raw,echo=0,b%d,link=%s" % (baud, self.master_port),
             "pty,raw,echo=0,b%d,link=%s" % (baud, self.meter_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        while not (os.path.exists(self.master_port) and os.path.exists(self.meter_port)):
            if self.socat.poll() is not None or time.monotonic() - t0 > 10:
                self.socat.kill()
                raise EmuError("socat did not make the pty pair")
            time.sleep(0.02)
        self.emu = MeterEmu(self.meter_port, meters, baud=baud)
        try:
            self.emu.start()
        except Exception:
            self.socat.kill()
            raise

    def stop(self):
        self.emu.stop()
        if self.socat.poll() is None:
            self.socat.terminate()
            try:
                self.socat.wait(5)
            except subprocess.TimeoutExpired:
                self.socat.kill()


def start_bus(meters, baud=9600):
    """socat + emulator; returns the Bus (master_port, meter_port, emu, stop())."""
    return Bus(meters, baud=baud)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("meters", nargs="+", help="addr=profile, e.g. 1=sdm630 (profiles: %s)"
                    % ", ".join(sorted(pf.PROFILES)))
    ap.add_argument("--baud", type=int, default=9600)
    args = ap.parse_args(argv)
    meters = {}
    for m in args.meters:
        a, _, p = m.partition("=")
        if not a.isdigit() or p not in pf.PROFILES:
            ap.error("bad meter %r: want addr=profile" % m)
        meters[int(a)] = p
    bus = start_bus(meters, baud=args.baud)
    for a in meters:
        bus.emu.set(a, v=(230.0, 231.0, 229.0), i=(6.0, 6.1, 5.9), p=(1380.0, 1409.0, 1351.0),
                    energy_wh=1234567, export_wh=0, freq=50.0)
    print("master port: %s" % bus.master_port, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        bus.stop()


if __name__ == "__main__":
    main()
