"""Analysis of a simulated wallbox's observation log: reaction times (S2 open, RCM trip to
contactor open), reported faults, meter readings and the session summary tools/sim.py prints.

Pure functions over the list of observations (dicts with "t" and "k"); no firmware needed.
tools/simlib.py re-exports these names, so `simlib.summary` etc. keep working. See docs/sim.md.
"""


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


def reactions_while_closed(obs, start):
    """Times (ms) from each observation matching `start` that came while the contactor was
    commanded closed (the latest contactor observation before it had cmd true) to the next
    open command. A start while the contactor is open pairs with nothing."""
    out = []
    closed = False
    t0 = None
    for o in obs:
        if o.get("k") == "contactor":
            closed = o.get("cmd") is True
            if not closed and t0 is not None:
                out.append(o["t"] - t0)
                t0 = None
        elif closed and t0 is None and start(o):
            t0 = o["t"]
    return out


def is_s2_open(o):
    return o.get("k") == "ev" and o.get("what") == "S2 open"


def is_rcm_trip(o):
    return (o.get("k") == "ev" and o.get("what") == "fault" and o.get("fault") == "rcm_trip"
            and o.get("on") is True)


def contactor_cmd(cmd):
    """Predicate: the coil was commanded closed (True) or open (False)."""
    return lambda o: o.get("k") == "contactor" and o.get("cmd") is cmd


is_open_cmd = contactor_cmd(False)


def reported_faults(obs):
    """Every error the station reported ("OverCurrentFailure (paused: EV overcurrent)": the
    error with its info, or the reason when there is no info) and every fault event not
    already told by one of them, once each, in order."""
    told = set()
    for o in obs:
        if o.get("k") == "state" and o.get("error") != "NoError" and o.get("info"):
            told.add(o["info"])
    out = []
    for o in obs:
        k = o.get("k")
        if k == "state" and o.get("error") not in (None, "NoError"):
            why = o.get("info") or o.get("reason")
            text = "%s (%s)" % (o["error"], why) if why else o["error"]
        elif k == "event" and o.get("code") == "fault" and o.get("val") not in told:
            text = "fault %s" % o.get("val")
        else:
            continue
        if text not in out:
            out.append(text)
    return out


def metered(obs):
    """A line per meter role from its last reading: the firmware's energy register (what
    OCPP will report) beside the world's energy above, its errors and any fault."""
    last = {}
    faults = {}
    for o in obs:
        if o.get("k") == "reading":
            last[o["role"]] = o
            if o.get("fault") and o["fault"] not in faults.setdefault(o["role"], []):
                faults[o["role"]].append(o["fault"])
    out = []
    for role, o in last.items():
        seen = faults.get(role)
        out.append("  metered %-7s %d Wh (meter errors %d%s)" % (
            role, o["wh"], o["errors"], "; faults: " + ", ".join(seen) if seen else ""))
    return out


def summary(obs):
    statuses = []
    injected = []
    closes = 0
    max_offer = 0
    end = next((o for o in obs if o.get("k") == "end"), {})
    for o in obs:
        k = o.get("k")
        if k == "state":
            if not statuses or statuses[-1] != o["status"]:
                statuses.append(o["status"])
            max_offer = max(max_offer, o["offer_da"])
        elif k == "ev" and o.get("what") == "fault" and o.get("on"):
            if o["fault"] not in injected:
                injected.append(o["fault"])
        elif k == "contactor" and o["cmd"]:
            closes += 1
    lines = [
        "session summary",
        "  duration        %.1f s" % (end.get("ms", 0) / 1000),
        "  energy          %.1f Wh" % end.get("energy_wh", 0),
    ] + metered(obs) + [
        "  statuses        %s" % " -> ".join(statuses),
        "  max offer       %.1f A" % (max_offer / 10),
        "  contactor       closed %d time(s)" % closes,
        "  faults          %s" % (", ".join(reported_faults(obs)) or "none"),
    ]
    if injected:
        lines.append("  injected        %s" % ", ".join(injected))
    for label, start in (("C->B to open", is_s2_open), ("RCM to open", is_rcm_trip)):
        times = reactions_while_closed(obs, start)
        if times:
            lines.append("  %-16s%s ms" % (label, ", ".join("%.1f" % x for x in times)))
    if end.get("reset"):
        lines.append("  watchdog reset  yes")
    return "\n".join(lines)
