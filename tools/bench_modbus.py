"""Benchmark of the Modbus master on the MicroPython unix port against an SDM630 emulated by
pymodbus (tools/meter_emu.py) over a socat pty pair configured at 9600 baud:
  - time per full SDM630 poll (76 registers, one read), median of many, with the master's
    timing at 9600 baud (it waits the wire time of the bytes it expects; a pty itself has no
    character timing) and at 115200 (close to the code's own cost);
  - bytes allocated per poll on the unix port (gc disabled, steady state; target 0);
  - the .mpy sizes (mpy-cross) of drivers/modbus.py, profiles and modbus_meter;
  - the same 76-register read with brainelectronics micropython-modbus (umodbus), if its
    mirror is present (fetched into /work/.mirror, never committed), run with a shim
    machine.UART on the same pty.
One line per figure.
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build  # noqa: E402
import meter_emu  # noqa: E402
import simlib  # noqa: E402

N = 40
UMODBUS_MIRROR = "/work/.mirror/brainelectronics+micropython-modbus/repo"

MP_OURS = r"""
import sys, time, gc
import asyncio
from boards.sim.uart import PtyUart
from drivers.modbus import ModbusMaster
from firmware.meters.modbus_meter import ModbusMeter
from firmware.meter import Reading

port, baud, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
uart = PtyUart(port, 9600)
meter = ModbusMeter(ModbusMaster(uart, baud=baud, timeout_ms=1000, retries=0), 1, "sdm630")
r = Reading()

async def main():
    for _ in range(3):
        await meter.poll(r)
    ts = []
    for _ in range(n):
        t = time.ticks_us()
        await meter.poll(r)
        ts.append(time.ticks_diff(time.ticks_us(), t))
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(n):
        await meter.poll(r)
    b = gc.mem_alloc()
    gc.enable()
    ts.sort()
    print("RESULT %d %d %d" % (ts[len(ts) // 2], b - a, r.v_dv[0]))

asyncio.run(main())
"""

MP_UMODBUS = r"""
import sys, time, gc
from boards.sim.uart import PtyUart
port, n = sys.argv[1], int(sys.argv[2])

class UART:  # the machine.UART that umodbus constructs, on the pty
    def __init__(self, uart_id, baudrate=9600, **kw):
        self._u = PtyUart(port, baudrate)
    def any(self): return self._u.any()
    def read(self, n=-1):
        b = self._u.read(n)
        return b if b else None
    def write(self, b): return self._u.write(b)
    def flush(self): pass

class Pin:
    OUT = 1
    def __init__(self, *a, **kw): pass
    def on(self): pass
    def off(self): pass

class _M: pass
m = _M(); m.UART = UART; m.Pin = Pin
sys.modules["machine"] = m
from umodbus.serial import Serial
host = Serial(uart_id=1, baudrate=9600, pins=(None, None))
regs = host.read_input_registers(slave_addr=1, starting_addr=0, register_qty=76, signed=False)
ts = []
for _ in range(n):
    t = time.ticks_us()
    regs = host.read_input_registers(slave_addr=1, starting_addr=0, register_qty=76,
                                     signed=False)
    ts.append(time.ticks_diff(time.ticks_us(), t))
gc.collect(); gc.disable(); a = gc.mem_alloc()
for _ in range(n):
    host.read_input_registers(slave_addr=1, starting_addr=0, register_qty=76, signed=False)
b = gc.mem_alloc(); gc.enable()
ts.sort()
print("RESULT %d %d %d" % (ts[len(ts) // 2], b - a, regs[0]))
"""


def run_mp(script, args, path):
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(script)
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(path + [".frozen"]))
    try:
        r = subprocess.run([simlib.micropython_exe(), f.name] + args, capture_output=True,
                           text=True, env=env, timeout=300, cwd=ROOT)
    finally:
        os.unlink(f.name)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return [int(x) for x in line.split()[1:]], None
    return None, (r.stdout + r.stderr).strip().splitlines()[-1:] or ["exit %d" % r.returncode]


def umodbus_dir():
    """umodbus from the mirror exported under build/ (not in the repo), or None."""
    if not os.path.isdir(UMODBUS_MIRROR):
        return None
    out = os.path.join(ROOT, "build", "bench", "umodbus-src")
    os.makedirs(out, exist_ok=True)
    git = ["git", "--git-dir", UMODBUS_MIRROR]
    arch = subprocess.run(git + ["archive", "HEAD", "umodbus"], capture_output=True)
    if arch.returncode:
        return None
    subprocess.run(["tar", "-x", "-C", out], input=arch.stdout, check=True)
    return out


def main():
    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy_dir)
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    for rel in ("drivers/modbus.mpy", "drivers/modbus_frame.mpy", "firmware/meters/profiles.mpy",
                "firmware/meters/modbus_meter.mpy"):
        print("mpy size %-34s %6d bytes" % (rel, os.path.getsize(os.path.join(mpy_dir, rel))))
    bus = meter_emu.start_bus({1: "sdm630"}, baud=9600)
    try:
        bus.emu.set(1, v=(230.1, 231.0, 229.0), i=(16.0, 16.1, 15.9),
                    p=(3680.0, 3700.0, 3650.0), energy_wh=1234500, export_wh=0, freq=50.0)
        for baud in (9600, 115200):
            res, err = run_mp(MP_OURS, [bus.master_port, str(baud), str(N)], [mpy_dir])
            if res is None:
                print("ours: failed: %s" % err)
                continue
            med, alloc, v = res
            assert v == 2301, v
            print("ours SDM630 poll (76 regs), master timing %6d baud: median %7.1f ms "
                  "(n=%d)" % (baud, med / 1000, N))
            print("ours SDM630 poll, master timing %6d baud: %d bytes allocated per poll"
                  % (baud, alloc // N))
        src = umodbus_dir()
        if src is None:
            print("umodbus: not measured: no mirror at %s (fetch "
                  "github:brainelectronics/micropython-modbus)" % UMODBUS_MIRROR)
        else:
            res, err = run_mp(MP_UMODBUS, [bus.master_port, str(N)], [mpy_dir, src])
            if res is None:
                print("umodbus: could not run on the unix port: %s" % err)
            else:
                med, alloc, r0 = res
                print("umodbus read_input_registers (76 regs, 9600): median %7.1f ms (n=%d)"
                      % (med / 1000, N))
                print("umodbus read_input_registers: %d bytes allocated per read"
                      % (alloc // N))
    finally:
        bus.stop()


if __name__ == "__main__":
    main()
