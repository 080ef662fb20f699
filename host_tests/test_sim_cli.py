"""tools/sim.py as a new user meets it: the scenario is checked before anything starts, bad
input and a too-small heap get one clear line, Ctrl-C cleans up, the summary tells what
happened. Checks of the scenario and the summary need no simulator; the tests marked sim run
the real firmware on the MicroPython unix port."""
import ast
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from simrig import ROOT_TOOLS

import sim as sim_cli
import simlib

ROOT = os.path.dirname(ROOT_TOOLS)
SIM_PY = os.path.join(ROOT_TOOLS, "sim.py")
DEFAULT = os.path.join(ROOT, "scenarios", "default.json")


def run_cli(*args, env=None, python=sys.executable, timeout=60):
    return subprocess.run([python, SIM_PY] + list(args), capture_output=True, text=True,
                          env=env, timeout=timeout)


def one_error_line(r):
    """stderr is exactly one line starting with 'error: ' (no traceback)."""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# -- the scenario check (no simulator) ----------------------------------------------------
def plug_then(step):
    return {"steps": [{"do": "plug"}, step]}


@pytest.mark.parametrize("sc,msg", [
    ({"ev": "tesla", "steps": [{"do": "plug"}]}, r"^scenario: ev must be an object .*'tesla'"),
    (plug_then({"do": "fault", "name": "rcm_tirp"}),
     r"^scenario: steps\[1\]: fault name 'rcm_tirp' unknown \(known: diode_short, cp_short, "),
    (plug_then({"wait": {"stauts": "Charging"}}),
     r"steps\[1\]: wait: state observations have no field 'stauts' \(fields: status, "),
    (plug_then({"wait": {"status": "Charing"}}),
     r"steps\[1\]: wait status 'Charing' unknown \(known: Available, "),
    (plug_then({"wait": {"pilot": "G"}}), r"steps\[1\]: wait pilot 'G' unknown"),
    (plug_then({"wait": {"error": "OverCurrent"}}), r"wait error 'OverCurrent' unknown"),
    (plug_then({"wait": {"k": "evv", "what": "S2 open"}}), r"wait k 'evv' unknown \(known: "),
    (plug_then({"wait": {"k": "ev", "what": "S2 opne"}}), r"wait what 'S2 opne' unknown"),
    (plug_then({"wait": {"k": "ev", "wht": "S2 open"}}), r"ev observations have no field 'wht'"),
    (plug_then({"wait": {"what": "S2 open"}}), r"no field 'what' .*give \"k\" for another"),
    (plug_then({"wait": {"status": "Charging"}, "timeout_ms": 0}),
     r"steps\[1\]: timeout_ms must be a number > 0, got 0"),
    (plug_then({"do": "unplug", "timeout_ms": 500}), r"timeout_ms belongs to a wait step"),
    (plug_then({"do": "unplug", "wait": {"status": "Available"}}), r"not both"),
    ({"steps": [{"do": "plug", "cable_a": 5000}]},
     r"steps\[0\]: plug cable_a 5000 is neither a cable coding in A \(13, 20, 32, 63, 70\) "
     r"nor a PP resistance of 60..4500 ohm"),
    ({"steps": [{"do": "cable", "ohms": -5}]}, r"cable ohms must be >= 0 \(ohm\) or null"),
    ({"steps": [{"do": "diag", "what": "stat"}]}, r"diag what 'stat' unknown"),
    ({"description": 7, "steps": [{"do": "plug"}]}, r"description must be text"),
])
def test_bad_scenario_entries_are_named(sc, msg):
    with pytest.raises(simlib.ScenarioError, match=msg):
        simlib.check_scenario(sc)


# (command, field, allowed values, refused values); ranges are in docs/sim.md
EDGES = [
    ("ev", "max_current_a", [0, 6.5, 80], [-1, 80.5, 120]),
    ("ev", "reaction_ms", [0, 5000, 60000], [-1, 60001]),
    ("ev", "ready_ms", [0, 60000], [-1, 60001]),
    ("ev", "stop_ms", [0, 60000], [-1, 60001]),
    ("ev", "capacity_wh", [0.5, 100000], [0, -10]),
    ("ev", "soc_pct", [0, 99.5, 100], [-0.1, 101]),
    ("ev", "phases", [1, 3], [0, 2, 4]),
    ("plug", "cable_a", [13, 20, 32, 63, 70, 60, 150, 1500, 4500], [0, 16, 59, 4501, 10000]),
    ("limit", "a", [0, 16, 80], [-1, 81]),
    ("cap", "a", [0, 80], [-0.5, 100]),
]


@pytest.mark.parametrize("cmd,field,good,bad", EDGES)
def test_ranges_edges_pass_and_beyond_refused(cmd, field, good, bad):
    def check(v):
        if cmd == "ev":  # the scenario's own ev section, then the same as a step
            simlib.check_scenario({"ev": {field: v}, "steps": [{"do": "unplug"}]})
        simlib.check_scenario({"steps": [{"do": cmd, field: v}]})

    for v in good:
        check(v)
    for v in bad:
        with pytest.raises(simlib.ScenarioError, match=r"%s %s .*%r" % (cmd, field, v)):
            check(v)


def test_shipped_scenarios_and_every_fault_pass_the_check():
    for path in glob.glob(os.path.join(ROOT, "scenarios", "*.json")):
        simlib.load_scenario(path)
    for name in simlib.FAULTS:
        simlib.check_scenario(plug_then({"do": "fault", "name": name, "on": False}))
    simlib.check_scenario(plug_then({"wait": {"k": "ev", "what": "fault", "fault": "welded"}}))
    with pytest.raises(simlib.ScenarioError, match=r"wait fault 'weld' unknown"):
        simlib.check_scenario(plug_then({"wait": {"k": "ev", "what": "fault", "fault": "weld"}}))


def test_fault_names_are_the_simulators():
    """simlib keeps a copy of boards/sim/world.py FAULTS (world.py is MicroPython code)."""
    with open(os.path.join(ROOT, "boards", "sim", "world.py")) as f:
        tree = ast.parse(f.read())
    faults = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                  and any(getattr(t, "id", None) == "FAULTS" for t in n.targets))
    assert tuple(simlib.FAULTS) == tuple(faults)


def _observe_calls():
    """(kind, {field: value node}) of every obs/observe("kind", {...}) call in boards/sim."""
    for path in glob.glob(os.path.join(ROOT, "boards", "sim", "*.py")):
        with open(path) as f:
            tree = ast.parse(f.read())
        for n in ast.walk(tree):
            if not (isinstance(n, ast.Call) and len(n.args) == 2):
                continue
            name = getattr(n.func, "attr", getattr(n.func, "id", None))
            kind, fields = n.args
            if (name in ("obs", "observe") and isinstance(kind, ast.Constant)
                    and isinstance(fields, ast.Dict)):
                yield kind.value, {k.value: v for k, v in zip(fields.keys, fields.values) if k}


def test_wait_check_knows_everything_the_simulator_observes():
    """A wait on a kind, field or EV `what` the simulator sends must never be refused: when
    boards/sim gains one, simlib.OBSERVATIONS / EV_WHAT need it too."""
    missing = set()
    for kind, fields in _observe_calls():
        missing.update("%s.%s" % (kind, f) for f in fields
                       if f not in simlib.OBSERVATIONS.get(kind, ()))
        if kind == "ev":
            v = fields["what"]
            for c in (v.body, v.orelse) if isinstance(v, ast.IfExp) else (v,):
                if c.value not in simlib.EV_WHAT:
                    missing.add("ev what %r" % c.value)
    assert not missing, "add to tools/scenario.py: %s" % ", ".join(sorted(missing))


# -- the summary (no simulator) -----------------------------------------------------------
def state(t, status, error="NoError", info="", reason="", offer_da=160):
    return {"k": "state", "t": t, "status": status, "error": error, "info": info,
            "reason": reason, "pilot": "C", "offer_da": offer_da}


def ev(t, what, **kw):
    return dict(kw, k="ev", t=t, what=what)


def coil(t, cmd):
    return {"k": "contactor", "t": t, "cmd": cmd}


def test_summary_pairs_c_to_b_and_rcm_only_while_closed():
    obs = [
        state(0, "Preparing"),
        ev(400.0, "S2 close"), ev(1000.0, "S2 open"),  # back to B before the contactor closed
        ev(1500.0, "fault", fault="rcm_trip", on=True),  # tripped while open: no reaction
        ev(1600.0, "fault", fault="rcm_trip", on=False),
        ev(2000.0, "S2 close"), coil(2100.0, True), state(2100.1, "Charging"),
        coil(4159.7, False),  # the opening at unplug must not pair with the S2 open above
        coil(4500.0, True), ev(5000.0, "S2 open"), coil(5004.9, False),
        coil(6500.0, True), ev(7000.0, "fault", fault="rcm_trip", on=True), coil(7001.1, False),
        {"k": "end", "t": 8000.0, "ms": 8000, "energy_wh": 1.0, "reset": False},
    ]
    text = simlib.summary(obs)
    assert re.search(r"^  C->B to open    4\.9 ms$", text, re.M), text
    assert re.search(r"^  RCM to open     1\.1 ms$", text, re.M), text
    assert "3159" not in text and "3059" not in text


def test_summary_lists_every_reported_error_once_in_order():
    obs = [
        state(0, "Charging"),
        ev(10, "fault", fault="overcurrent", on=True),
        {"k": "event", "t": 7000, "code": "overcurrent", "val": 238},
        state(7001, "SuspendedEVSE", "OverCurrentFailure", reason="paused: EV overcurrent"),
        state(7002, "SuspendedEVSE", "OverCurrentFailure", reason="paused: EV overcurrent"),
        {"k": "event", "t": 7100, "code": "fault", "val": "rcm"},  # told by the state below
        state(7101, "Faulted", "GroundFailure", info="rcm", reason="fault"),
        state(8000, "Available"),
        state(9000, "SuspendedEVSE", "OtherError", reason="state D without ventilation"),
        {"k": "event", "t": 9500, "code": "fault", "val": "welded"},  # no state told it
    ]
    text = simlib.summary(obs)
    assert ("  faults          OverCurrentFailure (paused: EV overcurrent), GroundFailure (rcm),"
            " OtherError (state D without ventilation), fault welded\n") in text, text
    assert re.search(r"^  injected        overcurrent$", text, re.M), text
    assert "faults          none" in simlib.summary([state(0, "Available")])


# -- the command line ---------------------------------------------------------------------
def test_heapsize_must_look_like_a_size():
    for bad in ("64kb", "0", "-1", "big", "1.5m"):
        r = run_cli("--scenario", DEFAULT, "--heapsize", bad)
        assert r.returncode == 2, (bad, r.stderr)
        want = "argument --heapsize: %r is not a heap size like %s" % (bad, sim_cli.HEAP_MPY)
        assert want in r.stderr
        assert "firmware up" not in r.stdout
    assert [sim_cli.heapsize(x) for x in ("131072", "160k", "1m", "2M")]


def test_bad_input_is_one_line_exit_2_before_the_firmware_starts(tmp_path):
    tesla = tmp_path / "tesla.json"
    tesla.write_text(json.dumps({"ev": "tesla", "steps": [{"do": "plug"}]}))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = [
        (["--scenario", str(tesla)], "scenario %s: ev must be an object" % tesla),
        (["--scenario", DEFAULT, "--events", str(tmp_path)],
         "error: --events %s: is a folder" % tmp_path),
        (["--scenario", DEFAULT, "--events", str(a_file / "out.jsonl")],
         "error: --events %s: cannot write: %s is a file, not a folder"
         % (a_file / "out.jsonl", a_file)),
    ]
    for args, want in cases:
        r = run_cli(*args)
        assert r.returncode == 2, r.stdout + r.stderr
        assert want in one_error_line(r)
        assert "firmware up" not in r.stdout


def test_a_python_without_the_toolchain_is_told_to_run_make_setup(tmp_path):
    python = os.path.realpath(sys.executable)  # the interpreter behind .venv, no packages
    if os.path.exists(os.path.join(os.path.dirname(python), "micropython")):
        pytest.skip("the base interpreter has micropython next to it")
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}  # no micropython on PATH either
    r = run_cli("--scenario", DEFAULT, python=python, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert ("run `make setup` first, or use .venv/bin/python tools/sim.py"
            in one_error_line(r))


def test_memory_error_in_a_log_line_or_a_silent_stop_is_reported():
    class FakeSim:
        def __init__(self, obs, out=""):
            self.obs, self.out = obs, out

        def output(self):
            return self.out

    crashed = FakeSim([{"k": "log", "msg": "supervisor: task crashed: MemoryError('x',)"}])
    assert sim_cli._out_of_memory(crashed, None, "100k", False) == (
        "the simulated firmware ran out of memory with --heapsize 100k; use %s or more"
        % sim_cli.HEAP_MPY)
    silent = FakeSim([{"k": "closed"}])
    assert "most likely out of memory; use %s or more with --source" % sim_cli.HEAP_SOURCE in (
        sim_cli._out_of_memory(silent, "the firmware stopped", "120k", True))
    assert sim_cli._out_of_memory(FakeSim([{"k": "end"}]), None, "192k", False) is None


@pytest.mark.sim
def test_too_small_heap_says_so_in_one_line(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    r = run_cli("--scenario", DEFAULT, "--heapsize", "64k", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert one_error_line(r) == ("error: the simulated firmware ran out of memory with "
                                 "--heapsize 64k; use %s or more" % sim_cli.HEAP_MPY)
    assert os.listdir(tmp_path) == []  # the run's temp folder is gone


@pytest.mark.sim
def test_documented_heapsize_runs_the_default_scenario(tmp_path):
    shown = set()
    for doc in ("README.md", os.path.join("docs", "sim.md")):
        with open(os.path.join(ROOT, doc)) as f:
            shown.update(re.findall(r"tools/sim\.py [^`\n]*--heapsize (\w+)", f.read()))
    assert shown == {sim_cli.HEAP_MPY}, shown
    r = run_cli("--scenario", DEFAULT, "--heapsize", sim_cli.HEAP_MPY, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "  faults          none\n" in r.stdout
    assert re.search(r"^  C->B to open    \d+\.\d ms$", r.stdout, re.M), r.stdout


def _pids_with_env(entry):
    """Processes whose environment holds `entry` (the firmware inherits the runner's)."""
    out = []
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(path, "rb") as f:
                if entry.encode() in f.read().split(b"\0"):
                    out.append(int(path.split("/")[2]))
        except OSError:
            pass
    return out


@pytest.mark.sim
def test_ctrl_c_stops_the_firmware_and_removes_its_temp_folder(tmp_path):
    long = tmp_path / "long.json"
    long.write_text(json.dumps({"steps": [
        {"do": "plug"}, {"wait": {"status": "Faulted"}, "timeout_ms": 60000}]}))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    p = subprocess.Popen([sys.executable, SIM_PY, "--scenario", str(long)], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        line = ""
        while " ms  plug" not in line and time.time() < deadline:
            line = p.stdout.readline()
            assert line, p.stderr.read()
        assert glob.glob(str(tmp / "wallbox-sim-*"))
        own = [pid for pid in _pids_with_env("TMPDIR=%s" % tmp) if pid != p.pid]
        assert own, "the firmware process runs"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert err.strip() == "interrupted"
    assert os.listdir(tmp) == []
    assert [pid for pid in own if os.path.exists("/proc/%d" % pid)] == []


@pytest.mark.slow
@pytest.mark.parametrize("step,msg", [
    ({"at_ms": 300, "do": "crash"}, "the firmware reset itself during the scenario"),
    ({"at_ms": 300, "do": "powercut"}, "the simulated firmware stopped (exit -9)"),
])
def test_a_firmware_that_dies_during_end_after_ms_is_a_failure(tmp_path, step, msg):
    sc = tmp_path / "die.json"
    sc.write_text(json.dumps({"config": {"rating_a": 16}, "steps": [step],
                              "end_after_ms": 4000}))
    r = run_cli("--scenario", str(sc), "--no-csms", "--events", str(tmp_path / "e.jsonl"),
                timeout=120)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert msg in r.stderr, r.stderr
