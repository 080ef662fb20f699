"""Emulated Modbus RTU energy meters on pymodbus (an independent Modbus stack), for the
master in drivers/modbus.py to talk to over a pty pair from socat.

pymodbus's serial server (RTU framer) answers every request: it parses the request, checks
it, builds the reply and its CRC. This module supplies the registers and each model's
personality from its own maps (tools/meter_maps.py, written from the makers' documents, not
from the firmware's profile table): the read length it refuses (exception 03 beyond
max_regs), the registers it does not have (exception 02), the wrong function code (01), the
step of its energy registers, what an unwired phase reads (NaN or 0), its CT/PT ratio
registers. And the faults a real bus has, per address:
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pymodbus.constants import ExcCodes  # noqa: E402
from pymodbus.exceptions import NoSuchIdException  # noqa: E402
from pymodbus.framer import FramerType  # noqa: E402
from pymodbus.server import ModbusSerialServer  # noqa: E402
from pymodbus.simulator import SimData, SimDevice  # noqa: E402

from meter_maps import MODELS  # noqa: E402

FAULTS = ("silent", "crc", "exception", "garbage", "slow", "jump")
_PACK = {"f32": ">f", "i32": ">i", "u32": ">I", "i32sw": ">i", "u64": ">Q", "i64": ">q",
         "i16": ">h", "u16": ">H"}
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS = 1, 2


class EmuError(Exception):
    pass


def model(name):
    """The model's map; an unknown name is named with the known ones."""
    m = MODELS.get(name)
    if m is None:
        raise EmuError("unknown meter profile %r (known: %s)" % (name, ", ".join(sorted(MODELS))))
    return m


def encode(typ, raw):
    """Registers (list of ints) holding raw in type typ ("f32", "i32sw", ...)."""
    fmt = _PACK.get(typ)
    if fmt is None:
        raise EmuError("unknown register type %r" % (typ,))
    b = struct.pack(fmt, raw if typ == "f32" else round(raw))
    if typ == "i32sw":
        b = b[2:] + b[:2]
    return list(struct.unpack(">%dH" % (len(b) // 2), b))


def image_values(name, phases=3, ct=1, pt=1, **values):
    """{register: [words]} for physical values (V, A, W, Wh, Hz) in a model's map.
    Keys: v, i, p (per phase tuples), p_total, energy_wh, export_wh, freq. Energies are
    counted down to the model's step; phases beyond `phases` read as its unwired marker;
    behind current/voltage transformers (ct, pt) the meter shows the secondary side."""
    m = model(name)
    side = {"v": pt, "i": ct, "p": ct * pt, "p_total": ct * pt}
    vals = m["values"]
    out = {}
    for key, val in values.items():
        if val is None:
            continue
        if key in ("v", "i", "p"):
            items = [("%s%d" % (key, k + 1), x, k) for k, x in enumerate(val)]
        else:
            name_ = {"p_total": "p", "energy_wh": "imp", "export_wh": "exp", "freq": "hz"}[key]
            if key in ("energy_wh", "export_wh"):
                val = val // m["step_wh"] * m["step_wh"]
            items = [(name_, val, -1)]
        for reg_name, x, phase in items:
            spec = vals.get(reg_name)
            if spec is None:
                continue
            reg, typ, unit = spec
            if phase >= phases:
                if m["absent"] == "nan" and typ == "f32":
                    out[reg] = [0xFFC0, 0x0000]  # Schneider's NaN: "not available"
                else:
                    out[reg] = encode(typ, 0)
                continue
            out[reg] = encode(typ, x / unit / side.get(key, 1))
    return out


class _Meter:
    def __init__(self, addr, profile):
        self.model = model(profile)
        self.addr = addr
        self.profile = profile
        self.tables = {fc: array.array("H", bytes(2 * 65536)) for fc in (3, 4)}
        self.fault = None
        self.arg = 0
        self.requests = 0
        self.refused = []  # (fc, address, count, code) of every read its personality refused
        self.energy_wh = 0
        self.phases = 3
        self.line = None  # (baud, parity) it is set to; None: the bus's
        self.ct = self.pt = 1  # transformer ratios (the meter then shows the secondary side)
        ratios = self.model.get("ratios")
        if ratios:  # CT 1, PT 1.0: a meter connected directly
            self.tables[self.model["fc"]][ratios[0]] = 1
            self.tables[self.model["fc"]][ratios[1]] = ratios[2]

    @property
    def table(self):
        return self.tables[self.model["fc"]]

    def check(self, fc, address, count):
        """None if the model answers this read, else the exception code it gives."""
        m = self.model
        if fc != m["fc"]:
            return ILLEGAL_FUNCTION
        if not 1 <= count <= m["max_regs"]:
            return m["over_code"]
        for reg in range(address, address + count):
            if not any(lo <= reg < hi for lo, hi in m["has"]):
                return ILLEGAL_ADDRESS
        return None

    def read(self, fc, address, count):
        """The registers, or the exception code the real meter would answer."""
        code = self.check(fc, address, count)
        if code is not None:
            self.refused.append((fc, address, count, code))
            return code
        return list(self.tables[fc][address:address + count])


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
        with self.emu.lock:
            got = m.read(fc, address, count)
        return ExcCodes(got) if isinstance(got, int) else got

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

    def __init__(self, port_path, meters, baud=9600, seed=1, parity="N"):
        self.port = port_path
        self.baud = baud
        self.parity = parity  # the bus's line: a meter set to another one never answers
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
        the sum of p (of the phases the model has and that are wired)."""
        m = self.meters[addr]
        if p_total is None and p is not None:
            one = "i1" in m.model["values"] and "i2" not in m.model["values"]  # 1 phase
            p_total = p[0] if one else sum(p[:m.phases])
        if energy_wh is not None:
            m.energy_wh = energy_wh
        img = image_values(m.profile, phases=m.phases, ct=m.ct, pt=m.pt, v=v, i=i, p=p,
                           p_total=p_total, energy_wh=energy_wh, export_wh=export_wh,
                           freq=freq)
        self.set_words(addr, img)

    def wire(self, addr, phases=3, ct=1, pt=1):
        """How the meter is installed: phases wired (the others read as the model's unwired
        marker from the next set()), and the CT and PT ratios set on a meter that keeps them
        (EmuError for a model without ratio registers)."""
        m = self.meters[addr]
        m.phases = phases
        m.ct, m.pt = ct, pt
        if (ct, pt) != (1, 1):
            r = m.model.get("ratios")
            if r is None:
                raise EmuError("%s has no CT/PT ratio registers" % m.profile)
            with self.lock:
                m.table[r[0]] = ct
                m.table[r[1]] = round(pt * r[2])

    def refused(self, addr):
        """[(fc, address, count, exception code)] of the reads the model refused."""
        return list(self.meters[addr].refused)

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

    def line(self, addr, baud=None, parity="N"):
        """The line the meter is set to: (baud, parity), "factory" for its model's factory
        line, None (the default) for the bus's. On another line than the bus's it hears
        only framing errors and never answers, as a real meter does."""
        m = self.meters[addr]
        if baud == "factory":
            ser = m.model["serial"]
            if ser is None:
                raise EmuError("%s: factory line not settled" % m.profile)
            baud, parity = ser[0], ser[1]
        m.line = None if baud is None else (baud, parity)

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
        if m is not None and m.line is not None and m.line != (self.baud, self.parity):
            return b""  # on another line: it never understood the request
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
        for name in meters.values():
            model(name)  # an unknown profile is named before anything starts
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
                    % ", ".join(sorted(MODELS)))
    ap.add_argument("--baud", type=int, default=9600)
    args = ap.parse_args(argv)
    meters = {}
    for m in args.meters:
        a, _, p = m.partition("=")
        if not a.isdigit() or p not in MODELS:
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
