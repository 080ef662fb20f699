# Network manager: the board's link (ESP32 Wi-Fi station, STM32 Ethernet, the simulator's
# loopback) and TCP/TLS connections over it, for the OCPP link task. Nothing here is on the
# safety path: a link that is down only makes up() wait, and the charge controller never
# waits on it.
#   net = board.net(cfg.network)     # WlanNet, LanNet, SimNet or None (no network)
#   await net.up()                   # returns once the link is up; retries with Backoff
#   r, w = await net.open(host, port, ssl=ctx, server_hostname=host)
# The driver retries itself are switched off where the port has them (ESP32: by default it
# reconnects forever with no pause): the link is retried here, with backoff and jitter, and
# every failure is counted and kept readable in info().
import asyncio
import socket


from firmware.backoff import Backoff
from firmware.ticks import ticks_diff, ticks_ms


_POLL_MS = const(250)  # link status poll while connecting or waiting
_FIRST_MS = const(1000)
_CAP_S = const(60)
_TIMEOUT_S = const(20)


# -- the config section -----------------------------------------------------------------------
def _ssid(v):
    return 1 <= len(v.encode()) <= 32


def _password(v):
    if len(v) == 64:
        return all(c in "0123456789abcdefABCDEF" for c in v)
    return v == "" or 8 <= len(v) <= 63


def _hostname(v):
    ok = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
    return 1 <= len(v) <= 32 and all(c in ok for c in v) and v[0] != "-" and v[-1] != "-"


# key: (kind, check, what the installer should write). Every kind of link accepts every key,
# so one config file serves a board with Wi-Fi and one with Ethernet.
KEYS = {
    "ssid": (str, _ssid, "the Wi-Fi network's name, 1..32 bytes"),
    "password": (str, _password, "8..63 characters or 64 hex digits, \"\" = open network"),
    "hostname": (str, _hostname, "1..32 letters, digits or '-'"),
    "backoff_max_s": (int, (1, 3600), "seconds, 1..3600"),
    "connect_timeout_s": (int, (5, 120), "seconds, 5..120"),
}


class NetError(OSError):
    """A link or connection failure, its message naming the cause: "link down",
    "dns: ...", "refused: host:port", "timeout: ...", "network: <config error>". An OSError,
    so code written for asyncio.open_connection's errors handles it unchanged."""


def _sleep_ms_cpython(ms):
    return asyncio.sleep(ms / 1000)


_sleep_ms = getattr(asyncio, "sleep_ms", _sleep_ms_cpython)


def _wait_for_ms(aw, ms):
    if hasattr(asyncio, "wait_for_ms"):
        return asyncio.wait_for_ms(aw, ms)
    return asyncio.wait_for(aw, ms / 1000)


class Net:
    """The common logic; a subclass supplies the link: _start() (begin connecting),
    _link() (bool: up with an address), _why() (why not, readable), _stop() (give up the
    attempt), _ip(), _more(info)."""

    kind = "none"

    def __init__(self, section=None, log=print, seed=None, first_ms=_FIRST_MS):
        self.errors = self.validate(section)
        cfg = section if type(section) is dict and not self.errors else {}
        self.cfg = cfg
        cap = max(first_ms, 1000 * cfg.get("backoff_max_s", _CAP_S))
        self.backoff = Backoff(first_ms, cap, seed=seed)
        self.timeout_ms = 1000 * cfg.get("connect_timeout_s", _TIMEOUT_S)
        self._log = log
        self.reconnects = 0  # times the link came back after it had been up
        self.attempts = 0  # failed attempts since the link was last up
        self.last_error = None
        if self.errors:
            self.last_error = self._config_error()
        self._up = False
        self._ever = False
        self._lock = None
        self._now = ticks_ms  # a test puts a fake clock here, and a fake sleep below
        self._sleep_ms = _sleep_ms
        self._since = self._now()
        # The board's answer to "may a call block the interpreter in C now?" (a DNS lookup,
        # a TLS handshake): False while the contactor is closed on a board without a reflex
        # (esp32_wallbox, docs/safety.md). None: always.
        self.gate = None
        self.deferred = 0  # opens refused by the gate

    # -- the link -----------------------------------------------------------------------------
    def isup(self):
        up = bool(self._link())
        if up != self._up:
            self._up = up
            self._since = self._now()
            if up:
                if self._ever:
                    self.reconnects += 1
                self._ever = True
                self.attempts = 0
                self.backoff.reset()
                self._say("network: %s up, address %s" % (self.kind, self._ip()))
            else:
                self.last_error = "link lost"
                self._say("network: %s link lost" % self.kind)
        return up

    async def up(self):
        """Return once the link is up, bringing it up and retrying with backoff as long as it
        takes. Raises NetError only for a bad config (the message says what to fix)."""
        if self.errors:
            raise NetError(self._config_error())
        if self.isup():
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one attempt sequence, however many tasks wait for the link
            while not self.isup():
                why = await self._attempt()
                if why is None:
                    continue
                self.attempts += 1
                self.last_error = why
                wait = self.backoff.next_ms()
                self._say("network: %s; attempt %d failed, next in %d ms" % (
                    why, self.attempts, wait))
                await self._pause(wait)

    async def _attempt(self):
        """One try: start connecting, poll until up or the timeout. None when up, else why."""
        try:
            self._start()
        except Exception as e:  # noqa: BLE001 - a driver error is one failed attempt
            self._stop_quietly()
            return "cannot start the %s link: %r" % (self.kind, e)
        t0 = self._now()
        while not self._link():
            if ticks_diff(self._now(), t0) >= self.timeout_ms:
                why = self._why()
                self._stop_quietly()
                return "not up after %d s (%s)" % (self.timeout_ms // 1000, why)
            await self._sleep_ms(_POLL_MS)
        return None

    async def _pause(self, ms):
        """The backoff wait; it ends early if the link comes up by itself (a cable)."""
        t0 = self._now()
        while True:
            left = ms - ticks_diff(self._now(), t0)
            if left <= 0 or self._link():
                return
            await self._sleep_ms(min(left, _POLL_MS))

    def _stop_quietly(self):
        try:
            self._stop()
        except Exception as e:  # noqa: BLE001 - already failing; the next attempt starts over
            self._say("network: stopping the %s link: %r" % (self.kind, e))

    # -- connections --------------------------------------------------------------------------
    async def open(self, host, port, ssl=None, server_hostname=None, timeout_ms=10000):
        """asyncio.open_connection over the link -> (reader, writer). Failures raise NetError:
        "link down", "dns: ...", "refused: host:port", "reset: ...", "unreachable: ...",
        "timeout: ...", "tls: ..." (on MicroPython the TLS handshake runs on the first read
        or write, so its errors come from there)."""
        if not self.isup():
            raise NetError("link down")
        if type(host) is not str or not host:
            raise NetError("bad host %r" % (host,))
        if type(port) is not int or not 0 < port < 65536:
            raise NetError("bad port %r (1..65535)" % (port,))
        where = "%s:%d" % (host, port)
        if self.gate is not None and not self.gate():
            self.deferred += 1
            raise NetError("deferred: no DNS lookup or TLS handshake while the contactor is "
                           "closed on this board (no reflex); retried after the session")
        addr = host
        server = None if _numeric(host) else self._dns_server()
        if server is not None:  # bounded, in asyncio (firmware/dns.py); connect by address
            addr = await self._lookup(server, host)
            if ssl and not server_hostname:
                server_hostname = host  # the certificate names the host, not the address
        elif not _numeric(host):
            try:  # blocking on every port (lwIP, getaddrinfo): a DNS failure named as such
                socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            except OSError as e:
                raise NetError("dns: cannot resolve %r (%s)" % (host, _text(e)))
        try:
            r, w = await _wait_for_ms(self._connect(addr, port, ssl, server_hostname),
                                      timeout_ms)
        except asyncio.TimeoutError:  # before OSError: on CPython it is one
            raise NetError("timeout: no connection to %s in %d ms" % (where, timeout_ms))
        except OSError as e:
            raise NetError(_os_error(e, where))
        if _refused(w):
            raise NetError("refused: %s" % where)
        return r, w

    async def _lookup(self, server, host):
        """host's address from the link's DNS server, at most dns.TRIES x dns.TRY_MS (2 s)
        of asyncio waiting; the last address it had when the server does not answer."""
        from firmware import dns

        try:
            return await dns.resolve(server, host, self._now, self._sleep_ms)
        except (OSError, ValueError) as e:
            old = dns.cached(host)
            if old is None:
                raise NetError("dns: cannot resolve %r (%s)" % (host, _text(e)))
            self._say("network: dns: %r: %s; its last address %s used" % (host, _text(e), old))
            return old

    async def _connect(self, host, port, ssl, server_hostname):
        if ssl:
            return await asyncio.open_connection(host, port, ssl=ssl,
                                                 server_hostname=server_hostname)
        return await asyncio.open_connection(host, port)

    # -- state for diag and the OCPP link -----------------------------------------------------
    def info(self):
        """kind, up, ip, reconnects, attempts, last_error, since_ms (how long the link has
        been in its present state), plus the link's own (wlan: ssid, rssi)."""
        up = self.isup()
        d = {
            "kind": self.kind, "up": up, "ip": self._ip() if up else None,
            "reconnects": self.reconnects, "attempts": self.attempts,
            "last_error": self.last_error, "since_ms": ticks_diff(self._now(), self._since),
        }
        self._more(d, up)
        return d

    @staticmethod
    def validate(section):
        """The "network" config section's errors (readable strings; [] = fine). None or
        {} is fine here: a Wi-Fi link also needs an ssid (WlanNet.validate)."""
        if section is None:
            return []
        if type(section) is not dict:
            return ["network: must be a JSON object, got %r" % (section,)]
        errors = []
        for key, value in section.items():
            spec = KEYS.get(key)
            if spec is None:
                near = _closest(key)
                errors.append("network: unknown key %r%s" % (
                    key, " (did you mean %r?)" % near if near else ""))
                continue
            kind, check, allowed = spec
            if type(value) is not kind:
                bad = "not a string" if kind is str else "not an integer"
                errors.append("network: %s %s (%s)" % (key, bad, allowed))
            elif type(check) is tuple:
                if not check[0] <= value <= check[1]:
                    errors.append("network: %s=%r out of range (%s)" % (key, value, allowed))
            elif not check(value):
                shown = "%d characters" % len(value) if key == "password" else repr(value)
                errors.append("network: %s refused: %s; allowed %s" % (key, shown, allowed))
        return errors

    def _config_error(self):
        return "; ".join(self.errors)  # each names the section: "network: ..."

    def _say(self, msg):
        if self._log is not None:
            self._log(msg)

    # -- what a link supplies -----------------------------------------------------------------
    def _start(self):
        pass

    def _link(self):
        return False

    def _why(self):
        return "no link"

    def _stop(self):
        pass

    def _ip(self):
        return None

    def _dns_server(self):
        """The link's DNS server (dotted address) when lookups go through firmware/dns.py
        (bounded: the esp32 port's getaddrinfo is not); None: the port's getaddrinfo."""
        return None

    def _more(self, d, up):
        pass


# -- helpers -----------------------------------------------------------------------------------
def _closest(key):
    from firmware.config import distance

    best = None
    for name in KEYS:
        d = distance(str(key).lower(), name)
        if d <= max(2, len(name) // 3) and (best is None or d < best[0]):
            best = (d, name)
    return best[1] if best else None


def _numeric(host):
    return all(c in "0123456789." for c in host)


def _text(e):
    a = e.args
    return str(a[-1]) if a else e.__class__.__name__


def _os_error(e, where):
    """A readable NetError message for an OSError from open_connection."""
    import errno

    n = e.args[0] if e.args and type(e.args[0]) is int else getattr(e, "errno", None)
    if n == errno.ECONNREFUSED:
        return "refused: %s" % where
    if n in (errno.ECONNRESET, errno.ECONNABORTED):
        return "reset: %s" % where
    if n == errno.ETIMEDOUT:
        return "timeout: %s" % where
    if n in (errno.EHOSTUNREACH, getattr(errno, "ENETUNREACH", -1)):
        return "unreachable: %s" % where
    if "SSL" in e.__class__.__name__ or "CERT" in str(e):
        return "tls: %s: %s" % (where, _text(e))
    return "%s: %r" % (where, e)


def _refused(w):
    """MicroPython's open_connection returns as soon as the socket is writable, which a
    refused connect is too: it shows as error/hang-up on the socket. Closes it then."""
    s = getattr(w, "s", None)  # CPython's writer has none: a refusal has raised already
    if s is None:
        return False
    import select

    p = select.poll()
    p.register(s, select.POLLOUT)
    for _, ev in p.poll(0):
        if ev & (select.POLLERR | select.POLLHUP):
            s.close()
            return True
    return False
