"""The web interface's figures (docs/api.md "Measured"): the firmware alone on the unix port
(boards/sim/heapcheck.py --web: no simulator control channel), its web server on 127.0.0.1,
driven from here: heap idle and while serving, request latency of /api/status, hostile
clients (slowloris, many connections, header floods) cut off while the API keeps answering.

    .venv/bin/python tools/bench_web.py [--mp32] [--quick]

--mp32: the 32-bit measuring build (build/mp32/micropython, `make mp32`; MP32=path) for the
heap figure (the default where it exists). Also: the page weight, and the safety reaction
(C->B, the device's clock) on the simulator while 10 clients poll the API and one holds the
live stream (--quick leaves it out).
"""
import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simlib  # noqa: E402

MP32 = os.environ.get("MP32") or os.path.join(simlib.ROOT, "build", "mp32", "micropython")
PW = "bench password"


class Firmware:
    """heapcheck --web on a free port, holding hold_s seconds before its charging session."""

    def __init__(self, hold_s=10, exe=None):
        self.port = simlib._free_port()
        _, errors = simlib.build.compile_all(os.path.join(simlib.ROOT, "build", "mpy"))
        if errors:
            raise RuntimeError("\n".join(errors))
        self.dir = tempfile.mkdtemp(prefix="bench-web-")
        env = dict(os.environ, MICROPYPATH=os.pathsep.join(
            [os.path.join(simlib.ROOT, "build", "mpy"), ".frozen"]))
        self.proc = subprocess.Popen(
            [exe or simlib.micropython_exe(), "-m", "boards.sim.heapcheck", "--web",
             str(self.port), "--hold-s", str(hold_s)], cwd=self.dir, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if "web up" not in line:
            raise RuntimeError("the firmware did not start its web server: %s%s" % (
                line, self.proc.stdout.read()[-2000:]))

    def result(self, timeout=60):
        out = self.proc.communicate(timeout=timeout)[0]
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError("the firmware gave no result (exit %s):\n%s" % (
                self.proc.returncode, out[-3000:]))


def call(port, method, path, body=None, cookie=None, csrf=None, timeout=10):
    h = {"Content-Type": "application/json"}
    if cookie:
        h["Cookie"] = cookie
    if csrf:
        h["X-CSRF-Token"] = csrf
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as f:
            return f.status, f.headers, f.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def login(port):
    """(cookie, csrf) of the owner, setting the password on first use."""
    st, h, b = call(port, "POST", "/api/setup", {"password": PW})
    if st != 200:
        st, h, b = call(port, "POST", "/api/login", {"role": "owner", "password": PW})
    return h["Set-Cookie"].split(";")[0], json.loads(b)["csrf"]


def closed(s):
    try:
        return s.recv(10) == b""
    except ConnectionResetError:
        return True


def hostile(port, served=3):
    """Slowloris on more connections than are served at once (`served`: server.MAX_CONN),
    header floods: what happened to each."""
    out = {}
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(served + 3)]
    t0 = time.monotonic()
    at = [None] * len(idle)  # seconds until each was closed, in the order they came
    while None in at and time.monotonic() - t0 < 25:
        ready = select.select([s for s, x in zip(idle, at) if x is None], [], [], 0.5)[0]
        for s in ready:
            if closed(s):
                at[idle.index(s)] = time.monotonic() - t0
    out["slow_cut"] = sum(x is not None for x in at[:served])
    out["slow_cut_s"] = max(x or 0 for x in at[:served])
    # the others waited in the backlog for a slot, then had their own time for the headers
    out["waited"] = sum(x is not None and x > 4.5 for x in at[served:])
    out["waited_cut_s"] = max(x or 0 for x in at[served:])
    for s in idle:
        s.close()
    flood = b"GET /api/status HTTP/1.1\r\n" + b"X-B: b\r\n" * 200 + b"\r\n"
    out["flood"] = simlib_raw(port, flood)
    out["long_line"] = simlib_raw(port, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n")
    out["not_http"] = simlib_raw(port, b"\x16\x03\x01\x00\xa5\x01\x00\r\n\r\n")
    return out


def simlib_raw(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = b""
    try:
        s.sendall(data)
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return got


def latency(port, cookie, n=50, method="GET", path="/api/status", body=None, csrf=None):
    """Request times of one call, ms: (median, p99)."""
    ts = []
    for k in range(n):
        t = time.perf_counter()
        b = body(k) if callable(body) else body
        st, _, _ = call(port, method, path, b, cookie=cookie, csrf=csrf)
        ts.append((time.perf_counter() - t) * 1000)
        assert st == 200, (path, st)
    ts.sort()
    return ts[len(ts) // 2], ts[min(len(ts) - 1, len(ts) * 99 // 100)]


CALLS = [("GET", "/api/settings", None), ("POST", "/api/settings",  # saved to config.json
                                          lambda k: {"tz_offset_min": 60 * (k % 2)}),
         ("GET", "/api/diag", None)]


def largest_request(cookie, csrf):
    h = "".join("X-%02d: %s\r\n" % (i, "v" * 132) for i in range(27)).encode()
    body = json.dumps({"k%03d" % i: "v" * 12 for i in range(80)}).encode()
    return (b"POST /api/settings HTTP/1.1\r\nHost: wallbox\r\nCookie: " + cookie.encode() +
            b"\r\nX-CSRF-Token: " + csrf.encode() + b"\r\n" + h + b"Content-Length: " +
            str(len(body)).encode() + b"\r\n\r\n" + body)


def largest(port, cookie, csrf, clients=4, seconds=3.0):
    """`clients` threads sending the largest POST the guard lets through (32 header lines,
    3.9 KB of headers, a 1.9 KB body of 80 unknown settings: refused, each named) for
    `seconds`; the number of answers."""
    req = largest_request(cookie, csrf)
    n = [0]
    stop = time.monotonic() + seconds

    def run():
        while time.monotonic() < stop:
            try:
                if simlib_raw(port, req).startswith(b"HTTP/1.0 400"):
                    n[0] += 1
            except OSError:
                pass

    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return n[0]


def pollers(port, cookie, n=10, seconds=3.0):
    """n clients polling /api/status for `seconds`; the number of answers."""
    count = [0, 0]
    stop = time.monotonic() + seconds

    def run():
        while time.monotonic() < stop:
            try:
                if call(port, "GET", "/api/status", cookie=cookie)[0] == 200:
                    count[0] += 1
            except OSError:  # timed out waiting for a slot (the stack's backlog)
                count[1] += 1

    ts = [threading.Thread(target=run) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return count


def page_weight():
    """[(file, plain bytes, gzip bytes)] of the pages as the build copies them."""
    out = os.path.join(simlib.ROOT, "build", "mpy")
    return [(os.path.basename(p), os.path.getsize(os.path.join(out, p)),
             os.path.getsize(os.path.join(out, z))) for _, (p, z) in simlib.build.static_files()]


def reaction_while_polled(n=30, clients=10, big=False):
    """C->B reaction times (ms, the device's clock) of n openings of S2 on the simulator while
    `clients` threads poll /api/status (big: send the largest request the guard takes) and
    one holds the live stream."""
    import bench_core

    port = simlib._free_port()
    cfg = dict(bench_core.CFG, web={"host": "127.0.0.1", "port": port})
    stop = [False]
    answers = [0, 0]  # answered, cut off (big)
    with simlib.Sim(cfg).start() as sim:
        sim.wait_for(lambda o: o.get("k") == "log" and o["msg"].startswith("web: serving"), 10)
        cookie, csrf = login(port)
        req = largest_request(cookie, csrf)

        def poll():
            while not stop[0]:
                try:
                    if big:
                        got = simlib_raw(port, req)
                        answers[0] += got.startswith(b"HTTP/1.0 400")
                        answers[1] += got == b""
                    elif call(port, "GET", "/api/status", cookie=cookie)[0] == 200:
                        answers[0] += 1
                except OSError:
                    pass

        def stream():
            while not stop[0]:
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                    s.sendall(b"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " +
                              cookie.encode() + b"\r\n\r\n")  # (no Host: 403)
                    while not stop[0] and s.recv(4096):
                        pass
                    s.close()
                except OSError:
                    time.sleep(0.1)

        ts = [threading.Thread(target=poll) for _ in range(clients)]
        ts.append(threading.Thread(target=stream))
        for x in ts:
            x.start()
        try:
            sim.do("ev", auto=False)
            sim.do("plug")
            for _ in range(n):
                bench_core._charge(sim)
                i = len(sim.obs)
                sim.do("s2", closed=False)
                sim.wait_for(simlib.is_open_cmd, 10, since=i)
                time.sleep(1.0)  # re-close spacing
        finally:
            stop[0] = True
            for x in ts:
                x.join(10)
        r = sorted(simlib.reactions_while_closed(sim.obs, simlib.is_s2_open))
    return r, answers


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mp32", action="store_true", help="the 32-bit build (heap figure; the "
                    "default when build/mp32/micropython exists)")
    ap.add_argument("--quick", action="store_true", help="no reaction run on the simulator")
    a, _ = ap.parse_known_args()  # tools/bench.py hands its own arguments on
    a.mp32 = a.mp32 or os.path.exists(MP32)
    exe = MP32 if a.mp32 else None
    bits = "32-bit" if a.mp32 else "x64"
    idle = Firmware(hold_s=3, exe=exe).result()  # no client at all
    fw = Firmware(hold_s=3, exe=exe)
    cookie, csrf = login(fw.port)
    n_big = largest(fw.port, cookie, csrf)
    big = fw.result()
    fw = Firmware(hold_s=18, exe=exe)
    cookie, csrf = login(fw.port)
    med, p99 = latency(fw.port, cookie)
    calls = [(m, p) + latency(fw.port, cookie, 30, m, p, b, csrf) for m, p, b in CALLS]
    answers = pollers(fw.port, cookie)
    h = hostile(fw.port)
    res = fw.result()
    m = res["marks"]
    print("web: GET /api/status %.1f ms median, %.1f ms p99 (%s)" % (med, p99, bits))
    for verb, path, c50, c99 in calls:
        print("web: %s %s %.1f ms median, %.1f ms p99 (%s)" % (verb, path, c50, c99, bits))
    print("web: 10 clients polling for 3 s: %d answers, %d failed (3 connections served at "
          "once, the others wait in the backlog)" % (answers[0], answers[1]))
    print("web: hostile: %d of 3 slowloris cut in %.1f s, %d of 3 over the connection limit "
          "waited for a slot then cut in %.1f s, header flood / long line / not HTTP answered "
          "%d/%d/%d bytes" % (
              h["slow_cut"], h["slow_cut_s"], h["waited"], h["waited_cut_s"], len(h["flood"]),
              len(h["long_line"]), len(h["not_http"])))
    print("web: heap runtime peak %d B (code %d B), firmware built %d B, web idle %d B, "
          "session completed %s" % (res["runtime"], res["code"], m["firmware built"],
                                    m["web, idle"], res["completed"]))
    print("web: heap (%s) without a client: web idle %d B, runtime peak %d B through the "
          "session; 4 clients sending the largest request the guard takes (%d answers): "
          "runtime peak %d B" % (bits, idle["marks"]["web, idle"], idle["runtime"], n_big,
                                 big["runtime"]))
    pages = page_weight()
    for name, plain, gz in pages:
        print("web: page %s %d B (%d B gzipped, sent when the browser accepts gzip)" % (
            name, plain, gz))
    print("web: page weight %d B (%d B gzipped)" % (sum(x[1] for x in pages),
                                                   sum(x[2] for x in pages)))
    if not a.quick:
        r, answers = reaction_while_polled()
        print("web: C->B reaction while 10 clients poll /api/status and 1 holds /api/live: "
              "p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d openings, %d API answers)" % (
                  r[len(r) // 2], r[min(len(r) - 1, len(r) * 99 // 100)], r[-1], len(r),
                  answers[0]))
        r, answers = reaction_while_polled(clients=4, big=True)
        print("web: C->B reaction while 4 clients send the largest request and 1 holds "
              "/api/live: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d openings, %d answered, %d "
              "cut off as busy)" % (r[len(r) // 2], r[min(len(r) - 1, len(r) * 99 // 100)],
                                    r[-1], len(r), answers[0], answers[1]))


if __name__ == "__main__":
    main()
