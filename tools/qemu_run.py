"""The frozen firmware image on an emulated microcontroller (QEMU), driven over its UART.

    python tools/qemu_run.py --arch armv7m --mpy-dir /work/mpy all|checks|session|natmod|serve

`make qemu` builds the image (mk/qemu.mk) and runs `all`: the MicroPython checks over the raw
REPL, a charging session in-process (boards/qemu/session.py) and the arch's wbkernels natmod
against its Python twins. `serve` keeps the emulator running with its UART on a pty (for
`make deploy BOARD=qemu PORT=...` and `make diag`) until Ctrl-C. docs/deploy.md."""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# What ports/qemu's Makefile and boards/<BOARD>/mpconfigboard.mk give each machine.
MACHINES = {
    "armv7m": ("qemu-system-arm", ["-machine", "mps2-an385", "-semihosting"]),
    "rv32imc": ("qemu-system-riscv32", ["-machine", "virt", "-bios", "none", "-semihosting"]),
}
# The port's CPU for rv32: with Zcmp, which QEMU has since 8.1 (Debian 12 ships 7.2; the image
# of mk/qemu.mk does not need it).
_RV32_CPU_ZCMP = ["-cpu", "rv32,zcd=off,zcmp=on"]


def qemu_version(exe):
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
# Checks that need what the qemu image lacks: sockets and the network (check_net), the
# ws client (a socket peer). The others run with the RAM filesystem mounted.
SKIP_CHECKS = {
    "check_net.py": "needs sockets (the qemu port has no network)",
    "check_dns.py": "firmware/dns.py imports socket (the qemu port has no network)",
    "check_boards.py": "imports the esp32/stm32 board files, which the qemu image leaves out",
    "check_wrap.py": "imports host_tests/sessionrig.py (a host helper, not in the image)",
    "check_stores.py": "its journals, held in the RAM filesystem here, outgrow the 112 KiB "
                       "heap (a board keeps them in flash)",
    "check_rfid.py": "its App part runs boards/sim's clock thread (ports/qemu has no "
                     "threads); its reader and driver parts pass here",
    "check_schema.py": "loads its 116 KB of vectors at once, more than the 112 KiB heap: "
                       "run_schema() checks the same vectors in batches",
}


HELPERS_LEFT_OUT = {"ws_client"}  # check_net's socket peer

# A check that stops on one of these (and failed nothing before) needs what the port lacks.
PORT_LACKS = (
    ("ImportError: no module named 'socket'", "imports socket (ports/qemu has no network)"),
    ("no threads on this port", "starts a thread (ports/qemu has none)"),
)

# Faults these runs found in other components, open until fixed there (each has a strict
# xfail test in host_tests/test_qemu.py): the failing check lines they explain.
OPEN_FINDINGS = {}
# Parts of a check that need more than the 112 KiB heap here because the test's stand-ins
# live in RAM (not the firmware): the failing lines they explain, and why.
HEAP_LIMITS = {
    "check_persist_cuts.py": (("FAIL journal: 0 cuts", "FAIL journal compaction: 0 cuts"),
                              "the journal scenarios' simulated flash (host_tests/flashsim.py) "
                              "is held in RAM and runs out of heap; the unix port runs them"),
}


class QemuError(Exception):
    pass


def image_path(arch):
    return os.path.join(ROOT, "build", "qemu", arch, "firmware.elf")


class Qemu:
    """One emulator process with its UART on a pty, and a raw-REPL session on it.

    icount: QEMU's -icount shift=0: one guest instruction = 1 ns of virtual time, so the
    guest's ticks_us() counts thousands of instructions (tools/bench_qemu.py)."""

    def __init__(self, arch, elf=None, icount=False, link=None):
        if arch not in MACHINES:
            raise QemuError("unknown arch %r; known: %s" % (arch, ", ".join(MACHINES)))
        elf = elf or image_path(arch)
        if not os.path.exists(elf):
            raise QemuError("no image %s: make qemu-image MPY_DIR=... ARCH=%s" % (elf, arch))
        exe, args = MACHINES[arch]
        if arch == "rv32imc" and qemu_version(exe) >= (8, 1):
            args = args + _RV32_CPU_ZCMP
        cmd = [exe] + args + ["-nographic", "-monitor", "null", "-serial", "pty",
                              "-kernel", elf]  # fmt: skip
        if icount:
            cmd += ["-icount", "shift=0"]
        self.arch = arch
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.pty = self._find_pty()
        self.link = link
        if link:
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(self.pty, link)
        self.t = None

    def _find_pty(self):
        line = b""
        t0 = time.time()
        while time.time() - t0 < 20:
            c = self.proc.stdout.read(1)
            if not c:
                break
            line += c
            m = re.search(rb"char device redirected to (/dev/pts/\d+)", line)
            if m:
                return m.group(1).decode()
        self.close()
        raise QemuError("qemu did not give a pty: %r" % line[-300:])

    def connect(self):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        for k in range(50):  # the pty can take a moment to open after QEMU names it
            if self.proc.poll() is not None:
                raise QemuError("qemu exited: %r" % self.proc.stdout.read()[-500:])
            try:
                self.t = SerialTransport(self.pty, baudrate=115200)
                break
            except TransportError:
                if k == 49:
                    raise
                time.sleep(0.1)
        self.t.enter_raw_repl(soft_reset=False, timeout_overall=30)
        return self

    def exec(self, script, timeout=300, echo=None):
        """Run `script` in the raw REPL; returns its output (str). An exception on the
        device raises QemuError with the traceback."""
        out = []

        def consume(data):
            out.append(data)
            if echo is not None:
                echo(data.decode(errors="replace"))

        self.t.exec_raw_no_follow(script)
        ret, err = self.t.follow(timeout, consume)
        text = b"".join(out).replace(b"\x04", b"").decode(errors="replace")
        if err:
            raise QemuError("device: %s\n%s" % (err.decode(errors="replace"), text[-2000:]))
        return text.replace("\r\n", "\n")

    def mount_ramfs(self):
        self.exec("from boards.qemu import ramfs; ramfs.mount()")

    def put(self, path, data):
        """Write a file on the device's RAM filesystem (after mount_ramfs)."""
        parts = os.path.dirname(path).strip("/").split("/")
        for k in range(1, len(parts) + 1):
            if parts[0]:
                d = "/" + "/".join(parts[:k])
                self.exec("import os\ntry:\n os.mkdir(%r)\nexcept OSError:\n pass" % d)
        self.exec("f = open(%r, 'wb')" % path)
        for k in range(0, len(data), 1024):
            self.exec("f.write(%r)" % bytes(data[k:k + 1024]))
        self.exec("f.close(); del f")

    def close(self):
        if self.t is not None:
            try:
                self.t.close()
            except Exception:
                pass
            self.t = None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.link and os.path.islink(self.link):
            os.remove(self.link)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- what `make qemu` runs ------------------------------------------------------------------


def run_checks(q, names=None, log=print, fresh=None):
    """host_tests/mpy/check_*.py on the device; {name: (ok, summary)}. fresh: a callable
    giving a newly booted, connected Qemu per check (nothing one check leaves in the 112 KiB
    heap then weighs on the next); else all run on q, cleaned up between them."""
    import glob

    res = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "host_tests", "mpy", "check_*.py"))):
        name = os.path.basename(path)
        if names and name not in names:
            continue
        if fresh is not None and name not in SKIP_CHECKS:
            with fresh() as q1:
                res.update(_run_checks(q1, [name], log))
        else:
            res.update(_run_checks(q, [name], log))
    return res


def _run_checks(q, names, log):
    import glob

    q.mount_ramfs()
    q.exec("import os\nfor d in ('/tmp',):\n try:\n  os.mkdir(d)\n except OSError:\n  pass")
    res = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "host_tests", "mpy", "check_*.py"))):
        name = os.path.basename(path)
        if names and name not in names:
            continue
        if name in SKIP_CHECKS:
            res[name] = (None, "skipped: " + SKIP_CHECKS[name])
            log("%-18s skipped: %s" % (name, SKIP_CHECKS[name]))
            continue
        with open(path) as f:
            src = f.read()
        q.exec("import sys\n_keep_mods = set(sys.modules)")
        helpers = put_helpers(q, src)
        try:
            # boards/sim imports _thread, the checks os.urandom and the clock: the qemu
            # board's stand-ins (boards/qemu/nothread.py, rtc.py)
            out = q.exec("import gc\ngc.collect()\nfrom boards.qemu import nothread, rtc\n"
                         "nothread.install()\nrtc.install()\n"
                         "__file__ = '/host_tests/mpy/%s'\n%s\n" % (name, src), timeout=600)
        except QemuError as e:
            out = str(e)
        try:
            for h in helpers:
                q.exec("import os\nos.remove(%r)" % h)
        except QemuError:
            pass  # a check that ran out of heap: the next one gets a fresh boot or cleanup
        fails = [ln for ln in out.splitlines() if ln.startswith("FAIL")]
        m = re.search(r"DONE (\d+) failed", out)
        ok = bool(m) and m.group(1) == "0" and not fails
        passes = sum(1 for ln in out.splitlines() if ln.startswith("PASS"))
        summary = "%d passed, %s" % (passes, m.group(0) if m else "no DONE line")
        lacking = [why for sign, why in PORT_LACKS if sign in out]
        if not ok and not fails and lacking:  # stopped by what ports/qemu does not have
            res[name] = (None, "skipped: " + lacking[0])
            log("%-18s skipped: %s" % (name, lacking[0]))
            _forget(q, name, log)
            continue
        known = OPEN_FINDINGS.get((q.arch, name), ())
        limit, why = HEAP_LIMITS.get(name, ((), ""))
        if not ok and m and fails and known and all(ln.startswith(known) for ln in fails):
            ok = "open"  # only the known, reported fault: not a new failure
            summary += " (open finding, host_tests/test_qemu.py xfail)"
        elif not ok and m and fails and limit and all(ln.startswith(limit) for ln in fails):
            ok = True
            summary += " (%s left out: %s)" % (", ".join(f[5:] for f in fails), why)
        if not ok:
            lines = out.splitlines()
            head = lines[:6] if lines and lines[0].startswith("device:") else []
            summary += "\n" + "\n".join(fails or head + lines[-6:])
        res[name] = (ok, summary)
        log("%-18s %s %s" % (name, {True: "ok  ", "open": "OPEN"}.get(ok, "FAIL"), summary))
        _forget(q, name, log)
    return res


def _forget(q, name, log):
    try:
        q.exec(_FORGET)
    except QemuError as e:
        log("%-18s (cleanup after it failed: %s)" % (name, str(e).splitlines()[0]))


# After a check: the modules it imported and the names it left in the REPL's namespace go,
# so the next check starts with the heap of a fresh boot.
# A new RAM filesystem too: the files a check leaves would take the next one's heap.
_FORGET = """import sys
for _m in [m for m in sys.modules if m not in _keep_mods]:
    del sys.modules[_m]
for _k in [k for k in globals() if k not in ('__name__', '__file__', 'sys', '_keep_mods')]:
    del globals()[_k]
import os, vfs
os.chdir('/')
vfs.umount('/')
from boards.qemu import ramfs
ramfs.mount()
os.mkdir('/tmp')
import gc
gc.collect()
"""


def put_helpers(q, src):
    """The host_tests modules a check imports (fakes, scenarios), copied where its sys.path
    line finds them (/host_tests/mpy, /host_tests); returns their device paths."""
    put = []
    todo = [src]
    while todo:
        text = todo.pop()
        for mod in sorted(set(re.findall(r"^(?:import|from) (\w+)", text, re.M))):
            for sub in ("host_tests/mpy", "host_tests"):
                path = os.path.join(ROOT, sub, mod + ".py")
                dev = "/%s/%s.py" % (sub, mod)
                if os.path.exists(path) and mod not in HELPERS_LEFT_OUT and dev not in put:
                    with open(path, "rb") as f:
                        data = f.read()
                    q.put(dev, data)
                    put.append(dev)
                    todo.append(data.decode())  # and what the helper imports
                    break
    return put


def run_schema(q, log=print, batch=8):
    """host_tests/schema_vectors.json (OCPP payloads with the verdict CPython's jsonschema
    gave) through firmware.ocpp.schema on the device, a batch per exec; returns the number
    that disagree."""
    with open(os.path.join(ROOT, "host_tests", "schema_vectors.json")) as f:
        vectors = json.load(f)
    q.exec("from firmware.ocpp import schema\nimport json, gc\n"
           "def agree(vs):\n"
           " bad = 0\n"
           " for kind, action, payload, want in vs:\n"
           "  fn = schema.check_request if kind == 'request' else schema.check_response\n"
           "  got = fn(action, payload)\n"
           "  if (got is None) != (want is None) or got is not None and list(got) != want:\n"
           "   bad += 1\n"
           "   print('DISAGREE', kind, action)\n"
           " gc.collect()\n"
           " return bad\n")
    wrong = 0
    for k in range(0, len(vectors), batch):
        text = json.dumps(vectors[k:k + batch])
        out = q.exec("print('BAD', agree(json.loads(%r)))" % text, timeout=120)
        m = re.search(r"BAD (\d+)", out)
        wrong += int(m.group(1)) if m else batch
    log("%-18s %s %d OCPP schema vectors, %d disagree with CPython's jsonschema" % (
        "schema", "ok  " if not wrong else "FAIL", len(vectors), wrong))
    return wrong


def run_session(q, log=print):
    out = q.exec("from boards.qemu import session\nsession.run()\n", timeout=600)
    for line in out.splitlines():
        if line.startswith("SESSION "):
            rec = json.loads(line[8:])
            log("session   %s" % summarize_session(rec))
            return rec
    raise QemuError("no SESSION line:\n" + out[-2000:])


def summarize_session(r):
    return ("board %s, kernels %s: plug %s ms, S2 closed %s ms, contacts closed %s ms, "
            "%s with duty %s, %.2f Wh; S2 open %s ms -> contactor open %s ms, after unplug "
            "%s; %d controller steps, heap after boot %d B, peak %d B of %d B" % (
                r["board"], r["kernels"], r["plug_ms"], r["s2_close_ms"],
                r["contacts_closed_ms"], r["status_charging"], r["duty"], r["energy_wh"],
                r["s2_open_ms"], r["contactor_open_ms"], r["status_after"], r["steps"],
                r["heap_boot"], r["heap_peak"], r["heap_size"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("all", "checks", "session", "natmod", "serve"))
    ap.add_argument("--arch", default="armv7m", choices=sorted(MACHINES))
    ap.add_argument("--mpy-dir", default=os.environ.get("MPY_DIR"))
    ap.add_argument("--link", help="serve: a symlink to the pty, e.g. build/qemu/ttyQ0")
    a = ap.parse_args()
    failed = []
    opened = []
    if a.what == "serve":
        q = Qemu(a.arch, link=a.link)
        q.connect()  # a filesystem for config.json and make deploy, as a board has flash
        q.mount_ramfs()
        q.t.exit_raw_repl()
        q.t.close()
        q.t = None
        print("qemu %s: UART on %s%s (Ctrl-C ends it)" % (
            a.arch, q.pty, " -> " + a.link if a.link else ""), flush=True)
        try:
            q.proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            q.close()
        return
    with Qemu(a.arch) as q:
        q.connect()
        if a.what in ("all", "checks"):
            for name, (ok, _) in run_checks(q, fresh=lambda: Qemu(a.arch).connect()).items():
                if ok is False:
                    failed.append(name)
                elif ok == "open":
                    opened.append(name)
            if run_schema(q):
                failed.append("schema vectors")
        if a.what in ("all", "session"):
            rec = run_session(q)
            for problem in session_problems(rec):
                failed.append("session: " + problem)
    if a.what in ("all", "natmod"):
        import qemu_natmod

        failed += qemu_natmod.run(a.arch, a.mpy_dir)
    if failed:
        print("qemu %s: FAILED: %s" % (a.arch, "; ".join(failed)))
        sys.exit(1)
    print("qemu %s: all passed%s" % (a.arch, " but the open findings in %s (tools/qemu_run.py "
                                      "OPEN_FINDINGS)" % ", ".join(opened) if opened else ""))


def session_problems(r):
    """What a user would notice going wrong in the session record (empty: none)."""
    p = []
    if r["status_charging"] != "Charging":
        p.append("status %r while the EV draws, not Charging" % r["status_charging"])
    if r["contacts_closed_ms"] is None or r["s2_close_ms"] is None:
        p.append("the contactor never closed")
    elif r["contacts_closed_ms"] - r["s2_close_ms"] > 3000:
        p.append("contactor closed %d ms after S2" % (r["contacts_closed_ms"] - r["s2_close_ms"]))
    if r["energy_wh"] <= 0:
        p.append("no energy delivered")
    if 266 not in r["duty"]:
        p.append("no 16 A offer (duty 266) in %s" % r["duty"])
    if r["contactor_open_ms"] is None:
        p.append("the contactor did not open after S2 opened")
    elif r["contactor_open_ms"] - r["s2_open_ms"] > 100:  # IEC 61851-1: C -> B within 100 ms
        p.append("contactor opened %d ms after S2" % (r["contactor_open_ms"] - r["s2_open_ms"]))
    if r["status_after"] != "Available":
        p.append("status %r after unplugging, not Available" % r["status_after"])
    if r["clock_errors"]:
        p.append("%d errors in the world's clock" % r["clock_errors"])
    return p


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
