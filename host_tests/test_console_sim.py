"""The owner's `set` on the service console of the simulated wallbox (the real firmware on
the unix port, through its serial pty) while a car charges: the setting is checked, saved
in the device's config.json and in force at once; a refused one names the setting."""
import json
import os
import shutil

import pytest
from simrig import charge, device_sleep, start


def test_set_on_the_console_changes_the_mode_while_charging():
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (make setup installs it)")
    import deploy
    import serial

    with start(serial=True) as sim:
        charge(sim)
        assert sim.state()["offer_da"] == 160
        with serial.Serial(sim.port, 115200, timeout=0.05) as ser:
            for cmd, want in [(b"set mode eco", b"console: mode='eco' refused: allowed fast, "
                                                b"pv, minpv"),
                              (b"set mode minpv", b"console: mode=minpv saved, in force now")]:
                ser.write(b"\r")
                deploy._read_until(ser, (deploy.CONSOLE_PROMPT,), 5)
                ser.write(cmd + b"\r")
                reply = deploy._read_until(ser, (deploy.CONSOLE_PROMPT,), 10)
                assert want in reply, reply
        device_sleep(sim, 500)
        st = sim.state()
        # minpv without a grid meter: the safe current (6 A), the session goes on
        assert st["status"] == "Charging" and st["offer_da"] == 60, st
        assert st["reason"] == "pv surplus (input stale or bad: fallback)", st
        sim.do("unplug")  # the flash gate lets the held save through once the contactor opens
        device_sleep(sim, 1000)
        with open(os.path.join(sim.dir, "config.json")) as f:
            assert json.load(f)["limits"]["mode"] == "minpv"
