"""Scenario files and commands of the simulated wallbox: the command table, the
observation kinds a wait may name, and the checks that refuse a bad scenario before the
firmware starts (ScenarioError names the entry). Used by tools/simlib.py and tools/sim.py;
the format is described in docs/sim.md."""
import json

# -- what a scenario may contain (docs/sim.md) --------------------------------------------
# A copy of boards/sim/world.py FAULTS: that file is MicroPython code and is not imported
# here. host_tests/test_sim_cli.py checks that both lists are equal.
FAULTS = (
    "diode_short", "cp_short", "rcm_trip", "rcm_broken", "welded", "no_close",
    "overcurrent", "ignore_stop", "lock_fail", "meter_silent", "phase_welded", "phase_no_close",
)
METER_FAULTS = ("silent", "crc", "exception", "garbage", "slow", "jump", "off")
CABLE_CODINGS = (13, 20, 32, 63, 70)  # plug cable_a in amps (world.py CABLE_OHMS)
PP_OHMS = (60, 4500)  # any other cable_a is a PP resistance in this range (proximity.py)
# OCPP 1.6 ChargePointStatus and ChargePointErrorCode; pilot states of firmware/charge/pilot.py
STATUSES = ("Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
            "Reserved", "Unavailable", "Faulted")
ERRORS = ("NoError", "ConnectorLockFailure", "EVCommunicationError", "GroundFailure",
          "HighTemperature", "InternalError", "LocalListConflict", "OtherError",
          "OverCurrentFailure", "OverVoltage", "PowerMeterFailure", "PowerSwitchFailure",
          "ReaderFailure", "ResetFailure", "UnderVoltage", "WeakSignal")
PILOTS = ("A", "B", "C", "D", "E", "F", "X", "Y")
EV_WHAT = ("plug", "unplug", "S2 open", "S2 close", "fault", "cable", "params")
# Observation kinds and their fields (docs/sim.md; checked against boards/sim by the tests).
OBSERVATIONS = {
    "ready": ("port", "board", "kernels", "code_heap"),
    "state": ("status", "error", "info", "pilot", "offer_da", "reason"),
    "duty": ("v",), "contactor": ("cmd",), "contacts": ("closed",), "rcm_test": ("v",),
    "lock": ("v",), "event": ("code", "val", "at_ms"),
    "ev": ("what", "why", "state", "cable_ohms", "fault", "on", "max_da", "vent", "ev_only"),
    "meter": ("i_da", "wh", "mwh", "phases", "v", "house_w"),
    "reading": ("role", "wh", "i_da", "p_w", "fresh", "errors", "fault", "i3", "hz"),
    "log": ("msg",), "watchdog": ("reset",),
    "heap": ("code", "peak", "runtime"), "end": ("ms", "energy_wh", "reset", "dropped"),
    "ack": ("do", "id"), "error": ("msg",), "diag": ("what", "lines"),
    "block": ("ms", "on"), "net": ("state",),
    "phase_switch": ("cmd",), "phases": ("closed", "main", "i_da"),
    "grid": ("load_a", "pv_w", "hz", "dso", "meter"),
    "limit": ("a", "phases", "reason", "bound", "at"), "inputs": ("limits", "stale"),
    "stats": ("lag_p50", "lag_p99", "lag_max", "steps", "reflex_runs", "reflex_fired",
              "blocked_ms", "clock_errors", "restarts"),
}
WAIT_VALUES = {  # (kind, field): the values a wait may ask for
    ("state", "status"): STATUSES, ("state", "error"): ERRORS, ("state", "pilot"): PILOTS,
    ("ev", "what"): EV_WHAT, ("ev", "fault"): FAULTS,
}


def _between(lo, hi):
    def check(v):
        if not lo <= v <= hi:
            return "must be %s..%s, got %r" % (lo, hi, v)
    return check


def _above(lo):
    def check(v):
        if not v > lo:
            return "must be > %s, got %r" % (lo, v)
    return check


def _one_of(*values):
    def check(v):
        if v in values:
            return None
        if isinstance(v, str):
            return "%r unknown (known: %s)" % (v, ", ".join(values))
        return "must be %s, got %r" % (" or ".join(map(str, values)), v)
    return check


def _ohms_or_null(v):
    if v is not None and v < 0:
        return "must be >= 0 (ohm) or null, got %r" % v


def _cable_a(v):
    if v not in CABLE_CODINGS and not PP_OHMS[0] <= v <= PP_OHMS[1]:
        return "%r is neither a cable coding in A (%s) nor a PP resistance of %d..%d ohm" % (
            v, ", ".join(map(str, CABLE_CODINGS)), PP_OHMS[0], PP_OHMS[1])


_AMPS = _between(0, 80)
_DELAY_MS = _between(0, 60000)

def _load_a(v):
    if len(v) != 3 or not all(type(x) in (int, float) and 0 <= x <= 400 for x in v):
        return "must be a list of 3 house currents per phase, 0..400 A each, got %r" % (v,)


def _rnd(v):
    if v is not None and not 0 <= v <= 0xFFFF:
        return "must be 0..65535 or null, got %r" % (v,)


def _card_uid(v):
    return None if 0 < len(v) <= 20 else "must be 1..20 characters (an OCPP idTag)"


COMMANDS = {
    # command: {field: (types, required[, check])}; check(value) says what is wrong or None
    "plug": {"cable_a": ((int,), False, _cable_a)},
    "unplug": {"delay_ms": ((int,), False, _DELAY_MS), "ev_only": ((bool,), False)},
    "cable": {"ohms": ((int, type(None)), False, _ohms_or_null)},
    "s2": {"closed": ((bool,), True), "delay_ms": ((int,), False, _DELAY_MS)},
    "ev": {
        "max_current_a": ((int, float), False, _AMPS),
        "reaction_ms": ((int,), False, _DELAY_MS),
        "ready_ms": ((int,), False, _DELAY_MS), "stop_ms": ((int,), False, _DELAY_MS),
        "capacity_wh": ((int, float), False, _above(0)),
        "soc_pct": ((int, float), False, _between(0, 100)),
        "phases": ((int,), False, _one_of(1, 3)),
        "vent": ((bool,), False), "auto": ((bool,), False),
    },
    "fault": {"name": ((str,), True, _one_of(*FAULTS)), "on": ((bool,), False),
              "delay_ms": ((int,), False, _DELAY_MS)},
    "auth": {"on": ((bool,), True)},
    "available": {"on": ((bool,), True)},
    "limit": {"a": ((int, float), True, _AMPS), "reason": ((str,), False)},
    "cap": {"a": ((int, float), True, _AMPS)},
    "diag": {"what": ((str,), False, _one_of("status", "why", "events"))},
    "clear_lockout": {},
    "crash": {"task": ((str,), False, _one_of("charge", "probe")), "memory": ((bool,), False)},
    # delay_ms above: the world makes the change from its clock thread, even while blocked
    "block": {"ms": ((int,), True, _between(1, 10000)),
              "every_ms": ((int,), False, _between(100, 600000)), "seed": ((int,), False)},
    "stats": {},
    "reflex": {"on": ((bool,), True)},
    "net": {"state": ((str,), True, _one_of("up", "down"))},
    "ping": {},
    # host side: a fault of an emulated Modbus meter (tools/meter_emu.py); "off" clears it.
    # arg: the exception code, the delay of "slow" in ms, the Wh of a "jump"
    "meter": {"addr": ((int,), True, _between(1, 247)),
              "fault": ((str,), True, _one_of(*METER_FAULTS)), "arg": ((int,), False)},
    "card": {"uid": ((str,), True, _card_uid)},
    # the grid model (boards/sim/grid.py): each field optional, the others stay
    "grid": {"load_a": ((list,), False, _load_a), "pv_w": ((int, float), False,
                                                           _between(0, 100000)),
             "hz": ((int, float), False, _between(40, 70)), "dso": ((bool,), False),
             "meter": ((str,), False, _one_of("ok", "silent"))},
    "random": {"v": ((int, type(None)), False, _rnd)},
    "powercut": {"delay_ms": ((int,), False, _DELAY_MS)},
}
STEP_KEYS = {"at_ms", "after_ms", "do", "wait", "timeout_ms", "note"}


class ScenarioError(ValueError):
    pass


def check_command(cmd, where):
    """A command (do + fields): known name, known fields of the right type and range."""
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
        types, check = fields[k][0], fields[k][2:]
        if type(v) not in types or (bool not in types and isinstance(v, bool)):
            raise ScenarioError("%s: %s %s must be %s, got %r" % (
                where, name, k, "/".join(t.__name__ for t in types), v))
        wrong = check and check[0](v)
        if wrong:
            raise ScenarioError("%s: %s %s %s" % (where, name, k, wrong))
    for k, spec in fields.items():
        if spec[1] and k not in cmd:
            raise ScenarioError("%s: %s needs field %r" % (where, name, k))


def check_wait(cond, where):
    """A wait condition: a known observation kind (state unless "k" says otherwise), its
    fields, and for status, error, pilot and the EV's what/fault a value that can occur."""
    if not isinstance(cond, dict) or not cond:
        raise ScenarioError("%s: wait must be an object like {\"status\": \"Charging\"}" % where)
    kind = cond.get("k", "state")
    if kind not in OBSERVATIONS:
        raise ScenarioError("%s: wait k %r unknown (known: %s)" % (
            where, kind, ", ".join(sorted(OBSERVATIONS))))
    for k, v in cond.items():
        if k == "k":
            continue
        if k not in OBSERVATIONS[kind]:
            hint = "" if "k" in cond else '; give "k" for another kind, e.g. {"k": "ev", ...}'
            raise ScenarioError("%s: wait: %s observations have no field %r (fields: %s%s)" % (
                where, kind, k, ", ".join(OBSERVATIONS[kind]), hint))
        known = WAIT_VALUES.get((kind, k))
        if known and v not in known:
            raise ScenarioError("%s: wait %s %r unknown (known: %s)" % (
                where, k, v, ", ".join(known)))


def load_scenario(path):
    """Read and check a scenario file; ScenarioError names the bad entry."""
    try:
        with open(path) as f:
            sc = json.load(f)
    except OSError as e:
        raise ScenarioError("scenario %s: cannot read: %s" % (path, e.strerror))
    except ValueError as e:
        raise ScenarioError("scenario %s: not valid JSON: %s" % (path, e))
    return check_scenario(sc, "scenario %s" % path)


def _number(v):
    return type(v) in (int, float)


def check_scenario(sc, name="scenario"):
    """Check everything before the firmware starts; ScenarioError names the bad entry."""
    if not isinstance(sc, dict):
        raise ScenarioError("%s: top level must be an object" % name)
    for k in sc:
        if k not in ("config", "ev", "steps", "end_after_ms", "description"):
            raise ScenarioError("%s: unknown key %r" % (name, k))
    if not isinstance(sc.get("config", {}), dict):
        raise ScenarioError("%s: config must be an object" % name)
    if not isinstance(sc.get("description", ""), str):
        raise ScenarioError("%s: description must be text" % name)
    if "ev" in sc:
        if not isinstance(sc["ev"], dict):
            raise ScenarioError("%s: ev must be an object of EV parameters like "
                                "{\"max_current_a\": 32}, got %r" % (name, sc["ev"]))
        check_command(dict(sc["ev"], do="ev"), "%s: ev" % name)
    steps = sc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ScenarioError("%s: steps must be a non-empty list" % name)
    for n, st in enumerate(steps):
        check_step(st, "%s: steps[%d]" % (name, n))
    e = sc.get("end_after_ms", 1000)
    if not _number(e) or e < 0:
        raise ScenarioError("%s: end_after_ms must be a number >= 0" % name)
    return sc


def check_step(st, where):
    if not isinstance(st, dict):
        raise ScenarioError("%s: must be an object" % where)
    for k in ("at_ms", "after_ms"):
        if k in st and (not _number(st[k]) or st[k] < 0):
            raise ScenarioError("%s: %s must be a number >= 0, got %r" % (where, k, st[k]))
    if "at_ms" in st and "after_ms" in st:
        raise ScenarioError("%s: give at_ms or after_ms, not both" % where)
    if "wait" in st and "do" in st:
        raise ScenarioError("%s: a step is a command (\"do\") or a \"wait\", not both" % where)
    if "wait" in st:
        bad = set(st) - STEP_KEYS - {"id"}
        if bad:
            raise ScenarioError("%s: unknown key(s) %s" % (where, ", ".join(sorted(bad))))
        check_wait(st["wait"], where)
        t = st.get("timeout_ms", 60000)
        if not _number(t) or t <= 0:
            raise ScenarioError("%s: timeout_ms must be a number > 0, got %r" % (where, t))
    elif "do" in st:
        if "timeout_ms" in st:
            raise ScenarioError("%s: timeout_ms belongs to a wait step" % where)
        check_command(st, where)
    else:
        raise ScenarioError("%s: needs \"do\" (a command) or \"wait\" (a condition)" % where)


def matches(obs, cond):
    """An observation matches a wait condition: every key equal (k defaults to state)."""
    kind = cond.get("k", "state" if "status" in cond or "pilot" in cond else None)
    if kind is not None and obs.get("k") != kind:
        return False
    return all(obs.get(k) == v for k, v in cond.items() if k != "k")
