# The OCPP connection: brings the network up, opens the WebSocket with what the security
# profile asks (firmware/ocpp/security.py: ws:// or wss:// with the configured CA, HTTP Basic
# auth, a client certificate), feeds every received message to the RPC layer, sends pings per
# WebSocketPingInterval and drops a link that has gone silent, then reconnects with backoff
# and jitter; a changed AuthorizationKey or SecurityProfile closes it once the answer is out
# (reconnect). It never touches the charge controller: while the link is down the charge
# point goes on locally and its journal fills.
import asyncio
import time

from micropython import const

from firmware.backoff import Backoff
from firmware.ocpp import ws
from firmware.ocpp.security import SecurityError

MAX_FRAME = const(16384)  # the largest message we accept (SendLocalListMaxLength fits)
_CONNECT_MS = const(15000)
_DEAD_MARGIN_MS = const(10000)


class Link:
    def __init__(self, url, cp_id, rpc, keys, security, log=print, net=None,
                 prepare=None):
        self.url = url.rstrip("/") + "/" + cp_id
        self.cp_id = cp_id
        self.rpc = rpc
        self.keys = keys
        self.security = security
        self.log = log
        self.net = net
        self.prepare = prepare  # async, before each connection: the clock (TLS checks dates)
        # Set (to why) to close the link once the message being handled is answered, then
        # connect again (after the usual first backoff step) with the credentials in force
        # then (remote.ChangeConfiguration).
        self.restart = None
        self.ws = None
        self.connected = False
        self.up = asyncio.Event()  # set while connected
        self.backoff = Backoff(1000, 60000)
        self.connects = 0
        self.last_error = None
        self.last_rx_ms = None  # ticks of the last message received / sent (diag)
        self.last_tx_ms = None

    async def send(self, text):
        w = self.ws
        if w is None or not self.connected:
            raise ws.WsClosed(1006, "offline")
        await w.send(text)
        self.last_tx_ms = time.ticks_ms()

    async def run(self):
        while True:
            try:
                await self._session()
            except (ws.WsError, SecurityError) as e:
                self._down("%s" % (e,))
            except OSError as e:
                self._down("network: %r" % (e,))
            wait = self.backoff.next_ms()
            self.log("link down (%s); retry in %d s" % (self.last_error, wait // 1000))
            await asyncio.sleep_ms(wait)

    def _down(self, why):
        self.last_error = why
        self.connected = False
        self.up.clear()
        self.rpc.cancel()
        w, self.ws = self.ws, None
        if w is not None:
            asyncio.create_task(w.close(1000))

    async def _session(self):
        opener = None
        if self.net is not None:
            await self.net.up()
            opener = self.net.open
        if self.prepare is not None:
            await self.prepare()
        self.restart = None
        try:
            self.ws = await ws.connect(
                self.url, max_frame=MAX_FRAME, timeout_ms=_CONNECT_MS, open_connection=opener,
                **self.security.connect_args(self.cp_id))
        except ws.WsError as e:
            self.security.refused(e)
            raise
        self.security.connected()
        self.connected = True
        self.connects += 1
        self.backoff.reset()
        self.up.set()
        self.log("connected to %s" % _public(self.url))
        pinger = asyncio.create_task(self._pinger())
        try:
            while True:
                # Handed over in rpc.inbox, not as an argument: a value passed in a call stays
                # in a slot of the caller's frame while the callee runs (MicroPython does not
                # clear it), and rpc drops the text once parsed (a big SendLocalList is then
                # its objects alone while the handler runs).
                self.rpc.inbox = await self.ws.recv()
                self.last_rx_ms = time.ticks_ms()
                await self.rpc.received()
                if self.restart:
                    raise ws.WsError("%s: reconnecting" % self.restart)
        finally:
            pinger.cancel()
            self.connected = False
            self.up.clear()

    async def _pinger(self):
        # WebSocketPingInterval: our ping every interval; no bytes for 2 intervals + margin
        # means a dead (half-open) link: close it so that the reconnect starts.
        while True:
            iv = self.keys.get("WebSocketPingInterval")
            await asyncio.sleep_ms(1000 * iv if iv > 0 else 5000)
            w = self.ws
            if w is None or iv <= 0:
                continue
            if time.ticks_diff(time.ticks_ms(), w.last_rx_ms) > 2000 * iv + _DEAD_MARGIN_MS:
                self.log("no answer for %d s, closing" % (2 * iv))
                self._down("dead link (no pong)")
                return
            try:
                await w.ping()
            except ws.WsError:
                return

    def info(self):
        return {"url": _public(self.url), "connected": self.connected, "connects": self.connects,
                "last_error": self.last_error}


def _public(url):
    """The URL without any user:password part (never shown)."""
    i = url.find("@")
    if i < 0:
        return url
    j = url.find("//")
    return url[: j + 2] + url[i + 1:]
