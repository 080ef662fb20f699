"""What the App says about the last restart at boot (firmware/restart.py, persist.take_restart):
the marker an orderly restart wrote, else the board's reset cause (the ESP32 port fake says
watchdog), else a power cut; and the REPL stop or a crash out of firmware.app.run leaves
its own marker with the stores written."""
import sys

import pytest
from test_board_ports import _load

from firmware import config, persist
from portfakes import Dev


@pytest.fixture
def esp32(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    mod, machine = _load(monkeypatch, "esp32_wallbox", Dev())
    yield mod, machine
    sys.modules.pop("boards.esp32_wallbox.board", None)


def boot(mod):
    from firmware.app import App

    lines = []
    app = App(mod.build(), cfg=config.from_dict({"rating_a": 16}), log=lines.append)
    return app, [x for x in lines if x.startswith("boot: ")]


def test_the_marker_then_the_watchdog_then_a_power_cut(esp32):
    mod, machine = esp32
    machine.WDT_RESET, machine.PWRON_RESET = 3, 1
    cause = [3]
    machine.reset_cause = lambda: cause[0]
    persist.mark_restart("ocpp-soft")  # an orderly restart that the watchdog then ended
    app, said = boot(mod)
    assert app.restart_reason == "ocpp-soft" == persist.restart_reason
    assert said == ["boot: after an orderly restart (ocpp-soft)"]
    app, said = boot(mod)  # the marker is gone: the port's reset cause
    assert app.restart_reason == "watchdog" == persist.restart_reason
    assert said == ["boot: after a watchdog reset"]
    cause[0] = 1
    app, said = boot(mod)
    assert app.restart_reason is None and said == ["boot: after a power cut or reset"]


def test_a_stop_at_the_repl_and_a_crash_leave_their_marker(esp32, monkeypatch):
    mod, machine = esp32
    from firmware import app as app_mod

    for exc, kind in ((KeyboardInterrupt, "stopped"), (RuntimeError, "crash")):
        def main(self, exc=exc):
            raise exc()

        monkeypatch.setattr(app_mod.App, "main", main)
        monkeypatch.setattr(app_mod.asyncio, "run", lambda coro: coro, raising=False)
        with pytest.raises(exc):
            app_mod.run(mod.build(), cfg_path="none.json")
        assert persist.take_restart() == kind
