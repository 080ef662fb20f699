"""Host side of the simulated wallbox: start the real firmware on the MicroPython unix port,
talk to its loopback control channel, run scenarios (the observation log analysis lives in
tools/simsummary.py and is re-exported here).

Used by tools/sim.py (CLI), the simulator tests and the benchmarks. See docs/sim.md.
"""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build  # noqa: E402

from scenario import (  # noqa: E402,F401  (the scenario checks, re-exported)
    COMMANDS, EV_WHAT, FAULTS, OBSERVATIONS, STEP_KEYS, ScenarioError, check_command,
    check_scenario, check_step, check_wait, load_scenario, matches)
from simsummary import (  # noqa: E402,F401  (the log analysis, re-exported)
    contactor_cmd, is_open_cmd, is_rcm_trip, is_s2_open, metered, reactions,
    reactions_while_closed, reported_faults, summary)

def micropython_exe():
    cand = os.path.join(os.path.dirname(sys.executable), "micropython")
    return cand if os.path.exists(cand) else "micropython"


# Every simulator started and not yet stopped: host_tests/conftest.py stops those a test left
# running (a leaked simulator keeps a CPU busy and slows every test after it).
LIVE = set()


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sim:
    """One simulated wallbox process and its control connection."""

    def __init__(self, config, heapsize=None, use_mpy=True, heap_sampler=False, state_dir=None,
                 serial=False):
        self.config = config
        self.serial = serial  # stdin/stdout on a pty (self.port), as a board's serial port
        self.port = None
        self.heapsize = heapsize
        self.use_mpy = use_mpy
        self.heap_sampler = heap_sampler
        self.obs = []
        self.cond = threading.Condition()
        self.proc = None
        self.sock = None
        self.stderr = b""
        self.meters = None  # MeterBus: the emulated Modbus meters, if the config has any
        self._own_dir = state_dir is None
        self.dir = state_dir or tempfile.mkdtemp(prefix="wallbox-sim-")
        self.t_host0 = None

    def start(self, timeout=20):
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the simulator is already running: stop() it first")
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(self.config, f)
        # Modbus meters named by the config: socat + the pymodbus emulator on ttyMB<uart>
        if self.meters is not None:  # started again (`with Sim(...).start()` starts twice)
            self.meters.stop()
        self.meters = MeterBus.start(self.config, self.dir)
        mpy = os.path.join(ROOT, "build", "mpy")
        _, errors = build.compile_all(mpy)  # --source: only the dependencies come from there
        if errors:
            raise RuntimeError("mpy-cross failed:\n" + "\n".join(errors))
        path = mpy if self.use_mpy else ROOT + os.pathsep + mpy
        port = _free_port()
        cmd = [micropython_exe()]
        if self.heapsize:
            cmd += ["-X", "heapsize=%s" % self.heapsize]
        cmd += ["-m", "boards.sim.boot", "--port", str(port)]  # the bootloader (docs/ota.md)
        if self.heap_sampler:
            cmd.append("--heap")
        # A natmod built by `make natmod` (dist/x64_<abi>/) is used when present.
        natmods = sorted(glob.glob(os.path.join(ROOT, "dist", "x64_*")))
        env = dict(os.environ, MICROPYPATH=os.pathsep.join([path] + natmods + [".frozen"]))
        if self.serial:
            # socat gives the firmware a pty for stdin/stdout, as a board's USB serial port.
            self.port = os.path.join(self.dir, "ttyS0")
            cmd = [shutil.which("socat") or "socat", "PTY,link=%s,raw,echo=0" % self.port,
                   "EXEC:%s,pty,raw,echo=0" % " ".join(cmd)]
        self.proc = subprocess.Popen(cmd, cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        LIVE.add(self)
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    if self.proc.poll() is None:  # never listening: no leftover process
                        self.proc.kill()
                    out = self.proc.communicate()[0].decode(errors="replace")
                    LIVE.discard(self)
                    raise RuntimeError("simulator did not start (exit %s):\n%s" % (
                        self.proc.poll(), out[-3000:]))
                time.sleep(0.05)
        self.sock.settimeout(None)
        threading.Thread(target=self._reader, daemon=True).start()
        self.wait_for({"k": "ready"}, timeout)
        self.t_host0 = time.monotonic()
        return self

    def _reader(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    self.obs.append({"k": "closed"})
                    self.cond.notify_all()
                return
            buf += data
            *lines, buf = buf.split(b"\n")
            new = [json.loads(x) for x in lines if x.strip()]
            if self.meters is not None:
                self.meters.follow(new)
            with self.cond:
                self.obs.extend(new)
                self.cond.notify_all()

    def send(self, cmd):
        cmd = {k: v for k, v in cmd.items() if k not in STEP_KEYS or k == "do"}
        self.sock.sendall((json.dumps(cmd) + "\n").encode())

    def wait_for(self, cond, timeout=10, since=0):
        """First observation at index >= since matching cond; TimeoutError if none."""
        deadline = time.time() + timeout
        with self.cond:
            i = since
            while True:
                while i < len(self.obs):
                    o = self.obs[i]
                    if callable(cond) and cond(o) or not callable(cond) and matches(o, cond):
                        return o
                    if o.get("k") == "closed":
                        raise RuntimeError("simulator closed while waiting for %r; output:\n%s"
                                           % (cond, self.output()))
                    i += 1
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError("no observation matching %r within %.1f s; last: %r"
                                       % (cond, timeout, self.obs[-3:]))
                self.cond.wait(left)

    def do(self, _cmd, **fields):
        cmd = dict(fields, do=_cmd)
        check_command(cmd, "command")
        if _cmd == "meter":  # a fault of an emulated meter: host side, in the emulator
            if self.meters is None:
                raise RuntimeError("meter: no emulated Modbus meter in this config "
                                   "(config meters names none)")
            self.meters.fault(fields["addr"], fields["fault"], fields.get("arg", 0))
            return {"k": "ack", "do": "meter"}
        n = len(self.obs)
        self.send(cmd)
        ack = self.wait_for(lambda o: o.get("k") in ("ack", "error"), 10, since=n)
        if ack["k"] == "error":
            raise RuntimeError("simulator refused %r: %s" % (cmd, ack["msg"]))
        return ack

    def sleep(self, ms):
        time.sleep(ms / 1000)

    def state(self):
        """The latest charge-controller state observation."""
        with self.cond:
            for o in reversed(self.obs):
                if o.get("k") == "state":
                    return o
        return None

    def diag(self, what="status"):
        n = len(self.obs)
        self.do("diag", what=what)
        return self.wait_for({"k": "diag"}, 5, since=n)["lines"]

    def output(self):
        return self.stderr.decode(errors="replace")

    def stop(self, timeout=10):
        try:
            if self.sock is not None and self.proc.poll() is None:
                self.send({"do": "quit"})
                self.wait_for({"k": "end"}, timeout)
        finally:
            if self.sock is not None:
                self.sock.close()
            if self.proc is not None:
                try:
                    out, _ = self.proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    out, _ = self.proc.communicate()
                self.stderr = out or b""
            if self.meters is not None:
                self.meters.stop()
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            LIVE.discard(self)
        return self

    def ready(self):
        return next((o for o in self.obs if o.get("k") == "ready"), {})

    def __enter__(self):
        # `with Sim(...).start() as sim` is started already: starting it again would leave
        # the first process running, unseen, until the test process ends
        if self.proc is not None and self.proc.poll() is None:
            return self
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class MeterBus:
    """The emulated Modbus meters of a config's "meters" section (tools/meter_emu.py on one
    end of a socat pty pair, the firmware's ttyMB<uart> on the other). Their registers
    follow the world: every "meter" observation (on each change of the EV's current and
    every 200 ms while it draws) sets the EV meter to the EV's current, power and energy;
    the grid meter measures per phase the EV's current plus the house load minus the PV's
    share, at the grid's frequency, and every "grid" observation (boards/sim/grid.py) changes
    that model; `meter: silent` there makes the grid meter stop answering."""

    def __init__(self, meters, roles, bus):
        self.bus = bus
        self.emu = bus.emu
        self.roles = roles  # {"ev": addr, "grid": addr}
        self._import_wh = 0.0  # the grid meter's registers: the EV's energy is in them
        self._export_wh = 0.0
        self._grid_w = 0.0  # the grid's net power since _at (W, + import)
        self._at = None
        self._ev = {"i_da": 0, "mwh": 0, "phases": 3, "v": 230}
        self._grid = None  # the last "grid" observation (None: the house's default load)
        self._silent = False  # the grid meter silenced by the grid model
        self.follow([{"k": "meter", "i_da": 0, "mwh": 0, "phases": 3, "v": 230,
                      "house_w": 0, "t": 0.0}])

    @classmethod
    def start(cls, config, workdir):
        sec = config.get("meters") if isinstance(config, dict) else None
        if not isinstance(sec, dict):
            return None
        roles = {}
        meters = {}
        for role in ("ev", "grid"):
            m = sec.get(role)
            if isinstance(m, dict) and m.get("type") == "modbus":
                addr = m.get("addr", 1)
                if isinstance(addr, int) and isinstance(m.get("profile"), str):
                    roles[role] = addr
                    meters[addr] = m["profile"]
        if not meters:
            return None
        bus = sec.get("bus") if isinstance(sec.get("bus"), dict) else {}
        uart = bus.get("uart", 1)
        baud = bus.get("baud") or next((sec[r].get("baud") for r in roles
                                        if sec[r].get("baud")), 9600)
        import meter_emu

        try:
            b = meter_emu.Bus(meters, baud=baud, workdir=tempfile.mkdtemp(prefix="meterbus-"))
        except meter_emu.EmuError as e:
            raise RuntimeError("emulated meters %r: %s" % (meters, e))
        link = os.path.join(workdir, "ttyMB%s" % uart)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(b.master_port, link)
        return cls(meters, roles, b)

    def follow(self, obs):
        for o in obs:
            k = o.get("k")
            if k == "meter":
                self._ev = o
            elif k == "grid":
                self._grid = o
            else:
                continue
            self._update(o.get("t", 0.0))

    def _update(self, t):
        if self._at is not None:  # the grid's energy over the time since
            wh = self._grid_w * (t - self._at) / 3.6e6
            if wh > 0:
                self._import_wh += wh
            else:
                self._export_wh -= wh
        self._at = t
        o = self._ev
        v = o.get("v", 230)
        amps = o["i_da"] / 10
        ev_i = tuple(amps if p < o.get("phases", 3) else 0.0 for p in range(3))
        if "ev" in self.roles:
            ev_wh = o.get("mwh", o.get("wh", 0) * 1000) / 1000
            self.emu.set(self.roles["ev"], v=(v, v, v), i=ev_i, p=tuple(x * v for x in ev_i),
                         energy_wh=ev_wh, freq=50.0)
        g = self._grid
        if g is None:
            house, pv, hz = [o.get("house_w", 0) / 3 / v] * 3, 0, 50.0
        else:
            house, pv, hz = g["load_a"], g["pv_w"], g["hz"]
        gi = [ev_i[p] + house[p] - pv / 3 / v for p in range(3)]  # + import, - export
        self._grid_w = sum(gi) * v
        if "grid" in self.roles:
            addr = self.roles["grid"]
            silent = g is not None and g["meter"] == "silent"
            if silent != self._silent:
                self._silent = silent
                self.emu.fault(addr, "silent" if silent else None)
            # a meter's current is a magnitude; the sign of its phase power says the direction
            self.emu.set(addr, v=(v, v, v), i=tuple(abs(x) for x in gi),
                         p=tuple(x * v for x in gi), energy_wh=self._import_wh,
                         export_wh=self._export_wh, freq=hz)

    def fault(self, addr, kind, arg=0):
        if addr not in self.emu.meters:
            raise RuntimeError("meter: no emulated meter at address %d (there: %s)" % (
                addr, ", ".join(map(str, sorted(self.emu.meters)))))
        if not arg:  # defaults: device failure, a reply after 1 s
            arg = {"exception": 4, "slow": 1000}.get(kind, 0)
        self.emu.fault(addr, None if kind == "off" else kind, arg)

    def stop(self):
        self.bus.stop()
        shutil.rmtree(self.bus.dir, ignore_errors=True)


def run_scenario(sim, sc, log=print):
    """Send the scenario's steps at their times; returns when all ran plus end_after_ms."""
    if "ev" in sc:
        sim.do("ev", **sc["ev"])
    t0 = time.monotonic()
    prev = t0
    since = len(sim.obs)
    for n, st in enumerate(sc["steps"]):
        if "at_ms" in st:
            due = t0 + st["at_ms"] / 1000
        else:
            due = prev + st.get("after_ms", 0) / 1000
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if "wait" in st:
            o = sim.wait_for(st["wait"], st.get("timeout_ms", 60000) / 1000, since=since)
            since = sim.obs.index(o) + 1
            ms = (time.monotonic() - t0) * 1000
            log("  %8.0f ms  reached %s" % (ms, json.dumps(st["wait"])))
        else:
            since = len(sim.obs)
            sim.do(st["do"], **{k: v for k, v in st.items() if k not in STEP_KEYS})
            log("  %8.0f ms  %s" % ((time.monotonic() - t0) * 1000, _step_text(st)))
        prev = time.monotonic()
    time.sleep(sc.get("end_after_ms", 1000) / 1000)


def _step_text(st):
    rest = {k: v for k, v in st.items() if k not in STEP_KEYS}
    return st["do"] + (" " + json.dumps(rest) if rest else "")
