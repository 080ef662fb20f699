"""The owner model (firmware/owner, docs/api.md): status() and settings changed through the
config's checks. A refused value names the setting and changes nothing (neither the file
nor the offer); an owner's value above the installer's limit is refused; a taken value is
saved and binds at once."""
import json
import os

import pytest

from firmware import config
from firmware.charge import pilot
from firmware.limits.loop import Limits
from firmware.owner import Owner
from firmware.owner.settings import SettingsError


class _Ctl:
    def __init__(self):
        self.calls = []

        class _I:
            pilot = None

        class _Act:
            status, error, info, offer_da, reason, close, pilot = (
                "Available", "NoError", "", 0, "no EV", False, "A")

        class _S:
            act = _Act()

        self.inputs = _I()
        self.session = _S()

    def set_limit(self, amps, reason):
        self.calls.append((amps, reason))


class _Board:
    meter_reading = None


class _App:
    def __init__(self, raw):
        self.cfg = config.from_dict(raw)
        self.ctl = _Ctl()
        self.board = _Board()
        self.ocpp = None
        self.limits = Limits(self.ctl, self.cfg.rating_a, log=lambda m: None, cfg=self.cfg)
        self.limits.apply()  # the loop's first decision


RAW = {"rating_a": 32, "max_current_a": 16, "limits": {"safe_a": 6},
       "ocpp": {"url": "ws://csms.example/ocpp", "cp_id": "BOX1", "password": "x" * 16}}


@pytest.fixture
def box(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("config.json", "w") as f:
        json.dump(RAW, f)
    app = _App(RAW)
    logs = []
    return app, Owner(app, "config.json", log=logs.append)


def _file():
    with open("config.json") as f:
        return json.load(f)


def test_status_names_the_state_the_offer_and_the_binding_limit(box):
    app, o = box
    st = o.status()
    assert st["status"] == "Available" and st["state"] == "A" and st["offer_a"] == 0
    assert st["limit_a"] == 16 and st["limit_by"] == "config max_current_a"
    assert st["mode"] == "fast" and st["enable"] is True and st["current_a"] == [None] * 3
    json.dumps(st)  # plain values only


def test_a_mode_change_is_saved_and_taken_by_the_limit_loop_at_once(box):
    app, o = box
    out = o.apply({"mode": "pv"})
    assert out == {"applied": ["mode"], "restart": []}
    assert _file()["limits"] == {"safe_a": 6, "mode": "pv"}
    assert app.limits.s["mode"] == "pv" and app.limits.arb.need[6]  # PV input needed now
    assert o.settings()["mode"] == "pv" and o.status()["mode"] == "pv"
    assert _file()["ocpp"] == RAW["ocpp"]  # the rest of the file as it was


@pytest.mark.parametrize("changes,names", [
    ({"mode": "turbo"}, "mode='turbo' refused: allowed fast, pv, minpv"),
    ({"current_a": 5}, "current_a=5 refused: out of range, allowed 6..80"),
    ({"current_a": 10.5}, "current_a=10.5 refused: not an integer"),
    ({"enable": "yes"}, "enable='yes' refused: allowed true or false"),
    ({"mode": "pv", "delay_override": 1}, "delay_override=1 refused"),
    ({"curent_a": 10}, "curent_a: unknown setting"),
    ({"current_a": 20}, "current_a=20 refused: above the installer's limit of 16 A"),
    ({"rating_a": 40}, "rating_a: only the installer may change it"),
    ({"wifi_password": "short"}, "wifi_password: only the installer may change it"),
    ([], "a JSON object"),
])
def test_a_refused_value_names_it_and_changes_nothing(box, changes, names):
    app, o = box
    before = dict(app.limits.s)
    calls = list(app.ctl.calls)
    with pytest.raises(SettingsError) as e:
        o.apply(changes)
    assert names in str(e.value)
    assert _file() == RAW and app.limits.s == before and app.ctl.calls == calls
    assert o.settings()["mode"] == "fast"


def test_the_owners_current_binds_and_the_switch_pauses(box):
    app, o = box
    o.apply({"current_a": 10})
    assert app.ctl.calls[-1] == (10, "owner current_a=10 A")
    assert o.status()["limit_by"] == "owner"
    o.apply({"enable": False})
    assert app.ctl.calls[-1][0] == 0 and "owner: charging paused" in app.ctl.calls[-1][1]
    assert _file()["limits"]["enable"] is False
    o.apply({"enable": True, "current_a": None})  # None: the owner's own limit removed
    assert "current_a" not in _file()["limits"]


def test_the_installer_changes_station_keys_for_the_next_restart(box):
    app, o = box
    with pytest.raises(SettingsError, match="max_current_a=40 refused: above rating_a=32"):
        o.apply({"max_current_a": 40}, "installer")
    out = o.apply({"max_current_a": 20, "main_fuse_a": 25}, "installer")
    assert out == {"applied": ["main_fuse_a"], "restart": ["max_current_a"]}
    assert _file()["max_current_a"] == 20 and o.status()["restart_needed"] == ["max_current_a"]
    assert app.limits.s["main_fuse_a"] == 25
    with pytest.raises(SettingsError, match="ocpp.url: bad URL 'http://x': not ws:// or wss://"):
        o.apply({"ocpp_url": "http://x"}, "installer")
    assert _file()["ocpp"] == RAW["ocpp"]


def test_secrets_are_never_shown(box):
    app, o = box
    s = o.settings("installer")
    assert "ocpp_password" not in s and s["ocpp_password_set"] is True
    assert s["wifi_password_set"] is False
    assert "rating_a" not in o.settings("owner") and "mode" in o.settings("owner")
    o.apply({"wifi_ssid": "home", "wifi_password": "secret-pass"}, "installer")
    assert "secret-pass" not in json.dumps(o.settings("installer"))


def test_a_session_is_kept_with_its_duration(box):
    app, o = box
    app.ctl.inputs.pilot = pilot.B
    o.status()
    assert o.status()["session_s"] == 0
    app.ctl.inputs.pilot = pilot.A
    o.status()
    assert len(o.sessions) == 1 and o.sessions[0]["s"] == 0
    assert os.path.exists("sessions.json")
