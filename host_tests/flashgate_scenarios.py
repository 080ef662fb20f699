# The flash gate's journal and held files on host_tests/flashsim.py with a plain gate (a
# variable standing for board.flash_write_ok), shared by host_tests/test_flashgate.py
# (CPython) and host_tests/mpy/check_flashgate.py (the MicroPython unix port). Each scenario
# returns a list of problems (empty: passed).
from firmware import persist
from firmware.ocpp import journal
from flashsim import MODES, Cut, SimFlash, on

MODULES = (persist, journal)


class Gate:
    """closed: the contactor is closed. Counts the flash steps taken while closed."""

    def __init__(self):
        self.closed = False

    def __call__(self):
        return not self.closed


class GatedFlash(SimFlash):
    def __init__(self, gate, **kw):
        SimFlash.__init__(self, **kw)
        self.gate = gate
        self.closed_steps = 0

    def step(self):
        SimFlash.step(self)
        if self.gate.closed:
            self.closed_steps += 1


def _mv(i):
    return {"l": -1, "p": {"connectorId": 1, "meterValue": [{
        "timestamp": 1767225600 + i, "sampledValue": [{"value": str(1000 + i)}]}]}}


def _names(j):
    """What the sender would deliver from j, in order (then acked)."""
    out = []
    while True:
        r = j.peek()
        if r is None:
            return out
        p = r[2]["p"]
        out.append(r[1] if r[1] != "MeterValues" else
                   "MV" + p["meterValue"][0]["sampledValue"][0]["value"])
        j.ack(r[0])


def _session(fl, gate, cut_at=None):
    """Start on flash; the contactor closes; the Start is acked and mapped, MV0..MV3 pushed
    and MV0 acked (from RAM); the contactor opens and the journal settles."""
    with on(fl, MODULES):
        j = journal.Journal("ocpp.jnl")
        lid = j.next_local_id()
        j.push("StartTransaction", {"l": lid, "p": {"idTag": "A", "meterStart": 1000}})
        gate.closed = True
        r = j.peek()
        j.ack(r[0])
        j.map_tx(lid, 42)
        for i in range(4):
            j.push("MeterValues", _mv(i), droppable=True)
        r = j.peek()
        j.ack(r[0])
        gate.closed = False
        fl.settle_from = fl.steps
        fl.cut_at = cut_at
        try:
            persist.settle()
        finally:
            fl.cut_at = None
        return j


def ram_tail():
    """Nothing reaches flash while closed; after the settle the file holds the ack, the
    mapping and MV1..MV3 (MV0 was acked from RAM: never written)."""
    persist._held.clear()
    del persist._later[:]
    gate = Gate()
    persist.set_gate(gate)
    problems = []
    try:
        fl = GatedFlash(gate)
        j = _session(fl, gate)
        if fl.closed_steps:
            problems.append("%d flash steps while closed" % fl.closed_steps)
        if j.stats()["ram_bytes"]:
            problems.append("RAM tail not written: %r" % (j.stats(),))
        with on(fl.boot("last-sync"), MODULES):
            again = journal.Journal("ocpp.jnl")
            got = _names(again), again.tx_id(-1)
        if got != (["MV1001", "MV1002", "MV1003"], 42):
            problems.append("after the session the journal gives %r" % (got,))
    finally:
        persist.set_gate(None)
    return problems


def settle_cuts():
    """A power cut at every step of the settle, each boot mode: the journal opens, gives
    the Start again (nothing of the tail landed) or MV1..MV3 with the Start acked and
    mapped (any prefix of them where the cut tore the tail), never a record twice."""
    gate = Gate()
    persist.set_gate(gate)
    problems = []
    n = 0
    try:
        persist._held.clear()
        del persist._later[:]
        full = GatedFlash(gate)
        _session(full, gate)
        new = ["MV1001", "MV1002", "MV1003"]
        for k in range(full.settle_from, full.steps + 1):
            for mode in MODES:
                persist._held.clear()
                del persist._later[:]
                fl = GatedFlash(gate)
                try:
                    _session(fl, gate, cut_at=k)
                except Cut:
                    pass
                n += 1
                try:
                    with on(fl.boot(mode), MODULES):
                        got = _names(journal.Journal("ocpp.jnl"))
                except Exception as e:  # noqa: BLE001 - a boot that raises is the fault
                    problems.append("cut %d %s: boot raised %r" % (k, mode, e))
                    continue
                ok = got == ["StartTransaction"] or got == new[:len(got)]
                if not ok:
                    problems.append("cut %d %s: %r" % (k, mode, got))
    finally:
        persist.set_gate(None)
        persist._held.clear()
        del persist._later[:]
    return n, problems


def held_files():
    """A whole-file save while closed: no flash step, read back from RAM, the old value
    after a cut, the new one once the gate opened and settle ran."""
    persist._held.clear()
    del persist._later[:]
    gate = Gate()
    persist.set_gate(gate)
    problems = []
    try:
        fl = GatedFlash(gate)
        with on(fl, MODULES):
            persist.save_json("s.json", {"v": 1})
            gate.closed = True
            persist.save_json("s.json", {"v": 2})
            if persist.load_json("s.json") != {"v": 2}:
                problems.append("the held value is not read back")
            cut = fl.boot("last-sync")
            try:
                persist.hold("big.bin", b"x" * (persist.HELD_MAX + 1))
                problems.append("no FlashBusy past HELD_MAX")
            except persist.FlashBusy:
                pass
            if fl.closed_steps:
                problems.append("%d flash steps while closed" % fl.closed_steps)
            if persist.settle():
                problems.append("settled while closed")
            gate.closed = False
            if not persist.settle():
                problems.append("not settled with the gate open")
        with on(cut, MODULES):
            if persist.load_json("s.json") != {"v": 1}:
                problems.append("a cut while closed did not keep the old value")
        with on(fl.boot("last-sync"), MODULES):
            if persist.load_json("s.json") != {"v": 2}:
                problems.append("the held value did not reach flash")
    finally:
        persist.set_gate(None)
        persist._held.clear()
        del persist._later[:]
    return problems
