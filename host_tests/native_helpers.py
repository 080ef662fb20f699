"""Host side of the native-kernel tests and benchmark: the C core built as a shared library
(ctypes) or as a sanitizer-checked driver program, the micropython runner, and the signal
generators for control-pilot bursts and CT/voltage buffers."""

import ctypes
import glob
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE_DIR = os.path.join(ROOT, "drivers", "native", "wbkernels")
CORE_SRC = os.path.join(CORE_DIR, "wbk_core.c")
DRIVER_SRC = os.path.join(ROOT, "host_tests", "native_driver.c")
BUILD = os.path.join(ROOT, "build", "native-host")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build  # noqa: E402

MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

# The simulator's CP front end (boards/sim/hw.py): 12 bit over -13.5 .. +13.5 V, 100 kHz.
CP_OFFSET_MV = -13500
CP_UV_PER_CODE = 6592
CP_RATE_HZ = 100000

ERRORS = {
    1: (ValueError, "samples is empty"),
    2: (ValueError, "samples longer than 65535"),
    3: (ValueError, "out too short"),
    4: (ValueError, "offset out of range"),
    5: (ValueError, "per-code scale out of range"),
    6: (ValueError, "sample_rate_hz out of range"),
    7: (ValueError, "phases out of range or not dividing the samples"),
    10: (ValueError, "st too short"),
}

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def sat32(v):
    """An int argument as the binding hands it to the core (saturated to int32)."""
    return min(max(v, I32_MIN), I32_MAX)


NO_MPY_DIR = (
    "MPY_DIR not set: check out MicroPython v1.29 (.mpy 6.3) outside the repo and run "
    "`MPY_DIR=/tmp/micropython make test` (see docs/native.md)"
)


def _build(out_name, args, sources):
    """Compile once per source content and flags; returns the output path."""
    h = hashlib.sha1(" ".join(args).encode())
    for s in sources:
        with open(s, "rb") as f:
            h.update(f.read())
    with open(os.path.join(CORE_DIR, "wbk_core.h"), "rb") as f:
        h.update(f.read())
    os.makedirs(BUILD, exist_ok=True)
    path = os.path.join(BUILD, "%s-%s" % (out_name, h.hexdigest()[:12]))
    if not os.path.exists(path):
        cmd = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", CORE_DIR]
        tmp = "%s.%d.tmp" % (path, os.getpid())  # parallel test workers build it too
        subprocess.run(cmd + args + ["-o", tmp] + sources, check=True)
        os.replace(tmp, path)
    return path


class CoreLib:
    """The C core through ctypes; every buffer is allocated at its exact size."""

    def __init__(self):
        path = _build("libwbk.so", ["-O2", "-shared", "-fPIC"], [CORE_SRC])
        lib = self.lib = ctypes.CDLL(path)
        i32, sz, p = ctypes.c_int32, ctypes.c_size_t, ctypes.c_void_p
        lib.wbk_pilot_burst.argtypes = [p, sz, p, sz, i32, i32, i32, p]
        lib.wbk_ac_measure.argtypes = [p, sz, p, sz, i32, i32, i32, i32]
        lib.wbk_crc16_modbus.argtypes = [p, sz]
        lib.wbk_crc16_modbus.restype = ctypes.c_uint16
        lib.wbk_ws_mask.argtypes = [p, sz, p, ctypes.c_uint32]
        lib.wbk_ws_mask.restype = ctypes.c_uint32
        lib.wbk_reflex_step.argtypes = [p, sz, i32, i32, i32]
        lib.wbk_reflex_step.restype = i32

    def pilot_burst(self, samples, offset_mv, uv, rate, nout=4):
        x = (ctypes.c_uint16 * max(1, len(samples)))(*samples)
        out = (ctypes.c_int32 * nout)()
        scratch = (ctypes.c_uint16 * 512)()
        rc = self.lib.wbk_pilot_burst(x, len(samples), out, nout, offset_mv, uv, rate, scratch)
        return rc, list(out)

    def ac_measure(self, samples, offset, uu, rate, phases=1, nout=None):
        nout = 4 * phases if nout is None else nout
        x = (ctypes.c_uint16 * max(1, len(samples)))(*samples)
        out = (ctypes.c_int32 * max(1, nout))()
        rc = self.lib.wbk_ac_measure(x, len(samples), out, nout, offset, uu, rate, phases)
        return rc, list(out)[:nout]

    def crc16_modbus(self, data):
        buf = (ctypes.c_uint8 * max(1, len(data))).from_buffer_copy(bytes(data) or b"\0")
        return self.lib.wbk_crc16_modbus(buf, len(data))

    def ws_mask(self, data, key, offset=0, align=0):
        """Masks a copy of data placed `align` bytes into a word-aligned buffer."""
        raw = (ctypes.c_uint8 * (len(data) + 8))()
        base = ctypes.addressof(raw)
        start = base + (-base) % 4 + align
        ctypes.memmove(start, bytes(data), len(data))
        k = (ctypes.c_uint8 * 4)(*key)
        nxt = self.lib.wbk_ws_mask(start, len(data), k, offset)
        return nxt, ctypes.string_at(start, len(data))

    def reflex_step(self, st, high_mv, rcm, beat_age_ms):
        """Steps the core on array('i') st in place (the core sees exactly its items); the
        ints saturated to int32 as the binding does. Returns the core's result (< 0: error)."""
        buf = (ctypes.c_int32 * len(st)).from_buffer(st) if len(st) else None
        return self.lib.wbk_reflex_step(buf, len(st), sat32(high_mv), sat32(rcm),
                                        sat32(beat_age_ms))  # fmt: skip


def sanitizer_driver():
    """Path of native_driver.c + the core built with -fsanitize=address,undefined."""
    flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
             "-fno-omit-frame-pointer"]  # fmt: skip
    return _build("wbk-driver-asan", flags, [DRIVER_SRC, CORE_SRC])


def cross_compile_m4(out_dir):
    """-Wall -Werror build of the core for Cortex-M4 (no MicroPython needed); returns the
    object path and the arm-none-eabi-size report."""
    cc = shutil.which("arm-none-eabi-gcc")
    obj = os.path.join(out_dir, "wbk_core-m4.o")
    cmd = [cc, "-std=c99", "-Os", "-Wall", "-Wextra", "-Werror", "-mthumb", "-mcpu=cortex-m4",
           "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-ffreestanding", "-c", CORE_SRC,
           "-o", obj]  # fmt: skip
    subprocess.run(cmd, check=True)
    size = subprocess.run(["arm-none-eabi-size", obj], check=True, capture_output=True,
                          text=True).stdout  # fmt: skip
    return obj, size


def run_micropython(script, stdin_obj=None, timeout=120):
    """Run a script on the unix port from the repo root; JSON in on stdin, JSON lines out."""
    data = json.dumps(stdin_obj) if stdin_obj is not None else ""
    # The device files as deployed: .mpy from tools/build.py (the viper module exists only
    # compiled), plus a built natmod; cwd outside the sources so '' imports no .py.
    mpy = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy)
    if errors:
        raise AssertionError("mpy-cross failed:\n" + "\n".join(errors))
    natmods = sorted(glob.glob(os.path.join(ROOT, "dist", "x64_*")))
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([mpy] + natmods + [".frozen"]))
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=64M", "-c", script], input=data,
                       capture_output=True, text=True, cwd=mpy, env=env,
                       timeout=timeout)  # fmt: skip
    if r.returncode != 0:
        raise AssertionError("micropython failed:\n%s\n%s" % (r.stdout, r.stderr))
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith(("{", "["))]


def mpy_dir():
    d = os.environ.get("MPY_DIR")
    return d if d and os.path.isfile(os.path.join(d, "py", "dynruntime.mk")) else None


def build_x64_natmod():
    """`make natmod ARCH=x64`; returns the .mpy path."""
    subprocess.run(["make", "-s", "natmod", "ARCH=x64", "MPY_DIR=" + mpy_dir()], cwd=ROOT,
                   check=True, capture_output=True)  # fmt: skip
    out = subprocess.run([MICROPYTHON, "-c", "import sys; m = sys.implementation._mpy; "
                          "print('%d.%d' % (m & 255, m >> 8 & 3))"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    return os.path.join(ROOT, "dist", "x64_" + out, "wbkernels.mpy")


# -- signal generators ----------------------------------------------------------------------


def mv_to_code(mv, offset_mv=CP_OFFSET_MV, uv=CP_UV_PER_CODE, bits=12):
    code = round((mv - offset_mv) * 1000 / uv)
    return min(max(code, 0), (1 << bits) - 1)


def pilot_wave(high_mv, low_mv, duty, n=1024, rate=CP_RATE_HZ, freq_hz=1000.0, phase=0.0,
               noise_mv=0.0, rise_us=0.0, ring_mv=0.0, spikes=0, seed=1,
               offset_mv=CP_OFFSET_MV, uv=CP_UV_PER_CODE, bits=12):  # fmt: skip
    """Codes of a CP burst: `duty` (0..1) square wave between the plateaus, linear edges
    of rise_us, damped ringing of ring_mv after each edge, gaussian noise, single-sample
    spikes to random codes. phase = fraction of a period at sample 0."""
    rnd = random.Random(seed)
    out = []
    period = 1.0 / freq_hz
    for k in range(n):
        t = (k / rate + phase * period) % period
        t_on = duty * period
        if t < t_on:
            since, level, prev = t, high_mv, low_mv
        else:
            since, level, prev = t - t_on, low_mv, high_mv
        if duty in (0.0, 1.0):
            since, prev = 1.0, level
        v = level
        if rise_us and since < rise_us * 1e-6:
            v = prev + (level - prev) * since / (rise_us * 1e-6)
        if ring_mv:
            v += ring_mv * math.exp(-since / 3e-6) * math.cos(2 * math.pi * 250e3 * since)
        if noise_mv:
            v += rnd.gauss(0, noise_mv)
        out.append(mv_to_code(v, offset_mv, uv, bits))
    for _ in range(spikes):
        out[rnd.randrange(n)] = rnd.randrange(4096)
    return out


def ac_wave(amp_codes, n=800, rate=4000, freq_hz=50.0, offset=2048, phases=1, noise=0.0,
            dc=0.0, seed=2):  # fmt: skip
    """Interleaved codes of `phases` sines 120 degrees apart around offset (+dc)."""
    rnd = random.Random(seed)
    out = []
    for k in range(n):
        for p in range(phases):
            v = offset + dc + amp_codes * math.sin(2 * math.pi * freq_hz * k / rate - p * 2.094)
            v += rnd.gauss(0, noise) if noise else 0.0
            out.append(min(max(int(round(v)), 0), 4095))
    return out


def pilot_vectors():
    """Named realistic CP bursts (sim front end) with what a correct analysis must report:
    (name, samples, high_mv, low_mv, duty_permille or None, freq_hz or None)."""
    v = []
    for i, duty in enumerate((0.05, 0.1, 0.16, 0.25, 0.5, 0.533, 0.8, 0.9, 0.96)):
        for state, high in (("B", 9000), ("C", 6000)):
            v.append(("pwm%s-%d" % (state, duty * 1000),
                      pilot_wave(high, -12000, duty, phase=0.13 * i, noise_mv=15, rise_us=3,
                                 ring_mv=1500, seed=i),
                      high, -12000, duty * 1000, 1000.0))  # fmt: skip
    for state, high in (("A", 12000), ("B", 9000), ("C", 6000), ("D", 3000), ("E", 0)):
        v.append(("state%s" % state, pilot_wave(high, -12000, 0.3, noise_mv=20, spikes=6,
                                                ring_mv=2000, seed=7),
                  high, -12000, 300, 1000.0))  # fmt: skip
    v.append(("x1", pilot_wave(12000, -12000, 1.0, noise_mv=20, spikes=3), 12000, 12000, 1000,
              None))  # fmt: skip
    v.append(("F", pilot_wave(12000, -12000, 0.0, noise_mv=20, spikes=3), -12000, -12000, 0,
              None))  # fmt: skip
    v.append(("E-const", pilot_wave(0, 0, 1.0, noise_mv=10), 0, 0, None, None))
    v.append(("diode-short", pilot_wave(9000, -8000, 0.5, noise_mv=15, ring_mv=800, seed=3),
              9000, -8000, 500, 1000.0))  # fmt: skip
    v.append(("freq-980", pilot_wave(6000, -12000, 0.5, freq_hz=980.0, noise_mv=10, seed=4),
              6000, -12000, 500, 980.0))  # fmt: skip
    v.append(("freq-1020", pilot_wave(6000, -12000, 0.5, freq_hz=1020.0, noise_mv=10, seed=5),
              6000, -12000, 500, 1020.0))  # fmt: skip
    v.append(("sim-128", pilot_wave(6000, -12000, 0.533, n=128, phase=0.4, noise_mv=12),
              6000, -12000, 533, None))  # fmt: skip
    v.append(("fast-1M", pilot_wave(9000, -12000, 0.16, n=4000, rate=1000000, rise_us=2,
                                    ring_mv=1500, noise_mv=15), 9000, -12000, 160, 1000.0))
    return v
