"""Certification cases against the answer styles of real central systems: a representative
subset of test_ocpp_sim.py and test_ocpp_cases.py runs with the dev CSMS answering as SteVe,
OCPP.Core, CitrineOS, open-ocpp, the mobilityhouse examples or the hostile style
(tools/csms_styles.py; docs/ocpp.md, "How real central systems answer"). The case functions
are the same ones; only the CSMS's style changes (ocprig.STYLE, what every CsmsThread a test
starts without naming a style uses).

Three firmware faults these styles found were fixed on branch ocpptx (issue 13): OCPP.Core's
expiryDate 2199 on every StartTransaction.conf (the Start was sent again forever, a new id
each time), the hostile style's empty or non-ASCII parentIdTag (Authorize "deciding
offline"), and the naive style's zone-less currentTime (the charge point never booted)."""
import inspect
import os
import sys

import pytest
import test_ocpp_cases as cases
import test_ocpp_sim as sim

import ocpprig as o

pytestmark = pytest.mark.slow
SIM_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                      "sim.py")

CASES = {
    "cold-boot-card": sim.test_cold_boot_then_plug_and_card,
    "link-loss-order": sim.test_connection_loss_during_a_transaction_delivers_in_order,
    "power-loss": sim.test_power_cut_during_a_transaction_ends_it_with_power_loss,
    "remote-start-stop": sim.test_remote_start_and_stop,
    "offline-stop-order": cases.test_offline_stop_arrives_after_the_reconnect_in_order,
    "hard-reset": cases.test_hard_reset_during_a_transaction_stops_it_then_reboots,
    "cached-id": cases.test_cached_id_authorises_offline_until_clear_cache,
}
PLAN = [(style, case) for style in ("steve", "ocppcore", "citrineos", "openocpp", "hostile")
        for case in ("cold-boot-card", "link-loss-order", "power-loss")]
PLAN += [("fresh", "power-loss"), ("naive", "cold-boot-card"),
         ("citrineos", "remote-start-stop"), ("hostile", "remote-start-stop"),
         ("hostile", "offline-stop-order"), ("ocppcore", "offline-stop-order"),
         ("steve", "offline-stop-order"), ("openocpp", "hard-reset"),
         ("hostile", "cached-id"), ("ocppcore", "cached-id")]
PARAMS = [pytest.param(s, c, id="%s-%s" % (s, c)) for s, c in PLAN]


@pytest.mark.parametrize("style,case", PARAMS)
def test_certification_case_against_a_real_csms_style(style, case, monkeypatch, tmp_path):
    monkeypatch.setattr(o, "STYLE", style)
    fn = CASES[case]
    args = {"tmp_path": tmp_path}
    with o.CsmsThread() as csms:
        assert csms.style.name == style
        kw = {name: (csms if name == "csms" else args[name])
              for name in inspect.signature(fn).parameters}
        fn(**kw)  # a case without a csms parameter starts its own, in the same style
        o.no_violations(csms)



@pytest.mark.parametrize("fresh", [False, True], ids=["dedupe", "fresh-ids"])
def test_a_start_whose_answer_is_lost_goes_again_and_the_id_that_arrived_is_used(fresh):
    # The CSMS records the first StartTransaction, then the link drops before its answer
    # leaves. The charge point must send it again after the reconnect and use the id of the
    # answer it got: with fresh ids that is a second transaction, and the first stays open
    # at the CSMS with nothing in it (OCPP 1.6 gives the charge point no way to know it).
    with o.CsmsThread(style="dev", fresh_ids=fresh,
                      lose_answers={"StartTransaction": 1}) as csms:
        with o.start_sim(csms) as simulator, o.report(simulator, csms):
            o.booted(csms)
            o.configure(csms, "MeterValueSampleInterval", 1)
            simulator.do("plug", cable_a=32)
            simulator.do("card", uid="LOST1")
            csms.wait_for(lambda: len(csms.starts) >= 2, 60)
            o.wait_status(csms, "Charging")
            o.sleep(2)  # a few samples
            simulator.do("unplug")
            o.wait_tx(csms, lambda t: t["stop"] is not None, 30)
        o.no_violations(csms)
    assert [e["action"] for e in csms.events if e["event"] == "answer_lost"] == [
        "StartTransaction"]
    first, second = csms.starts[0], csms.starts[1]
    assert first[1] == second[1] and len(csms.starts) == 2  # the same message, sent twice
    assert (first[2] != second[2]) == fresh
    stopped = [t for t in csms.transactions.values() if t["stop"] is not None]
    assert [t["id"] for t in stopped] == [second[2]]
    samples = [p["transactionId"] for cp, p in csms.meter_values if "transactionId" in p]
    assert samples and set(samples) == {second[2]}
    if fresh:
        orphan = csms.transactions[first[2]]
        assert orphan["stop"] is None and orphan["meter_values"] == []
    assert len(csms.transactions) == (2 if fresh else 1)


def test_sim_cli_with_state_keeps_the_dev_csms_transactions_across_runs(tmp_path):
    # tools/sim.py --state DIR: the device's journal outlives the run, so the dev CSMS's
    # transactions must too (DIR.csms.json): the Stop of a transaction left open in the
    # first run reaches the second run's CSMS, which knows its id (no violation, exit 0).
    import json
    import subprocess

    cfg = {"rating_a": 32, "max_current_a": 16, "connector": "type2_socket"}
    first = {"description": "a transaction open when the run ends", "config": cfg,
             "steps": [{"at_ms": 500, "do": "plug", "cable_a": 32},
                       {"wait": {"status": "Charging"}, "timeout_ms": 30000}],
             "end_after_ms": 1500}
    second = {"description": "boot again", "config": cfg,
              "steps": [{"at_ms": 6000, "do": "stats"}], "end_after_ms": 500}
    state = tmp_path / "state"
    outs = []
    for k, sc in enumerate((first, second)):
        path = tmp_path / ("sc%d.json" % k)
        path.write_text(json.dumps(sc))
        r = subprocess.run([sys.executable, SIM_PY, "--scenario", str(path), "--state",
                            str(state), "--source"], capture_output=True, text=True,
                           timeout=180)
        outs.append(r)
        assert r.returncode == 0, (k, r.stdout[-2000:], r.stderr[-2000:])
    db = json.loads((tmp_path / "state.csms.json").read_text())
    assert len(db) == 1, db
    tx = next(iter(db.values()))
    assert tx["stop"] is not None and tx["stop"]["reason"] == "PowerLoss", (tx, outs[1].stdout)
