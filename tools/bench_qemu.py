"""Instruction counts of the frozen firmware on emulated MCUs (QEMU -icount), its heap, and the
CPU share they imply at an ESP32's 240 MHz and an STM32F4's 168 MHz.

    python tools/bench_qemu.py [--arch armv7m|rv32imc ...] [--mpy-dir DIR] [--json FILE]

Needs the images of `make qemu-image` (MPY_DIR); `make bench` runs this when MPY_DIR is set.
The natmod of the arch (dist/, `make natmod`) is copied to the device first, so the pilot
burst is measured as bytecode twin, viper twin and natmod.

What the estimate ignores: it counts instructions, not cycles. Cache misses and flash wait
states (code runs from flash on both chips: a frozen image executes through the ESP32's
32 KiB flash cache, the STM32F4's ART accelerator), interrupts, the other tasks' work and
the Xtensa LX6's own instruction mix (the ESP32 runs Xtensa, not Cortex-M or RV32) are not
in it; one instruction per cycle is assumed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import qemu_run  # noqa: E402

CLOCKS = (("ESP32 240 MHz", 240e6), ("STM32F4 168 MHz", 168e6))


def measure(arch, mpy_dir=None):
    """The device's BENCH record (instruction counts) and the session's heap figures."""
    import qemu_natmod

    natmod = None
    try:
        natmod = qemu_natmod.natmod_path(arch, mpy_dir)
    except (qemu_run.QemuError, OSError, Exception):
        pass
    with qemu_run.Qemu(arch, icount=True) as q:
        q.connect()
        q.mount_ramfs()
        if natmod:
            with open(natmod, "rb") as f:
                q.put("/" + os.path.relpath(natmod, ROOT), f.read())
        out = q.exec("from boards.qemu import bench\nbench.run(rsa=%r)\n" % (rsa_spec(),),
                     timeout=1800)
    m = re.search(r"^BENCH (.*)$", out, re.M)
    if not m:
        raise qemu_run.QemuError("no BENCH line:\n" + out[-2000:])
    rec = json.loads(m.group(1))
    with qemu_run.Qemu(arch) as q:  # heap at its peak: the charging session, real time
        q.connect()
        s = qemu_run.run_session(q, log=lambda m: None)
    rec.update(heap_size=s["heap_size"], heap_boot=s["heap_boot"], heap_peak=s["heap_peak"])
    return rec


def rsa_spec(bits=3072):
    """(n hex, e, SHA-256 hex, signature hex): an RSA-PSS signature over a message as
    tools/bundle.py signs an update bundle (its default 3072-bit key); None without the
    cryptography package."""
    import hashlib

    try:
        import bundle
    except ImportError:
        return None
    key = bundle.new_key(bits)
    data = b"wallbox update bundle manifest"
    nums = key.public_key().public_numbers()
    return ("%x" % nums.n, nums.e, hashlib.sha256(data).hexdigest(),
            bundle.sign(key, data).hex())


def share(insns, period_ms, hz):
    """Percent of one core: insns every period_ms at hz, one instruction per cycle."""
    return 100.0 * insns / (hz * period_ms / 1000.0)


def report(arch, r, out=print):
    out("qemu %s (frozen image, -icount: instructions of the emulated %s)" % (
        arch, "Cortex-M3" if arch == "armv7m" else "RV32IMC"))
    out("  heap: %d B total (an ESP32-WROOM's), %d B after boot (every module imported), "
        "peak %d B while charging" % (r["heap_size"], r["heap_boot"], r["heap_peak"]))
    rows = [
        ("controller step, idle (no EV)", r["step_idle"]),
        ("controller step, charging (+ reflex tick)", r["step_charging"]),
        ("reflex tick (the timer IRQ, every ms)", r["reflex_tick"]),
    ]
    for name in ("bytecode", "viper", "natmod"):
        if "pilot_" + name in r:
            rows.append(("pilot burst, %d samples, %s" % (r["pilot_samples"], name),
                         r["pilot_" + name]))
    rows += [
        ("Modbus poll decode, SDM630 (%d blocks)" % r["modbus_blocks"], r["modbus_decode"]),
        ("OCPP frame parse + schema check (%d B)" % r["ocpp_frame_bytes"],
         r["ocpp_parse_check"]),
        ("OCPP MeterValues schema check", r["ocpp_metervalues_check"]),
    ]
    if "rsa_verify" in r:
        rows.append(("OTA signature check, RSA-PSS %d bit" % r["rsa_bits"],
                     r["rsa_verify"]))
    for name, v in rows:
        out("  %-52s %10s instructions" % (name, "-" if v is None else "{:,}".format(v)))
    period = r["period_ms"]
    step = r["step_charging"]
    out("  CPU share of the safety loop while charging (one step every %d ms%s):" % (
        period, ", kernels " + r["kernels"]))
    for label, hz in CLOCKS:
        parts = ["%.1f %%" % share(step, period, hz)]
        for p in (5,):  # the ESP32 and STM32 boards step every 5 ms
            if p != period:
                parts.append("%.1f %% at %d ms" % (share(step, p, hz), p))
        out("    %-18s %s" % (label, ", ".join(parts)))
    out("  (instructions, one per cycle: caches, flash wait states, interrupts, the other "
        "tasks and the ESP32's Xtensa ISA are not in it)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", action="append", choices=sorted(qemu_run.MACHINES))
    ap.add_argument("--mpy-dir", default=os.environ.get("MPY_DIR"))
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    archs = a.arch or ["armv7m", "rv32imc"]
    if not a.mpy_dir:
        print("qemu: MPY_DIR is not set (a MicroPython source tree for the frozen image); "
              "skipped. make bench MPY_DIR=... measures on the emulated MCUs")
        return
    figures = {}
    for arch in archs:
        exe = qemu_run.MACHINES[arch][0]
        if shutil.which(exe) is None:
            print("qemu %s: %s is not installed; skipped" % (arch, exe))
            continue
        r = subprocess.run(["make", "-s", "qemu-image", "ARCH=" + arch, "MPY_DIR=" + a.mpy_dir],
                           cwd=ROOT, capture_output=True, text=True)
        if r.returncode:
            print("qemu %s: the image did not build:\n%s" % (arch, (r.stdout + r.stderr)[-1500:]))
            sys.exit(1)
        figures[arch] = measure(arch, a.mpy_dir)
        report(arch, figures[arch])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
