"""The JSON API (docs/api.md) on the simulated wallbox: the real firmware on the unix port
serving microdot behind its guard on 127.0.0.1. First use sets the owner's password (no
default), every setting round-trips or is refused naming it, the roles, the CSRF token and
the failed-login limit hold, and malformed requests are cut off while the API keeps answering
(slow clients and the connection limit: test_web_guard.py)."""
import pytest
import simrig
import webrig

from firmware.owner import settings

PW = "correct horse"

# name: (a good value, a refused value, words of the refusal)
OWNER_SETTINGS = {
    "mode": ("minpv", "turbo", "allowed fast, pv, minpv"),
    "current_a": (12, 5, "out of range, allowed 6..80"),
    "enable": (False, "off", "allowed true or false"),
    "delay_override": (True, 1, "allowed true or false"),
    "offpeak": (True, "yes", "allowed true or false"),
    "tz_offset_min": (60, 2000, "out of range, allowed -720..840"),
    "peak_hours": ("7-10", "25-26", "allowed up to 4 ranges of whole hours"),
    "phase_lock": (1, 2, "allowed \"auto\", 1, 3"),
}
INSTALLER_ONLY = sorted(n for n, spec in settings.TABLE.items() if spec[2] == "installer")


# installer setting: (changes that are taken, a refused value, words of the refusal)
INSTALLER_SETTINGS = {
    "rating_a": ({"rating_a": 32}, 5, "out of range, allowed 6..80"),
    "max_current_a": ({"max_current_a": 16}, 90, "out of range, allowed 6..80"),
    "phases": ({"phases": 3}, 2, "allowed 1, 3"),
    "connector": ({"connector": "type2_socket"}, "schuko", "allowed type2_socket"),
    "cable_a": ({"cable_a": 20}, 5, "out of range, allowed 6..80"),
    "free_vend": ({"free_vend": True}, "yes", "allowed true or false"),
    "main_fuse_a": ({"main_fuse_a": None}, 5, "out of range, allowed 6..630"),
    "total_a": ({"total_a": None}, 2000, "out of range, allowed 6..1890"),
    "safe_a": ({"safe_a": 6}, 20, "above the installer's limit of 16 A"),
    "preset": ({"preset": "none"}, "de", "allowed none, uk"),
    "random_delay_s": ({"random_delay_s": 0}, 5000, "out of range, allowed 0..1800"),
    "pv_start_w": ({"pv_start_w": 2000}, -1, "out of range, allowed 0..100000"),
    "pv_stop_w": ({"pv_stop_w": 1000}, 3000, "above pv_start_w=2000"),
    "meters": ({"meters": {}}, "sdm630", "must be a JSON object"),
    "ocpp_url": ({"ocpp_url": "ws://csms.example/ocpp", "ocpp_id": "BOX1"}, "http://x",
                 "'http://x': not ws:// or wss://"),
    "ocpp_id": ({"ocpp_id": "BOX2"}, "a b", "1..48 characters"),
    "ocpp_password": ({"ocpp_password": "p" * 16}, "short", "16..40 characters"),
    "wifi_ssid": ({"wifi_ssid": "home"}, "x" * 40, "ssid"),
    "wifi_password": ({"wifi_password": "secret pass"}, "short", "password"),
}


def test_every_installer_setting_round_trips_for_the_installer(box, owner):
    assert set(INSTALLER_SETTINGS) == set(INSTALLER_ONLY)
    inst = webrig.Client(box.http_port)
    assert owner.post("/api/password", {"role": "installer", "password": "install pw 2"})[0] == 200
    assert inst.post("/api/login", {"role": "installer", "password": "install pw 2"})[0] == 200
    try:
        for name in INSTALLER_SETTINGS:  # in order: pv_stop_w after pv_start_w, ocpp_url first
            good, bad, words = INSTALLER_SETTINGS[name]
            before = inst.get("/api/settings")[1]
            st, ans = inst.post("/api/settings", {name: bad})
            assert st == 400 and name in ans["error"] and words in ans["error"], (name, ans)
            assert inst.get("/api/settings")[1] == before, name
            st, ans = inst.post("/api/settings", good)
            assert st == 200, (name, ans)
            now = inst.get("/api/settings")[1]
            for k, v in good.items():
                assert now[k] == v if k in now else now[k + "_set"] is True, (k, now)
    finally:
        assert owner.post("/api/password", {"role": "installer", "password": None})[0] == 200


def test_every_owner_setting_is_tested():
    assert set(OWNER_SETTINGS) == {n for n, spec in settings.TABLE.items()
                                   if spec[2] == "owner"}


@pytest.fixture(scope="module")
def box():
    sim = webrig.start({"limits": {"min_pause_s": 0}})  # the switch tests resume at once
    c = webrig.Client(sim.http_port)
    sim.before_setup = {"status": c.get("/api/status"), "session": c.get("/api/session"),
                        "short": c.post("/api/setup", {"password": "short"})}
    sim.setup = c.post("/api/setup", {"password": PW})
    sim.again = webrig.Client(sim.http_port).post("/api/setup", {"password": "other one 1"})
    yield sim
    sim.stop()


@pytest.fixture
def owner(box):
    c = webrig.Client(box.http_port)
    st, ans = c.post("/api/login", {"role": "owner", "password": PW})
    assert st == 200, ans
    return c


def test_first_use_sets_the_owners_password_and_there_is_no_default(box):
    b = box.before_setup
    assert b["status"] == (403, {"error": "set the owner's password first (POST /api/setup)"})
    assert b["session"][1]["setup"] is True and b["session"][1]["role"] is None
    assert b["short"] == (400, {"error": "password: 8..64 characters"})
    st, ans = box.setup
    assert st == 200 and ans["role"] == "owner" and ans["csrf"]
    assert box.again == (403, {"error": "the owner's password is set already (log in)"})


def test_status_answers_the_connector_status_and_the_offer(owner):
    st, s = owner.get("/api/status")
    assert st == 200 and s["status"] == "Available" and s["offer_a"] == 0 and s["state"] == "A"
    assert s["limit_a"] == 16 and s["limit_by"] == "config max_current_a"


@pytest.mark.parametrize("name", sorted(OWNER_SETTINGS))
def test_every_owner_setting_round_trips_and_a_bad_value_changes_nothing(owner, name):
    good, bad, words = OWNER_SETTINGS[name]
    _, before = owner.get("/api/settings")
    st, ans = owner.post("/api/settings", {name: bad})
    assert st == 400 and ans["error"].startswith("%s=" % name) and words in ans["error"], ans
    assert owner.get("/api/settings")[1] == before
    st, ans = owner.post("/api/settings", {name: good})
    assert st == 200 and ans["applied"] == [name] and ans["settings"][name] == good, ans
    assert owner.get("/api/settings")[1][name] == good
    st, ans = owner.post("/api/settings", {name: before[name]})  # back as it was
    assert st == 200 and owner.get("/api/settings")[1] == before


def test_a_request_with_one_bad_value_changes_nothing_at_all(owner):
    st, ans = owner.post("/api/settings", {"mode": "pv", "current_a": 99})
    assert st == 400 and "current_a=99 refused" in ans["error"], ans
    assert owner.get("/api/settings")[1]["mode"] == "fast"
    st, ans = owner.post("/api/settings", {"current_a": 20})  # above max_current_a 16
    assert st == 400 and "above the installer's limit of 16 A" in ans["error"], ans
    st, ans = owner.post("/api/settings", b"{not json")
    assert st == 400 and "JSON object" in ans["error"]


@pytest.mark.parametrize("name", INSTALLER_ONLY)
def test_the_owner_cannot_change_an_installer_setting(owner, name):
    st, ans = owner.post("/api/settings", {name: 10})
    assert (st, ans) == (400, {"error": "%s: only the installer may change it" % name})
    assert name not in owner.get("/api/settings")[1]


def test_no_session_no_access_and_a_change_needs_the_csrf_token(box, owner):
    anon = webrig.Client(box.http_port)
    assert anon.get("/api/status")[0] == 401 and anon.get("/api/settings")[0] == 401
    assert anon.post("/api/settings", {"mode": "pv"})[0] == 401
    st, ans = owner.post("/api/settings", {"mode": "pv"}, csrf=False)
    assert st == 403 and "X-CSRF-Token" in ans["error"]
    st, ans = owner.post("/api/settings", {"mode": "pv"}, headers={"X-CSRF-Token": "x" * 16})
    assert st == 403
    st, ans = owner.post("/api/settings", {"mode": "pv"},
                         headers={"Origin": "http://evil.example"})
    assert st == 403 and "cross-site" in ans["error"]
    assert owner.get("/api/settings")[1]["mode"] == "fast"
    assert owner.post("/api/logout")[0] == 200
    owner.cookie = None
    assert owner.get("/api/status")[0] == 401


@pytest.mark.parametrize("host,ok", [
    ("evil.example", False), ("wallbox.example.com:80", False), ("1.2.3.4.evil.com", False),
    ("wallbox", True), ("wallbox.local:8080", True), ("192.168.1.20", True)])
def test_a_public_host_name_is_refused_against_dns_rebinding(box, owner, host, ok):
    st, ans = owner.get("/api/status", headers={"Host": host})
    assert (st == 200) is ok, (st, ans)
    if not ok:
        assert st == 403 and "Host %s refused" % host in ans["error"]
        st, ans = webrig.Client(box.http_port).post(
            "/api/setup", {"password": "rebound pw 1"}, headers={"Host": host})
        assert st == 403 and "refused" in ans["error"]


def test_the_installer_role_is_the_owners_to_give_and_to_take(box, owner):
    inst = webrig.Client(box.http_port)
    assert inst.post("/api/login", {"role": "installer", "password": "install pw 1"})[0] == 401
    assert owner.post("/api/password", {"role": "installer",
                                        "password": "install pw 1"}) == (200, {"installer": True})
    assert inst.post("/api/login", {"role": "installer", "password": "install pw 1"})[0] == 200
    st, ans = inst.post("/api/settings", {"max_current_a": 40})
    assert st == 400 and "max_current_a=40 refused: above rating_a=32" in ans["error"]
    st, ans = inst.post("/api/settings", {"max_current_a": 14, "mode": "fast"})
    assert st == 200 and ans["restart"] == ["max_current_a"] and ans["applied"] == ["mode"]
    assert inst.get("/api/settings")[1]["max_current_a"] == 14
    assert "max_current_a" in inst.get("/api/status")[1]["restart_needed"]
    st, ans = inst.post("/api/password", {"role": "owner", "password": "taken over 1"})
    assert st == 403
    assert owner.post("/api/password", {"role": "installer", "password": None})[0] == 200
    assert inst.get("/api/status")[0] == 401  # the installer's session ended with the role
    assert inst.post("/api/login", {"role": "installer", "password": "install pw 1"})[0] == 401


def test_the_owners_current_and_switch_bind_the_offer_while_charging(box, owner):
    box.do("ev", max_current_a=32)
    simrig.charge(box)
    n = len(box.obs)
    assert owner.post("/api/settings", {"current_a": 10})[0] == 200
    box.wait_for(lambda o: o.get("k") == "state" and o.get("offer_da") == 100, 10, since=n)
    s = owner.get("/api/status")[1]
    assert s["offer_a"] == 10 and s["limit_by"] == "owner" and s["status"] == "Charging", s
    n = len(box.obs)
    assert owner.post("/api/settings", {"enable": False})[0] == 200
    st = box.wait_for(lambda o: o.get("k") == "state" and o.get("offer_da") == 0, 10, since=n)
    assert "owner: charging paused" in st["reason"], st
    assert owner.post("/api/settings", {"enable": True, "current_a": None})[0] == 200
    box.do("unplug")


def test_hostile_clients_are_cut_off_and_the_api_keeps_answering(box, owner):
    port = box.http_port
    flood = b"GET /api/status HTTP/1.1\r\n" + b"X-A: " + b"a" * 100 + b"\r\n" * 1 + (
        b"X-B: b\r\n" * 200) + b"\r\n"
    assert webrig.raw(port, flood) == b""  # too many headers: closed, no answer
    assert webrig.raw(port, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n") == b""
    assert webrig.raw(port, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n") == b""
    big = b"POST /api/settings HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"{" * 3000
    assert webrig.raw(port, big).startswith(b"HTTP/1.0 413 ")  # answered, body unread
    assert owner.get("/api/status")[0] == 200
    st, d = owner.get("/api/diag")
    assert st == 200 and d["web"]["cut"] >= 3, d["web"]
    assert any(line.startswith("status     ") for line in d["diag"]), d["diag"]


def test_failed_logins_lock_the_login_out(box):
    c = webrig.Client(box.http_port)
    for _ in range(5):
        assert c.post("/api/login", {"role": "owner", "password": "guess guess"})[0] == 401
    st, ans = c.post("/api/login", {"role": "owner", "password": PW})
    assert st == 429 and "too many failed logins: try again in" in ans["error"], ans
    # the lockout is the guesser's: the owner's phone (another address) logs in
    phone = webrig.Client(box.http_port, source="127.0.0.2")
    st, ans = phone.post("/api/login", {"role": "owner", "password": PW})
    assert st == 200 and ans["role"] == "owner", ans
    assert phone.get("/api/status")[0] == 200
    assert c.post("/api/login", {"role": "owner", "password": PW})[0] == 429
    assert any("failed logins from 127.0.0.1" in o.get("msg", "") for o in box.obs)
