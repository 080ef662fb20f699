"""Helpers for simulator tests: start the real firmware on the unix port, measure times."""
import os
import sys

ROOT_TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
sys.path.insert(0, ROOT_TOOLS)
import simlib  # noqa: E402

BASE_CONFIG = {"rating_a": 32, "max_current_a": 16, "connector": "type2_socket",
               "reclose_ms": 1000, "reclose_error_ms": 1000}


def start(config=None, **kw):
    cfg = dict(BASE_CONFIG)
    cfg.update(config or {})
    return simlib.Sim(cfg, **kw).start()


def device_now(sim):
    """The firmware's clock (ms, the observation log's "t") as of now."""
    k = len(sim.obs)
    sim.do("stats")
    return sim.wait_for({"k": "stats"}, 10, since=k)["t"]


def device_sleep(sim, ms):
    """Wait until the firmware's own clock has advanced `ms`: what a test then asserts
    about "nothing happened in that time" is measured where it happens, on the device."""
    t0 = device_now(sim)
    while device_now(sim) - t0 < ms:
        sim.sleep(20)


def first(obs, pred, since=0):
    for o in obs[since:]:
        if pred(o):
            return o
    return None


def ev(what):
    return lambda o: o.get("k") == "ev" and o.get("what") == what


contactor = simlib.contactor_cmd


def status(st):
    return lambda o: o.get("k") == "state" and o.get("status") == st


def charge(sim, cable_a=32):
    """Plug in and wait until charging; returns the observation index after it."""
    sim.do("plug", cable_a=cable_a)
    sim.wait_for(status("Charging"), 5, since=len(sim.obs) - 3)
    sim.wait_for({"k": "contacts", "closed": True}, 2)
    return len(sim.obs)


def elapsed(sim, start_pred, end_pred, since=0, timeout=10):
    """ms from the first observation matching start_pred (after since) to the next end."""
    o0 = sim.wait_for(start_pred, timeout, since=since)
    i0 = sim.obs.index(o0)
    o1 = sim.wait_for(end_pred, timeout, since=i0)
    return o1["t"] - o0["t"]
