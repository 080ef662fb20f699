"""Compile the firmware for one board and copy it to a MicroPython device over its REPL.

    python tools/deploy.py deploy --board esp32_wallbox --port /dev/ttyUSB0
           [--config FILE] [--keys ota_keys.json] [--force] [--reset]
    python tools/deploy.py repl --port PORT     (mpremote connect PORT repl)
    python tools/deploy.py diag --port PORT     (status, why, events from the device's console)
    python tools/deploy.py vboard [--dir build/vboard] [--argv "ARGS"]
                                (a virtual board, tools/vboard.py: see docs/deploy.md)

`make deploy BOARD=... PORT=...`, `make repl PORT=...` and `make diag PORT=...` call this.
The device files (firmware/, drivers/, boards/ with only this board's folder) are compiled
with mpy-cross into build/deploy/<board>/ and copied in one mpremote session (its Python
API, mpremote 1.29): directories first, then every .mpy whose sha256 differs from the
device's copy, then boards/<board>/main.py as /main.py. config.json is written only if the
device has none; ota_keys.json (the public keys update bundles are checked with: --keys, or
keys/ota_keys.json from `make keys`) whenever it differs. Works on a real board and on the
virtual board (docs/deploy.md). A device whose firmware is frozen into its image gets
main.py, config.json, the keys and the web pages (into web/) only.
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # firmware.config, for the default config.json
import mpshim  # noqa: E402,F401 (firmware modules on CPython)
import build  # noqa: E402,F401  (deploy.build: the compile step, as before)
from deploy_plan import (FROZEN_PROBE, KEYS_FILE, DeployError, board_arch,  # noqa: E402,F401
                         config_text, default_config, frozen_plan, heap_warning, keys_text,
                         native_modules, plan)
from vboard import (CONSOLE_PROMPT, VBOARD_ENV, VboardError, add_arguments,  # noqa: E402
                    after_deploy, read_until as _read_until, vboard)

_MPY_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")  # sys.implementation._mpy
_CHUNK = 512  # bytes per exec while writing a file (raw-paste mode does the flow control)
DIAG_COMMANDS = ("status", "why", "events")  # make diag, on the firmware's service console
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


_COMMIT = """\
f.flush()
f.close()
_s = getattr(os, 'sync', None)
if _s:
    _s()
try:
    os.rename(%(tmp)r, %(path)r)
except OSError:
    os.rename(%(tmp)r, %(ok)r)
    os.remove(%(path)r)
    os.rename(%(ok)r, %(path)r)
if _s:
    _s()
_k()
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

    def free_heap(self):
        """Bytes free on the device's heap after a collection (None if it cannot say)."""
        try:
            return int(self.run("import gc\ngc.collect()\nprint(gc.mem_free())").strip())
        except (ValueError, DeployError):
            return None

    def abi(self):
        """(arch, 'major.sub') of the device's native code, as drivers/kernels.abi()."""
        v = int(self.run("print(getattr(sys.implementation, '_mpy', 0))").strip() or 0)
        a = v >> 10 & 0x3F  # above bit 16: RV32 extension flags
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
        """Write atomically as firmware/persist.py does (the firmware's loaders recover a
        copy cut short): path.new, synced, then renamed over path (on FAT through path.ok)."""
        tmp = path + ".new"
        self.run("f=open(%r,'wb')\nw=f.write" % tmp)
        for i in range(0, len(data), _CHUNK):
            self.run("w(%r)\n_k()" % data[i:i + _CHUNK])
        self.run(_COMMIT % {"tmp": tmp, "path": path, "ok": path + ".ok"})

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
            # it again; the port stays open for vboard.after_deploy(), which closes it.
            self.t.exec_raw_no_follow("import sys\nsys.exit()")
            return
        else:
            self.t.exit_raw_repl()
        self.t.close()


def deploy(board, port, config_path=None, force=False, reset=False, out=print, keys=None,
           frozen=None):
    check_board(board)
    check_port(port)
    cfg = config_text(config_path)  # refuse a bad --config before touching the device
    keys_data, keys_from = keys_text(keys)  # and bad --keys
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
        if frozen is None:  # frozen=True/False: the caller knows (the tests)
            frozen = dev.run(FROZEN_PROBE).strip() == "frozen"
        arch, ver = dev.abi()
        if frozen:  # its modules and kernels are in the image: main.py and the pages
            files = frozen_plan(board)
            out("device: the firmware is frozen into its image; copying main.py and the web "
                "pages (web/) only")
        else:
            natmods = native_modules(arch, ver)
            files[-1:-1] = natmods  # before main.py
            out("device: .mpy %s, native arch %s; native kernels: %s" % (
                ver, arch, ", ".join(rel for _, rel in natmods) or
                "none built for it (make natmod), the Python twins run"))
            warn = heap_warning(files, dev.free_heap())
            if warn:
                out(warn)
        if arch and arch != board_arch(board) and not frozen:
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
        keys_note = _put_keys(dev, keys_data, keys_from)
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
        out(keys_note)
        ok = True
    finally:
        kind = dev.reset_kind() if ok else None
        dev.close(reset=kind if reset else None)
    out("deployed %s to %s: %d written (%d B), %d unchanged, in %.1f s" % (
        board, port, written, nbytes, skipped, time.time() - t0))
    if reset and kind == "machine":
        out("board reset: the new firmware is starting")
    elif kind == "vboard":
        after_deploy(dev.t.serial, port, reset, out)
    elif kind == "none":
        out("this MicroPython has no machine.reset(): left at its REPL; start the firmware "
            "there with `import main`")
    elif dev.watchdog:
        out("the firmware's watchdog restarts the board within seconds")
    else:
        out("reset the board to start the firmware (make deploy ... RESET=1 does it)")
    return written, skipped


def _put_keys(dev, data, where):
    """ota_keys.json (the update keys, outside the firmware's files): written when it
    differs from the device's; the note for the log."""
    if data is None:
        return ("%s: none here (make keys writes keys/ota_keys.json): the device keeps what it "
                "has; without one it refuses every update bundle" % KEYS_FILE)
    if dev.hashes([KEYS_FILE])[0] == _sha256(data):
        return "%s: unchanged (%s)" % (KEYS_FILE, os.path.relpath(where))
    dev.write(KEYS_FILE, data)
    return "%s: written from %s" % (KEYS_FILE, os.path.relpath(where))


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("deploy", "repl", "diag", "vboard"))
    ap.add_argument("--board", default="")
    ap.add_argument("--port", default="")
    ap.add_argument("--config", help="config.json to write if the device has none")
    ap.add_argument("--force", action="store_true", help="copy files even if unchanged")
    ap.add_argument("--keys", help="the update keys to copy as ota_keys.json (default: "
                    "keys/ota_keys.json when `make keys` made it)")
    ap.add_argument("--reset", action="store_true",
                    help="machine.reset() after the copy (the virtual board: restart it)")
    add_arguments(ap)  # vboard: --dir, --argv, --micropython
    a = ap.parse_args(argv)
    try:
        if a.command == "deploy":
            deploy(a.board, a.port, a.config, a.force, a.reset, keys=a.keys)
            return 0
        if a.command == "repl":
            return repl(a.port)
        if a.command == "vboard":
            return vboard(a.dir, a.argv.split(), a.micropython)
        return diag(a.port)
    except (DeployError, VboardError) as e:
        print("deploy: error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
