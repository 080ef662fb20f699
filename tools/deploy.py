"""Compile the firmware for one board and copy it to a MicroPython device over its REPL.

    python tools/deploy.py deploy --board esp32_wallbox --port /dev/ttyUSB0
           [--config FILE] [--force] [--reset]
    python tools/deploy.py repl --port PORT     (mpremote connect PORT repl)
    python tools/deploy.py diag --port PORT     (status, why, events from the device's console)
    python tools/deploy.py vboard [--dir build/vboard] [--argv "ARGS"]
                                (a virtual board: see docs/deploy.md)

`make deploy BOARD=... PORT=...`, `make repl PORT=...` and `make diag PORT=...` call this.
The device files (firmware/, drivers/, boards/ with only this board's folder) are compiled
with mpy-cross into build/deploy/<board>/ and copied in one mpremote session (its Python
API, mpremote 1.29): directories first, then every .mpy whose sha256 differs from the
device's copy, then boards/<board>/main.py as /main.py. config.json is written only if the
device has none. Works on a real board and on the virtual board (docs/deploy.md).
"""
import argparse
import inspect
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # firmware.config, for the default config.json
import build  # noqa: E402

_MPY_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")  # sys.implementation._mpy
_CHUNK = 512  # bytes per exec while writing a file (raw-paste mode does the flow control)
# The REPL fallback of `make diag`: the firmware is not running, so what diag shows is the
# state its last app left; say so first, with the age of its last controller step.
DIAG_CODE = """\
from firmware import diag
if diag._app is not None:
    _s = diag.step_age_ms() if hasattr(diag, 'step_age_ms') else None
    if _s is None:
        _s = 'an unknown time'
    elif _s >= 10000:
        _s = '%d s' % (_s // 1000)
    else:
        _s = '%d ms' % _s
    print('firmware STOPPED: state as of its last step %s ago' % _s)
diag.status()
if diag._app is not None:
    print('-- why'); diag.why(); print('-- last events'); diag.events()
"""


class DeployError(Exception):
    pass


def boards():
    """Board names: folders of boards/ with a board.py and a main.py."""
    top = os.path.join(ROOT, "boards")
    return sorted(
        d for d in os.listdir(top)
        if os.path.isfile(os.path.join(top, d, "board.py"))
        and os.path.isfile(os.path.join(top, d, "main.py"))
    )


def serial_ports():
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    return sorted(p.device for p in list_ports.comports())


def check_board(board):
    names = boards()
    if not board:
        raise DeployError("BOARD is missing; choose one of: %s" % ", ".join(names))
    if board not in names:
        raise DeployError("unknown BOARD %r; choose one of: %s" % (board, ", ".join(names)))


def check_port(port):
    if not port:
        found = serial_ports()
        raise DeployError(
            "PORT is missing (the device's serial port, e.g. PORT=/dev/ttyUSB0); serial ports "
            "found: %s" % (", ".join(found) if found else "none - is the board plugged in?")
        )
    if not os.path.exists(port) and not port.startswith(("socket://", "rfc2217://")):
        found = serial_ports()
        raise DeployError("PORT %s does not exist; serial ports found: %s" % (
            port, ", ".join(found) if found else "none - is the board plugged in?"))


def default_config():
    """Every config key at its default, except the ones with no safe default (rating_a):
    until the installer sets those, the firmware refuses to charge and says why."""
    from firmware import config

    return {k: spec[0] for k, spec in config.SCHEMA.items() if spec[0] is not None}


def config_text(path=None):
    """The config.json to write when the device has none, checked like the firmware will."""
    import json

    if path is None:
        d = default_config()
    else:
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            raise DeployError("--config %s: %s" % (path, e))
        from firmware import config

        c = config.from_dict(d)
        if c.errors:
            raise DeployError("--config %s is refused:\n  %s" % (path, "\n  ".join(c.errors)))
    return (json.dumps(d, indent=1, sort_keys=True) + "\n").encode()


def board_arch(board):
    """The board's native-code architecture: `MPY_ARCH = "..."` in its board.py, else the
    host's (x64: the unix port here, e.g. boards/sim)."""
    with open(os.path.join(ROOT, "boards", board, "board.py")) as f:
        m = re.search(r'^MPY_ARCH = "(\w+)"', f.read(), re.M)
    return m.group(1) if m else "x64"


def native_modules(arch, ver):
    """Natmods built for this arch and .mpy version (make natmod): [(local, device path)].
    drivers/kernels.py looks for them in dist/<arch>_<ver>/ next to drivers/."""
    d = "dist/%s_%s" % (arch, ver)
    top = os.path.join(ROOT, "dist", "%s_%s" % (arch, ver))
    if not arch or not os.path.isdir(top):
        return []
    return [(os.path.join(top, f), d + "/" + f) for f in sorted(os.listdir(top))
            if f.endswith(".mpy")]


def plan(board, out_dir=None):
    """Compile and list what goes on the device: [(local path, device path)], main.py last."""
    out_dir = out_dir or os.path.join(ROOT, "build", "deploy", board)
    kw = {}
    if "march" in inspect.signature(build.compile_all).parameters:
        kw["march"] = board_arch(board)  # for @native/@viper modules
    built, errors = build.compile_all(out_dir, board=board, **kw)
    if errors:
        raise DeployError("mpy-cross failed:\n  " + "\n  ".join(errors))
    files = sorted((p, os.path.relpath(p, out_dir).replace(os.sep, "/")) for p in built)
    files.append((os.path.join(ROOT, "boards", board, "main.py"), "main.py"))
    return files


# -- the device session --------------------------------------------------------------------------

# Runs on the device right after Ctrl-C stopped whatever was running. If it was this
# firmware, its watchdog keeps running (it cannot be stopped): feed it while we copy.
_KEEPALIVE = """\
import os, sys
_dw = None
_dm = sys.modules.get('firmware.diag')
if _dm is not None and getattr(_dm, '_app', None) is not None:
    _dw = getattr(getattr(_dm._app, 'sup', None), 'wdt', None)
def _k():
    if _dw is not None:
        _dw.feed()
_k()
print(_dw is not None)
"""

_HASHES = """\
import hashlib, binascii
def _h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return '-'
    h = hashlib.sha256()
    b = bytearray(256)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(b if n == 256 else b[:n])
    f.close()
    _k()
    return binascii.hexlify(h.digest()).decode()
for p in %r:
    print(_h(p))
"""

_MKDIRS = """\
for d in %r:
    try:
        os.mkdir(d)
    except OSError:
        pass
"""


_RESET_KIND = """\
try:
    import machine
    _r = hasattr(machine, 'reset')
except ImportError:
    _r = False
print('machine' if _r else 'vboard' if getattr(os, 'getenv', lambda k: None)(%r) else 'none')
"""


class Device:
    """One mpremote session: raw REPL without a soft reset (`resume`)."""

    def __init__(self, port, soft_reset=False):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.TransportError = TransportError
        try:
            self.t = SerialTransport(port, baudrate=115200)
        except TransportError as e:
            raise DeployError("cannot open PORT %s: %s" % (port, e))
        try:
            self.t.enter_raw_repl(soft_reset=soft_reset)
        except TransportError as e:
            self.t.close()
            raise DeployError("no MicroPython raw REPL on %s (%s); is it running MicroPython "
                              "and not in use by another program?" % (port, e))
        self.port = port
        self.watchdog = self.run(_KEEPALIVE).strip() == "True"

    def abi(self):
        """(arch, 'major.sub') of the device's native code, as drivers/kernels.abi()."""
        v = int(self.run("print(getattr(sys.implementation, '_mpy', 0))").strip() or 0)
        a = v >> 10
        arch = _MPY_ARCHS[a] if a < len(_MPY_ARCHS) else None
        return arch, "%d.%d" % (v & 0xFF, v >> 8 & 3)

    def run(self, code):
        try:
            out = self.t.exec(code)
        except self.TransportError as e:
            raise DeployError("on the device: %s" % (getattr(e, "error_output", e),))
        return out.decode(errors="replace")

    def hashes(self, paths):
        try:
            got = self.run(_HASHES % (paths,)).split()
        except DeployError:
            got = []  # no hashlib/binascii on this port: copy everything
        return got if len(got) == len(paths) else ["-"] * len(paths)

    def exists(self, path):
        return self.run("try:\n os.stat(%r)\n print(1)\nexcept OSError:\n print(0)\n"
                        % path).strip() == "1"

    def write(self, path, data):
        """Write atomically: path.tmp, then rename over path."""
        tmp = path + ".tmp"
        self.run("f=open(%r,'wb')\nw=f.write" % tmp)
        for i in range(0, len(data), _CHUNK):
            self.run("w(%r)\n_k()" % data[i:i + _CHUNK])
        self.run("f.close()\nos.rename(%r,%r)\n_k()" % (tmp, path))

    def remove(self, path):
        self.run("try:\n os.remove(%r)\nexcept OSError:\n pass\n" % path)

    def reset_kind(self):
        """How this device restarts: "machine" (machine.reset(): a board), "vboard" (the
        virtual board starts its micropython again when it exits) or "none" (a unix port
        without the virtual board around it)."""
        try:
            return self.run(_RESET_KIND % VBOARD_ENV).strip()
        except DeployError:
            return "none"

    def close(self, reset=None):
        """Leave the raw REPL for the friendly one, or reset as reset_kind() said."""
        if reset == "machine":
            self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        elif reset == "vboard":
            # The unix port has no machine.reset: end the process, the virtual board starts
            # it again (wait_vboard_restart() watches the port close and closes it).
            self.t.exec_raw_no_follow("import sys\nsys.exit()")
            return  # the port stays open for wait_vboard_restart(self.t.serial, ...)
        else:
            self.t.exit_raw_repl()
        self.t.close()


def deploy(board, port, config_path=None, force=False, reset=False, out=print):
    check_board(board)
    check_port(port)
    cfg = config_text(config_path)  # refuse a bad --config before touching the device
    t0 = time.time()
    files = plan(board)
    out("compiled %d files for %s into %s" % (
        len(files) - 1, board, os.path.relpath(os.path.join("build", "deploy", board))))
    dev = Device(port)
    ok = False
    try:
        if dev.watchdog:
            out("firmware found on the device, stopped by Ctrl-C (contactor open, CP +12 V); "
                "feeding its watchdog while copying")
        # main.py goes first and comes back last: a deploy cut short leaves a board that
        # boots to the REPL (no charging), never a mix of old and new modules.
        dev.remove("main.py")
        arch, ver = dev.abi()
        natmods = native_modules(arch, ver)
        files[-1:-1] = natmods  # before main.py
        out("device: .mpy %s, native arch %s; native kernels: %s" % (
            ver, arch, ", ".join(rel for _, rel in natmods) or
            "none built for it (make natmod), the Python twins run"))
        if arch and arch != board_arch(board):
            out("warning: %s declares MPY_ARCH %s: its @native/@viper modules will not load "
                "on this %s device (the Python versions run)" % (board, board_arch(board), arch))
        dirs = sorted({d for _, rel in files for d in _parents(rel)})
        dev.run(_MKDIRS % (dirs,))
        # config.json before main.py: never an installer's, only one if there is none.
        if dev.exists("config.json"):
            cfg_note = "config.json: the device has one; left as it is"
        else:
            dev.write("config.json", cfg)
            cfg_note = "config.json: written " + (
                "from %s" % config_path if config_path else
                "with defaults; set rating_a (6..80 A) for this hardware - until then the "
                "firmware refuses to charge")
        remote = [rel for _, rel in files]
        have = ["-"] * len(files) if force else dev.hashes(remote)
        total = len(files)
        written = skipped = nbytes = 0
        width = len(str(total))
        for n, ((local, rel), h) in enumerate(zip(files, have), 1):
            with open(local, "rb") as f:
                data = f.read()
            if h != "-" and h == _sha256(data) and rel != "main.py":
                skipped += 1
                out("[%*d/%d] %-40s %6d B  unchanged" % (width, n, total, rel, len(data)))
                continue
            dev.write(rel, data)
            written += 1
            nbytes += len(data)
            out("[%*d/%d] %-40s %6d B" % (width, n, total, rel, len(data)))
        out(cfg_note)
        ok = True
    finally:
        kind = dev.reset_kind() if ok else None
        dev.close(reset=kind if reset else None)
    out("deployed %s to %s: %d written (%d B), %d unchanged, in %.1f s" % (
        board, port, written, nbytes, skipped, time.time() - t0))
    if reset and kind == "machine":
        out("board reset: the new firmware is starting")
    elif reset and kind == "vboard":
        state, printed = wait_vboard_restart(dev.t.serial, port)
        out(_VBOARD_RESET[state] % {"port": port})
        if state in ("repl", "exited"):  # why main.py stopped: what it printed
            out("\n".join(printed.replace("\r", "").splitlines()[-12:]))
    elif kind == "vboard":
        out("the virtual board stays at its REPL (its watchdog runs only with the firmware); "
            "RESET=1, or Ctrl-D at its REPL, starts the new firmware")
    elif kind == "none":
        out("this MicroPython has no machine.reset(): left at its REPL; start the firmware "
            "there with `import main`")
    elif dev.watchdog:
        out("the firmware's watchdog restarts the board within seconds")
    else:
        out("reset the board to start the firmware (make deploy ... RESET=1 does it)")
    return written, skipped


_VBOARD_RESET = {
    "console": "virtual board reset (the unix port has no machine.reset(): its micropython "
               "started again): main.py runs, its service console answers on %(port)s; "
               "Ctrl-C there stops the firmware and gives the REPL",
    "repl": "virtual board reset, but main.py is not running (it ended or failed at start; "
            "its output follows): the REPL answers on %(port)s",
    "exited": "virtual board reset, but its micropython ended again at start (main.py ends "
              "with sys.exit()? its output follows); the virtual board starts it again until "
              "it exits at once several times in a row",
    "silent": "virtual board reset: main.py runs without a service console (config console: "
              "false?); Ctrl-C at %(port)s stops it",
}


def _parents(rel):
    parts = rel.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _sha256(data):
    import hashlib

    return hashlib.sha256(data).hexdigest()


def mpremote_exe():
    cand = os.path.join(os.path.dirname(sys.executable), "mpremote")
    return cand if os.path.exists(cand) else "mpremote"


def repl(port):
    check_port(port)
    return subprocess.call([mpremote_exe(), "connect", port, "repl"])


CONSOLE_PROMPT = b"wallbox> "  # firmware/console.py
DIAG_COMMANDS = ("status", "why", "events")


def _read_until(ser, marks, timeout):
    """Bytes from the port until one of `marks` ends them, or the timeout."""
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        data += ser.read(256)
        if any(data.endswith(m) for m in marks):
            break
    return data


def diag(port, out=print, timeout=5.0):
    """Diagnostics from the firmware's service console while it keeps running; at a bare
    REPL (firmware stopped) through mpremote instead. See docs/deploy.md."""
    check_port(port)
    import serial

    with serial.Serial(port, 115200, timeout=0.05) as ser:
        ser.reset_input_buffer()
        ser.write(b"\r")
        hello = _read_until(ser, (CONSOLE_PROMPT, b">>> "), 2.0)
        if hello.endswith(CONSOLE_PROMPT):
            for cmd in DIAG_COMMANDS:
                ser.write(cmd.encode() + b"\r")
                reply = _read_until(ser, (CONSOLE_PROMPT,), timeout)
                if not reply.endswith(CONSOLE_PROMPT):
                    raise DeployError("the console on %s stopped answering during %r" % (
                        port, cmd))
                lines = reply[: -len(CONSOLE_PROMPT)].decode(errors="replace").splitlines()
                out("-- " + cmd)
                for line in lines[1:]:  # the first line is the echoed command
                    out(line.rstrip("\r"))
            return 0
    if not hello.endswith(b">>> "):
        raise DeployError(
            "nothing answered on %s: no service console (config console: false?) and no REPL. "
            "make repl PORT=%s stops the firmware and gives the REPL, where "
            "`from firmware import diag; diag.status()` works" % (port, port))
    # The REPL: the firmware is not running; ask the last app it ran, through mpremote.
    return subprocess.call([mpremote_exe(), "connect", port, "resume", "exec", DIAG_CODE])


# -- the virtual board ---------------------------------------------------------------------------

VBOARD_ENV = "WALLBOX_VBOARD"  # set for the virtual board's micropython: a reset restarts it
_QUICK_EXIT_S = 2.0  # a micropython that lives less than this ...
_QUICK_EXITS = 5  # ... this many times in a row is not restarted again

# What the virtual board runs at power-on (written next to its flash folder): what a board does
# after a reset - main.py from its flash, the cwd - then the REPL (`micropython -i`). A script
# sets sys.path[0] to its own folder and sys.argv to its name; a board has '' and [].
_VBOOT = """\
import sys
sys.path[0] = ''
sys.argv[:] = %r
try:
    open('main.py').close()
except OSError:
    print('virtual board: no main.py yet (make deploy writes it)')
else:
    import main
"""


def micropython_exe():
    cand = os.path.join(os.path.dirname(sys.executable), "micropython")
    return cand if os.path.exists(cand) else shutil.which("micropython")


# How the virtual board starts micropython on its pty. The unix port reads its REPL with ISIG
# off (a Ctrl-C byte is data there) and runs code with the terminal as it found it: ISIG on
# here makes Ctrl-C a SIGINT then - KeyboardInterrupt, as the UART of a board raises it. Until
# the unix port installs its handler (while it runs code) SIGINT is ignored, so a Ctrl-C while
# the process starts cannot end it (`micropython` here is a CPython launcher). Ctrl-\\ and
# Ctrl-Z stay plain bytes.
_VSTART = """\
#!/bin/sh
trap '' INT
stty isig intr '^C' quit undef susp undef
exec %s -i %s
"""


def socat_command(port, start):
    """socat giving the `start` script (_VSTART) a pty at `port`. raw,echo=0 on the port side
    passes every byte through; on the script's side the pty starts raw (rawer) and is its
    controlling terminal (setsid,ctty), so the SIGINT of its ISIG reaches micropython."""
    for path in (port, start):
        if any(c in path for c in ",:!'\"() "):
            raise DeployError("socat cannot take this path in an address: %r" % path)
    return [shutil.which("socat") or "socat", "PTY,link=%s,raw,echo=0" % port,
            "EXEC:%s,pty,setsid,ctty,rawer,stderr" % start]


def run_vboard(workdir, argv=(), micropython=None, out=print):
    """The virtual board, until SIGTERM or Ctrl-C: a unix-port micropython behind a pty at
    workdir/ttyV0, its cwd workdir/flash standing in for the board's flash. When micropython
    exits (a reset: Ctrl-D at its REPL, `make deploy ... RESET=1`) it starts again and runs
    main.py, as a board does; the pty is a new one then (like a USB port after a reset).
    `argv`: the sys.argv main.py sees (a board's is empty)."""
    if shutil.which("socat") is None:
        raise DeployError("socat is not installed (make setup installs it)")
    mp = micropython or micropython_exe()
    if not mp:
        raise DeployError("no micropython executable (make setup installs it)")
    workdir = os.path.abspath(workdir)
    flash = os.path.join(workdir, "flash")
    os.makedirs(flash, exist_ok=True)
    port = os.path.join(workdir, "ttyV0")
    boot = os.path.join(workdir, "vboot.py")
    with open(boot, "w") as f:
        f.write(_VBOOT % (["main.py"] + list(argv) if argv else [],))
    start = os.path.join(workdir, "vstart.sh")
    with open(start, "w") as f:
        f.write(_VSTART % (shlex.quote(mp), shlex.quote(boot)))
    os.chmod(start, 0o755)
    cmd = socat_command(port, start)
    env = dict(os.environ, **{VBOARD_ENV: "1"})
    quick = 0
    boots = 0
    while True:
        if os.path.lexists(port):
            os.remove(port)
        t0 = time.time()
        with open(os.path.join(workdir, "socat.log"), "ab") as log:
            proc = subprocess.Popen(cmd, cwd=flash, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, env=env)
        try:
            if boots == 0:
                out("virtual board: PORT=%s  (its flash: %s); Ctrl-C stops it" % (
                    _short(port), _short(flash)))
            else:
                out("virtual board: reset, started again (PORT=%s)" % _short(port))
            boots += 1
            if proc.wait() > 128:  # socat itself stopped by a signal (Ctrl-C, kill): not a reset
                out("virtual board: socat ended by signal %d; stopped" % (proc.returncode - 128))
                return
        finally:
            if proc.poll() is None:
                proc.terminate()  # socat hands SIGTERM on to micropython
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        quick = quick + 1 if time.time() - t0 < _QUICK_EXIT_S else 0
        if quick >= _QUICK_EXITS:
            with open(os.path.join(workdir, "socat.log"), errors="replace") as f:
                raise DeployError("the virtual board exits as soon as it starts (%d times): %s"
                                  % (quick, f.read()[-500:]))


def start_vboard(workdir, micropython=None, timeout=10.0, argv=()):
    """run_vboard() in a process of its own (`tools/deploy.py vboard`, as make vboard runs
    it). Returns (process, port) once the board answers there; stop it with stop_vboard()."""
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    port = os.path.join(workdir, "ttyV0")
    if os.path.lexists(port):
        os.remove(port)
    cmd = [sys.executable, os.path.abspath(__file__), "vboard", "--dir", workdir]
    if micropython:
        cmd += ["--micropython", micropython]
    if argv:
        cmd.append("--argv=" + " ".join(argv))  # "=": the value may start with --
    logpath = os.path.join(workdir, "vboard.log")
    with open(logpath, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    deadline = time.time() + timeout
    while not os.path.exists(port):
        if proc.poll() is not None or time.time() > deadline:
            stop_vboard(proc)
            with open(logpath, errors="replace") as f:
                raise DeployError("the virtual board did not start: %s" % f.read()[-500:])
        time.sleep(0.02)
    try:
        probe_vboard(port, deadline)  # its micropython is up: the port takes Ctrl-C now
    except DeployError:
        stop_vboard(proc)
        raise
    return proc, port


def stop_vboard(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the supervisor and its socat
        except ProcessLookupError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class _Pty:
    """The virtual board's port opened plainly: pyserial's open() flushes the input, which
    would lose what micropython printed while it started (a traceback of main.py)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)

    def read(self, n):
        ready, _, _ = select.select([self.fd], [], [], 0.05)
        return os.read(self.fd, n) if ready else b""

    def write(self, data):
        os.write(self.fd, data)

    def close(self):
        os.close(self.fd)


def wait_vboard_restart(old, port, timeout=10.0):
    """After a reset of the virtual board: wait until `old` (the open pyserial port) sees its
    pty close - micropython exited - and close it; then probe_vboard() the new one."""
    import serial

    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            old.read(256)  # raises once socat closed the old pty
    except (OSError, serial.SerialException):
        pass
    try:
        old.close()
    except (OSError, serial.SerialException):
        pass
    return probe_vboard(port, deadline)


def probe_vboard(port, deadline):
    """Open the virtual board's port and press Enter until something answers. Returns (state,
    what the board printed): state "console" (main.py runs, its service console answers),
    "repl" (no main.py, or it ended or failed: the REPL answers), "exited" (micropython ended
    again) or "silent"."""
    while True:
        try:
            pty = _Pty(port)
            break
        except OSError:
            if time.time() > deadline:
                raise DeployError("the virtual board did not come up on %s" % port)
            time.sleep(0.05)
    got = bytearray()
    state = "silent"
    try:
        while time.time() < deadline:
            pty.write(b"\r")  # the console only reads once the firmware is up
            got += _read_until(pty, (CONSOLE_PROMPT, b">>> "), 0.5)
            if got.endswith(CONSOLE_PROMPT):
                state = "console"
                break
            if got.endswith(b">>> "):
                state = "repl"
                break
    except OSError:
        state = "exited"  # micropython ended again: main.py exits at start
    finally:
        pty.close()
    return state, got.decode(errors="replace")


def _short(path):
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def vboard(workdir, argv=(), micropython=None):
    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        run_vboard(workdir, argv, micropython, out=lambda s: print(s, flush=True))
    except KeyboardInterrupt:
        pass
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("deploy", "repl", "diag", "vboard"))
    ap.add_argument("--board", default="")
    ap.add_argument("--port", default="")
    ap.add_argument("--config", help="config.json to write if the device has none")
    ap.add_argument("--force", action="store_true", help="copy files even if unchanged")
    ap.add_argument("--reset", action="store_true",
                    help="machine.reset() after the copy (the virtual board: restart it)")
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "vboard"),
                    help="vboard: where the pty link and the flash folder go")
    ap.add_argument("--argv", default="",
                    help="vboard: the sys.argv main.py sees, e.g. \"--port 7701\" (default none)")
    ap.add_argument("--micropython", help="vboard: the unix-port executable to run")
    a = ap.parse_args(argv)
    try:
        if a.command == "deploy":
            deploy(a.board, a.port, a.config, a.force, a.reset)
            return 0
        if a.command == "repl":
            return repl(a.port)
        if a.command == "vboard":
            return vboard(a.dir, a.argv.split(), a.micropython)
        return diag(a.port)
    except DeployError as e:
        print("deploy: error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
