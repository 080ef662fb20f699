"""Benchmark of firmware updates (docs/ota.md, issue 18): one line per figure.

1. The real sim firmware's bundle (tools/bundle.py: every .mpy of the board, RSA-3072-PSS as
   `make keys` makes) and its size.
2. On the unix port (tools/ota_bench_rig.py): download it from a local HTTP server, then
   check and install it into a slot (firmware/ota/download.py, slots.py), device clock;
   the signature check alone (median of 11).
3. Heap during the update on the 32-bit build (build/mp32/micropython, or /work/main's):
   live data above what was there before, every update module imported first, sampled
   during the download and the install (tools/ota_bench_rig.py --heap).
4. The safety reaction while a bundle downloads: the simulated wallbox charges, the dev CSMS
   sends UpdateFirmware, the bundle comes in bursts (so that the download lasts the whole
   run) and the EV opens S2 N times; C->B to the contactor-open command on the device clock,
   counted only while the download runs (between the device's Downloading and downloaded).
5. From a failed trial boot to the old firmware running again: a new firmware that crashes
   at import is installed; the next start (the reset after the crash) is timed from the
   process start to the controller's first step ("ready"), against a plain boot.

    python tools/bench_ota.py [--n 40]
"""
import argparse
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "host_tests"))
sys.path.insert(0, ROOT)
import bench_core  # noqa: E402
import bench_ocpp  # noqa: E402
import bundle as tool  # noqa: E402
import simlib  # noqa: E402

MP32 = [os.path.join(ROOT, "build", "mp32", "micropython"),
        "/work/main/build/mp32/micropython"]


class Server:
    """Serves one body at /b (Content-Length) on 127.0.0.1; burst bytes every gap_s when
    paced, else at once."""

    def __init__(self, body, burst=None, gap_s=0.0):
        srv = self
        self.body = body

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(srv.body)))
                self.end_headers()
                if burst is None:
                    self.wfile.write(srv.body)
                    return
                for i in range(0, len(srv.body), burst):
                    self.wfile.write(srv.body[i:i + burst])
                    self.wfile.flush()
                    time.sleep(gap_s)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/b" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def real_bundle(key, march="x64", version="0.9.0"):
    files = tool.firmware_files("sim", march)
    return files, tool.make_bundle(key, files, version, "sim")


def rig(exe, data, key, heap=False):
    """One tools/ota_bench_rig.py run; its JSON result."""
    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = tool.build.compile_all(mpy_dir)
    if errors:
        raise SystemExit("mpy-cross failed: %s" % errors[:3])
    d = tempfile.mkdtemp(prefix="bench-ota-")
    srv = Server(data)
    try:
        with open(os.path.join(d, "keys.json"), "w") as f:
            json.dump({"keys": [tool.public_json(key)]}, f)
        env = dict(os.environ, MICROPYPATH=mpy_dir + os.pathsep + ".frozen")
        args = [exe, os.path.join(HERE, "ota_bench_rig.py"), srv.url] + (
            ["--heap"] if heap else [])
        r = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True, timeout=300)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise SystemExit("ota_bench_rig failed:\n%s%s" % (r.stdout[-2000:],
                                                              r.stderr[-2000:]))
    finally:
        srv.close()
        shutil.rmtree(d, ignore_errors=True)


def times_lines(key):
    files, data = real_bundle(key)
    mlen = int.from_bytes(data[7:11], "big")
    print("bundle: sim firmware, %d files, %d bytes of .mpy; bundle %d bytes (manifest %d, "
          "RSA-3072-PSS signature %d)" % (len(files), sum(len(b) for _, b in files),
                                           len(data), mlen, int.from_bytes(
                                               data[11 + mlen:13 + mlen], "big")), flush=True)
    runs = [rig(simlib.micropython_exe(), data, key) for _ in range(3)]
    dl = statistics.median(r["download_ms"] for r in runs)
    inst = statistics.median(r["install_ms"] for r in runs)
    ver = statistics.median(statistics.median(r["verify_us"]) for r in runs)
    print("update on the x64 unix port (median of 3): download %d ms (%d bytes, local HTTP), "
          "check + install into a slot %d ms (%d files), total %d ms" % (
              dl, runs[0]["size"], inst, runs[0]["files"], dl + inst), flush=True)
    print("signature check, RSA-%d-PSS: median %.2f ms (of 11, x64 unix port)" % (
        runs[0]["key_bits"], ver / 1000), flush=True)


def heap_line(key):
    exe = next((p for p in MP32 if os.path.exists(p)), None)
    if exe is None:
        print("heap during an update, 32-bit build: skipped (no build/mp32/micropython: make "
              "mp32 MPY_DIR=...)")
        return
    _, data = real_bundle(key, "x86")
    r = rig(exe, data, key, heap=True)
    print("heap during an update, 32-bit build: download peak %d bytes, check + install peak "
          "%d bytes above the idle heap (%d-byte bundle, %d files)" % (
              r["heap_download"], r["heap_install"], r["size"], r["files"]), flush=True)


def whole_heap_line(key):
    """The whole firmware (boards/sim/heapcheck.py --ota, 32-bit build, OCPP over ws) while
    the CSMS's load of tools/bench_ocpp.py runs and an UpdateFirmware comes when charging
    starts: the bundle downloads while the car charges and installs after it left. Its last
    file is corrupted, so the whole bundle is checked and unpacked and then refused
    (InstallationFailed, no restart: the run goes on to its end)."""
    from certs import make_certs  # noqa: F401 (host_tests on the path)
    from csms import CsmsThread

    exe = next((p for p in MP32 if os.path.exists(p)), None)
    if exe is None:
        print("heap, whole firmware with an update, 32-bit build: skipped (no mp32)")
        return
    _, data = real_bundle(key, "x86")
    data = bytearray(data)
    data[-3] ^= 1
    srv = Server(bytes(data))
    d = tempfile.mkdtemp(prefix="bench-ota-heap-")
    cp = "HEAP"
    try:
        with open(os.path.join(d, "ota_keys.json"), "w") as f:
            json.dump({"keys": [tool.public_json(key)]}, f)
        with CsmsThread() as csms:
            sent = []

            def update():  # before the two lists: the bundle downloads while they come
                csms.call(cp, "UpdateFirmware", {"location": srv.url,
                                                 "retrieveDate": "2020-01-01T00:00:00Z"})

            t = threading.Thread(target=bench_ocpp.heap_host, args=(csms, cp, sent),
                                 kwargs=dict(first=update, get_all=False), daemon=True)
            t.start()
            ok, res = bench_core.heapcheck(args=[
                "--ocpp", "ws://127.0.0.1:%d/" % csms.port, "--journal", "500",
                "--charge-s", "15", "--relink", "--ota"], cwd=d, timeout=600, exe=exe)
            t.join(5)
            fsn = _fsn(csms)
    finally:
        srv.close()
        shutil.rmtree(d, ignore_errors=True)
    res = res or {}
    good = ok and fsn == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    print("heap, whole firmware with an update, 32-bit build: code %d bytes, runtime peak %d "
          "bytes (target <= 32768); 500-message journal, SendLocalList of %d, the bundle "
          "downloaded while charging and unpacked after; %s" % (
              res.get("code", -1), res.get("runtime", -1), sent[0] if sent else 0,
              "completed %s" % fsn if good else "FAILED %r %r" % (fsn, res)), flush=True)


def _logs_at(obs, words):
    return [o["t"] for o in obs if o.get("k") == "log" and words in o.get("msg", "")]


def reaction_line(key, n):
    from csms import CsmsThread

    _, data = real_bundle(key)
    per_s = len(data) / (n * 1.3 + 10)  # the download lasts the whole run
    burst = 4096
    srv = Server(data, burst=burst, gap_s=burst / per_s)
    d = tempfile.mkdtemp(prefix="bench-ota-sim-")
    try:
        with open(os.path.join(d, "ota_keys.json"), "w") as f:
            json.dump({"keys": [tool.public_json(key)]}, f)
        with CsmsThread() as csms:
            cfg = dict(bench_core.CFG, free_vend=True, ocpp={
                "url": "ws://127.0.0.1:%d/" % csms.port, "cp_id": "BENCH"})
            with simlib.Sim(cfg, state_dir=d) as sim:
                csms.wait_for(lambda: csms.accepted.get("BENCH") == "Accepted", 60)
                sim.do("ev", auto=False)
                sim.do("plug")
                i0 = len(sim.obs)
                csms.call("BENCH", "UpdateFirmware", {
                    "location": srv.url, "retrieveDate": "2020-01-01T00:00:00Z"})
                csms.wait_for(lambda: "Downloading" in _fsn(csms), 10)
                start = sim.obs[i0]["t"] if len(sim.obs) > i0 else 0
                t0 = time.time()
                for k in range(n):
                    bench_core._charge(sim)
                    i = len(sim.obs)
                    sim.do("s2", closed=False)
                    sim.wait_for(simlib.is_open_cmd, 10, since=i)
                    time.sleep(1.0)
                    bench_core._progress("c_to_b_ota", k + 1, n, t0)
                sim.wait_for(lambda o: o.get("k") == "log" and "ota: downloaded" in o.get(
                    "msg", ""), 120)
                obs = list(sim.obs)
            fsn = _fsn(csms)
    finally:
        srv.close()
        shutil.rmtree(d, ignore_errors=True)
    end = _logs_at(obs, "ota: downloaded")[0]
    inside = [o for o in obs if start <= o.get("t", -1) <= end]
    times = simlib.reactions_while_closed(inside, simlib.is_s2_open)
    if not times:
        print("C->B while downloading: no data (the run failed)")
        sys.exit(1)
    bench_core.report("C->B, bundle downloading", times)
    print("download during it: %d bytes in %.1f s of device time (%d-byte bursts), "
          "statuses %s" % (len(data), (end - start) / 1000, burst, fsn), flush=True)


def _fsn(csms):
    return [p["status"] for _, a, p in list(csms.notifications)
            if a == "FirmwareStatusNotification"]


def rollback_line(key):
    import io

    import simrig
    if "micropython" not in sys.modules:  # the device code's const() on CPython
        import types
        shim = types.ModuleType("micropython")
        shim.const = lambda x: x
        sys.modules["micropython"] = shim
    from firmware.ota import rsa, slots

    d = tempfile.mkdtemp(prefix="bench-ota-rb-")
    cfg = dict(simrig.BASE_CONFIG)
    files = dict(tool.firmware_files("sim", "x64"))
    files["boards/sim/main.mpy"] = _crash_main(d)
    keys = [rsa.key_from_json(tool.public_json(key))]
    running = {"version": "0.8.0", "board": "sim", "mpy": 6 | 3 << 8 | 2 << 10, "hw": 1}
    plain, back, total = [], [], []
    try:
        for k in range(5):  # interleaved, so that the machine's load hits both alike
            t0 = time.monotonic()
            sim = simlib.Sim(cfg, state_dir=d).start()
            plain.append((time.monotonic() - t0) * 1000)
            sim.stop()
            data = tool.make_bundle(key, sorted(files.items()), "0.9.%d" % (k + 1), "sim")
            cwd = os.getcwd()
            os.chdir(d)
            try:
                slots.install(io.BytesIO(data), keys, running, min_s=1, limit_s=20)
            finally:
                os.chdir(cwd)
            t0 = time.monotonic()
            try:
                simlib.Sim(cfg, state_dir=d).start(timeout=10)
            except RuntimeError:
                pass  # the trial crashes at import: the board resets
            t1 = time.monotonic()
            sim = simlib.Sim(cfg, state_dir=d).start()
            t2 = time.monotonic()
            back.append((t2 - t1) * 1000)
            total.append((t2 - t0) * 1000)
            ok = any("rolled back" in o.get("msg", "") for o in sim.obs if o.get("k") == "log")
            sim.stop()
            if not ok:
                print("rollback: the old firmware did not say it rolled back (FAILED)")
                sys.exit(1)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("failed trial -> old firmware running: %d ms from the trial's start (it crashes at "
          "import) to the old firmware's controller stepping, of which the rollback boot %d ms "
          "(a plain boot: %d ms); median of 5, wall clock, unix port. A hang adds the "
          "watchdog's timeout, a failed health check its limit_s" % (
              statistics.median(total), statistics.median(back), statistics.median(plain)),
          flush=True)


def _crash_main(d):
    src = os.path.join(d, "crash_src.py")
    out = os.path.join(d, "crash.mpy")
    with open(src, "w") as f:
        f.write('raise RuntimeError("the new firmware crashes")\n')
    subprocess.run([tool.build.mpy_cross(), "-s", "boards/sim/main.py", "-o", out, src],
                   check=True)
    with open(out, "rb") as f:
        data = f.read()
    os.remove(src)
    os.remove(out)
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    a, _ = ap.parse_known_args()  # make bench passes every bench the same options
    key = tool.new_key(3072)
    times_lines(key)
    heap_line(key)
    whole_heap_line(key)
    rollback_line(key)
    reaction_line(key, a.n)


if __name__ == "__main__":
    main()
