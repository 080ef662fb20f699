# The JSON API and the pages (docs/api.md) on microdot. Every /api route but the session,
# login and first-use setup needs a session cookie; every POST also needs the session's CSRF
# token in the X-CSRF-Token header and, when the browser sends an Origin, the box's own.
import json

from microdot import Microdot, Request, Response

from firmware.owner.settings import SettingsError
from firmware.ticks import ticks_diff, ticks_ms
from firmware.web import server
from firmware.web.auth import INSTALLER, OWNER, AuthError, same


COOKIE = "wb"
_OPEN = ("/api/session", "/api/login", "/api/setup")
_LIVE_MS = const(1000)  # the live stream's period
_FRESH_MS = const(250)  # a status text this young is served again
_LIVE_N = const(55)  # events per stream (then the browser reconnects: CONN_MS bounds it)
_TYPES = {"html": "text/html", "js": "application/javascript", "css": "text/css",
          "png": "image/png", "svg": "image/svg+xml"}


_JSON_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}


class Routes(Microdot):
    """microdot's app with its routes in two dicts (GET, POST) keyed by the path, and one
    trailing <name> argument per prefix: microdot keeps a URL pattern per route and compiles
    a regular expression for each on first use, then tries them in turn for every request
    (4.4 KB with the app for the 13 routes on the 32-bit build, 1.1 KB this way). HEAD is
    answered as GET (without the body), any other method 405."""

    def __init__(self):
        super().__init__()
        self.gets = {}
        self.posts = {}
        self.prefixed = []  # (prefix, argument name, handler)

    def route(self, url_pattern, methods=None):
        def add(f):
            i = url_pattern.find("<")
            for m in methods or ("GET",):
                if i >= 0:  # "/static/<name>": one argument, at the end
                    self.prefixed.append((url_pattern[:i], url_pattern[i + 1:-1], f))
                else:
                    (self.posts if m == "POST" else self.gets)[url_pattern] = f
            return f

        return add

    def find_route(self, req):
        m = req.method
        p = req.path
        req.url_args = _NO_ARGS
        f = self.gets.get(p) if m in ("GET", "HEAD") else (
            self.posts.get(p) if m == "POST" else None)
        if f is None and m in ("GET", "HEAD"):
            for pre, name, h in self.prefixed:
                if p.startswith(pre) and "/" not in p[len(pre):] and len(p) > len(pre):
                    req.url_args = {name: p[len(pre):]}
                    f = h
                    break
        if f is None:
            f = 405 if p in self.gets or p in self.posts else 404
        return f, "", None


_NO_ARGS = {}  # a route without arguments (never changed: microdot only reads it)


def _json(obj, status=200, headers=None):
    h = dict(_JSON_HEADERS)
    if headers:
        h.update(headers)
    return Response(json.dumps(obj), status, h)


def _err(msg, status):
    return _json({"error": msg}, status)


def local_host(host):
    """True for a Host header a browser sends to the box itself: an IPv4 address, a LAN name
    without a dot, or a .local name (mDNS), each with an optional port. A public domain name
    is what a DNS-rebinding page would send: refused (before the owner's password is set too,
    when such a page could otherwise set it)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if not name or len(name) > 63:
        return False
    parts = name.split(".")
    if len(parts) == 4 and all(x.isdigit() and len(x) <= 3 for x in parts):
        return True
    return "." not in name or name.endswith(".local")


_LIVE_HEAD = (b"HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n"
              b"cache-control: no-store\r\n\r\n")


async def _send(w, status, body):
    """A JSON answer, as microdot writes one (its reason phrase: OK or N/A)."""
    await w.awrite(b"HTTP/1.0 %d %s\r\ncontent-type: application/json\r\ncache-control: "
                   b"no-store\r\ncontent-length: %d\r\n\r\n" % (
                       status, b"OK" if status == 200 else b"N/A", len(body)))
    await w.awrite(body)


def _token(header, token):
    """Our cookie's value in a Cookie header (microdot's parsing: the last one counts), else
    token."""
    for c in header.split(";"):
        c = c.strip().split("=", 1)
        if c[0] == COOKIE:
            token = c[1] if len(c) > 1 else ""
    return token


def _body(req):
    try:
        d = json.loads(req.body or b"null")
    except ValueError:
        return None
    return d if type(d) is dict else None


class Once:
    """A response body of bytes held elsewhere (the shared status text): microdot takes an
    object with __anext__ as it is, where it copies a str body into new bytes and makes a
    class for every other body it sends (~0.5 KB a response on the 32-bit build)."""

    def __init__(self, b):
        self.b = b

    def __aiter__(self):
        return self

    async def __anext__(self):
        b = self.b
        if b is None:
            raise StopAsyncIteration
        self.b = None
        return b


class StatusText:
    """The status as JSON bytes, shared by every request within _FRESH_MS while the
    controller's state and the settings stay the same: ten clients polling at once cost one
    status and one text, not ten (the heap while serving)."""

    def __init__(self, owner, ctl):
        self.owner = owner
        self.ctl = ctl
        self.at = None
        self.key = None
        self.text = None

    def get(self):
        now = ticks_ms()
        key = self.ctl.version + (self.owner.version << 24)  # a state or setting changed
        if self.at is None or key != self.key or ticks_diff(now, self.at) >= _FRESH_MS:
            self.text = None  # the old text may go before the new one is built
            self.text = json.dumps(self.owner.status()).encode()
            self.at = now
            self.key = key
        return self.text


class Live:
    """The live status as server-sent events: one event per period while the status changes
    (a comment line otherwise), _LIVE_N periods, then the stream ends."""

    def __init__(self, status):
        self.status = status  # StatusText
        self.n = 0
        self.last = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        import asyncio

        k = self.n  # an event is written in 3 pieces: the shared text is never copied
        if k % 3:
            self.n = k + 1
            return self.last if k % 3 == 1 else b"\n\n"
        if k >= 3 * _LIVE_N:
            raise StopAsyncIteration
        if k:
            await asyncio.sleep_ms(_LIVE_MS)
        text = self.status.get()
        if text is self.last or text == self.last:
            self.n = k + 3
            return b": -\n\n"
        self.last = text
        self.n = k + 1
        return b"retry: 1000\ndata: "


def build(app, auth, static_dir, srv):
    """The microdot app for the firmware App `app` (its owner model), the Auth and the
    Server (server.py) that serves it."""
    Request.max_content_length = server.BODY_MAX
    Request.max_body_length = server.BODY_MAX
    Request.max_readline = server.LINE_MAX
    web = Routes()
    owner = app.owner
    status_text = StatusText(owner, app.ctl)

    def refused(method, p, host, origin, s, csrf):
        """Why a request is refused, (message, status), or None: it goes on."""
        if not local_host(host):
            return "Host %s refused: use the box's address or LAN name" % host[:40], 403
        if method == "POST" and origin is not None and origin != "http://" + host:
            return "cross-site request refused (Origin %s)" % origin[:40], 403
        if not p.startswith("/api/") or p in _OPEN:
            return None
        if auth.needs_setup():
            return "set the owner's password first (POST /api/setup)", 403
        if s is None:
            return "log in first (POST /api/login)", 401
        if method == "POST" and not same(csrf or "", s[2]):
            return "missing or wrong X-CSRF-Token (GET /api/session gives it)", 403
        return None

    @web.before_request
    async def guard(req):
        h = req.headers
        req.g.s = s = auth.session(req.cookies.get(COOKIE))
        e = refused(req.method, req.path, h.get("Host", ""), h.get("Origin"), s,
                    h.get("X-CSRF-Token"))
        return None if e is None else _err(e[0], e[1])

    async def fast(rd, w):
        """GET /api/status and GET /api/live, what browsers and energy managers poll and the
        live stream held open for a minute, answered here through the same checks without
        microdot's request and response objects (~1 KB a connection on the 32-bit build);
        False for any other request (microdot reads it)."""
        line = await rd.readline()
        live = line.startswith(b"GET /api/live ")
        if not live and not line.startswith(b"GET /api/status "):
            rd.unread(line)
            return False
        host = ""
        token = None
        while True:  # the headers the guard kept (server.py); the last of a name counts
            t = (await rd.readline()).strip()
            if not t:
                break
            k = t.find(b":")
            name = t[:k].lower()
            if name == b"host":
                host = t[k + 1:].strip().decode()
            elif name == b"cookie":
                token = _token(t[k + 1:].decode(), token)
        e = refused("GET", "/api/live" if live else "/api/status", host, None,
                    auth.session(token), None)
        try:
            if e is not None:
                await _send(w, e[1], json.dumps({"error": e[0]}).encode())
            elif live:
                await w.awrite(_LIVE_HEAD)
                async for b in Live(status_text):
                    await w.awrite(b)
            else:
                await _send(w, 200, status_text.get())
        except OSError:  # the client went away (as microdot: not a cut)
            pass
        return True

    def _cookie(res, s):
        res.headers["Set-Cookie"] = "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d" % (
            COOKIE, s[0], auth.session_ms // 1000)
        return res

    def _who(s):
        return {"role": s[1], "csrf": s[2], "setup": False,
                "installer": auth.has(INSTALLER), "installer_allowed": auth.installer_on}

    @web.get("/api/session")
    async def session(req):
        s = req.g.s
        if s is None:
            return _json({"role": None, "setup": auth.needs_setup(),
                          "installer_allowed": auth.installer_on})
        return _json(_who(s))

    @web.post("/api/setup")
    async def setup(req):
        if not auth.needs_setup():
            return _err("the owner's password is set already (log in)", 403)
        d = _body(req)
        if d is None:
            return _err("a JSON object {\"password\": ...}", 400)
        try:
            await auth.set_password(OWNER, d.get("password"))
        except AuthError as e:
            return _err(e.args[0], e.args[1])
        s = auth.new_session(OWNER)
        return _cookie(_json(_who(s)), s)

    @web.post("/api/login")
    async def login(req):
        d = _body(req)
        if d is None:
            return _err("a JSON object {\"role\": \"owner\", \"password\": ...}", 400)
        try:
            s = await auth.login(d.get("role", OWNER), d.get("password"), None,
                                 getattr(req.sock[0], "addr", None))
        except AuthError as e:
            return _err(e.args[0], e.args[1])
        return _cookie(_json(_who(s)), s)

    @web.post("/api/logout")
    async def logout(req):
        auth.logout(req.g.s[0])
        return _json({"role": None}, 200, {"Set-Cookie": "%s=; Path=/; Max-Age=0" % COOKIE})

    @web.post("/api/password")
    async def password(req):
        s = req.g.s
        d = _body(req)
        if d is None:
            return _err("a JSON object {\"role\": ..., \"password\": ...}", 400)
        role = d.get("role", s[1])
        if role == INSTALLER and s[1] == INSTALLER and d.get("password") is None:
            return _err("only the owner disables the installer's access", 403)
        if role == OWNER and s[1] != OWNER:
            return _err("only the owner sets the owner's password", 403)
        try:
            await auth.set_password(role, d.get("password"))
        except AuthError as e:
            return _err(e.args[0], e.args[1])
        return _json({"installer": auth.has(INSTALLER)})

    @web.get("/api/status")
    async def status(req):
        t = status_text.get()
        h = dict(_JSON_HEADERS)
        h["content-length"] = len(t)
        return Response(Once(t), 200, h)

    @web.get("/api/live")
    async def live(req):
        return Response(Live(status_text), 200, {"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})

    @web.get("/api/settings")
    async def settings(req):
        try:
            return _json(owner.settings(req.g.s[1]))
        except SettingsError as e:
            return _err(str(e), 503)

    @web.post("/api/settings")
    async def change(req):
        d = _body(req)
        if d is None:
            return _err("a JSON object of {name: value}, e.g. {\"mode\": \"pv\"}", 400)
        try:
            out = owner.apply(d, req.g.s[1])
        except SettingsError as e:
            return _err(str(e), 400)
        out["settings"] = owner.settings(req.g.s[1])
        return _json(out)

    @web.get("/api/sessions")
    async def sessions(req):
        return _json(owner.sessions)

    @web.get("/api/diag")
    async def diag_lines(req):
        from firmware import diag

        lines = []
        diag.status(lines.append)
        now = ticks_ms()
        ev = [[ticks_diff(now, t) // 1000, c, v] for t, c, v in app.events.last(20)]
        return _json({"diag": lines, "events": ev, "web": {
            "served": srv.served, "refused": srv.refused, "cut": srv.cut,
            "last_cut": srv.last_cut}})

    @web.get("/")
    async def index(req):
        return _static(req, "index.html")

    @web.get("/static/<name>")
    async def static(req, name):
        return _static(req, name)

    def _static(req, name):
        ext = name.rsplit(".", 1)[-1]
        if ext not in _TYPES or "/" in name or name.startswith("."):
            return _err("no such page", 404)
        path = static_dir + "/" + name
        gz = "gzip" in req.headers.get("Accept-Encoding", "")
        for p, z in ((path + ".gz", True), (path, False)) if gz else ((path, False),):
            try:
                f = open(p, "rb")
            except OSError:
                continue
            return Response.send_file(name, content_type=_TYPES[ext], stream=f,
                                      compressed=z, max_age=300)
        return _err("no such page", 404)

    srv.app = web
    srv.fast = fast
    return web
