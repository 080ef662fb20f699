# Runs on the MicroPython unix port (host_tests/test_micropython.py): the web task's own accept
# loop (firmware/web/server.py Server.run and _accept) on a fake listening socket, its clock
# 1000x fast.
# While MAX_CONN connections are served no other is accepted (they wait in the stack's
# backlog, costing no heap), and each is taken once a slot frees; a connection that lasts
# longer than CONN_MS (a live stream nobody ends) is cut off by the task and its slot given
# back. Without a client the task waits on the listening socket instead of polling it, and
# a connection idle for 100 ms is read when its bytes come (a non-blocking recv every 20 ms
# before). (Before, a 4th connection was served and a 5th and 6th closed at once, and
# CONN_MS took a wait_for task per connection.)
import asyncio
import gc
import io
import select
import sys

sys.path.append(__file__.rsplit("/", 1)[0] if "/" in __file__ else ".")  # web_rig

from boards.sim import pollfix
from firmware.web import server
from web_rig import build, workdir  # noqa: E402

FAILED = []
X = 1000  # the server's clock runs 1000x: HEAD_MS 5 s is 5 ms, CONN_MS 70 s is 70 ms

workdir("wbwebconn")
_real = server.ticks_ms
server.ticks_ms = lambda: (_real() * X) & 0x3FFFFFFF


def check(ok, msg):
    if not ok:
        FAILED.append(msg)
        print("FAIL", msg)


class Conn(io.IOBase):
    """A client's connection: sends `data` at once (nothing: a slowloris), takes every byte
    written. A stream asyncio's poller can wait on (its ioctl answers the poll)."""

    def __init__(self, data=b""):
        self.data = data
        self.got = 0
        self.closed = False
        self.reads = 0

    def setblocking(self, b):
        pass

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL: readable while it has bytes, always writable
            return (arg & select.POLLIN if self.data else 0) | (arg & select.POLLOUT)
        return -1  # MP_STREAM_GET_FILENO (10): none, the poller asks MP_STREAM_POLL

    def read(self, n):
        self.reads += 1
        d = self.data[:n]
        self.data = self.data[n:]
        return d or None  # None: nothing now (EAGAIN), the client sends nothing more

    def recv(self, n):  # (a non-blocking read: what the guard polled before)
        d = self.read(n)
        if d is None:
            raise OSError(11)
        return d

    def write(self, b):
        self.got += len(b)
        return len(b)

    def close(self):
        self.closed = True


class Listener:
    """The listening socket: the connections the stack has waiting (its backlog)."""

    def __init__(self):
        self.waiting = []
        self.taken = []
        self.calls = 0

    def accept(self):
        self.calls += 1
        if not self.waiting:
            raise OSError(11)
        c = self.waiting.pop(0)
        self.taken.append(c)
        return c, ("127.0.0.1", 40000)

    def close(self):
        pass


async def main():
    pollfix.reserve()  # the Conns have no file descriptor: the unix port's poller bug
    app, s = await build("conn password")
    srv = app.web
    lst = Listener()
    srv._listen = lambda: lst

    async def ready(s):  # (the real one waits on asyncio's poller)
        while not s.waiting:
            await asyncio.sleep_ms(1)

    server._readable = ready
    task = asyncio.create_task(srv.run())
    # 6 slowloris connections waiting at once: 3 served, the others left in the backlog
    slow = [Conn() for _ in range(2 * server.MAX_CONN)]
    lst.waiting += slow
    most = 0
    t0 = _real()
    while not all(c.closed for c in slow) and _real() - t0 < 2000:
        most = max(most, srv.active)
        await asyncio.sleep_ms(1)
    check(most == server.MAX_CONN, "%d connections served at once (%d)" % (most,
                                                                           server.MAX_CONN))
    check(all(c.closed for c in slow), "slowloris connections not cut off: %d" % sum(
        not c.closed for c in slow))
    check(srv.refused == 0, "%d connections closed at once (they wait)" % srv.refused)
    # idle: the task waits on the listening socket (asyncio's poller) and does not try to
    # accept every few ms (an accept polled every 20 ms made every request wait ~20 ms)
    n = lst.calls
    await asyncio.sleep_ms(100)
    check(lst.calls == n, "accept() tried %d times in 100 ms without a client" % (lst.calls - n))
    # a live stream nobody ends: cut off at CONN_MS (70 ms here), its slot given back
    live = Conn(b"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: wb=" + s[0].encode() +
                b"\r\n\r\n")
    cut = srv.cut
    lst.waiting.append(live)
    t0 = _real()
    while not live.closed and _real() - t0 < 3000:
        await asyncio.sleep_ms(5)
    took = _real() - t0
    check(live.closed and live.got > 0, "live stream: closed %s, %d bytes" % (live.closed,
                                                                             live.got))
    # (the task looks at the connections every 20 ms while one is served, else every second)
    check(50 <= took < 1100, "live stream cut after %d ms (CONN_MS: 70 ms here)" % took)
    check(srv.cut == cut + 1 and srv.last_cut == "connection too long",
          "cut %d, last %r" % (srv.cut - cut, srv.last_cut))
    check(srv.active == 0, "slots not given back: %d" % srv.active)
    # the server answers afterwards
    ok = Conn(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: wb=" + s[0].encode() +
              b"\r\n\r\n")
    lst.waiting.append(ok)
    for _ in range(200):
        if ok.closed:
            break
        await asyncio.sleep_ms(5)
    check(ok.closed and ok.got > 100, "status after: %d bytes" % ok.got)
    # a connection whose request comes 100 ms after it was accepted is read when its bytes
    # are there (a non-blocking recv every 20 ms before: 5 in that time, and each request
    # waited up to 20 ms for its next look). The clock at 1x for this.
    global X
    X = 1
    late = Conn()
    lst.waiting.append(late)
    while not lst.taken or lst.taken[-1] is not late:
        await asyncio.sleep_ms(1)
    await asyncio.sleep_ms(100)
    late.data = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: wb=" + \
        s[0].encode() + b"\r\n\r\n"
    t0 = _real()
    while not late.closed and _real() - t0 < 2000:
        await asyncio.sleep_ms(1)
    check(late.closed and late.got > 100, "the late request: %d bytes" % late.got)
    check(late.reads <= 3, "a connection idle for 100 ms was read %d times" % late.reads)
    task.cancel()
    gc.collect()
    print("DONE %d failed" % len(FAILED))


asyncio.run(main())
