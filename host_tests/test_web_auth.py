"""Access rules of the web interface (firmware/web/auth.py, docs/security.md) on CPython with
the device clock in hand: sessions expire, at most four live at once, failed logins lock the
login out for 30 s doubling to 15 min, per client (4 kept apart, the box locked when more
guess), a removed role's sessions end, the stored password is
not the password."""
import asyncio
import json

import pytest

from firmware.web.auth import INSTALLER, OWNER, Auth, AuthError


@pytest.fixture
def auth(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = Auth(session_s=60, log=lambda m: None)
    _run(a.set_password(OWNER, "owner secret"))
    return a


def _run(coro):
    return asyncio.run(coro)


def _code(fn, *args):
    with pytest.raises(AuthError) as e:
        _run(fn(*args))
    return e.value.args[1]


def test_no_default_password_and_what_is_stored_is_not_the_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = Auth(log=lambda m: None)
    assert a.needs_setup() and _code(a.login, OWNER, "", 0) == 401
    assert _code(a.set_password, OWNER, "short") == 400
    _run(a.set_password(OWNER, "owner secret"))
    text = open("auth.json").read()
    assert "owner secret" not in text and len(json.loads(text)["owner"][1]) == 64
    assert not Auth(log=lambda m: None).needs_setup()  # read back at the next boot


def test_a_session_expires(auth):
    s = _run(auth.login(OWNER, "owner secret", 1000))
    assert auth.session(s[0], 1000 + 59999) is s
    assert auth.session(s[0], 1000 + 60000) is None
    assert auth.session(s[0], 1000) is None  # dropped, not revived


def test_at_most_four_sessions_the_oldest_ends(auth):
    ss = [_run(auth.login(OWNER, "owner secret", 0)) for _ in range(5)]
    assert auth.session(ss[0][0], 1) is None
    assert all(auth.session(s[0], 1) is s for s in ss[1:])


def test_failed_logins_lock_out_doubling_and_a_success_resets(auth):
    for _ in range(5):
        assert _code(auth.login, OWNER, "wrong one", 0) == 401
    assert _code(auth.login, OWNER, "owner secret", 29999) == 429
    assert _run(auth.login(OWNER, "owner secret", 30000))  # 30 s later
    for _ in range(5):
        _code(auth.login, OWNER, "wrong one", 40000)
    assert _code(auth.login, OWNER, "owner secret", 69999) == 429  # 30 s again: reset
    assert _code(auth.login, OWNER, "wrong one", 70000) == 401  # the 6th in a row
    assert _code(auth.login, OWNER, "owner secret", 70000 + 59999) == 429  # now 60 s
    assert _run(auth.login(OWNER, "owner secret", 70000 + 60000))


def _addr(n):
    """What accept() gives on the unix port for client 192.168.1.n (raw sockaddr_in, the
    port differing per connection) and on a board ((host, port))."""
    return bytes([2, 0, n, 7, 192, 168, 1, n, 0, 0, 0, 0, 0, 0, 0, 0]) if n % 2 else (
        "192.168.1.%d" % n, 40000 + n)


def test_the_lockout_is_per_client_the_owner_logs_in_while_a_guesser_is_locked(auth):
    g = _addr(9)
    for _ in range(5):
        assert _code(auth.login, OWNER, "wrong one", 0, g) == 401
    assert _code(auth.login, OWNER, "owner secret", 1000, g) == 429  # the guesser: locked
    assert _run(auth.login(OWNER, "owner secret", 1000, _addr(2)))  # the owner's phone: in
    assert _code(auth.login, OWNER, "owner secret", 29999, g) == 429
    assert _code(auth.login, OWNER, "wrong one", 30000, g) == 401  # its 6th in a row ...
    assert _code(auth.login, OWNER, "owner secret", 30000 + 59999, g) == 429  # ... 60 s
    assert _run(auth.login(OWNER, "owner secret", 30000 + 59999, _addr(4)))
    # one guesser never locks the box, however long it goes on
    now = 100000
    for _ in range(40):
        now += 900000
        _code(auth.login, OWNER, "wrong one", now, g)
    assert _run(auth.login(OWNER, "owner secret", now + 1, _addr(2)))


def test_many_guessing_clients_lock_the_whole_box(auth):
    """Four clients are kept apart. More addresses guessing (a script that changes its
    address whenever it is locked out) lock the box: 20 failed logins counted from all
    clients (each client's up to its own lockout), and each further one doubles the box's
    lockout as one client's does; the table stays bounded."""
    for n in (1, 2, 3, 4):
        for _ in range(5):
            assert _code(auth.login, OWNER, "wrong one", 0, _addr(n)) == 401
    assert _code(auth.login, OWNER, "owner secret", 1, _addr(5)) == 429  # everybody waits
    assert len(auth.fails) == 1 + 4  # the box and 4 clients
    now = 30000  # every lockout over: the guesser comes back from a new address
    assert _code(auth.login, OWNER, "wrong one", now, _addr(6)) == 401
    assert _code(auth.login, OWNER, "owner secret", now + 59999, _addr(5)) == 429  # 60 s
    assert _run(auth.login(OWNER, "owner secret", now + 60000, _addr(5)))
    assert _code(auth.login, OWNER, "wrong one", now + 60001, _addr(7)) == 401  # reset
    assert len(auth.fails) == 1 + 4


def test_the_installer_role_given_taken_and_disabled(auth, tmp_path):
    assert _code(auth.login, INSTALLER, "installer 1", 0) == 401
    _run(auth.set_password(INSTALLER, "installer 1"))
    s = _run(auth.login(INSTALLER, "installer 1", 0))
    _run(auth.set_password(INSTALLER, None))
    assert auth.session(s[0], 1) is None and not auth.has(INSTALLER)
    assert _code(auth.set_password, OWNER, None) == 400
    off = Auth(installer=False, log=lambda m: None)
    assert _code(off.set_password, INSTALLER, "installer 2") == 403
