# The web task (docs/api.md): microdot's request handling behind a guard that keeps a slow
# or hostile client within bounded memory and time. At most MAX_CONN connections are served
# at once: the task accepts no more meanwhile, so the next ones wait in the TCP stack's
# backlog (_BACKLOG; memory of the stack, not of the heap) and a client beyond it is refused
# by the stack. The request line, the headers and the body must arrive within HEAD_MS, each
# line within LINE_MAX bytes, at most HEADERS_MAX lines and HEAD_MAX bytes in all; a whole
# connection lasts at most CONN_MS (the live stream ends itself before); a request larger
# than SMALL_MAX is read on one connection at a time (another is cut off as busy). A line that
# is not HTTP is cut off before microdot sees it. The task never touches the charge
# controller: it reads the owner model and changes settings through it.
import asyncio


from firmware.ticks import ticks_add, ticks_diff, ticks_ms

MAX_CONN = const(3)  # 3 requests served at once (each holds ~2 KB of heap while served)
_BACKLOG = const(4)  # connections the stack keeps waiting for a slot
HEAD_MS = const(5000)
CONN_MS = const(70000)
LINE_MAX = const(1024)
TARGET_MAX = const(128)  # the path and query: microdot's route regex recurses per character
HEADERS_MAX = const(32)
HEAD_MAX = const(4096)
BODY_MAX = const(2048)
SMALL_MAX = const(2048)  # a request may be this large on every connection; a larger one on
# one connection at a time (4 of the largest at once took 54 KB on the 32-bit build)
_CHUNK = const(256)
_ETIMEDOUT = const(110)
_EINVAL = const(22)
_ECONNRESET = const(104)
_WAIT_MS = const(20)  # the time limits are looked at this often while a connection is served
# The headers the API reads (api.py) or microdot acts on: any other is checked, then dropped
# before microdot keeps it (a browser's User-Agent, Accept-*, Sec-* ... cost ~1 KB a request)
_KEEP = (b"host", b"origin", b"cookie", b"x-csrf-token", b"accept-encoding", b"content-length",
         b"content-type")


def check_section(s):
    """The config's "web" object -> list of error messages naming the key."""
    if type(s) is not dict:
        return ["web: must be a JSON object"]
    err = []
    for k in s:
        if k not in ("port", "host", "session_s", "installer"):
            err.append("web: unknown key %r" % (k,))
    p = s.get("port", 80)
    if type(p) is not int or not 1 <= p <= 65535:
        err.append("web.port: 1..65535, got %r" % (p,))
    h = s.get("host", "0.0.0.0")
    if type(h) is not str or not 7 <= len(h) <= 15:
        err.append("web.host: an IPv4 address to listen on, got %r" % (h,))
    t = s.get("session_s", 3600)
    if type(t) is not int or not 60 <= t <= 86400:
        err.append("web.session_s: 60..86400 seconds, got %r" % (t,))
    if type(s.get("installer", True)) is not bool:
        err.append("web.installer: true or false")
    return err


_PEER = {"peername": None}  # what microdot asks a connection (the API never reads it)


class Cut(OSError):
    """A request the guard refused (its text says why: diag)."""


class Reader:
    """The client's stream as microdot reads it (readline, readexactly, read), bounded."""

    def __init__(self, s, now, srv=None):
        self.s = s
        self.srv = srv  # the Server: which connection may read a large request (SMALL_MAX)
        self.buf = b""
        self.got = 0
        self.lines = 0
        self.deadline = ticks_add(now, HEAD_MS)
        self.end = ticks_add(now, CONN_MS)  # the whole connection (the task cancels it then)
        self.task = None
        self.addr = None  # the client's address from accept() (the login lockout's key)
        self.reading = False  # waiting for bytes (cut at the deadline by Server.sweep)

    async def _more(self):
        # An ordinary asyncio read (the task waits in the poller until bytes come); the web
        # task cancels it at the deadline (Server.sweep).
        if ticks_diff(self.deadline, ticks_ms()) <= 0:
            raise Cut(_ETIMEDOUT, "too slow")
        self.reading = True
        try:
            d = await self.s.read(_CHUNK)
        except OSError:
            raise Cut(_ECONNRESET, "closed")
        finally:
            self.reading = False
        if not d:
            raise Cut(_ECONNRESET, "closed")
        self.got += len(d)
        srv = self.srv
        if self.got > SMALL_MAX and srv is not None and srv.big is not self:
            if srv.big is not None:
                raise Cut(_EINVAL, "server busy")
            srv.big = self
        if self.got > HEAD_MAX + BODY_MAX:
            raise Cut(_EINVAL, "request too large")
        self.buf += d

    async def readline(self):
        while True:  # a header the firmware never reads is checked and dropped here
            while True:
                i = self.buf.find(b"\n")
                if i >= 0:
                    break
                if len(self.buf) > LINE_MAX:
                    raise Cut(_EINVAL, "line too long")
                await self._more()
            line = self.buf[:i + 1]
            self.buf = self.buf[i + 1:]
            if self._check(line):
                return line


    def _check(self, line):
        n = self.lines
        self.lines = n + 1
        if len(line) > LINE_MAX or n > HEADERS_MAX or self.got - len(self.buf) > HEAD_MAX:
            raise Cut(_EINVAL, "headers too large")
        t = line.strip()
        if n == 0:  # METHOD SP target SP HTTP/x.y
            p = t.split()
            if len(p) != 3 or not p[2].startswith(b"HTTP/") or not p[1].startswith(b"/"):
                raise Cut(_EINVAL, "not an HTTP request line")
            if len(p[1]) > TARGET_MAX:  # (700 characters overflow the 32-bit unix port's stack)
                raise Cut(_EINVAL, "request target too long")
            try:
                t.decode()  # microdot decodes the whole line (a traceback if it cannot)
            except UnicodeError:
                raise Cut(_EINVAL, "not an HTTP request line")
            if not _query_ok(p[1]):
                raise Cut(_EINVAL, "bad percent-encoding")
        elif t:
            k = t.find(b":")
            if k <= 0:
                raise Cut(_EINVAL, "header without a name")
            try:
                t.decode()
            except UnicodeError:
                raise Cut(_EINVAL, "header not text")
            name = t[:k].lower()
            if name == b"content-length":
                v = t[k + 1:].strip()
                if not v.isdigit() or len(v) > 6:
                    raise Cut(_EINVAL, "bad Content-Length")
            return name in _KEEP
        return True

    def unread(self, line):
        """Give the request line back: microdot reads it (and it is checked) again."""
        self.buf = line + self.buf
        self.lines = 0

    async def readexactly(self, n):
        while len(self.buf) < n:
            await self._more()
        d = self.buf[:n]
        self.buf = self.buf[n:]
        return d

    async def read(self, n=-1):
        if not self.buf:
            await self._more()
        if n < 0 or n >= len(self.buf):
            d = self.buf
            self.buf = b""
            return d
        return await self.readexactly(n)


def _query_ok(target):
    """microdot decodes the query string as it parses the request (urldecode): an escape that
    is not hex or bytes that are not UTF-8 raised inside it (a 400 with a traceback printed on
    the console, a blocking write on a board's UART). Checked here the same way first."""
    q = target.find(b"?")
    if q < 0 or b"%" not in target:
        return True
    from microdot.microdot import urldecode

    try:
        for pair in target[q + 1:].split(b"&"):
            for part in pair.split(b"=", 1):
                urldecode(part)
    except (ValueError, UnicodeError):
        return False
    return True


class Server:
    def __init__(self, app, host, port, log=print):
        self.app = app  # the microdot app (api.py)
        self.fast = None  # api.py: answers a request itself (True) or leaves it to microdot
        self.host = host
        self.port = port
        self.log = log
        self.active = 0
        self.big = None  # the Reader reading a request larger than SMALL_MAX
        self.served = 0
        self.refused = 0  # connections closed at once: MAX_CONN busy (a direct caller)
        self.conns = [None] * MAX_CONN  # the Readers of the connections being served
        self.free = asyncio.Event()  # a slot was given back
        self.cut = 0  # requests cut off by the guard or the connection limit
        self.last_cut = None
        self.last_ms = ticks_ms()

    def sweep(self, now):
        """End the connections past their time: CONN_MS, or HEAD_MS while waiting for bytes
        (no wait_for task per connection or read: ~270 B each on the 32-bit build)."""
        for rd in self.conns:
            if rd is not None and rd.task is not None and (
                    ticks_diff(now, rd.end) >= 0 or rd.reading
                    and ticks_diff(now, rd.deadline) >= 0):
                rd.task.cancel()
                rd.task = None

    async def run(self):
        # A task of its own takes the connections (_accept); this one ends the connections
        # past their time (sweep), looking every _WAIT_MS while one is served, else every
        # second.
        s = self._listen()
        acc = asyncio.create_task(self._accept(s))
        try:
            self.log("web: serving on %s:%d" % (self.host, self.port))
            while True:
                now = self.last_ms = ticks_ms()
                self.sweep(now)
                await asyncio.sleep_ms(_WAIT_MS if self.active else 1000)
        finally:
            acc.cancel()
            s.close()

    async def _accept(self, s):
        """Takes a connection when a slot is free: none while MAX_CONN are served (the next
        wait in the stack's backlog)."""
        from asyncio import StreamWriter

        while True:
            if self.active >= MAX_CONN:
                self.free.clear()
                await self.free.wait()  # set as a connection ends
                continue
            await _readable(s)
            try:
                c, a = s.accept()
            except OSError:  # a failed accept: ignored (as asyncio's start_server does)
                continue
            c.setblocking(False)
            st = StreamWriter(c, _PEER)
            rd = self._take(st)
            rd.addr = a
            asyncio.create_task(self._serve(st, st, rd))

    def _listen(self):
        import socket

        ai = socket.getaddrinfo(self.host, self.port)[0]
        s = socket.socket(ai[0])
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(ai[-1])
            s.listen(_BACKLOG)
        except OSError:
            s.close()
            raise
        return s

    def _take(self, reader):
        """A slot for a new connection: its Reader, or None when all MAX_CONN are busy."""
        if self.active >= MAX_CONN:
            return None
        self.active += 1
        rd = Reader(reader, ticks_ms(), self)
        self.conns[self.conns.index(None)] = rd
        return rd

    async def _serve(self, reader, writer, rd=None):
        """One connection (rd: its slot, taken by run())."""
        if rd is None:
            rd = self._take(reader)
        if rd is None:  # all busy (run() takes no more than MAX_CONN: a direct caller)
            self.refused += 1
            await _close(writer)
            return
        rd.task = asyncio.current_task()
        try:
            if self.fast is None or not await self.fast(rd, writer):
                await self.app.handle_request(rd, writer)
            self.served += 1
        except asyncio.CancelledError:  # run(): past HEAD_MS reading, or past CONN_MS
            self.cut += 1
            self.last_cut = "too slow" if ticks_diff(rd.end, ticks_ms()) > 0 else \
                "connection too long"
        except Exception as e:  # noqa: BLE001 - a client's fault never ends the task
            self.cut += 1
            self.last_cut = e.args[1] if type(e) is Cut else repr(e)[:60]
        finally:
            self.conns[self.conns.index(rd)] = None
            self.active -= 1
            self.free.set()
            if self.big is rd:
                self.big = None
            await _close(writer)


def _readable(s):
    """Wait (await it) until the listening socket has a connection, through asyncio's poller
    as its start_server does: a client is taken at once."""
    yield asyncio.core._io_queue.queue_read(s)


async def _close(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except Exception:  # noqa: BLE001,S110 - already gone
        pass
