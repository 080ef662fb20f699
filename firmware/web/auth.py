# Access to the web interface (docs/security.md, "The LAN interface"): no default password
# (the first visitor sets the owner's: UK SCPR), owner and installer roles, session tokens in
# a cookie with an expiry, a CSRF token every change must carry, and a limit on failed logins.
# Passwords are kept as salted, iterated SHA-256 in auth.json (never the password itself).
import asyncio
import hashlib
import os

from micropython import const

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
_FAILS = const(5)  # failed logins in a row before the lockout
_LOCK_MS = const(30000)  # the first lockout; doubles with each further failure ...
_LOCK_MAX_MS = const(900000)  # ... up to 15 minutes


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
        self.fails = 0
        self.locked_until = None  # ticks
        self.lock_ms = _LOCK_MS

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
    async def login(self, role, pw, now=None):
        """A new session [token, role, csrf, expires] or AuthError (401 wrong, 429 locked)."""
        now = ticks_ms() if now is None else now
        lu = self.locked_until
        if lu is not None and ticks_diff(lu, now) > 0:
            raise AuthError("too many failed logins: try again in %d s" % (
                (ticks_diff(lu, now) + 999) // 1000), 429)
        rec = self.pw.get(role) if self.has(role) else None
        ok = False
        if rec is not None and type(pw) is str and len(pw) <= PW_MAX:
            try:
                ok = same(await _hash(bytes.fromhex(rec[0]), pw), rec[1])
            except (ValueError, TypeError, IndexError):
                ok = False
        if not ok:
            self.fails += 1
            if self.fails >= _FAILS:
                self.locked_until = ticks_add(now, self.lock_ms)
                self.log("web: %d failed logins; logins refused for %d s" % (
                    self.fails, self.lock_ms // 1000))
                self.lock_ms = min(self.lock_ms * 2, _LOCK_MAX_MS)
            raise AuthError("wrong password or role", 401)
        self.fails = 0
        self.locked_until = None
        self.lock_ms = _LOCK_MS
        return self.new_session(role, now)

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
