"""Benchmark of the native kernels on the MicroPython unix port: bytecode twin vs viper vs
natmod (x64), time per call (median), speed-up over the bytecode twin, bytes allocated per
call, and the natmod .mpy size per architecture. pilot_burst is also timed at each board's
own burst (samples, rate and front end read as text from boards/*/board.py), and
reflex_step per call.

With MPY_DIR set (a MicroPython v1.29 source tree, see docs/native.md) the natmods are built
first with `make natmod`; without it the twins are measured and a natmod already in dist/ is
used if there is one.
"""

import ast
import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
BOARDS = (("esp32", "esp32_wallbox"), ("stm32", "stm32_wallbox"), ("sim", "sim"))

# Runs on micropython from the repo root: JSON request on stdin, one JSON line per
# (kernel, impl) as soon as it is measured.
MP_BENCH = r"""
import gc, json, sys, time
from array import array
from drivers import kernels, kernels_twin as k

req = json.loads(sys.stdin.read())
out = array("i", bytes(16))
ac = array("H", bytes(2 * 800))
for i in range(800):
    ac[i] = 2048 + (1000 if (i // 40) % 2 else -1000)
out_ac = array("i", bytes(16))
payload = bytearray(4096)
frame = bytearray(bytes(range(256)))
key = b"\x12\x34\x56\x78"
bursts = [(label, array("H", x), off, uv, rate) for label, x, off, uv, rate in req["bursts"]]

impls = [("python", k.py_pilot_burst, k.py_ac_measure, k.py_crc16_modbus, k.py_ws_mask,
          k.py_reflex_step)]
if k.VIPER:
    impls.append(("viper", k.vp_pilot_burst, None, k.vp_crc16_modbus, k.vp_ws_mask, None))
if kernels.native is not None:
    n = kernels.native
    impls.append(("natmod", n.pilot_burst, n.ac_measure, n.crc16_modbus, n.ws_mask,
                   n.reflex_step))

def reps_for(f):  # calls per sample so that one sample takes >= 20 ms
    reps = 1
    while True:
        t = time.ticks_us()
        for _ in range(reps):
            f()
        if time.ticks_diff(time.ticks_us(), t) >= 20000:
            return reps
        reps *= 2

def alloc_of(f):
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    f()
    b = gc.mem_alloc()
    gc.enable()
    return b - a

def measure(f):
    f()
    f()
    reps = reps_for(f)
    per = []
    for _ in range(9):
        t = time.ticks_us()
        for _ in range(reps):
            f()
        per.append(time.ticks_diff(time.ticks_us(), t) / reps)
    per.sort()
    return per[4], alloc_of(f)

def measure_reflex(rs):
    # Called directly in the loop (a lambda would cost as much as the kernel): armed,
    # pilot in C, heartbeat fresh, the path taken on every sample while charging.
    st = array("i", [1, 100, 0, 0])
    f = lambda: rs(st, 6000, 0, 5)
    f()
    reps = reps_for(f)
    per = []
    for _ in range(9):
        t = time.ticks_us()
        for _ in range(reps):
            rs(st, 6000, 0, 5)
        per.append(time.ticks_diff(time.ticks_us(), t) / reps)
    per.sort()
    assert st[0] == 1
    return per[4], alloc_of(f)

for name, pb, am, crc, mask, rs in impls:
    cases = [(label, (lambda x=x, off=off, uv=uv, rate=rate: pb(x, out, off, uv, rate)))
             for label, x, off, uv, rate in bursts]
    cases += [
        ("ws_mask 4096 bytes", lambda: mask(payload, key, 0)),
        ("crc16_modbus 256 bytes", lambda: crc(frame)),
    ]
    if am is not None:
        cases.append(("ac_measure 800 samples", lambda: am(ac, out_ac, 2048, 1000, 4000, 1)))
    for kernel, f in cases:
        us, alloc = measure(f)
        print(json.dumps([kernel, name, us, alloc]))
    if rs is not None:
        us, alloc = measure_reflex(rs)
        print(json.dumps(["reflex_step per call", name, us, alloc]))
print(json.dumps(["IMPL", kernels.IMPL]))
"""


# -- each board's CP burst, read as text (the board modules import machine/pyb) -------------


def _consts(path):
    """Module-level `NAME = const(expr)` / `NAME = expr` ints of a file, the modules it
    imports from boards.* (by alias), and its tree."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names, mods = {}, {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("boards"):
            for a in node.names:
                sub = os.path.join(ROOT, *node.module.split("."), a.name + ".py")
                if os.path.exists(sub):
                    mods[a.asname or a.name] = sub
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                names[node.targets[0].id] = _eval(node.value, names, {})
            except ValueError:
                pass
    return names, mods, tree


def _eval(node, names, mods):
    """An int expression of literals, module constants, `hw.NAME`, const() and + - * //."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id in mods:
            return _consts(mods[node.value.id])[0][node.attr]
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "const":
        return _eval(node.args[0], names, mods)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, names, mods)
    if isinstance(node, ast.BinOp):
        ops = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__,
               ast.FloorDiv: int.__floordiv__}  # fmt: skip
        if type(node.op) in ops:
            a, b = _eval(node.left, names, mods), _eval(node.right, names, mods)
            return ops[type(node.op)](a, b)
    raise ValueError("not a constant: %s" % ast.dump(node)[:60])


def board_burst(folder):
    """(samples, rate_hz, offset_mv, uv_per_code) the board hands to Pilot(pwm, burst, ...)."""
    names, mods, tree = _consts(os.path.join(ROOT, "boards", folder, "board.py"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Pilot":
            return tuple(_eval(a, names, mods) for a in node.args[2:6])
    raise ValueError("no Pilot(...) in boards/%s/board.py" % folder)


def burst_codes(n, rate, offset_mv, uv, duty=533, high_mv=6000, low_mv=-12000):
    """A state-C burst of the board's front end: 1 kHz, 53.3 % duty, +-20 mV of
    deterministic noise, codes clamped to 16 bits."""
    x, seed = [], 1
    for i in range(n):
        t = (i * 1000000 // rate) % 1000  # us into the 1 ms PWM period
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        mv = (high_mv if t < duty else low_mv) + (seed >> 16) % 41 - 20
        x.append(min(max((mv - offset_mv) * 1000 // uv, 0), 65535))
    return x


def bursts():
    sim = board_burst("sim")
    out = [["pilot_burst 1024 samples", burst_codes(1024, sim[1], *sim[2:]), sim[2], sim[3],
            sim[1]]]  # fmt: skip
    for name, folder in BOARDS:
        try:
            n, rate, off, uv = board_burst(folder)
        except (OSError, KeyError, ValueError, SyntaxError) as e:
            print("  %s: burst not read from boards/%s/board.py (%s)" % (name, folder, e),
                  flush=True)  # fmt: skip
            continue
        print("  %-5s burst: %d samples at %d Hz, %d mV + %d uV/code (boards/%s/board.py)"
              % (name, n, rate, off, uv, folder), flush=True)  # fmt: skip
        label = "pilot_burst %s %d@%.3gk" % (name, n, rate / 1000)
        out.append([label, burst_codes(n, rate, off, uv), off, uv, rate])
    return out


# -- run ------------------------------------------------------------------------------------


def build_natmods(mpy_dir):
    print("building the natmods (make natmod)...", flush=True)
    r = subprocess.run(["make", "-s", "natmod", "MPY_DIR=" + mpy_dir], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    print(r.stdout.rstrip(), flush=True)
    if r.returncode:
        print(r.stderr.rstrip())
        print("natmod build failed; measuring the twins only", flush=True)


def run_bench(mpy, natmods, req):
    """Starts MP_BENCH and prints a progress line per measured row; returns the rows."""
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([mpy] + natmods + [".frozen"]))
    p = subprocess.Popen([MICROPYTHON, "-c", MP_BENCH], cwd=mpy, env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)  # fmt: skip
    p.stdin.write(json.dumps(req))
    p.stdin.close()
    rows, t0 = [], time.time()
    for line in p.stdout:
        row = json.loads(line)
        rows.append(row)
        if row[0] != "IMPL":
            print("  [%5.1f s] %-28s %-7s %10.2f us" % (time.time() - t0, *row[:3]),
                  flush=True)  # fmt: skip
    err = p.stderr.read()
    if p.wait():
        print(err)
        sys.exit(1)
    return rows


def main():
    mpy_dir = os.environ.get("MPY_DIR")
    if mpy_dir:
        build_natmods(mpy_dir)
    else:
        print("MPY_DIR not set: natmods not rebuilt. For the natmod figures check out MicroPython")
        print("v1.29 (.mpy 6.3) outside the repo and run `MPY_DIR=/tmp/micropython make bench`")
        print("(see docs/native.md).", flush=True)
    # The device files as deployed (.mpy; the viper module exists only compiled) and the natmod.
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import build

    print("compiling the device files (mpy-cross)...", flush=True)
    mpy = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy)
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    natmods = sorted(glob.glob(os.path.join(ROOT, "dist", "x64_*")))
    print("each board's CP burst:", flush=True)
    req = {"bursts": bursts()}
    print("measuring on the unix port (median of 9 samples of >= 20 ms each)...", flush=True)
    rows = run_bench(mpy, natmods, req)
    impl = rows.pop()[1]
    base = {kernel: us for kernel, name, us, _ in rows if name == "python"}
    print("unix port, loader picks: %s" % impl)
    print("%-28s %-7s %11s %10s %11s" % ("kernel", "impl", "us/call", "speed-up", "bytes/call"))
    order = [kernel for kernel, name, _, _ in rows if name == "python"]
    rows.sort(key=lambda row: order.index(row[0]))
    for kernel, name, us, alloc in rows:
        print("%-28s %-7s %11.2f %9.1fx %11d" % (kernel, name, us, base[kernel] / us, alloc))
    sizes = sorted(glob.glob(os.path.join(ROOT, "dist", "*", "wbkernels.mpy")))
    if not sizes:
        print("no natmod .mpy in dist/ (make natmod MPY_DIR=...)")
    for path in sizes:
        print("natmod size %-31s %6d bytes" % (os.path.relpath(path, ROOT),
                                              os.path.getsize(path)))  # fmt: skip
    pilot = {name: us for kernel, name, us, _ in rows if kernel == "pilot_burst 1024 samples"}
    if "natmod" in pilot:
        ratio = pilot["python"] / pilot["natmod"]
        print("target natmod >= 20x bytecode on pilot_burst: %.0fx %s" % (
            ratio, "ok" if ratio >= 20 else "MISSED"))  # fmt: skip


if __name__ == "__main__":
    main()
