# Runs on the MicroPython unix port, started by host_tests/test_ota_image.py with a folder
# holding keys.json, running.json and image.wbota (a bundle with a MicroPython image): the
# image update on host_tests/fake_esp32.py's esp32.Partition with MicroPython's own hashlib,
# memoryview and asyncio, and the trial's health check (firmware/ota/trial.py) marking the
# image (kept across resets) or failing when the mark raises (both roll back). Prints
# "PASS name" or "FAIL name: why" per scenario, then "DONE n failed".
import asyncio
import json
import os
import sys
import time

sys.path.append(__file__.rsplit("/", 2)[0])  # host_tests: fake_esp32

import fake_esp32  # noqa: E402
from firmware.ota import rsa, slots, trial  # noqa: E402

D = sys.argv[1]
with open(D + "/keys.json") as f:
    KEYS = [rsa.key_from_json(k) for k in json.load(f)["keys"]]
with open(D + "/running.json") as f:
    RUNNING = json.load(f)
OLD = b"MicroPython v1.27 " * 300


class _Obj:
    pass


class _Restart:
    def __init__(self):
        self.kinds = []

    async def now(self, kind, wait_ms=100):
        self.kinds.append(kind)


def _app():
    app = _Obj()
    app.sup = _Obj()
    app.sup.failed = None
    app.ctl = _Obj()
    app.ctl.last_step_ms = time.ticks_ms()
    app.ctl.session = _Obj()
    app.ctl.session.fault = None
    app.cfg = _Obj()
    app.cfg.ocpp = None
    app.ocpp = None
    app.lines = []
    app.log = app.lines.append
    app.restart = _Restart()
    return app


def _device(name):
    d = D + "/" + name
    os.mkdir(d)
    os.chdir(d)
    flash = fake_esp32.Flash()
    flash.flash_image("ota_0", OLD)
    flash.reset()
    sys.modules["esp32"] = flash.module()
    with open(D + "/image.wbota", "rb") as f:
        t0 = time.ticks_ms()
        slots.install(f, KEYS, RUNNING, min_s=0, limit_s=60)
        ms = time.ticks_diff(time.ticks_ms(), t0)
    flash.reset()
    slots.check_image()
    slot = slots.pick()
    return flash, slot, ms


def _healthy():
    flash, slot, ms = _device("healthy")
    assert slot == "a" and flash.running == "ota_1", (slot, flash.running)
    t = slots.running_trial()
    app = _app()
    asyncio.run(trial.task(app, t)())
    assert flash.state["ota_1"] == fake_esp32.VALID, flash.state
    assert slots.load()["active"] == "a" and app.restart.kinds == [], app.lines
    for _ in range(2):
        flash.reset()
        assert flash.running == "ota_1" and slots.pick() == "a"
    print("install of a %d-byte bundle with its image: %d ms" % (
        os.stat(D + "/image.wbota")[6], ms))


def _mark_raises():
    flash, slot, _ = _device("mark")
    assert slot == "a" and flash.running == "ota_1"
    flash.otadata = False  # mark_app_valid_cancel_rollback raises OSError(-261)
    app = _app()
    asyncio.run(trial.task(app, slots.running_trial())())
    assert app.restart.kinds == ["ota"], (app.restart.kinds, app.lines)
    assert "mark_app_valid_cancel_rollback" in slots.load()["trial"]["failed"]
    flash.otadata = True
    flash.reset()  # unmarked: the bootloader rolls the image back
    assert flash.running == "ota_0" and slots.pick() == "base"
    assert "mark_app_valid" in slots.take_report()["why"]


failed = 0
for name, fn in (("healthy trial marks its image", _healthy),
                 ("a mark that raises fails the trial", _mark_raises)):
    try:
        fn()
        print("PASS " + name)
    except Exception as e:  # noqa: BLE001 - reported as this scenario's failure
        failed += 1
        print("FAIL %s: %r" % (name, e))
    os.chdir(D)
    del sys.modules["esp32"]
print("DONE %d failed" % failed)
