"""The owner's settings from the service console (`settings`, `set NAME VALUE`): mode, phase
lock, randomised-delay override, the off-peak schedule; checked as config.json is (a refused
value names the setting and changes nothing), saved in config.json, in force at once."""
import json
import types

import pytest

from firmware import config, console, diag
from firmware.limits.loop import Limits


class _Ctl:
    inputs = None

    def __init__(self):
        self.calls = []

    def set_limit(self, amps, reason):
        self.calls.append((amps, reason))


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = {"rating_a": 32, "limits": {"mode": "fast", "preset": "uk"}}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    cfg = config.from_dict(raw)
    ctl = _Ctl()
    lim = Limits(ctl, 32, log=lambda m: None, cfg=cfg)
    a = types.SimpleNamespace(limits=lim, ctl=ctl, owner=None, log=lambda m: None,
                              cfg_path=str(tmp_path / "config.json"), board=None)
    diag.attach(a)
    yield a
    diag.attach(None)


def _run(line):
    out = []
    console.run(line, out.append)
    return out


def _stored(app):
    with open(app.cfg_path) as f:
        return json.load(f)["limits"]


@pytest.mark.parametrize("line,key,value", [
    ("set mode pv", "mode", "pv"),
    ("set phase_lock 1", "phases", 1),
    ("set delay_override true", "delay_override", True),
    ("set offpeak false", "offpeak", False),
])
def test_an_owner_setting_is_checked_saved_and_in_force(app, line, key, value):
    name, text = line.split()[1:]
    assert _run(line) == ["console: %s=%s saved, in force now" % (name, text)]
    assert _stored(app)[key] == value  # in config.json: the next boot has it
    assert config.load(app.cfg_path).limits[key] == value
    assert app.limits.s[key] == value  # the limit loop took it at once


def test_the_mode_changes_the_offer_at_once(app):
    app.limits.apply(1000)
    assert app.ctl.calls[-1] == (32, "config rating_a")
    _run("set mode pv")  # no surplus known: pv waits for it
    assert app.ctl.calls[-1] == (0, "pv: waiting for surplus"), app.ctl.calls


@pytest.mark.parametrize("line,want", [
    ("set mode eco", "console: mode='eco' refused: allowed fast, pv, minpv"),
    ("set phase_lock 2", "console: phase_lock=2 refused"),
    ("set delay_override yes", "console: delay_override='yes' refused: allowed true or false"),
    ("set rating_a 80", "console: rating_a: only the installer may change it"),
    ("set colour red", "console: colour: unknown setting"),
    ("set mode", "console: set takes NAME VALUE, e.g. set mode pv"),
])
def test_a_bad_setting_is_refused_by_name_and_nothing_changes(app, line, want):
    before = open(app.cfg_path).read()
    out = _run(line)
    assert len(out) == 1 and out[0].startswith(want), out
    assert open(app.cfg_path).read() == before and app.limits.s["mode"] == "fast"


def test_settings_lists_the_owners_settings(app):
    _run("set offpeak false")
    out = _run("settings")
    assert "mode             'fast'" in out and "offpeak          False" in out, out
    assert not any(x.startswith("rating_a") for x in out), out  # the installer's: not here


def test_without_a_running_firmware_set_says_so():
    diag.attach(None)
    assert _run("set mode pv") == ["diag: the firmware is not running (no app attached)"]


def test_the_owner_changes_the_off_peak_schedules_hours(app):
    wed = 1796774400  # Wednesday 2026-12-09 00:00 UTC (GMT: UK local time)
    app.limits.now_s = lambda: wed + 9 * 3600  # 09:00, in the default 08-11 peak
    app.limits.apply(1000)
    assert app.ctl.calls[-1] == (0, "pause: off-peak schedule below 6 A")
    assert _run("set peak_hours 17-20") == ["console: peak_hours=17-20 saved, in force now"]
    assert _stored(app)["peak_hours"] == "17-20"
    app.limits.apply(70000)  # 09:00 is off-peak now: the UK randomised delay, then a start
    assert app.ctl.calls[-1] == (0, "randomised delay, then config rating_a"), app.ctl.calls
    app.limits.now_s = lambda: wed + 18 * 3600 + 1800  # 18:30: peak
    app.limits.apply(71000)
    assert app.ctl.calls[-1] == (0, "pause: off-peak schedule below 6 A"), app.ctl.calls
    out = _run("set peak_hours 8-25")
    assert out[0].startswith("console: peak_hours='8-25' refused: allowed up to 4 ranges"), out
    assert _stored(app)["peak_hours"] == "17-20"
    assert " refused: " in _run("set peak_hours 9")[0]  # no schedule at all: set offpeak false
