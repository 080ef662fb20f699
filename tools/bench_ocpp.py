"""Benchmark: the OCPP client's size, the whole firmware's heap with OCPP over TLS, and the
safety reaction while OCPP runs at full tilt (simulated wallbox + dev CSMS over wss://).

During the run the charge point sends MeterValues every second (sampled and clock-aligned),
the CSMS sends a full SendLocalList of SendLocalListMaxLength entries and a GetConfiguration
every few transitions, and the link is cut every 10 transitions so the TLS handshake runs
again. Reaction: the EV's C->B (S2 opens) to the contactor-open command on the device clock,
as tools/bench_core.py measures it.

Heap (boards/sim/heapcheck.py: the firmware without the simulator's control channel): live
data after a collection every 10 ms, peak minus the code (every module imported first, as a
board has them frozen in flash). The session: a 500-message journal queued at boot and sent,
a car charging 15 s with MeterValues every second, two full SendLocalList of
SendLocalListMaxLength entries and a GetConfiguration from the CSMS, the link cut once (new
handshake), unplug, the journal empty again. Measured on the 64-bit unix port over wss (its
mbedTLS allocates from the GC heap) and, when build/mp32/micropython exists (make mp32), on a
32-bit build: an ESP32's word size, over ws (the ESP32 port's TLS buffers are in the IDF heap,
not the GC heap). One line per figure.

    python tools/bench_ocpp.py [--n 60]
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
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
    # only the .mpy of a source there now (build/mpy keeps those of removed modules)
    rels = [build.mpy_name(r) for r in build.device_files()
            if r.startswith(os.path.join("firmware", "ocpp") + os.sep)]
    rels.append(os.path.join("drivers", "rfid.mpy"))
    return {r: os.path.getsize(os.path.join(out, r)) for r in sorted(rels)}


# Issue 13's baseline (commit fa9e347, the same mpy-cross and flags): neither figure may grow
# by more than 5 %.
BASE_OCPP = 66596  # firmware/ocpp/*.mpy
BASE_CLIENT = 67022  # ... with drivers/rfid.mpy


def size_lines(sizes):
    """The two size figures against the baseline, then the largest files."""
    ocpp = sum(v for k, v in sizes.items() if k.startswith("firmware/ocpp/"))
    total = sum(sizes.values())
    out = []
    for what, now, base in (("firmware/ocpp", ocpp, BASE_OCPP),
                            ("firmware/ocpp + drivers/rfid", total, BASE_CLIENT)):
        out.append("OCPP client .mpy: {:,} B ({}; fa9e347: {:,} B, {:+.1f} %)".format(
            now, what, base, 100.0 * (now - base) / base))
    big = sorted(sizes.items(), key=lambda kv: -kv[1])
    out.append("  " + ", ".join("%s %d" % (os.path.basename(k)[:-4], v) for k, v in big))
    return out


MP32 = os.path.join(ROOT, "build", "mp32", "micropython")


def local_list(version, n):
    """SendLocalList's payload: a Full list of n accepted tags (their names shift with the
    version, so each list differs from the one before)."""
    return {"listVersion": version, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "TAG%05d" % (i + version), "idTagInfo": {
            "status": "Accepted", "expiryDate": "2099-01-01T00:00:00Z"}} for i in range(n)]}


def heap_host(csms, cp, sent, versions=(2, 3), wait_s=180, first=None, get_all=True):
    """The CSMS's side of a heapcheck session (a thread): once cp is booted, samples every
    second; once its two transactions (the offline one, the live one) arrived, first() if
    given, then for each of `versions` a full SendLocalList of SendLocalListMaxLength
    entries, each followed by a GetConfiguration of every key (get_all): the biggest CALL
    and the biggest answer. Appends the list's length to `sent` when done."""
    csms.wait_for(lambda: csms.accepted.get(cp) == "Accepted", 60)
    for key in ("MeterValueSampleInterval", "ClockAlignedDataInterval"):
        csms.call(cp, "ChangeConfiguration", {"key": key, "value": "1"})
    n = int(csms.call(cp, "GetConfiguration", {"key": ["SendLocalListMaxLength"]})[
        "configurationKey"][0]["value"])
    csms.wait_for(lambda: len(csms.transactions) >= 2, wait_s)
    if first is not None:
        first()
    for v in versions:
        csms.call(cp, "SendLocalList", local_list(v, n), timeout=60)
        if get_all:
            csms.call(cp, "GetConfiguration", {})
    sent.append(n)


def heap_run(tls, exe=None, journal=500, charge_s=15):
    """One heapcheck session against a dev CSMS that sends the big messages; its result."""
    d = tempfile.mkdtemp(prefix="bench-heap-")
    kw = {}
    if tls:
        c = certs.make_certs(os.path.join(d, "certs"))
        shutil.copy(c["ca_pem"], os.path.join(d, "ca.pem"))
        kw = dict(cert=c["cert"], key=c["key"])
    cp = "HEAP"
    try:
        with CsmsThread(**kw) as csms:
            url = ("wss://localhost:%d/" if tls else "ws://127.0.0.1:%d/") % csms.port
            sent = []
            t = threading.Thread(target=heap_host, args=(csms, cp, sent), daemon=True)
            t.start()
            args = ["--ocpp", url, "--journal", str(journal), "--charge-s", str(charge_s),
                    "--relink"]
            if tls:
                args += ["--ca", "ca.pem"]
            ok, res = bench_core.heapcheck(args=args, cwd=d, timeout=600, exe=exe)
            t.join(5)
            res = dict(res or {}, ok=ok and bool(sent), list_n=sent[0] if sent else 0,
                       violations=len(csms.violations))
            return res
    finally:
        shutil.rmtree(d, ignore_errors=True)


def heap_lines():
    res = heap_run(True)
    print("heap, 64-bit unix port, wss (mbedTLS in the GC heap): code %d bytes, runtime peak %d "
          "bytes (connected idle %s); %d-message journal, SendLocalList of %d, %s" % (
              res.get("code", -1), res.get("runtime", -1),
              res.get("marks", {}).get("connected, idle"), res.get("journal_at_boot", 0),
              res["list_n"], "completed" if res["ok"] else "FAILED %r" % (res,)), flush=True)
    if not os.path.exists(MP32):
        print("heap, 32-bit build: skipped (no build/mp32/micropython: make mp32 MPY_DIR=...)")
        return
    res = heap_run(False, exe=MP32)
    print("heap, 32-bit build (ESP32 word size; TLS outside the GC heap as on ESP32): code %d "
          "bytes, runtime peak %d bytes (target <= 32768; connected idle %s); %d-message "
          "journal, SendLocalList of %d, %s" % (
              res.get("code", -1), res.get("runtime", -1),
              res.get("marks", {}).get("connected, idle"), res.get("journal_at_boot", 0),
              res["list_n"], "completed" if res["ok"] else "FAILED %r" % (res,)), flush=True)


def run(n):
    d = tempfile.mkdtemp(prefix="bench-ocpp-")
    c = certs.make_certs(os.path.join(d, "certs"))
    shutil.copy(c["ca_pem"], os.path.join(d, "ca.pem"))
    t0 = time.time()
    with CsmsThread(cert=c["cert"], key=c["key"]) as csms:
        url = "wss://localhost:%d/" % csms.port
        cfg = dict(bench_core.CFG, free_vend=True,
                   ocpp={"url": url, "cp_id": "BENCH", "ca": "ca.pem"})
        sim = simlib.Sim(cfg, state_dir=d).start()
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
                    csms.call("BENCH", "SendLocalList", local_list(version, n_list), timeout=60)
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
        mv = len(csms.meter_values)
        viol = len(csms.violations)
    shutil.rmtree(d, ignore_errors=True)
    return times, stats, connects, mv, viol, n_list


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    a, _ = ap.parse_known_args()  # make bench passes every bench the same options
    for line in size_lines(mpy_sizes()):
        print(line, flush=True)
    print("OCPP at full tilt over wss (%d transitions, ~%d s)" % (a.n, a.n * 1.5), flush=True)
    heap_lines()
    times, stats, connects, mv, viol, n_list = run(a.n)
    if not times:
        print("C->B with OCPP: no data (the run failed)")
        sys.exit(1)
    bench_core.report("C->B, OCPP over TLS busy", times)
    print("OCPP load during it: SendLocalList of %d entries, MeterValues every 1 s (%d "
          "received), %d TLS connects, %d CSMS violations" % (n_list, mv, connects, viol))
    lag = stats.get("lag") or {}
    print("loop lag with OCPP: %s" % ({k: v for k, v in stats.items() if k not in ("k", "t")},))
    del lag


if __name__ == "__main__":
    main()
