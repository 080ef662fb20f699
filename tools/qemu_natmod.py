"""The wbkernels natmod of an MCU architecture executed on its own instruction set (QEMU) and
compared bit for bit with the Python twins on the host tests' vectors.

    python tools/qemu_natmod.py --arch armv7m|rv32imc [--mpy-dir DIR]

Builds dist/<arch>_<ver>/wbkernels.mpy (`make natmod`) unless it exists, starts the frozen
image of `make qemu-image`, copies the .mpy to the RAM filesystem where drivers/kernels.py
looks for it (dist/<arch>_<ver>/, as `make deploy` copies it) and checks that the loader picks
it. Then, vector by vector (the device's 112 KiB heap cannot hold them all at once), it runs
the natmod, the viper twin and the bytecode twin on the device, each call a second time under
micropython.heap_lock(), and compares every output with the CPython twin's
(a twin that allocates under the lock
is reported: on a 32-bit port the bytecode twins do, the natmod must not).
"""
import argparse
import json
import os
import random
import subprocess
import sys
from array import array

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import qemu_run  # noqa: E402

import mpshim  # noqa: E402,F401 (the twins on CPython)

# Defined once on the device: each impl on one vector, outputs and allocation as JSON.
DEVICE_PRELUDE = """
import gc, json, micropython
from array import array
from drivers import kernels, kernels_twin as k
IMPLS = [("natmod", kernels.native), ("viper", None), ("python", None)]
FN = {
 "natmod": (kernels.native.pilot_burst, kernels.native.ac_measure,
            kernels.native.crc16_modbus, kernels.native.ws_mask, kernels.native.reflex_step),
 "python": (k.py_pilot_burst, k.py_ac_measure, k.py_crc16_modbus, k.py_ws_mask,
            k.py_reflex_step),
}
if k.VIPER:
    FN["viper"] = (k.vp_pilot_burst, k.py_ac_measure, k.vp_crc16_modbus, k.vp_ws_mask,
                   k.py_reflex_step)

def locked(f):
    micropython.heap_lock()
    try:
        r = f()
        a = False
    except MemoryError:
        r = None
        a = True
    micropython.heap_unlock()
    return r, a

def run(kind, args):
    gc.collect()
    res = {}
    for name in FN:
        pb, am, crc, mask, rx = FN[name]
        if kind == "pilot":
            x = array("H", args[0])
            o = array("i", bytes(16))
            f = lambda: pb(x, o, args[1], args[2], args[3])
            f()
            _, a = locked(f)
            res[name] = [list(o), a]
        elif kind == "ac":
            x = array("H", args[0])
            o = array("i", bytes(16 * args[4]))
            f = lambda: am(x, o, args[1], args[2], args[3], args[4])
            f()
            _, a = locked(f)
            res[name] = [list(o), a]
        elif kind == "crc":
            b = bytes(args[0])
            f = lambda: crc(b)
            r = f()
            _, a = locked(f)
            res[name] = [r, a]
        elif kind == "mask":
            b = bytearray(args[0])
            key = bytes(args[1])
            nxt = mask(b, key, args[2])
            out = b.hex()
            _, a = locked(lambda: mask(b, key, args[2]))  # twice: back to the input
            res[name] = [[nxt, out], a]
        elif kind == "reflex":
            st = array("i", args[0])
            outs = []
            for mv, rcm, age in args[1]:
                outs.append(rx(st, mv, rcm, age))
            st2 = array("i", args[0])
            mv, rcm, age = args[1][0]
            rx(st2, mv, rcm, age)  # once outside the lock: the twin notes st's typecode
            for i in range(4):
                st2[i] = args[0][i]
            _, a = locked(lambda: rx(st2, mv, rcm, age))
            res[name] = [[outs, list(st)], a]
    print("RES " + json.dumps(res))
"""


def vectors():
    """(kind, args) in the device's terms, the host tests' vectors (test_native_mpy.py)."""
    from host_tests import native_helpers as h

    out = []
    for name, x, *_ in h.pilot_vectors():
        if len(x) > 1024:
            continue  # fast-1M (4000 samples): more than the device's heap holds at once
        out.append(("pilot", [x, h.CP_OFFSET_MV, h.CP_UV_PER_CODE, 100000]))
    out += [("pilot", [[7] * n, 0, 1000, 1000]) for n in (1, 2, 3)]
    out += [("ac", [h.ac_wave(1000), 2048, 10000, 4000, 1]),
            ("ac", [h.ac_wave(700, n=300, phases=3, dc=300.0, noise=3.0), 2048, 1000, 3000, 3]),
            ("ac", [h.ac_wave(3, n=100, noise=2.0), 2048, 1000, 4000, 1])]  # fmt: skip
    out += [("crc", [d]) for d in ([1, 4, 0, 0, 0, 2], list(b"123456789"), [],
                                   list(range(256)) * 4)]  # fmt: skip
    out += [("mask", [list(range(256)) * 4, [0x12, 0x34, 0x56, 0x78], 0]),
            ("mask", [list(range(13)), [1, 2, 3, 4], 3]), ("mask", [[], [1, 2, 3, 4], 5])]
    rnd = random.Random(16)
    for limit in (100, 500):
        steps = [[rnd.choice((-12000, 0, 2500, 3000, 6000, 9000, 11000, 12000)),
                  rnd.choice((0, 0, 0, 1)), rnd.randrange(0, 2 * limit)]
                 for _ in range(60)]  # fmt: skip
        out.append(("reflex", [[1, limit, 0, 0], steps]))
    return out


def expected(kind, args):
    """The CPython bytecode twin's answer for one vector."""
    from drivers import kernels_twin as k

    if kind == "pilot":
        o = array("i", [0] * 4)
        k.py_pilot_burst(array("H", args[0]), o, args[1], args[2], args[3])
        return list(o)
    if kind == "ac":
        o = array("i", [0] * 4 * args[4])
        k.py_ac_measure(array("H", args[0]), o, args[1], args[2], args[3], args[4])
        return list(o)
    if kind == "crc":
        return k.py_crc16_modbus(bytes(args[0]))
    if kind == "mask":
        b = bytearray(args[0])
        nxt = k.py_ws_mask(b, bytes(args[1]), args[2])
        return [nxt, b.hex()]
    st = array("i", args[0])
    outs = [k.py_reflex_step(st, mv, rcm, age) for mv, rcm, age in args[1]]
    return [outs, list(st)]


def natmod_path(arch, mpy_dir):
    """dist/<arch>_<ver>/wbkernels.mpy, built with `make natmod` if missing."""
    import glob

    found = sorted(glob.glob(os.path.join(ROOT, "dist", arch + "_*", "wbkernels.mpy")))
    if not found:
        if not mpy_dir:
            raise qemu_run.QemuError("no dist/%s_*/wbkernels.mpy and no MPY_DIR to build it"
                                     % arch)
        subprocess.run(["make", "-s", "natmod", "ARCH=" + arch, "MPY_DIR=" + mpy_dir],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
        found = sorted(glob.glob(os.path.join(ROOT, "dist", arch + "_*", "wbkernels.mpy")))
    return found[-1]


def run(arch, mpy_dir=None, log=print):
    """Returns the list of disagreements (empty: all agree); logs a summary line."""
    path = natmod_path(arch, mpy_dir)
    rel = os.path.relpath(path, ROOT)
    problems = []
    allocs = set()  # twins that allocated under heap_lock: reported, not a natmod failure
    counts = {}
    with qemu_run.Qemu(arch) as q:
        q.connect()
        q.mount_ramfs()
        with open(path, "rb") as f:
            q.put("/" + rel, f.read())
        impl = q.exec("from drivers import kernels\nprint(kernels.IMPL, "
                      "getattr(kernels.native, '__file__', None))").strip()
        if not (impl.startswith("natmod ") and impl.endswith("/" + rel)):
            log("natmod    FAIL: the loader picked %r, not the natmod at %s" % (impl, rel))
            return ["the loader picked %r, not the natmod at %s" % (impl, rel)]
        q.exec(DEVICE_PRELUDE)
        for kind, args in vectors():
            out = q.exec("run(%r, json.loads(%r))" % (kind, json.dumps(args)), timeout=300)
            line = [ln for ln in out.splitlines() if ln.startswith("RES ")]
            if not line:
                problems.append("%s: no result: %s" % (kind, out[-500:]))
                continue
            res = json.loads(line[0][4:])
            want = expected(kind, args)
            for name, (got, alloc) in sorted(res.items()):
                counts[name] = counts.get(name, 0) + 1
                if got != want:
                    problems.append("%s %s: %r != twin %r" % (name, kind, got, want))
                if alloc and name == "natmod":
                    problems.append("%s %s allocated under heap_lock" % (name, kind))
                elif alloc:
                    allocs.add("%s %s" % (name, kind))
    log("natmod    %s: %s on %d vectors: %s" % (
        rel, ", ".join("%s %d" % kv for kv in sorted(counts.items())),
        len(vectors()), "%d disagreements" % len(problems) if problems
        else "all equal to the CPython twin, the natmod allocates nothing"))
    for p in problems[:40]:
        log("  " + p)
    if allocs:
        log("  twins that allocate under heap_lock here (32-bit): %s" % ", ".join(sorted(allocs)))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="armv7m", choices=sorted(qemu_run.MACHINES))
    ap.add_argument("--mpy-dir", default=os.environ.get("MPY_DIR"))
    a = ap.parse_args()
    problems = run(a.arch, a.mpy_dir)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
