"""Simulator + dev CSMS for the OCPP tests: the real firmware on the unix port connects to
tools/csms.py on loopback; every frame it sends is checked there (violations)."""
import contextlib
import json
import os
import sys
import time

import simrig

sys.path.insert(0, simrig.ROOT_TOOLS)
import csms  # noqa: E402

CP = "CP1"
# The answer style of every CsmsThread a test starts without naming one (tools/csms_styles.py):
# WB_CSMS_STYLE=hostile runs a test file against the hostile CSMS; test_ocpp_styles.py sets it
# per test.
STYLE = os.environ.get("WB_CSMS_STYLE", "dev")
SEED = int(os.environ.get("WB_CSMS_SEED", "1"))


class CsmsThread(csms.CsmsThread):
    def __init__(self, **kwargs):
        kwargs.setdefault("style", STYLE)
        kwargs.setdefault("seed", SEED)
        csms.CsmsThread.__init__(self, **kwargs)


def config(csms, ocpp=None, **extra):
    cfg = {"free_vend": False}
    cfg.update(extra)
    sec = {"url": csms.url, "cp_id": CP}
    sec.update(ocpp or {})
    cfg["ocpp"] = sec
    return cfg


def start_sim(csms, ocpp=None, state_dir=None, **extra):
    """The simulator (not started: use it in a with statement)."""
    cfg = dict(simrig.BASE_CONFIG)
    cfg.update(config(csms, ocpp, **extra))
    return simrig.simlib.Sim(cfg, state_dir=state_dir)


def logs(sim):
    return [o["msg"] for o in sim.obs if o.get("k") == "log"]


def wait_log(sim, text, timeout=20, since=0):
    return sim.wait_for(lambda o: o.get("k") == "log" and text in o.get("msg", ""), timeout,
                        since=since)


def statuses(csms, connector=1):
    return [p["status"] for cp, p in list(csms.statuses) if p["connectorId"] == connector]


def mark(csms, connector=1):
    """How many statuses of the connector the CSMS has seen so far (for wait_status)."""
    return len(statuses(csms, connector))


def wait_status(csms, status, connector=1, timeout=20, since=0):
    """Wait until the CSMS has seen `status` for the connector after the first `since`."""
    csms.wait_for(lambda: status in statuses(csms, connector)[since:], timeout)


def wait_tx(csms, pred, timeout=20):
    """The first transaction (dict) matching pred."""
    def find():
        for tx in list(csms.transactions.values()):
            if pred(tx):
                return tx
        return None

    return csms.wait_for(find, timeout)


def charging(sim, csms, tag="CARD1"):
    """Plug, present a card, wait until charging; returns the CSMS's transaction."""
    sim.do("plug", cable_a=32)
    sim.do("card", uid=tag)
    tx = wait_tx(csms, lambda t: t["idTag"] == tag and t["stop"] is None)
    wait_status(csms, "Charging")
    return tx


def offer(sim, da, timeout=15):
    """Wait until the controller offers `da` (0.1 A), unless it does already."""
    n = len(sim.obs)
    st = sim.state()
    if st is not None and st.get("offer_da") == da:
        return
    sim.wait_for(lambda x: x.get("k") == "state" and x.get("offer_da") == da, timeout, since=n)


def call(csms, action, payload, timeout=20):
    return csms.call(CP, action, payload, timeout)


def configure(csms, key, value):
    r = call(csms, "ChangeConfiguration", {"key": key, "value": str(value)})
    assert r == {"status": "Accepted"}, (key, r)


def booted(csms, timeout=30):
    csms.wait_for(lambda: csms.accepted.get(CP) == "Accepted" and "Available" in statuses(
        csms), timeout)


def frame_action(f):
    """The action of a CALL frame the CSMS logged (csms.frames), None for other frames."""
    m = json.loads(f["text"])
    return m[2] if m[0] == 2 else None


def frame_payload(f):
    return json.loads(f["text"])[-1]


def no_violations(csms):
    assert not csms.violations, csms.violations[:5]


def sleep(s):
    time.sleep(s)


def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir(exist_ok=True)
    return str(d)


@contextlib.contextmanager
def report(sim, csms):
    """On a failure, print the firmware's log lines and the CSMS's frames (pytest shows
    them with the failure)."""
    try:
        yield
    except BaseException:
        print("\n".join("LOG " + m for m in logs(sim)[-60:]))
        print([(x.get("status"), x.get("offer_da"), x.get("reason")) for x in sim.obs
               if x.get("k") == "state"][-12:])
        print("\n".join("%s %s" % (f["dir"], f["text"][:200]) for f in csms.frames[-40:]))
        raise


def kill(sim):
    """A power cut from outside: SIGKILL, then collect the process."""
    sim.proc.kill()
    sim.proc.wait(10)
    try:
        sim.sock.close()
    except OSError:
        pass


__all__ = ["CsmsThread"]
