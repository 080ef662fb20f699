# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): what the
# firmware keeps in RAM once built (docs/deploy.md, "Heap"). Modules load from .mpy files on a
# board, so a module imported for a feature that is off costs its code in heap for good:
# - without a boot pointer (no update ever installed) firmware/ota is not loaded at all;
# - UpdateFirmware's updater.py loads when the CSMS asks for an update (test_ota_update.py) or
#   an update's outcome waits to be told (ota_status.json), not at every OCPP boot;
# - with a boot pointer and no trial running, the rollback report is still logged once and
#   the modules loaded for it are dropped again; a trial boot keeps them and gets its health
#   check task.
# - the clock's history of 16 boots (firmware/timekeep.py) is one array of 64-bit words, not
#   lists of (on a 32-bit board) big ints: 0.7 KB instead of 1.9 on the 32-bit build.
import gc
import json
import os
import sys
from binascii import hexlify

from boards.sim.board import SimBoard
from boards.sim.world import World
from firmware import app as fw_app
from firmware import config

FAILS = []
OTA = ("firmware.ota.trial", "firmware.ota.slots", "firmware.ota.updater")


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


D = "/tmp/wbheap_" + hexlify(os.urandom(4)).decode()
os.mkdir(D)
os.chdir(D)


def build(pointer=None, status=None):
    """The App on the simulated board with OCPP configured: (app, its log, heap it holds)."""
    import firmware.ota as ota

    for m in OTA:
        sys.modules.pop(m, None)
        if hasattr(ota, m[13:]):
            delattr(ota, m[13:])
    for f in ("ota_boot.json", "ota_status.json"):
        try:
            os.remove(f)
        except OSError:
            pass
    if pointer is not None:
        with open("ota_boot.json", "w") as f:
            json.dump(pointer, f)
    if status is not None:
        with open("ota_status.json", "w") as f:
            json.dump({"status": status}, f)
    logs = []
    board = SimBoard(World(lambda kind, fields: None))
    cfg = config.from_dict({"rating_a": 32, "max_current_a": 16, "free_vend": True,
                            "ocpp": {"url": "ws://127.0.0.1:9/", "cp_id": "HEAP"}})
    gc.collect()
    m0 = gc.mem_alloc()
    app = fw_app.App(board, cfg=cfg, log=logs.append)
    gc.collect()
    return app, logs, gc.mem_alloc() - m0


def ota_loaded():
    return [m for m in OTA if m in sys.modules]


def trial_task(app, name="ota trial"):
    return [t for t in app.sup.tasks if t.name == name]


import firmware.ocpp.cp as cpmod  # noqa: E402

app, logs, held = build()
check("OCPP takes the App's restart path, it builds none of its own (cp has no Restart)",
      not hasattr(cpmod, "Restart") and app.ocpp.restart is app.restart)
print("HEAP App built (OCPP on, no boot pointer; with the modules it loads): %d bytes"
      % held)
check("no boot pointer: firmware/ota not loaded", ota_loaded() == [])
check("no boot pointer: no trial task", trial_task(app) == [])
check("UpdateFirmware's status is Idle (TriggerMessage)", app.ocpp.updater.status == "Idle")
app = None

app, logs, held = build(None, "InstallationFailed")
check("an outcome to tell: its task waits for the BootNotification",
      len(trial_task(app, "ota status")) == 1)
app = None

report = {"event": "rolled-back", "version": "0.9.1", "why": "it crashed"}
app, logs, held = build({"active": "base", "trial": None, "report": report})
check("pointer with a report: the rollback is logged once",
      len([m for m in logs if "rolled back: it crashed" in m]) == 1)
check("pointer without a trial: the modules are dropped again", ota_loaded() == [])
check("pointer without a trial: no trial task", trial_task(app) == [])
with open("ota_boot.json") as f:
    check("the report is taken (not logged at the next boot)", json.load(f)["report"] is None)
app = None

trial = {"slot": "b", "version": "0.9.2", "boots": 1, "min_s": 10, "limit_s": 300,
         "failed": None}
app, logs, held = build({"active": "base", "trial": trial, "report": None})
check("a trial boot gets its health check task", len(trial_task(app)) == 1)
check("a trial boot keeps firmware/ota loaded", "firmware.ota.trial" in sys.modules)
app = None

from firmware import timekeep  # noqa: E402

boots = [[i, 1767225600 + i * 86400 - 100, 1767225600 + i * 86400] for i in range(1, 17)]
boots[5][1] = None  # a boot whose time never became known
with open("clock.json", "w") as f:
    json.dump({"last": 1767225600 + 20 * 86400, "boots": boots}, f)
gc.collect()
m0 = gc.mem_alloc()
tk = timekeep.TimeKeeper(log=lambda m: None, now_ms=0)
gc.collect()
held = gc.mem_alloc() - m0
print("HEAP TimeKeeper with 16 boots of history: %d bytes" % held)
check("the clock's history of 16 boots is small (< 1200 bytes)", held < 1200)
check("a kept boot's stamp: its offset", tk.wall_of([3, 10], 0) == 1767225600 + 3 * 86400 - 90)
check("a boot never known: its floor + uptime",
      tk.wall_of([6, 10], 0) == 1767225600 + 6 * 86400 + 10)
check("a boot no longer kept: FLOOR_S + uptime", tk.wall_of([1, 10], 0) == timekeep.FLOOR_S + 10)
with open("clock.json") as f:
    h = json.load(f)["boots"]
check("clock.json keeps its format", h[4] == boots[5] and h[-1][0] == 17 and len(h) == 16)

print("DONE %d failed" % len(FAILS))
