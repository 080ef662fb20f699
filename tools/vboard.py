"""The virtual board: a MicroPython unix-port process behind a pty, its working directory
standing in for the board's flash (docs/deploy.md, "The virtual board").

    python tools/deploy.py vboard [--dir build/vboard] [--argv "ARGS"]     (make vboard)

tools/deploy.py runs it (vboard()), recognises it on the device (VBOARD_ENV), says what it
does after a deploy (after_deploy()) and reads the firmware's service console with
read_until() and CONSOLE_PROMPT, as a board's; the tests start and stop it (start_vboard(),
stop_vboard()).
"""
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEPLOY = os.path.join(ROOT, "tools", "deploy.py")  # its `vboard` command runs run_vboard()
CONSOLE_PROMPT = b"wallbox> "  # firmware/console.py
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


class VboardError(Exception):
    """The virtual board cannot start or does not answer."""


def read_until(ser, marks, timeout):
    """Bytes from the port until one of `marks` ends them, or the timeout."""
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        data += ser.read(256)
        if any(data.endswith(m) for m in marks):
            break
    return data


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
            raise VboardError("socat cannot take this path in an address: %r" % path)
    return [shutil.which("socat") or "socat", "PTY,link=%s,raw,echo=0" % port,
            "EXEC:%s,pty,setsid,ctty,rawer,stderr" % start]


def run_vboard(workdir, argv=(), micropython=None, out=print):
    """The virtual board, until SIGTERM or Ctrl-C: a unix-port micropython behind a pty at
    workdir/ttyV0, its cwd workdir/flash standing in for the board's flash. When micropython
    exits (a reset: Ctrl-D at its REPL, `make deploy ... RESET=1`) it starts again and runs
    main.py, as a board does; the pty is a new one then (like a USB port after a reset).
    `argv`: the sys.argv main.py sees (a board's is empty)."""
    if shutil.which("socat") is None:
        raise VboardError("socat is not installed (make setup installs it)")
    mp = micropython or micropython_exe()
    if not mp:
        raise VboardError("no micropython executable (make setup installs it)")
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
                raise VboardError("the virtual board exits as soon as it starts (%d times): %s"
                                  % (quick, f.read()[-500:]))


def start_vboard(workdir, micropython=None, timeout=10.0, argv=()):
    """run_vboard() in a process of its own (`tools/deploy.py vboard`, as make vboard runs
    it). Returns (process, port) once the board answers there; stop it with stop_vboard()."""
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    port = os.path.join(workdir, "ttyV0")
    if os.path.lexists(port):
        os.remove(port)
    cmd = [sys.executable, _DEPLOY, "vboard", "--dir", workdir]
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
                raise VboardError("the virtual board did not start: %s" % f.read()[-500:])
        time.sleep(0.02)
    try:
        probe_vboard(port, deadline)  # its micropython is up: the port takes Ctrl-C now
    except VboardError:
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
                raise VboardError("the virtual board did not come up on %s" % port)
            time.sleep(0.05)
    got = bytearray()
    state = "silent"
    try:
        while time.time() < deadline:
            pty.write(b"\r")  # the console only reads once the firmware is up
            got += read_until(pty, (CONSOLE_PROMPT, b">>> "), 0.5)
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


def after_deploy(old, port, reset, out=print):
    """What `make deploy` says at its end about the virtual board. With RESET=1 (the deploy
    ended its micropython; `old` is the still open port) wait for the new one, then say what
    answers there, with what main.py printed as it stopped if it is not running."""
    if not reset:
        out("the virtual board stays at its REPL (its watchdog runs only with the firmware); "
            "RESET=1, or Ctrl-D at its REPL, starts the new firmware")
        return
    state, printed = wait_vboard_restart(old, port)
    out(_VBOARD_RESET[state] % {"port": port})
    if state in ("repl", "exited"):  # why main.py stopped: what it printed
        out("\n".join(printed.replace("\r", "").splitlines()[-12:]))


def _short(path):
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def add_arguments(ap):
    """The options of `tools/deploy.py vboard` (an argparse parser)."""
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "vboard"),
                    help="vboard: where the pty link and the flash folder go")
    ap.add_argument("--argv", default="",
                    help="vboard: the sys.argv main.py sees, e.g. \"--port 7701\" (default none)")
    ap.add_argument("--micropython", help="vboard: the unix-port executable to run")


def vboard(workdir, argv=(), micropython=None):
    """`tools/deploy.py vboard`: run_vboard() until SIGTERM or Ctrl-C."""
    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    try:
        run_vboard(workdir, argv, micropython, out=lambda s: print(s, flush=True))
    except KeyboardInterrupt:
        pass
    return 0

