# The OCPP 1.6J charge point: one connector. Three tasks meet here:
# - the observer (`run`): reads the charge controller's published state, decides
#   transactions, statuses, meter samples and limits, and writes transaction messages to the
#   journal; it never waits on the network, so offline charging is the same as online;
# - the sender (`send_loop`): BootNotification until Accepted, then the journal oldest first,
#   statuses, triggered messages and heartbeats, one CALL at a time (OCPP-J);
# - the link (`Link.run`, at the end): the WebSocket to the CSMS.
# The network can only lower the offer or ask to stop: everything reaches the controller
# through set_auth / set_available / set_limit.
import asyncio
import time


from .. import backoff, boardcaps, persist, timekeep
from . import (authlist, jram, journal, keys, remote, report, rpc, security, smart,
                           txn, ws)

_TICK_MS = const(250)
_LIMIT_MS = const(1000)
JOURNAL_KB = const(192)  # the journal's flash budget (ocpp.journal_kb; boards/sim/heapcheck)
MAX_FRAME = const(16384)  # the largest message we accept (SendLocalListMaxLength fits)
_CONNECT_MS = const(15000)
_DEAD_MARGIN_MS = const(10000)


_SECTION_KEYS = ("url", "cp_id", "password", "ca", "vendor", "model", "free_vend_id", "ntp",
                 "client_cert", "client_key", "journal_kb", "security_profile")  # [2:10]: str


def check_section(s):
    """The config's "ocpp" object -> list of error messages (empty when usable)."""
    err = []
    if type(s) is not dict:
        return ["ocpp: must be a JSON object"]
    url = s.get("url")
    try:
        ws.parse_url(url)  # a string, ws:// or wss://, a host...
    except ws.WsError as e:
        err.append("ocpp.url: %s" % e)
    cid = s.get("cp_id")
    if type(cid) is not str or not 1 <= len(cid) <= 48 or "/" in cid or " " in cid:
        err.append("ocpp.cp_id: 1..48 characters, no '/' or space: %r" % (cid,))
    for k in _SECTION_KEYS[2:10]:
        if k in s and type(s[k]) is not str:
            err.append("ocpp.%s: must be a string" % k)
    pw = s.get("password")
    if type(pw) is str and not 16 <= len(pw) <= 40:
        err.append("ocpp.password: 16..40 characters")
    if type(url) is str and url.startswith("wss://") and "ca" not in s:
        err.append("ocpp.ca: wss:// needs it")
    security.check_config(s, err)
    jk = s.get("journal_kb", JOURNAL_KB)
    if type(jk) is not int or not 16 <= jk <= 4096:
        err.append("ocpp.journal_kb: 16..4096 KiB, got %r" % (jk,))
    for k in s:
        if k not in _SECTION_KEYS:
            err.append("ocpp: unknown key %r" % (k,))
    return err


class ChargePoint:
    def __init__(self, ctl, board, section, cfg, log, net=None, meters=None,
                 limits=None, restart=None):
        # limits: the limit arbiter (firmware/limits/loop.py), where the composite schedule's
        # limit is published; restart: the one restart path (firmware/restart.py). The App
        # hands in its own of both (a test rig builds them).
        self.ctl = ctl
        self.board = boardcaps.probe(board)
        self.cfg = cfg
        self.log = log  # the App's log (firmware/ota writes to it too)
        say = self.say = lambda m: log("ocpp: " + m)  # OCPP's own lines
        self.section = section
        self.keys = keys.Keys(overrides=keys.key_overrides(board, cfg))
        self.journal = journal.Journal(max_bytes=1024 * section.get("journal_kb", JOURNAL_KB))
        self.list = authlist.LocalList()
        self.cache = authlist.AuthCache()
        self.profiles = smart.Profiles()
        # an override or a file found bad (such a file is now empty)
        for m in self.keys.errors + self.list.errors + self.cache.errors + self.profiles.errors:
            say(m)
        self.tk = timekeep.TimeKeeper(log=log, **timekeep.board_sources(  # RTC, NTP, CSMS
            board, section.get("ntp", timekeep.NTP_HOST)))
        self.link = Link(self, net)
        # (send, handlers, log, ctx); a test rig puts its own link and rpc.send in their place
        self.rpc = rpc.Rpc(self.link.send, remote, say, self)
        self.security = security.Security(section, self.keys, say)
        self.registration = None  # None, "Pending", "Accepted", "Rejected"
        self.boot_retry_ms = 0  # BootNotification again after Pending/Rejected's interval
        self._hold = {}  # message key -> [ticks it may go again, Backoff] after a failure
        self.heartbeat_ms = None
        self.wake = asyncio.ThreadSafeFlag()
        self.cards = board.cards  # drivers.rfid.CardReader
        self.available = [True, True]  # connector 0, 1 (ChangeAvailability)
        self.pending_avail = None  # a change Scheduled until the transaction ends
        remote.load_state(self)
        ctl.set_available(self.available[0] and self.available[1])
        # With OCPP a transaction authorises the controller (free vend too: it starts at the
        # plug), so no energy flows before meterStart is known (report.py).
        ctl.set_auth(False)
        self.st = report.Statuses(self)  # connector statuses (report.py)
        self.triggers = []  # (action, connector) asked by TriggerMessage
        self.outbox = []  # non-transaction messages waiting for the link: (action, payload)
        self.reservation = None  # dict: id, tag, parent, expiry_s
        self.meters = meters  # firmware.meters.roles result (the EV meter's saved register)
        self.tx = txn.Transactions(self)
        self.reset_kind = None
        self.restart = restart
        self._limit_ms = 0
        self.limits = limits
        self._reason = None
        self.last_error = None
        self.faults = 0  # exceptions caught in the OCPP tasks (fault())

    def tasks(self):
        return [("ocpp-link", self.link.run), ("ocpp", self.run),
                ("ocpp-send", self.send_loop)]

    def now_s(self):
        return self.tk.now_s(time.ticks_ms())

    def iso_now(self):
        return self.tk.iso_now(time.ticks_ms())

    def stamp(self):  # a record's time: epoch seconds, or boot-relative while unknown
        return self.tk.stamp(time.ticks_ms())

    # -- the observer --------------------------------------------------------------------
    async def run(self):
        flag = self.ctl.subscribe()
        while True:
            now = time.ticks_ms()
            self.tx.observe(now)
            try:
                persist.settle()  # what waited in RAM for the flash gate (firmware/persist.py)
            except OSError as e:
                self.say("held files not written: %r" % (e,))
            if self.st.observe():
                self.wake.set()
            s = self.now_s()
            r = self.reservation
            if r is not None and s is not None and s >= r["expiry"]:
                self.say("reservation %d expired" % r["id"])
                self.reservation = None
            self.tx.timers(now, s)
            if time.ticks_diff(now, self._limit_ms) >= _LIMIT_MS:
                # the composite schedule's limit, published each _LIMIT_MS (the limit arbiter
                # applies it) and at once after limit_changed()
                self._limit_ms = now
                amps, reason = None, "ocpp: no profile"
                if len(self.profiles):  # before the time is known too: the safe side (smart.py)
                    o = self.tx.open
                    amps, why = smart.in_force(self.profiles, self.tk, now, o and o["at"],
                                               self.tx.profile_id(), self.volts(),
                                               self.limits.phases)
                    if amps is not None:
                        reason = "ocpp: " + why
                if (amps, reason) != self._reason:
                    self._reason = (amps, reason)
                    self.say("limit %s (%s)" % ("none" if amps is None else "%s A" % amps, reason))
                    self.limits.publish("ocpp", amps, reason)
            try:
                await asyncio.wait_for_ms(flag.wait(), _TICK_MS)
            except asyncio.TimeoutError:
                pass
            if self.cards is not None:
                tag = self.cards.take()
                if tag is not None:
                    self.tx.card(tag)

    def limit_changed(self):
        """Profiles or keys changed: the limit is computed and published again at once."""
        self._reason = None
        self._limit_ms = time.ticks_add(time.ticks_ms(), -_LIMIT_MS)

    def volts(self):
        m = self.board.meter_reading
        if m is not None and m.v_dv[0] > 0 and m.fresh(time.ticks_ms()):
            return m.v_dv[0] // 10
        return 230

    # -- the sender ----------------------------------------------------------------------
    async def send_loop(self):
        while True:
            if not self.link.connected:
                await self.link.up.wait()
                continue
            pause = 1000  # after an error
            try:
                sent = await self._send_one()
                pause = 0
            except rpc.RpcError as e:
                self.last_error = "%s %s" % (e.code, e.description)
                self.say(self.last_error)
            except (ws.WsError, OSError) as e:  # the link dropped mid-call
                self.last_error = repr(e)
                pause = 500
            except Exception as e:  # a fault in the sender: never silent
                self.fault("sender", e)
            if pause:
                sent = False
                await asyncio.sleep_ms(pause)
            if not sent:
                try:
                    await asyncio.wait_for_ms(self.wake.wait(), 1000)
                except asyncio.TimeoutError:
                    pass

    async def _send_one(self):
        """At most one CALL; True when something was tried."""
        now = time.ticks_ms()
        if self.registration != "Accepted":
            # While Pending the CSMS may ask for messages (TriggerMessage); a triggered
            # BootNotification goes at once, not at the end of the interval.
            if self.triggers and self.registration == "Pending":
                action, conn = self.triggers.pop(0)
                if action != "BootNotification":
                    return await self._attempt(None, action, remote.send_triggered, self,
                                               action, conn)
            elif not self._due("boot", now) or self.registration is not None and (
                    time.ticks_diff(now, self.boot_retry_ms) < 0):
                return False
            return await self._attempt("boot", "BootNotification", remote.boot, self)
        if await jram.send_next(self.tx):  # the journal's sender side
            return True
        msd = self.keys.get("MinimumStatusDuration")
        for c in (0, 1):
            if self.st.due(c, msd) and self._due(c, now):
                return await self._attempt(c, "StatusNotification", self.st.send, c)
        if self.triggers:
            action, conn = self.triggers.pop(0)
            return await self._attempt(None, action, remote.send_triggered, self, action, conn)
        if self.outbox:
            action, payload = self.outbox.pop(0)
            return await self._attempt(None, action, self.rpc.call, action, payload)
        hb = self.keys.get("HeartbeatInterval")
        if hb > 0 and time.ticks_diff(now, self.heartbeat_ms) >= hb * 1000 and self._due(
                "hb", now):
            return await self._attempt("hb", "Heartbeat", remote.heartbeat, self)
        return False

    def _due(self, key, now):
        h = self._hold.get(key)
        return h is None or time.ticks_diff(now, h[0]) >= 0

    async def _attempt(self, key, name, fn, *args):
        """One non-transaction CALL. When the CSMS answers it with an error (or not at all)
        it waits out its own backoff (key), or is dropped (key None: a triggered message or
        a clock-aligned reading): nothing else waits behind it (OCPP 1.6 asks not to flood
        the CSMS). A dropped link is not an attempt: the caller retries after reconnect."""
        try:
            await fn(*args)
        except rpc.RpcError as e:
            if not self.link.connected:
                raise
            why = "%s failed (%s %s)" % (name, e.code, e.description)
            if key is None:
                self.say(why + ", not retried")
                return True
            h = self._hold.get(key)
            if h is None:
                # BootNotification: 10 s doubling to 5 min (libocpp waits 60 s); others 5 s
                # doubling to 2 min; both +/-25 % jitter so a fleet does not retry in step
                h = self._hold[key] = [0, backoff.Backoff(10000, 300000) if key == "boot" else
                                       backoff.Backoff(5000, 120000)]
            wait = h[1].next_ms()
            h[0] = time.ticks_add(time.ticks_ms(), wait)
            self.last_error = why
            self.say("%s, retry in %d s" % (why, wait // 1000))
            return True
        if key is not None:
            self._hold.pop(key, None)
        return True

    def spawn(self, coro, where):
        """Run a short-lived OCPP job (an authorisation, a reset) as its own task; an
        exception in it is reported through fault(), never lost with the task."""
        return asyncio.create_task(self._watched(coro, where))

    async def _watched(self, coro, where):
        try:
            await coro
        except Exception as e:  # noqa: BLE001 - reported, the other tasks go on
            self.fault(where, e)  # (CancelledError is a BaseException: it goes on up)

    def fault(self, where, e):
        """An unexpected exception in the OCPP tasks: logged, counted (diag), remembered."""
        self.faults += 1
        self.last_error = "%s: %r" % (where, e)
        self.say("fault %d in %s" % (self.faults, self.last_error))

    def diag(self, out):
        """The OCPP lines of diag.status (no password, ever)."""
        d = self.info()
        now = time.ticks_ms()

        def age(t):
            return "never" if t is None else "%d s ago" % (time.ticks_diff(now, t) // 1000)

        def line(text):
            out("ocpp       " + text)

        line("%s  %s  boot %s  connects %d" % (
            d["url"], "connected" if d["connected"] else "offline", d["registration"],
            d["connects"]))
        self.security.diag(line)
        line("clock " + self.tk.describe(now))
        line("journal %d pending  transaction %s  last rx %s  last tx %s" % (
            d["journal"], d["transaction"], age(self.link.last_rx_ms),
            age(self.link.last_tx_ms)))
        if d["last_error"]:
            line("last error: " + d["last_error"])
        if self.faults:
            line("faults %d" % self.faults)

    def info(self):
        lk = self.link  # (no password in its url: check_section's ws.parse_url refuses one)
        return {"url": lk.url, "connected": lk.connected, "connects": lk.connects,
                "registration": self.registration, "journal": self.journal.pending(),
                "status": self.st.status(1), "transaction": self.tx.csms_id(),
                "last_error": self.last_error or lk.last_error, "faults": self.faults}


# -- the link ---------------------------------------------------------------------------------
# The OCPP connection: brings the network up, opens the WebSocket with what the security
# profile asks (firmware/ocpp/security.py: ws:// or wss:// with the configured CA, HTTP Basic
# auth, a client certificate), feeds every received message to the RPC layer, sends pings per
# WebSocketPingInterval and drops a link that has gone silent, then reconnects with backoff
# and jitter; a changed AuthorizationKey or SecurityProfile closes it once the answer is out
# (Link.restart). It never touches the charge controller: while the link is down the charge
# point goes on locally and its journal fills.
class Link:
    def __init__(self, cp, net):
        s = cp.section
        self.url = s["url"].rstrip("/") + "/" + s["cp_id"]
        # the charge point's section, rpc, keys, security, say (its log) and tk (the clock,
        # set before each connection: TLS checks dates)
        self.cp = cp
        self.net = net
        # Set (to why) to close the link once the message being handled is answered, then
        # connect again (after the usual first backoff step) with the credentials in force
        # then (remote.ChangeConfiguration).
        self.restart = None
        self.ws = None
        self.connected = False
        self.up = asyncio.Event()  # set while connected
        self.backoff = backoff.Backoff(1000, 60000)
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
        # One session after another: the network up, the clock set (TLS checks dates), the
        # WebSocket opened with what the security profile asks, every message handed to rpc;
        # when it ends, the backoff's wait.
        cp = self.cp
        while True:
            try:
                opener = None
                if self.net is not None:
                    await self.net.up()
                    opener = self.net.open
                await cp.tk.before_connect()
                self.restart = None
                try:
                    self.ws = await ws.connect(  # (url, max_frame, timeout_ms, open_connection)
                        self.url, MAX_FRAME, _CONNECT_MS, opener,
                        **cp.security.connect_args(cp.section["cp_id"]))
                except ws.WsError as e:
                    cp.security.refused(e)
                    raise
                cp.security.connected()
                self.connected = True
                self.connects += 1
                self.backoff.reset()
                self.up.set()
                cp.say("connected to " + self.url)
                pinger = asyncio.create_task(self._pinger())
                try:
                    while True:
                        # Handed over in rpc.inbox, not as an argument: a value passed in a
                        # call stays in a slot of the caller's frame while the callee runs
                        # (MicroPython does not clear it), and rpc drops the text once parsed
                        # (a big SendLocalList is then its objects alone while the handler
                        # runs).
                        cp.rpc.inbox = await self.ws.recv()
                        self.last_rx_ms = time.ticks_ms()
                        await cp.rpc.received()
                        if self.restart:
                            raise ws.WsError("%s: reconnecting" % self.restart)
                finally:
                    pinger.cancel()
                    self.connected = False
                    self.up.clear()
            except (ws.WsError, security.SecurityError, OSError) as e:
                self._down(("network: %r" if isinstance(e, OSError) else "%s") % (e,))
            wait = self.backoff.next_ms()
            cp.say("link down (%s); retry in %d s" % (self.last_error, wait // 1000))
            await asyncio.sleep_ms(wait)

    def _down(self, why):
        self.last_error = why
        self.connected = False
        self.up.clear()
        self.cp.rpc.cancel()
        w, self.ws = self.ws, None
        if w is not None:
            asyncio.create_task(w.close())

    async def _pinger(self):
        # WebSocketPingInterval: our ping every interval; no bytes for 2 intervals + margin
        # means a dead (half-open) link: close it so that the reconnect starts.
        while True:
            iv = self.cp.keys.get("WebSocketPingInterval")
            await asyncio.sleep_ms(1000 * iv if iv > 0 else 5000)
            w = self.ws
            if w is None or iv <= 0:
                continue
            if time.ticks_diff(time.ticks_ms(), w.last_rx_ms) > 2000 * iv + _DEAD_MARGIN_MS:
                self.cp.say("no answer for %d s, closing" % (2 * iv))
                self._down("dead link (no pong)")
                return
            try:
                await w.ping()
            except ws.WsError:
                return
