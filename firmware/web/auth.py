# Access to the web interface (docs/security.md, "The LAN interface"): no default password
# (the first visitor sets the owner's: UK SCPR), owner and installer roles, session tokens in
# a cookie with an expiry, a CSRF token every change must carry, and a limit on failed logins.
# Passwords are kept as salted, iterated SHA-256 in auth.json (never the password itself).
import asyncio
import hashlib
import os


from firmware import persist
from firmware.ticks import ticks_add, ticks_diff, ticks_ms

AUTH_FILE = "auth.json"
OWNER = "owner"
INSTALLER = "installer"
ROLES = (OWNER, INSTALLER)
PW_MIN = const(8)
PW_MAX = const(64)
_ROUNDS = const(2000)  # 1.5 ms on a PC, tens of ms on an ESP32: slows guessing down ...
_SLICE = const(100)  # ... in slices: the scheduler runs the charge controller in between
_SESSIONS = const(4)  # logged-in browsers at once; the oldest is logged out by a fifth
_FAILS = const(5)  # failed logins in a row from one client before its lockout
_LOCK_MS = const(30000)  # the first lockout; doubles with each further failure ...
_LOCK_MAX_MS = const(900000)  # ... up to 15 minutes
_CLIENTS = const(4)  # clients with failed logins kept apart (docs/security.md)
_BOX_FAILS = const(20)  # failed logins in a row from all clients: the whole box locks


class AuthError(Exception):
    """A refused login or change; args[1] is the HTTP status (401, 403, 429)."""


def _hex(b):
    return "".join(["%02x" % x for x in b])


def _yield():
    return asyncio.sleep_ms(0) if hasattr(asyncio, "sleep_ms") else asyncio.sleep(0)


async def _hash(salt, password):
    h = hashlib.sha256(salt + password.encode()).digest()
    for i in range(_ROUNDS):
        h = hashlib.sha256(h + salt).digest()
        if i % _SLICE == _SLICE - 1:
            await _yield()  # never one long stretch: the safety path waits for nobody
    return _hex(h)


def _client(addr):
    """The client's IPv4 address from what accept() gave (a (host, port) tuple on a board,
    the raw sockaddr_in bytes on the unix port), without the port; None if not known."""
    if type(addr) is tuple:
        return addr[0]
    if addr is not None and len(addr) >= 8:
        return "%d.%d.%d.%d" % (addr[4], addr[5], addr[6], addr[7])
    return None


def _left(until, now):
    return 0 if until is None else ticks_diff(until, now)


def same(a, b):
    """Compare two strings in a time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= ord(a[i]) ^ ord(b[i])
    return d == 0


def check_password(pw):
    """What is wrong with a new password, or None."""
    if type(pw) is not str:
        return "password: must be text"
    if not PW_MIN <= len(pw) <= PW_MAX:
        return "password: %d..%d characters" % (PW_MIN, PW_MAX)
    return None


class Auth:
    def __init__(self, session_s=3600, installer=True, log=print):
        self.session_ms = session_s * 1000
        self.installer_on = installer  # config web.installer: false takes the role away
        self.log = log
        try:
            d = persist.load_json(AUTH_FILE)
        except ValueError as e:  # unreadable: nobody can log in until the console fixes it
            log("web: %s; logins refused (remove it on the console to set up again)" % e)
            d = {"broken": True}
        self.pw = d if type(d) is dict else {}
        self.sessions = []  # [token, role, csrf, expires ticks]
        # [client, fails in a row, locked until (ticks) or None, next lockout ms]: index 0
        # is the whole box (client None), then up to _CLIENTS addresses, the newest last
        self.fails = [[None, 0, None, _LOCK_MS]]

    # -- passwords -----------------------------------------------------------------------------
    def needs_setup(self):
        """True until the owner's password is set (no default: the first use sets it)."""
        return OWNER not in self.pw and "broken" not in self.pw

    def has(self, role):
        if role == INSTALLER and not self.installer_on:
            return False
        return role in self.pw

    async def set_password(self, role, pw):
        """Set (pw text) or remove (pw None: installer only) a role's password."""
        if role not in ROLES:
            raise AuthError("role: owner or installer", 400)
        if pw is None:
            if role == OWNER:
                raise AuthError("the owner's password cannot be removed", 400)
            self.pw.pop(role, None)
        else:
            msg = check_password(pw)
            if msg:
                raise AuthError(msg, 400)
            if role == INSTALLER and not self.installer_on:
                raise AuthError("the installer role is disabled (config web.installer)", 403)
            salt = os.urandom(8)
            self.pw[role] = [_hex(salt), await _hash(salt, pw)]
        try:
            persist.save_json(AUTH_FILE, self.pw)
        except OSError as e:
            raise AuthError("password not saved (%s)" % (e,), 503)
        self.sessions = [s for s in self.sessions if s[1] != role or pw is not None]

    # -- logins --------------------------------------------------------------------------------
    def _entry(self, client, now):
        """The client's entry in self.fails (a new one when it has none: the oldest unlocked
        gives way; None when every one is locked out)."""
        t = self.fails
        for e in t[1:]:
            if e[0] == client:
                return e
        if len(t) <= _CLIENTS:
            t.append([client, 0, None, _LOCK_MS])
            return t[-1]
        for e in t[1:]:
            if e[2] is None or ticks_diff(e[2], now) <= 0:
                t.remove(e)
                t.append([client, 0, None, _LOCK_MS])
                return t[-1]
        return None

    async def login(self, role, pw, now=None, addr=None):
        """A new session [token, role, csrf, expires] or AuthError (401 wrong, 429 locked).
        addr: the client's address as accept() gave it (the lockout is per client)."""
        now = ticks_ms() if now is None else now
        client = _client(addr)
        box = self.fails[0]
        e = self._entry(client, now)
        if e is None:  # every client kept is locked out: a new one waits for the first
            w = min([ticks_diff(x[2], now) for x in self.fails[1:]])
        else:
            w = max(_left(box[2], now), _left(e[2], now))
        if w > 0:
            raise AuthError("too many failed logins: try again in %d s" % ((w + 999) // 1000),
                            429)
        rec = self.pw.get(role) if self.has(role) else None
        ok = False
        if rec is not None and type(pw) is str and len(pw) <= PW_MAX:
            try:
                ok = same(await _hash(bytes.fromhex(rec[0]), pw), rec[1])
            except (ValueError, TypeError, IndexError):
                ok = False
        if not ok:
            if e[1] < _FAILS:  # the box counts each client's failures up to its lockout
                self._fail(box, _BOX_FAILS, now, "from all clients")
            self._fail(e, _FAILS, now, "from %s" % (client,))
            raise AuthError("wrong password or role", 401)
        box[1] = 0
        box[2] = None
        box[3] = _LOCK_MS
        self.fails.remove(e)
        return self.new_session(role, now)

    def _fail(self, e, most, now, who):
        e[1] += 1
        if e[1] >= most:
            e[2] = ticks_add(now, e[3])
            self.log("web: %d failed logins %s; logins refused for %d s" % (
                e[1], who, e[3] // 1000))
            e[3] = min(e[3] * 2, _LOCK_MAX_MS)

    def new_session(self, role, now=None):
        now = ticks_ms() if now is None else now
        s = [_hex(os.urandom(16)), role, _hex(os.urandom(8)), ticks_add(now, self.session_ms)]
        self.sessions.append(s)
        while len(self.sessions) > _SESSIONS:
            self.sessions.pop(0)
        return s

    def session(self, token, now=None):
        """The live session of a cookie's token, or None (unknown or expired: dropped)."""
        if not token:
            return None
        now = ticks_ms() if now is None else now
        for s in self.sessions:
            if same(s[0], token):
                if ticks_diff(s[3], now) <= 0 or not self.has(s[1]):
                    self.sessions.remove(s)
                    return None
                return s
        return None

    def logout(self, token):
        self.sessions = [s for s in self.sessions if s[0] != token]
