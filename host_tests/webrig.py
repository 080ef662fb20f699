"""Helpers for the web API tests: a simulated wallbox serving docs/api.md on 127.0.0.1 and a
small HTTP client that keeps the session cookie and the CSRF token, as a browser does."""
import json
import socket
import urllib.error
import urllib.request

import simlib
import simrig


def start(config=None, **kw):
    """A simulated wallbox with the web interface on an OS-chosen port (sim.http_port)."""
    port = simlib._free_port()
    cfg = dict(config or {})
    cfg["web"] = dict(cfg.get("web") or {}, host="127.0.0.1", port=port)
    sim = simrig.start(cfg, **kw)
    sim.http_port = port
    try:  # the web task listens once the scheduler runs it
        sim.wait_for(lambda o: o.get("k") == "log" and o["msg"].startswith("web: serving"), 10)
    except BaseException:
        sim.stop()
        raise
    return sim


class _From(urllib.request.HTTPHandler):
    """Connections from a given loopback address (127.0.0.2: another client on the LAN)."""

    def __init__(self, source):
        super().__init__()
        self.source = source

    def http_open(self, req):
        import functools
        import http.client

        return self.do_open(functools.partial(http.client.HTTPConnection,
                                              source_address=(self.source, 0)), req)


class Client:
    def __init__(self, port, source=None):
        self.base = "http://127.0.0.1:%d" % port
        self.port = port
        self.cookie = None
        self.csrf = None
        self.open = urllib.request.build_opener(_From(source)).open if source else \
            urllib.request.urlopen

    def call(self, method, path, body=None, headers=None, csrf=True):
        """(status, JSON answer or bytes)."""
        h = {}
        if self.cookie:
            h["Cookie"] = self.cookie
        if method == "POST" and csrf and self.csrf:
            h["X-CSRF-Token"] = self.csrf
        if body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        data = None if body is None else (body if type(body) is bytes else
                                          json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, headers=h, method=method)
        try:
            with self.open(req, timeout=10) as f:
                status, hdr, raw = f.status, f.headers, f.read()
        except urllib.error.HTTPError as e:
            status, hdr, raw = e.code, e.headers, e.read()
        c = hdr.get("Set-Cookie")
        if c:
            v = c.split(";")[0]
            self.cookie = None if v.endswith("=") else v
        if "json" in hdr.get("Content-Type", ""):
            ans = json.loads(raw)
            if type(ans) is dict and "csrf" in ans:
                self.csrf = ans["csrf"]
            return status, ans
        return status, raw

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)


def raw(port, data, timeout=10):
    """Send bytes on a fresh connection; everything the server answered before it closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        out = b""
        try:
            s.sendall(data)
            while True:
                d = s.recv(4096)
                if not d:
                    return out
                out += d
        except (ConnectionResetError, BrokenPipeError):  # closed with our bytes unread
            return out
    finally:
        s.close()
