"""Randomised power cuts (issue 7, journal): the real firmware on the unix port is killed
(kill -9: the simulator's `powercut`) at random instants across many sessions and restarted
on the same state directory; the dev CSMS must get every transaction once, stopped once, in
order, and the energy register must never go backwards. More runs, another seed:
WB_POWERCUT_RUNS=200 WB_POWERCUT_SEED=3 (make fuzz runs 100 from a new seed).

The delivery checks read the CSMS's JSON-lines log (frames and connections in the order they
happened; test_ocpp_chaos.py uses them too): a message may reach it twice only when its first
copy was the last thing sent on that connection (the answer was lost). Three firmware bugs -
txn.py writes the journal and ocpp_tx.json one after the other; a cut between the two leaves
them disagreeing - have deterministic reproducers at the end (xfail, strict); the random test
lands in those windows rarely and then ends as xfail naming the bug. Anything else fails it.
"""
import contextlib
import json
import os
import random
import threading
import time
import types

import pytest

import ocpprig as o
from firmware import persist
from firmware.ocpp import txn
from firmware.ocpp.journal import Journal
from firmware.ocpp.keys import Keys
from ocpprig import CsmsThread

RUNS = int(os.environ.get("WB_POWERCUT_RUNS", "10"))
SEED = int(os.environ.get("WB_POWERCUT_SEED", "20260"))
CUT_MAX_MS = 6000
# An S0 meter: its register lives on the firmware's flash (save_wh 1: a cut loses < 1 Wh),
# so it continues across restarts as a real meter's would (the world's own meter model
# starts at 0 in every process).
METERS = {"ev": {"type": "s0", "imp_per_kwh": 1000, "save_wh": 1, "period_ms": 200}}
TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")
_REGISTER = "Energy.Active.Import.Register"


# -- what the CSMS received ------------------------------------------------------------------
def read_log(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def deliveries(lines, transactions):
    """The charge point's transaction messages in the order the CSMS got them, each once:
    [{"action", "payload", "tid", "copies": [(connection, last CALL on it?)]}].
    `transactions`: the CSMS's records (id -> dict), whose "start" gives each Start its id."""
    conn = 0
    calls = []  # (connection, index, action, payload)
    for e in lines:
        if e.get("event") == "connected":
            conn += 1
        elif e.get("event") == "frame" and e.get("dir") == "in":
            f = json.loads(e["text"])
            if isinstance(f, list) and len(f) == 4 and f[0] == 2:
                calls.append((conn, len(calls), f[2], f[3]))
    last = {c: i for c, i, _, _ in calls}  # the last CALL of each connection
    tid_of = {_key("StartTransaction", t["start"]): t["id"] for t in transactions.values()
              if t.get("start") is not None}
    out, seen = [], {}
    for c, i, action, p in calls:
        if action not in TX_ACTIONS or action == "MeterValues" and "transactionId" not in p:
            continue
        k = _key(action, p)
        if k not in seen:
            tid = tid_of.get(k) if action == "StartTransaction" else p["transactionId"]
            seen[k] = {"action": action, "payload": p, "tid": tid, "copies": []}
            out.append(seen[k])
        seen[k]["copies"].append((c, last[c] == i))
    return out


def _key(action, p):
    return action + json.dumps(p, sort_keys=True)


def _energy(mv):
    for v in mv["sampledValue"]:
        if v.get("measurand", _REGISTER) == _REGISTER:
            return int(float(v["value"]))
    return None


# Firmware bugs the random test can land in (see the reproducers at the end): kind -> text
KNOWN = {
    "start-window": "StartTransaction journaled, cut before ocpp_tx.json: never stopped",
    "stop-window": "StopTransaction journaled, cut before ocpp_tx.json goes: a 2nd (PowerLoss)",
    "sample-window": "MeterValues journaled, cut before ocpp_tx.json: PowerLoss meterStop below",
}


def check_deliveries(msgs):
    """Every rule a transaction's messages must keep -> ([(known bug kind or None, what)],
    {transaction id: {"start", "values", "stops"}}); an empty list: all kept."""
    bad = []
    txs = {}
    for m in msgs:
        copies = m["copies"]
        if not all(was_last for _, was_last in copies[:-1]):
            bad.append((None, "%s sent again after the CSMS had it and more followed on that "
                        "connection: %s %s" % (m["action"], copies, m["payload"])))
        tid = m["tid"]
        if tid is None:
            bad.append((None, "%s with no transaction id: %s" % (m["action"], m["payload"])))
            continue
        t = txs.setdefault(tid, {"start": None, "values": [], "stops": []})
        if m["action"] == "StartTransaction":
            if t["start"] is not None or t["values"] or t["stops"]:
                bad.append((None, "transaction %s: StartTransaction after its other messages"
                            % tid))
            if any(not x["stops"] for i, x in txs.items() if i != tid):
                bad.append((None, "transaction %s started while another was open" % tid))
            t["start"] = m["payload"]
        elif m["action"] == "MeterValues":
            if t["start"] is None or t["stops"]:
                bad.append((None, "transaction %s: MeterValues outside Start..Stop" % tid))
            t["values"].append(m["payload"])
        else:
            if t["start"] is None:
                bad.append((None, "transaction %s: StopTransaction before its Start" % tid))
            t["stops"].append(m["payload"])
    for tid, t in sorted(txs.items()):
        stops = t["stops"]
        if len(stops) != 1:
            kind = "start-window" if not stops else "stop-window" if len(stops) == 2 and \
                stops[1]["reason"] == "PowerLoss" else None
            bad.append((kind, "transaction %s stopped %d times: %s" % (tid, len(stops), stops)))
        if t["start"] is None or not stops:
            continue
        lo, hi = t["start"]["meterStart"], stops[0]["meterStop"]
        if hi < lo:
            bad.append((None, "transaction %s: meterStop %d < meterStart %d" % (tid, hi, lo)))
        for p in t["values"]:
            for mv in p["meterValue"]:
                e = _energy(mv)
                if e is not None and not lo <= e <= hi:
                    kind = "sample-window" if e > hi and stops[0]["reason"] == "PowerLoss" \
                        else None
                    bad.append((kind, "transaction %s: MeterValues register %d outside "
                                "meterStart..meterStop %d..%d" % (tid, e, lo, hi)))
    return bad, txs


# -- the runs --------------------------------------------------------------------------------
def _script(rng, free):
    """A random mix of what a user and the network do: [(command, fields) | (None, s)]."""
    steps = [(None, rng.uniform(0, 1.2))]
    for _ in range(rng.choice((1, 1, 2))):
        if rng.random() < 0.25:
            steps.append(("net", {"state": "down"}))
        steps.append(("plug", {"cable_a": 32}))
        tag = "CARD%d" % rng.randint(1, 3)
        if not free:
            steps += [(None, rng.uniform(0, 0.5)), ("card", {"uid": tag})]
        steps.append((None, rng.uniform(0.3, 3.0)))
        if rng.random() < 0.3:
            steps += [("net", {"state": "down" if rng.random() < 0.5 else "up"}),
                      (None, rng.uniform(0.2, 1.5))]
        if not free and rng.random() < 0.4:
            steps += [("card", {"uid": tag}), (None, rng.uniform(0, 0.8))]  # a local stop
        steps.append(("unplug", {}))
        steps += [(None, rng.uniform(0.1, 1.0)), ("net", {"state": "up"})]
    return steps


def _play(sim, steps):
    for cmd, arg in steps:
        if sim.proc.poll() is not None or sim.obs[-1].get("k") == "closed":
            return
        try:
            if cmd is None:
                time.sleep(arg)
            else:
                sim.do(cmd, **arg)
        except (RuntimeError, TimeoutError, OSError):
            return  # the power went while the command was on its way


def _kill_during_start(sim, after_s):
    """kill -9 from outside after_s after the process exists (before or as it boots)."""
    def run():
        deadline = time.time() + 30
        while sim.proc is None and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(after_s)
        if sim.proc is not None:
            sim.proc.kill()  # nothing happens if it has gone already

    return threading.Thread(target=run, daemon=True)


def _one_run(csms, d, rng, log):
    free = rng.random() < 0.4
    sim = o.start_sim(csms, state_dir=d, free_vend=free, meters=METERS)
    if rng.random() < 0.15:  # a cut while the firmware boots: journal scan, recovery
        killer = _kill_during_start(sim, rng.uniform(0, 0.25))
        killer.start()
        try:
            sim.start()
        except (RuntimeError, TimeoutError, OSError):
            pass
        killer.join(40)
        how = "during start"
    else:
        sim.start(timeout=60)
        cut = rng.randint(0, CUT_MAX_MS)
        sim.send({"do": "powercut", "delay_ms": cut})
        _play(sim, _script(rng, free))
        how = "at %d ms" % cut
    if sim.sock is not None:  # the control connection closes with the process
        sim.wait_for({"k": "closed"}, CUT_MAX_MS / 1000 + 30)
    sim.proc.wait(30)
    sim.stop()
    log.append((how, o.logs(sim)))


@contextlib.contextmanager
def _started_sim(csms, d):
    sim = o.start_sim(csms, state_dir=d, meters=METERS).start(timeout=60)  # a loaded machine
    yield sim
    sim.stop()


def _started(runs):
    """(tag, meterStart) of every transaction the firmware logged as journaled, in order."""
    return [(m.split(" started for ")[1].split(",")[0], int(m.split("meterStart ")[1].split()[0]))
            for _, lines in runs for m in lines
            if m.startswith("ocpp: transaction ") and " started for " in m]


@pytest.mark.slow
@pytest.mark.parametrize("fresh", [False, True], ids=["dedupe", "fresh-ids"])
def test_random_power_cuts_lose_and_duplicate_no_transaction(tmp_path, fresh):
    # dedupe: a resent Start keeps its id (as SteVe does); fresh-ids: every copy gets a new
    # one (OCPP.Core, CitrineOS, open-ocpp), so exactly-once cannot lean on the CSMS
    runs_n = RUNS if not fresh else max(1, RUNS // 2)
    print("power cuts: seed %d (WB_POWERCUT_SEED), %d runs, %s" % (
        SEED, runs_n, "fresh ids" if fresh else "resent Start keeps its id"))
    rng = random.Random(SEED + fresh)
    d = o.state_dir(tmp_path)
    log_path = str(tmp_path / "csms.jsonl")
    runs = []
    with CsmsThread(log=log_path, fresh_ids=fresh) as csms:
        with _started_sim(csms, d) as sim, o.report(sim, csms):
            o.booted(csms, timeout=60)
            o.configure(csms, "MeterValueSampleInterval", 1)  # a journal write every second
            o.configure(csms, "AllowOfflineTxForUnknownId", "true")
            o.configure(csms, "WebSocketPingInterval", 0)
        for _ in range(runs_n):
            _one_run(csms, d, rng, runs)
        # a clean run lets the journal drain
        with _started_sim(csms, d) as sim, o.report(sim, csms):
            boots = len(csms.boots)
            csms.wait_for(lambda: len(csms.boots) > boots, 60)
            sim.wait_for(lambda x: x.get("k") == "log" and "boot accepted" in x["msg"], 60)
            deadline = time.time() + 90
            while "journal 0 pending" not in "\n".join(sim.diag("status")):
                assert time.time() < deadline, sim.diag("status")
                time.sleep(0.5)
            runs.append(("final", o.logs(sim)))
        msgs = deliveries(read_log(log_path), csms.transactions)
        bad, txs = check_deliveries(msgs)
        o.no_violations(csms)
    started = _started(runs)
    lost = [(how, m) for how, lines in runs for m in lines if "NOT journaled" in m
            or "given up" in m or "dropped: no transactionId" in m]
    retransmitted = sum(len(m["copies"]) - 1 for m in msgs)
    print("power cuts: %d transactions journaled (logged), %d at the CSMS, %d messages, "
          "%d retransmitted after a cut; cuts %s" % (len(started), len(txs), len(msgs),
                                                      retransmitted, [h for h, _ in runs[:-1]]))
    assert not [x for k, x in bad if k is None], bad[:10]
    assert not lost, lost
    # the CSMS's transactions, in order, are the ones the firmware journaled; a start
    # journaled just before a cut may have lost its log line with the process
    order = sorted(txs)
    got = [(txs[t]["start"]["idTag"], txs[t]["start"]["meterStart"]) for t in order]
    k = 0
    for s in started:
        assert s in got[k:], ("journaled transaction never reached the CSMS", s, got)
        k = got.index(s, k) + 1
    assert len(got) - len(started) <= runs_n, (got, started)
    # with fresh ids, each Start sent again after a lost answer left the CSMS a transaction
    # of its own that nothing else may use; a CSMS that dedupes has none
    orphans = [t for t in csms.transactions.values() if t["id"] not in txs]
    resent = sum(len(m["copies"]) - 1 for m in msgs if m["action"] == "StartTransaction")
    assert len(orphans) == (resent if fresh else 0), (orphans, resent)
    assert all(t["stop"] is None and not t["meter_values"] for t in orphans), orphans
    stopped = [t for t in order if txs[t]["stops"]]
    for a, b in zip(stopped, stopped[1:]):
        assert txs[b]["start"]["meterStart"] >= txs[a]["stops"][0]["meterStop"], (
            "the energy register went backwards", a, txs[a], b, txs[b])
    # the three windows this test once found (KNOWN) are fixed; landing in one fails too
    assert not bad, ("seed %d: %s" % (SEED, ["%s: %s" % (KNOWN.get(k, k), x) for k, x in bad]))


# -- the checks themselves, on a made-up CSMS log ---------------------------------------------
def _frames(*items):
    """Log lines: "c" a new connection, or (action, payload) a CALL from the charge point."""
    return [{"event": "connected"} if it == "c" else {
        "event": "frame", "dir": "in", "text": json.dumps([2, "m%d" % n, it[0], it[1]])}
        for n, it in enumerate(items)]


_START = {"connectorId": 1, "idTag": "A", "meterStart": 10, "timestamp": "t0"}
_TXS = {1: {"id": 1, "start": _START}}


def _mv(wh, at="t1"):
    return ("MeterValues", {"connectorId": 1, "transactionId": 1, "meterValue": [
        {"timestamp": at, "sampledValue": [{"value": str(wh)}]}]})


def _stop(wh, reason="Local"):
    return ("StopTransaction", {"transactionId": 1, "meterStop": wh, "timestamp": "t2",
                                "reason": reason})


def _problems(*items):
    return check_deliveries(deliveries(_frames(*items), _TXS))[0]


def test_the_delivery_checks_accept_a_resend_after_a_lost_answer_and_nothing_else():
    start = ("StartTransaction", _START)
    assert _problems("c", start, _mv(12), "c", _mv(12), _stop(15)) == []
    # sent again although more followed on the same connection: a duplicate
    assert _problems("c", start, _mv(12), _mv(13, "t2"), "c", _mv(12), _stop(15))
    assert _problems("c", start, _stop(15), _mv(12))  # after its Stop
    assert _problems("c", start, _mv(12))  # never stopped
    assert _problems("c", start, _mv(12), _stop(11))  # a sample above meterStop
    assert _problems("c", start, _stop(9))  # meterStop < meterStart
    assert [k for k, _ in _problems("c", start, _stop(15), "c", _stop(15, "PowerLoss"))] == [
        "stop-window"]
    assert [k for k, _ in _problems("c", start, _mv(20), _stop(15, "PowerLoss"))] == [
        "sample-window"]


# -- the windows, one cut each, deterministic (CPython: txn with a fake charge point) ---------
class _PowerCut(BaseException):
    """The process dies here: nothing after this line runs, what is on disk stays."""


def _charge_point(wh):
    """What Transactions needs of a ChargePoint: plugged in, free vend, offline."""
    act = types.SimpleNamespace(pilot="C", status="Charging", offer_da=160, close=False)
    ns = types.SimpleNamespace
    # a meter read just now, whatever the time: fresh, last poll after the contactor opened
    meter = ns(energy_wh=wh, at_ms=1 << 28, fresh=lambda now: True)
    return ns(board=ns(meter_reading=meter), meters=None, keys=Keys(), journal=Journal(),
              log=lambda m: None, say=lambda m: None, cfg=ns(free_vend=True), section={},
              reservation=None,
              profiles=ns(end_transaction=lambda t: None, retag=lambda a, b: None,
                          set=lambda *a, **k: None),
              ctl=ns(session=ns(act=act), set_auth=lambda on: None),
              now_s=lambda: 1800000000, iso_now=lambda: "2027-01-15T08:00:00Z",
              stamp=lambda: 1800000000,
              wake=ns(set=lambda: None), available=[True, True], pending_avail=None,
              link=ns(connected=False), outbox=[])


def _reboot(cp, wh=-1):
    """Power back: a new charge point on the same files (the meter not read yet: -1); the
    journal's pending records, oldest first, as (action, payload)."""
    cp.journal.close()
    cp = _charge_point(wh)
    txn.Transactions(cp)
    out = []
    while True:
        rec = cp.journal.peek()
        if rec is None:
            return out
        out.append((rec[1], rec[2]["p"]))
        cp.journal.ack(rec[0])


@pytest.fixture
def ticks(tmp_path, monkeypatch):
    """The files in tmp_path; txn's clock (ticks_*) is t.ms."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(persist, "restart_reason", None)  # each reboot here is a power cut
    t = types.SimpleNamespace(ms=1000, ticks_add=lambda a, b: a + b,
                              ticks_diff=lambda a, b: a - b)
    t.ticks_ms = lambda: t.ms
    for name in ("ticks_add", "ticks_diff", "ticks_ms"):
        monkeypatch.setattr(txn, name, getattr(t, name))
    return t


def _cut_at(monkeypatch, obj, name, when=lambda *a: True):
    real = getattr(obj, name)

    def cut(*args):
        if when(*args):
            raise _PowerCut
        return real(*args)

    monkeypatch.setattr(obj, name, cut)
    return lambda: monkeypatch.setattr(obj, name, real)


def _cut_after(monkeypatch, obj, name, when):
    """The process dies right after obj.name(*args) returned (when(*args)): it is durable."""
    real = getattr(obj, name)

    def cut(*args, **kw):
        r = real(*args, **kw)
        if when(*args):
            raise _PowerCut
        return r

    monkeypatch.setattr(obj, name, cut)
    return lambda: monkeypatch.setattr(obj, name, real)


# These three once failed (KNOWN): the open transaction was taken from ocpp_tx.json alone,
# written after the journal. Now the journal says which transactions are open and the file,
# written first, gives the energy.
def test_cut_after_the_start_is_journaled_still_ends_the_transaction(ticks, monkeypatch):
    cp = _charge_point(100)
    tx = txn.Transactions(cp)
    power_back = _cut_after(monkeypatch, cp.journal, "push",
                            lambda action, *a: action == "StartTransaction")
    with pytest.raises(_PowerCut):
        tx.observe(ticks.ms)  # plugged, free vend: StartTransaction journaled
    power_back()
    recs = _reboot(cp)
    assert [a for a, _ in recs] == ["StartTransaction", "StopTransaction"], recs
    assert recs[1][1]["reason"] == "PowerLoss" and recs[1][1]["meterStop"] >= 100


def test_cut_after_the_start_with_its_file_lost_still_ends_the_transaction(ticks, monkeypatch):
    cp = _charge_point(100)
    tx = txn.Transactions(cp)
    tx.observe(ticks.ms)
    assert tx.open is not None
    os.remove(txn.TX_FILE)  # the file lost (a bad flash sector): the journal still knows
    recs = _reboot(cp, wh=120)
    assert [a for a, _ in recs] == ["StartTransaction", "MeterValues", "StopTransaction"]
    assert recs[-1][1]["meterStop"] == 120


def test_cut_before_the_start_is_journaled_leaves_no_transaction(ticks, monkeypatch):
    cp = _charge_point(100)
    tx = txn.Transactions(cp)
    power_back = _cut_at(monkeypatch, cp.journal, "push",
                         lambda action, *a: action == "StartTransaction")
    with pytest.raises(_PowerCut):
        tx.observe(ticks.ms)
    power_back()
    assert _reboot(cp) == []
    assert not os.path.exists(txn.TX_FILE)


def test_cut_after_the_stop_is_journaled_sends_one_stop(ticks, monkeypatch):
    cp = _charge_point(100)
    tx = txn.Transactions(cp)
    tx.observe(ticks.ms)
    assert tx.open is not None
    tx.stop_reason = "Local"
    power_back = _cut_at(monkeypatch, persist.os, "remove", lambda p: p == txn.TX_FILE)
    with pytest.raises(_PowerCut):
        tx.observe(ticks.ms)  # StopTransaction journaled, then the file's removal
    power_back()
    stops = [p["reason"] for a, p in _reboot(cp) if a == "StopTransaction"]
    assert stops == ["Local"], stops


def test_cut_after_a_sample_is_journaled_keeps_meter_stop_above_it(ticks, monkeypatch):
    cp = _charge_point(100)
    cp.keys.change("MeterValueSampleInterval", "1")
    tx = txn.Transactions(cp)
    tx.observe(ticks.ms)
    tx.timers(ticks.ms, 1800000000)
    ticks.ms += 1000
    cp.board.meter_reading.energy_wh = 105
    power_back = _cut_after(monkeypatch, cp.journal, "push",
                            lambda action, *a: action == "MeterValues")
    with pytest.raises(_PowerCut):
        tx.timers(ticks.ms, 1800000001)  # the 105 Wh sample journaled
    power_back()
    recs = _reboot(cp)
    top = max(_energy(mv) for a, p in recs if a == "MeterValues" for mv in p["meterValue"])
    stop = [p for a, p in recs if a == "StopTransaction"]
    assert top == 105 and stop[0]["reason"] == "PowerLoss"
    assert stop[0]["meterStop"] >= top, (stop, top)


def test_without_a_cut_the_journal_holds_start_values_and_one_stop(ticks):
    """The same fake charge point with no cut: what the reproducers above expect."""
    cp = _charge_point(100)
    cp.keys.change("MeterValueSampleInterval", "1")
    tx = txn.Transactions(cp)
    tx.observe(ticks.ms)
    tx.timers(ticks.ms, 1800000000)
    ticks.ms += 1000
    cp.board.meter_reading.energy_wh = 105
    tx.timers(ticks.ms, 1800000001)
    recs = _reboot(cp)  # a cut while idle at 105 Wh: PowerLoss
    assert [a for a, _ in recs] == ["StartTransaction", "MeterValues", "MeterValues",
                                    "StopTransaction"]
    assert recs[-1][1]["reason"] == "PowerLoss" and recs[-1][1]["meterStop"] == 105
