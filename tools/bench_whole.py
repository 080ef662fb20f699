"""Benchmark: the whole firmware's heap with every interface running (issue 19's budget: the
32-bit runtime heap with the web server and MQTT stays within 48 KB).

One session of boards/sim/heapcheck.py (the firmware without the simulator's control channel,
every module imported before "code" is taken, as a board has them frozen in flash) with
OCPP over ws to the dev CSMS (a 20-message offline transaction at boot, meter values every
second, a full SendLocalList, GetConfiguration), MQTT to a local mosquitto (discovery,
measurements every second) and the web server busy for the whole session: 3 host clients
polling /api/status and one holding /api/live. The peak is live data after a collection,
sampled every 10 ms; runtime = peak - code (and the qstr pool made ahead: heapcheck.py).

    .venv/bin/python tools/bench_whole.py [--x64]

On build/mp32/micropython (make mp32: an ESP32's word size) where it exists.
"""
import argparse
import os
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_core  # noqa: E402
import bench_ocpp  # noqa: E402
import bench_web  # noqa: E402
import simlib  # noqa: E402
from csms import CsmsThread  # noqa: E402
from mqtt_broker import MOSQUITTO, Broker  # noqa: E402

MP32 = os.environ.get("MP32") or os.path.join(simlib.ROOT, "build", "mp32", "micropython")
BUDGET = 48 * 1024
PW = bench_web.PW


def _web_clients(port, stop, answers, n=4):
    """Log in once the server answers, then n-1 pollers of /api/status and one live stream."""
    cookie = None
    while cookie is None and not stop.is_set():
        try:
            st, h, _ = bench_web.call(port, "POST", "/api/setup", {"password": PW}, timeout=5)
            if st != 200:
                st, h, _ = bench_web.call(port, "POST", "/api/login",
                                          {"role": "owner", "password": PW}, timeout=5)
            if st == 200:
                cookie = h["Set-Cookie"].split(";")[0]
        except OSError:
            time.sleep(0.2)

    def poll():
        while not stop.is_set():
            try:
                if bench_web.call(port, "GET", "/api/status", cookie=cookie, timeout=5)[0] == 200:
                    answers[0] += 1
            except Exception:  # cut off (the guard's limits) or refused: try again
                time.sleep(0.05)

    def live():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(b"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " +
                          cookie.encode() + b"\r\n\r\n")
                while not stop.is_set() and s.recv(4096):
                    answers[1] += 1  # pieces of the stream received
                s.close()
            except OSError:
                time.sleep(0.1)

    ts = [threading.Thread(target=poll, daemon=True) for _ in range(n - 1)]
    if n:
        ts.append(threading.Thread(target=live, daemon=True))
    for t in ts:
        t.start()
    return ts


def run(exe=None, journal=20, charge_s=8, clients=4):
    """One session with OCPP, MQTT and the web server; heapcheck's result and host figures."""
    d = tempfile.mkdtemp(prefix="bench-whole-")
    cp = "HEAP"
    stop = threading.Event()
    answers = [0, 0]
    sent = []
    broker = Broker(d).start()
    try:
        with CsmsThread() as csms:
            web = simlib._free_port()
            # one SendLocalList (bench_ocpp's session sends two)
            t = threading.Thread(target=bench_ocpp.heap_host, args=(csms, cp, sent, (2,), 120),
                                 daemon=True)
            t.start()
            clients = _web_clients_async(web, stop, answers, clients)
            args = ["--ocpp", "ws://127.0.0.1:%d/" % csms.port, "--journal", str(journal),
                    "--charge-s", str(charge_s), "--mqtt", "127.0.0.1:%d" % broker.port,
                    "--web", str(web)]
            ok, res = bench_core.heapcheck(args=args, cwd=d, timeout=300, exe=exe)
            stop.set()
            t.join(5)
            clients.join(5)
            return dict(res or {}, ok=ok and bool(sent), list_n=sent[0] if sent else 0,
                        answers=answers[0], live=answers[1])
    finally:
        stop.set()
        broker.stop()


def _web_clients_async(port, stop, answers, n):
    def go():
        for t in _web_clients(port, stop, answers, n):
            t.join()

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--x64", action="store_true", help="the 64-bit unix port, not build/mp32")
    a, _ = ap.parse_known_args()  # tools/bench.py hands its own arguments on
    if MOSQUITTO is None:
        print("whole firmware: skipped (no mosquitto: tools/setup.sh installs it)")
        return
    exe = None if a.x64 or not os.path.exists(MP32) else MP32
    res = run(exe=exe, clients=int(os.environ.get("CLIENTS", "4")))
    m = res.get("marks", {})
    print("whole firmware (OCPP over ws, MQTT publishing, web: 3 clients polling /api/status, "
          "1 holding /api/live), %s: "
          "runtime peak %d B (budget %d B: %s), code %d B; MQTT idle %s B, OCPP idle %s B, "
          "web idle %s B, charging %s B; %d API answers, %d live events; statuses %s" % (
              "32-bit" if exe else "64-bit", res.get("runtime", -1), BUDGET,
              "within" if 0 < res.get("runtime", -1) <= BUDGET else "OVER",
              res.get("code", -1), m.get("mqtt connected, idle"), m.get("connected, idle"),
              m.get("web, idle"), m.get("charging"), res["answers"], res["live"],
              res.get("statuses")), flush=True)
    if not res["ok"]:
        print("whole firmware: FAILED %r" % (res,))
        sys.exit(1)


if __name__ == "__main__":
    main()
