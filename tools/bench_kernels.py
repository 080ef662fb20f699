"""Benchmark of the native kernels on the MicroPython unix port: bytecode twin vs viper vs
natmod (x64), time per call (median), speed-up over the bytecode twin, bytes allocated per
call, and the natmod .mpy size per architecture.

With MPY_DIR set (a MicroPython v1.29 source tree, see docs/native.md) the natmods are built
first with `make natmod`; without it the twins are measured and a natmod already in dist/ is
used if there is one.
"""

import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

# Runs on micropython from the repo root; prints one JSON line per (kernel, impl).
MP_BENCH = r"""
import gc, json, sys, time
from array import array
from drivers import kernels, kernels_twin as k

def burst(n):  # the simulator's CP front end: 12 bit, 100 kHz, C state at 53.3 % duty
    x = array("H", bytes(2 * n))
    seed = 1
    for i in range(n):
        t = (i * 10) % 1000
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        x[i] = (2958 if t < 533 else 197) + (seed >> 16) % 7 - 3
    return x

pilot = burst(1024)
out = array("i", bytes(16))
ac = array("H", bytes(2 * 800))
for i in range(800):
    ac[i] = 2048 + (1000 if (i // 40) % 2 else -1000)
out_ac = array("i", bytes(16))
payload = bytearray(4096)
frame = bytearray(bytes(range(256)))
key = b"\x12\x34\x56\x78"

impls = [("python", k.py_pilot_burst, k.py_ac_measure, k.py_crc16_modbus, k.py_ws_mask)]
if k.VIPER:
    impls.append(("viper", k.vp_pilot_burst, None, k.vp_crc16_modbus, k.vp_ws_mask))
if kernels.native is not None:
    n = kernels.native
    impls.append(("natmod", n.pilot_burst, n.ac_measure, n.crc16_modbus, n.ws_mask))

def measure(f):
    f()
    f()
    reps = 1
    while True:  # calls per sample so that one sample takes >= 20 ms
        t = time.ticks_us()
        for _ in range(reps):
            f()
        if time.ticks_diff(time.ticks_us(), t) >= 20000:
            break
        reps *= 2
    per = []
    for _ in range(9):
        t = time.ticks_us()
        for _ in range(reps):
            f()
        per.append(time.ticks_diff(time.ticks_us(), t) / reps)
    per.sort()
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    f()
    b = gc.mem_alloc()
    gc.enable()
    return per[4], b - a

for name, pb, am, crc, mask in impls:
    cases = [
        ("pilot_burst 1024 samples", lambda: pb(pilot, out, -13500, 6592, 100000)),
        ("ws_mask 4096 bytes", lambda: mask(payload, key, 0)),
        ("crc16_modbus 256 bytes", lambda: crc(frame)),
    ]
    if am is not None:
        cases.append(("ac_measure 800 samples", lambda: am(ac, out_ac, 2048, 1000, 4000, 1)))
    for kernel, f in cases:
        us, alloc = measure(f)
        print(json.dumps([kernel, name, us, alloc]))
print(json.dumps(["IMPL", kernels.IMPL]))
"""


def build_natmods(mpy_dir):
    r = subprocess.run(["make", "-s", "natmod", "MPY_DIR=" + mpy_dir], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    print(r.stdout.rstrip())
    if r.returncode:
        print(r.stderr.rstrip())
        print("natmod build failed; measuring the twins only")


def main():
    mpy_dir = os.environ.get("MPY_DIR")
    if mpy_dir:
        build_natmods(mpy_dir)
    else:
        print("MPY_DIR not set: natmods not rebuilt. For the natmod figures check out MicroPython")
        print("v1.29 (.mpy 6.3) outside the repo and run `MPY_DIR=/tmp/micropython make bench`")
        print("(see docs/native.md).")
    # The device files as deployed (.mpy; the viper module exists only compiled) and the natmod.
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build

    mpy = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy)
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    natmods = sorted(glob.glob(os.path.join(ROOT, "dist", "x64_*")))
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([mpy] + natmods + [".frozen"]))
    r = subprocess.run([MICROPYTHON, "-c", MP_BENCH], cwd=mpy, env=env, capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    if r.returncode:
        print(r.stdout, r.stderr)
        sys.exit(1)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    impl = rows.pop()[1]
    base = {kernel: us for kernel, name, us, _ in rows if name == "python"}
    print("unix port, loader picks: %s" % impl)
    print("%-26s %-7s %11s %10s %11s" % ("kernel", "impl", "us/call", "speed-up", "bytes/call"))
    order = [kernel for kernel, name, _, _ in rows if name == "python"]
    rows.sort(key=lambda row: order.index(row[0]))
    for kernel, name, us, alloc in rows:
        print("%-26s %-7s %11.2f %9.1fx %11d" % (kernel, name, us, base[kernel] / us, alloc))
    sizes = sorted(glob.glob(os.path.join(ROOT, "dist", "*", "wbkernels.mpy")))
    if not sizes:
        print("no natmod .mpy in dist/ (make natmod MPY_DIR=...)")
    for path in sizes:
        print("natmod size %-31s %6d bytes" % (os.path.relpath(path, ROOT),
                                              os.path.getsize(path)))  # fmt: skip
    pilot = {name: us for kernel, name, us, _ in rows if kernel.startswith("pilot_burst")}
    if "natmod" in pilot:
        ratio = pilot["python"] / pilot["natmod"]
        print("target natmod >= 20x bytecode on pilot_burst: %.0fx %s" % (
            ratio, "ok" if ratio >= 20 else "MISSED"))  # fmt: skip


if __name__ == "__main__":
    main()
