"""Benchmark: the OCPP client's size, the whole firmware's heap with OCPP over TLS, and the
safety reaction while OCPP runs at full tilt (simulated wallbox + dev CSMS over wss://).

During the run the charge point sends MeterValues every second (sampled and clock-aligned),
the CSMS sends a full SendLocalList of SendLocalListMaxLength entries and a GetConfiguration
every few transitions, and the link is cut every 10 transitions so the TLS handshake runs
again. Reaction: the EV's C->B (S2 opens) to the contactor-open command on the device clock,
as tools/bench_core.py measures it. Heap: gc.mem_alloc after a collection every 20 ms (peak
live data) minus the code loaded at boot. One line per figure.

    python tools/bench_ocpp.py [--n 60]
"""
import argparse
import glob
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
import bench_core  # noqa: E402
import build  # noqa: E402
import certs  # noqa: E402
import simlib  # noqa: E402
from csms import CsmsThread  # noqa: E402


def mpy_sizes():
    out = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(out)
    if errors:
        raise SystemExit("mpy-cross failed: %s" % errors[:3])
    files = sorted(glob.glob(os.path.join(out, "firmware", "ocpp", "*.mpy")))
    files.append(os.path.join(out, "drivers", "rfid.mpy"))
    return {os.path.relpath(f, out): os.path.getsize(f) for f in files}


def run(n):
    d = tempfile.mkdtemp(prefix="bench-ocpp-")
    c = certs.make_certs(os.path.join(d, "certs"))
    shutil.copy(c["ca_pem"], os.path.join(d, "ca.pem"))
    t0 = time.time()
    with CsmsThread(cert=c["cert"], key=c["key"]) as csms:
        url = "wss://localhost:%d/" % csms.port
        cfg = dict(bench_core.CFG, free_vend=True,
                   ocpp={"url": url, "cp_id": "BENCH", "ca": "ca.pem"})
        sim = simlib.Sim(cfg, state_dir=d, heap_sampler=True).start()
        try:
            csms.wait_for(lambda: csms.accepted.get("BENCH") == "Accepted", 60)
            for key, v in (("MeterValueSampleInterval", "1"), ("ClockAlignedDataInterval", "1"),
                           ("WebSocketPingInterval", "5")):
                csms.call("BENCH", "ChangeConfiguration", {"key": key, "value": v})
            n_list = int(csms.call("BENCH", "GetConfiguration", {"key": [
                "SendLocalListMaxLength"]})["configurationKey"][0]["value"])
            sim.do("ev", auto=False)
            sim.do("plug")
            version = 1
            for k in range(n):
                bench_core._charge(sim)
                if k % 5 == 2:
                    version += 1
                    csms.call("BENCH", "SendLocalList", {
                        "listVersion": version, "updateType": "Full",
                        "localAuthorizationList": [
                            {"idTag": "TAG%05d" % (i + version), "idTagInfo": {
                                "status": "Accepted", "expiryDate": "2099-01-01T00:00:00Z"}}
                            for i in range(n_list)]}, timeout=60)
                    csms.call("BENCH", "GetConfiguration", {})
                if k % 10 == 9:
                    sim.do("net", state="down")
                    sim.do("net", state="up")  # the TLS handshake runs again
                i = len(sim.obs)
                sim.do("s2", closed=False)
                sim.wait_for(simlib.is_open_cmd, 10, since=i)
                time.sleep(1.0)
                bench_core._progress("c_to_b_ocpp", k + 1, n, t0)
            stats = bench_core._stats(sim)
            connects = sum(1 for o in sim.obs if o.get("k") == "log"
                           and "ocpp: connected" in o.get("msg", ""))
        finally:
            sim.stop()
        times = simlib.reactions_while_closed(sim.obs, simlib.is_s2_open)
        heap = next((o for o in sim.obs if o.get("k") == "heap"), {})
        mv = len(csms.meter_values)
        viol = len(csms.violations)
    shutil.rmtree(d, ignore_errors=True)
    return times, stats, heap, connects, mv, viol, n_list


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    a, _ = ap.parse_known_args()  # make bench passes every bench the same options
    sizes = mpy_sizes()
    names = ("ws", "wsframe", "rpc", "cp", "txn", "remote", "journal", "keys", "authlist",
             "smart", "smart_store", "schema", "schema16")
    each = tuple(sizes.get("firmware/ocpp/%s.mpy" % m, 0) for m in names)
    print("OCPP client .mpy: %d bytes in %d files (ws %d, wsframe %d, rpc %d, cp %d, txn %d, "
          "remote %d, journal %d, keys %d, authlist %d, smart %d+%d, schema %d+%d)" % (
              (sum(sizes.values()), len(sizes)) + each), flush=True)
    print("OCPP at full tilt over wss (%d transitions, ~%d s)" % (a.n, a.n * 1.5), flush=True)
    times, stats, heap, connects, mv, viol, n_list = run(a.n)
    if not times:
        print("C->B with OCPP: no data (the run failed)")
        sys.exit(1)
    bench_core.report("C->B, OCPP over TLS busy", times)
    print("heap with OCPP over TLS: code %d bytes, runtime peak %d bytes (target <= 32768); "
          "SendLocalList of %d entries, MeterValues every 1 s (%d received), %d TLS "
          "connects, %d CSMS violations" % (heap.get("code", -1), heap.get("runtime", -1),
                                             n_list, mv, connects, viol))
    lag = stats.get("lag") or {}
    print("loop lag with OCPP: %s" % ({k: v for k, v in stats.items() if k not in ("k", "t")},))
    del lag


if __name__ == "__main__":
    main()
