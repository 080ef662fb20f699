"""Chaos between the charge point and the CSMS (issue 7): the real firmware on the unix port
talks to the dev CSMS through tools/netproxy.py, which drops, stalls (half-open: bytes
swallowed, nothing closed) and refuses connections, and the CSMS itself is restarted on the
same port, all during one transaction with a MeterValues every second. Charging must never
notice, and every transaction message must reach the CSMS once, in order.
"""
import time

import pytest

import ocpprig as o
from ocpprig import CsmsThread
from test_ocpp_powercut import check_deliveries, deliveries, read_log

pytestmark = pytest.mark.slow

PING_S = 2  # WebSocketPingInterval: a silent link is dead after 2 intervals + 10 s


def _proxy(port):
    import netproxy  # tools/ is on sys.path (ocpprig)

    return netproxy.ProxyThread("127.0.0.1", port).start()


def _connections(csms):
    return sum(1 for e in list(csms.events) if e["event"] == "connected")


def _reconnected(csms, before, timeout=45):
    """Wait until the charge point has opened a new connection to csms (and it is up)."""
    csms.wait_for(lambda: _connections(csms) > before and o.CP in csms.links, timeout)


def _values_flow(csms, tid, timeout=30):
    """Wait for two more MeterValues of the transaction: the link carries them again."""
    def count():
        return sum(1 for cp, p in list(csms.meter_values) if p.get("transactionId") == tid)

    n = count()
    csms.wait_for(lambda: count() >= n + 2, timeout)


@pytest.mark.parametrize("fresh", [False, True], ids=["dedupe", "fresh-ids"])
def test_drop_stall_reject_and_csms_restart_during_a_transaction(tmp_path, fresh):
    # fresh-ids: the CSMS gives every StartTransaction a new id (no dedupe), as OCPP.Core,
    # CitrineOS and open-ocpp do: exactly-once must hold without the CSMS's help
    log_path = str(tmp_path / "csms.jsonl")
    csms = CsmsThread(log=log_path, fresh_ids=fresh).start()
    csms_port = csms.port
    csms2 = None
    px = _proxy(csms_port)
    url = "ws://127.0.0.1:%d/" % px.port
    sim = o.start_sim(csms, ocpp={"url": url}).start(timeout=60)
    try:
        with o.report(sim, csms):
            o.booted(csms, timeout=60)
            o.configure(csms, "MeterValueSampleInterval", 1)
            o.configure(csms, "WebSocketPingInterval", PING_S)
            sim.do("plug", cable_a=32)
            sim.do("card", uid="CHAOS1")
            tx = o.wait_tx(csms, lambda t: t["idTag"] == "CHAOS1")
            o.wait_status(csms, "Charging")
            tid = tx["id"]
            sim.wait_for({"k": "contactor", "cmd": True}, 10)
            since = len(sim.obs)
            _values_flow(csms, tid)

            # (a) the server goes away: connections closed, new ones refused, for 3 s
            n = _connections(csms)
            mark = len(sim.obs)
            px.set_mode("drop")
            o.wait_log(sim, "link down", since=mark)
            time.sleep(3)
            px.set_mode("pass")
            _reconnected(csms, n)
            _values_flow(csms, tid)

            # (b) half-open: the proxy swallows every byte and closes nothing; the firmware
            # must find out by its own pings
            n = _connections(csms)
            mark = len(sim.obs)
            px.set_mode("stall")
            t0 = time.monotonic()
            o.wait_log(sim, "no answer for", timeout=4 * PING_S + 40, since=mark)
            stall_s = time.monotonic() - t0
            px.set_mode("pass")
            _reconnected(csms, n)
            _values_flow(csms, tid)

            # (c) refused: the connection is cut and every new one refused for 4 s
            n = _connections(csms)
            mark = len(sim.obs)
            px.set_mode("reject")
            px.cut()
            time.sleep(4)
            px.set_mode("pass")
            _reconnected(csms, n)
            _values_flow(csms, tid)
            downs = [x["msg"] for x in sim.obs[mark:] if x.get("k") == "log"
                     and "link down" in x["msg"]]
            assert any("refused" in m for m in downs[1:]), downs  # the cut, then refusals
        # (d) the CSMS restarts mid-transaction on the same port
        o.no_violations(csms)
        csms.stop()
        time.sleep(1.5)
        # the same CSMS (its database: the transactions) back on the same port
        csms2 = CsmsThread(port=csms_port, log=log_path, transactions=csms.transactions,
                           fresh_ids=fresh).start()
        with o.report(sim, csms2):
            csms2.wait_for(lambda: o.CP in csms2.links, 45)
            _values_flow(csms2, tid)
            since_stop = len(sim.obs)
            sim.do("unplug")
            csms2.wait_for(lambda: csms2.transactions.get(tid, {}).get("stop") is not None, 30)
            line = o.wait_log(sim, "stopped (EVDisconnected)", since=since_stop)["msg"]
            n = len(sim.obs)
            sim.do("stats")
            stats = sim.wait_for({"k": "stats"}, 10, since=n)
            closed_obs = sim.obs[since:since_stop]
    finally:
        sim.stop()
        px.stop()
        csms.stop()
        if csms2 is not None:
            csms2.stop()

    msgs = deliveries(read_log(log_path), csms.transactions)
    bad, txs = check_deliveries(msgs)
    assert not bad, bad[:10]
    assert list(txs) == [tid], txs.keys()
    t = txs[tid]
    retransmitted = sum(len(m["copies"]) - 1 for m in msgs)
    stamps = [mv["timestamp"] for p in t["values"] for mv in p["meterValue"]]
    gaps = [_seconds(b) - _seconds(a) for a, b in zip(stamps, stamps[1:])]
    print("chaos: %d MeterValues, %d retransmitted after a lost answer, longest gap "
          "between samples %d s, stall found dead after %.1f s, connections %d + %d, "
          "restarts %s" % (len(t["values"]), retransmitted, max(gaps), stall_s,
                           _connections(csms), _connections(csms2), stats["restarts"]))
    print("chaos: while refused:", downs)
    # nothing lost: the samples are taken every second whatever the link does
    assert gaps and max(gaps) <= 10, stamps
    assert stamps == sorted(stamps)
    # charging went on: the contactor was never commanded open before the unplug
    assert not [x for x in closed_obs if x.get("k") == "contactor" and x.get("cmd") is False]
    assert not any(stats["restarts"].values()), stats["restarts"]
    meter_stop = int(line.split("meterStop ")[1].split()[0])
    assert t["stops"][0]["meterStop"] == meter_stop
    assert t["stops"][0]["reason"] == "EVDisconnected"
    assert meter_stop >= max(_energy_values(t)) >= t["start"]["meterStart"]
    o.no_violations(csms2)


def _seconds(iso):
    import datetime

    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _energy_values(t):
    from test_ocpp_powercut import _energy

    return [_energy(mv) for p in t["values"] for mv in p["meterValue"]]
