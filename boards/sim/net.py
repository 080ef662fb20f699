# The simulated wallbox's link: the host's own network (in practice its loopback, where the
# dev CSMS and tools/netproxy.py listen) behind a fault switch, driven by the control
# channel's "net" command (boards/sim/control.py):
#   set_state("down")  the link is lost: isup() is False, open() raises NetError("link down"),
#                      and every connection opened through it is closed at once - its reader
#                      sees EOF (b"" / EOFError from readexactly), its writer raises OSError
#   set_state("up")    the link is back; up() returns within a poll (250 ms)
# The rest (up() waiting with backoff, open() turning failures into NetError, info()) is the
# real firmware/net.py logic, as on a board. For a half-open link or a CSMS that drops or
# refuses connections, put tools/netproxy.py between the firmware and the CSMS.
import errno
import sys

from firmware.net import Net, NetError

_MPY = sys.implementation.name == "micropython"
if _MPY:
    from asyncio.stream import Stream

    class _Conn(Stream):
        """A connection the link can cut: a MicroPython stream (reader and writer in one)
        whose reads end in EOF once cut (the socket is closed under them)."""

        def __init__(self, st):
            super().__init__(st.s, st.e)
            self.cut = False
            self.closed = False

        def kill(self):
            self.cut = True
            self.s.close()  # a read waiting on the socket wakes with an error: EOF below

        async def read(self, n=-1):
            if self.cut:
                return b""
            try:
                return await super().read(n)
            except OSError:
                if self.cut:
                    return b""
                raise

        async def readinto(self, buf):
            if self.cut:
                return 0
            try:
                return await super().readinto(buf)
            except OSError:
                if self.cut:
                    return 0
                raise

        async def readexactly(self, n):
            if self.cut:
                raise EOFError
            try:
                return await super().readexactly(n)
            except OSError:
                if self.cut:
                    raise EOFError
                raise

        async def readline(self):
            if self.cut:
                return b""
            try:
                return await super().readline()
            except OSError:
                if self.cut:
                    return b""
                raise

        def write(self, buf):
            if self.cut:
                raise OSError(errno.ECONNRESET)
            super().write(buf)

        async def drain(self):
            if self.cut:
                raise OSError(errno.ECONNRESET)
            await super().drain()

        def close(self):
            self.closed = True

        async def wait_closed(self):
            self.closed = True
            if not self.cut:
                self.s.close()


class SimNet(Net):
    kind = "sim"

    def __init__(self, section=None, log=print, **kw):
        super().__init__(section, log=log, **kw)
        self.state = "up"
        self._conns = []  # what open() handed out and has not seen closed
        self.isup()  # the link starts up: a later "down" is a link lost

    def set_state(self, state):
        """"up" or "down" (the link is lost: every open connection is closed at once)."""
        if state not in ("up", "down"):
            raise ValueError("net state must be \"up\" or \"down\", got %r" % (state,))
        self.state = state
        if state == "down":
            conns, self._conns = self._conns, []
            for c in conns:
                _kill(c)
        self.isup()  # counts the change now (reconnects, since_ms)

    def open_count(self):
        self._conns = [c for c in self._conns if not _closed(c)]
        return len(self._conns)

    async def open(self, host, port, ssl=None, server_hostname=None, timeout_ms=10000):
        r, w = await Net.open(self, host, port, ssl, server_hostname, timeout_ms)
        if _MPY:
            r = w = _Conn(w)
        if self.state != "up":  # went down while connecting
            _kill(w)
            raise NetError("link down")
        self.open_count()  # forget the closed ones
        self._conns.append(w)
        return r, w

    def _link(self):
        return self.state == "up"

    def _why(self):
        return "link down (simulated)"

    def _ip(self):
        return "127.0.0.1"

    def _more(self, d, up):
        d["conns"] = self.open_count()


def _kill(w):
    if _MPY:
        w.kill()
    else:  # CPython: closing the transport feeds EOF to its reader
        w.close()


def _closed(w):
    if _MPY:
        return w.closed
    return w.is_closing()
