"""Access rules of the web interface (firmware/web/auth.py, docs/security.md) on CPython with
the device clock in hand: sessions expire, at most four live at once, failed logins lock the
login out for 30 s doubling to 15 min, a removed role's sessions end, the stored password is
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


def test_the_installer_role_given_taken_and_disabled(auth, tmp_path):
    assert _code(auth.login, INSTALLER, "installer 1", 0) == 401
    _run(auth.set_password(INSTALLER, "installer 1"))
    s = _run(auth.login(INSTALLER, "installer 1", 0))
    _run(auth.set_password(INSTALLER, None))
    assert auth.session(s[0], 1) is None and not auth.has(INSTALLER)
    assert _code(auth.set_password, OWNER, None) == 400
    off = Auth(installer=False, log=lambda m: None)
    assert _code(off.set_password, INSTALLER, "installer 2") == 403
