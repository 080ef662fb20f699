"""Host side of the simulated wallbox: start the real firmware on the MicroPython unix port,
talk to its loopback control channel, run scenarios, summarise the observation log.

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

COMMANDS = {
    # command: {field: (types, required)}
    "plug": {"cable_a": ((int,), False)},
    "unplug": {},
    "cable": {"ohms": ((int, type(None)), False)},
    "s2": {"closed": ((bool,), True)},
    "ev": {
        "max_current_a": ((int, float), False), "reaction_ms": ((int,), False),
        "ready_ms": ((int,), False), "stop_ms": ((int,), False),
        "capacity_wh": ((int, float), False), "soc_pct": ((int, float), False),
        "phases": ((int,), False), "vent": ((bool,), False), "auto": ((bool,), False),
    },
    "fault": {"name": ((str,), True), "on": ((bool,), False)},
    "auth": {"on": ((bool,), True)},
    "available": {"on": ((bool,), True)},
    "limit": {"a": ((int, float), True), "reason": ((str,), False)},
    "cap": {"a": ((int, float), True)},
    "diag": {"what": ((str,), False)},
    "clear_lockout": {},
    "crash": {},
    "ping": {},
}
STEP_KEYS = {"at_ms", "after_ms", "do", "wait", "timeout_ms", "note"}


class ScenarioError(ValueError):
    pass


def micropython_exe():
    cand = os.path.join(os.path.dirname(sys.executable), "micropython")
    return cand if os.path.exists(cand) else "micropython"


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check_command(cmd, where):
    if not isinstance(cmd, dict):
        raise ScenarioError("%s: must be an object" % where)
    name = cmd.get("do")
    if name not in COMMANDS:
        raise ScenarioError("%s: unknown command %r (known: %s)" % (
            where, name, ", ".join(sorted(COMMANDS))))
    fields = COMMANDS[name]
    for k, v in cmd.items():
        if k in STEP_KEYS or k == "id":
            continue
        if k not in fields:
            raise ScenarioError("%s: %s has no field %r (fields: %s)" % (
                where, name, k, ", ".join(sorted(fields)) or "none"))
        types = fields[k][0]
        if type(v) not in types or (bool not in types and isinstance(v, bool)):
            raise ScenarioError("%s: %s.%s must be %s, got %r" % (
                where, name, k, "/".join(t.__name__ for t in types), v))
    for k, (types, required) in fields.items():
        if required and k not in cmd:
            raise ScenarioError("%s: %s needs field %r" % (where, name, k))


def load_scenario(path):
    """Read and check a scenario file; ScenarioError names the bad entry."""
    try:
        with open(path) as f:
            sc = json.load(f)
    except OSError as e:
        raise ScenarioError("scenario %s: cannot read: %s" % (path, e.strerror))
    except ValueError as e:
        raise ScenarioError("scenario %s: not valid JSON: %s" % (path, e))
    return check_scenario(sc, path)


def check_scenario(sc, name="scenario"):
    if not isinstance(sc, dict):
        raise ScenarioError("%s: top level must be an object" % name)
    for k in sc:
        if k not in ("config", "ev", "steps", "end_after_ms", "description"):
            raise ScenarioError("%s: unknown key %r" % (name, k))
    if not isinstance(sc.get("config", {}), dict):
        raise ScenarioError("%s: config must be an object" % name)
    if "ev" in sc:
        check_command(dict(sc["ev"], do="ev"), "%s: ev" % name)
    steps = sc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ScenarioError("%s: steps must be a non-empty list" % name)
    for n, st in enumerate(steps):
        where = "%s: steps[%d]" % (name, n)
        if not isinstance(st, dict):
            raise ScenarioError("%s: must be an object" % where)
        bad = set(st) - STEP_KEYS - set(COMMANDS.get(st.get("do"), {})) - {"id"}
        for k in ("at_ms", "after_ms", "timeout_ms"):
            if k in st and (type(st[k]) not in (int, float) or st[k] < 0):
                raise ScenarioError("%s: %s must be a number >= 0, got %r" % (where, k, st[k]))
        if "at_ms" in st and "after_ms" in st:
            raise ScenarioError("%s: give at_ms or after_ms, not both" % where)
        if "wait" in st:
            w = st["wait"]
            if not isinstance(w, dict) or not w:
                raise ScenarioError("%s: wait must be an object like {\"status\": \"Charging\"}"
                                    % where)
        elif "do" in st:
            check_command(st, where)
        else:
            raise ScenarioError("%s: needs \"do\" (a command) or \"wait\" (a condition)" % where)
        if "do" not in st and bad:
            raise ScenarioError("%s: unknown key(s) %s" % (where, ", ".join(sorted(bad))))
    e = sc.get("end_after_ms", 1000)
    if type(e) not in (int, float) or e < 0:
        raise ScenarioError("%s: end_after_ms must be a number >= 0" % name)
    return sc


def matches(obs, cond):
    """An observation matches a wait condition: every key equal (k defaults to state)."""
    kind = cond.get("k", "state" if "status" in cond or "pilot" in cond else None)
    if kind is not None and obs.get("k") != kind:
        return False
    return all(obs.get(k) == v for k, v in cond.items() if k != "k")


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
        self._own_dir = state_dir is None
        self.dir = state_dir or tempfile.mkdtemp(prefix="wallbox-sim-")
        self.t_host0 = None

    def start(self, timeout=20):
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(self.config, f)
        if self.use_mpy:
            path = os.path.join(ROOT, "build", "mpy")
            _, errors = build.compile_all(path)
            if errors:
                raise RuntimeError("mpy-cross failed:\n" + "\n".join(errors))
        else:
            path = ROOT
        port = _free_port()
        cmd = [micropython_exe()]
        if self.heapsize:
            cmd += ["-X", "heapsize=%s" % self.heapsize]
        cmd += ["-m", "boards.sim.main", "--port", str(port)]
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
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    out = self.proc.stdout.read().decode(errors="replace")
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
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
        return self

    def ready(self):
        return next((o for o in self.obs if o.get("k") == "ready"), {})

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


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


# -- analysis of an observation log -------------------------------------------------------
def reactions(obs, start, end):
    """Times (ms) from each observation matching `start` to the next matching `end`."""
    out = []
    t0 = None
    for o in obs:
        if t0 is None and start(o):
            t0 = o["t"]
        elif t0 is not None and end(o):
            out.append(o["t"] - t0)
            t0 = None
    return out


def is_s2_open(o):
    return o.get("k") == "ev" and o.get("what") == "S2 open"


def contactor_cmd(cmd):
    """Predicate: the coil was commanded closed (True) or open (False)."""
    return lambda o: o.get("k") == "contactor" and o.get("cmd") is cmd


is_open_cmd = contactor_cmd(False)


def summary(obs):
    statuses = []
    faults = []
    closes = 0
    max_offer = 0
    end = next((o for o in obs if o.get("k") == "end"), {})
    for o in obs:
        k = o.get("k")
        if k == "state":
            if not statuses or statuses[-1] != o["status"]:
                statuses.append(o["status"])
            max_offer = max(max_offer, o["offer_da"])
        elif k == "event" and o["code"] == "fault":
            faults.append(o["val"])
        elif k == "contactor" and o["cmd"]:
            closes += 1
    c_b = reactions(obs, is_s2_open, is_open_cmd)
    lines = [
        "session summary",
        "  duration        %.1f s" % (end.get("ms", 0) / 1000),
        "  energy          %.1f Wh" % end.get("energy_wh", 0),
        "  statuses        %s" % " -> ".join(statuses),
        "  max offer       %.1f A" % (max_offer / 10),
        "  contactor       closed %d time(s)" % closes,
        "  faults          %s" % (", ".join(faults) or "none"),
    ]
    if c_b:
        lines.append("  C->B to open    %s ms" % ", ".join("%.1f" % x for x in c_b))
    if end.get("reset"):
        lines.append("  watchdog reset  yes")
    return "\n".join(lines)
