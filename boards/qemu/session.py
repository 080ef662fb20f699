# A full charging session on the qemu board, in-process: the real App on the simulated world,
# an EV plugged in, charging, the battery's request to stop, unplugging. `make qemu` runs it
# on the emulated microcontroller (tools/qemu_run.py); it prints one line
#   SESSION {json}
# with what a user would notice, timed on the device clock (ticks_ms), and the heap figures:
# after boot (every module imported) and the peak while running (live data after a
# collection, sampled every 20 ms).
#   from boards.qemu import session; session.run()
import gc
import json
import time

import asyncio

from boards.qemu.board import QemuBoard
from boards.sim.board import heap_sampler
from boards.sim.world import World
from firmware import app as fw_app
from firmware import config, diag

_KEEP = ("contactor", "contacts", "duty", "ev", "log")


class Log:
    """Observations of the world kept with their device time (ms since the start)."""

    def __init__(self):
        self.t0 = time.ticks_ms()
        self.items = []

    def __call__(self, kind, fields):
        if kind in _KEEP and len(self.items) < 200:
            self.items.append((time.ticks_diff(time.ticks_ms(), self.t0), kind, fields))

    def first(self, kind, key, value, after=0):
        for t, k, f in self.items:
            if t >= after and k == kind and f.get(key) == value:
                return t
        return None


async def _drive(app, world, log, plug_ms, charge_ms, peak):
    app.start([("heap", lambda: heap_sampler(peak, 20))])
    await asyncio.sleep_ms(plug_ms)
    world.plug(32)
    await asyncio.sleep_ms(charge_ms)
    charging = app.ctl.session.act.status
    wh = world.energy_wh
    world.set_s2(False, "session end")  # the EV stops (state C -> B)
    await asyncio.sleep_ms(500)
    t_unplug = time.ticks_diff(time.ticks_ms(), log.t0)
    world.unplug()
    await asyncio.sleep_ms(500)
    after = app.ctl.session.act.status
    app.stop()
    await asyncio.sleep_ms(0)
    return charging, wh, t_unplug, after


def run(plug_ms=200, charge_ms=3000, rating_a=16, out=print):
    """Run the session; print and return the SESSION record."""
    gc.collect()
    boot_heap = gc.mem_alloc()  # everything imported: the frozen image's heap after boot
    log = Log()
    world = World(log)
    world.ev.reaction_ms = 300
    board = QemuBoard(world)
    cfg = config.from_dict({"rating_a": rating_a, "max_current_a": rating_a,
                            "console": False})  # stdin is the REPL this runs from
    app = fw_app.App(board, cfg=cfg, log=lambda m: log("log", {"msg": m}))
    peak = [0]
    try:
        charging, wh, t_unplug, after = asyncio.run(
            _drive(app, world, log, plug_ms, charge_ms, peak))
    finally:
        asyncio.new_event_loop()
    plug = log.first("ev", "what", "plug")
    s2 = log.first("ev", "what", "S2 close")
    closed = log.first("contacts", "closed", True)
    s2_open = log.first("ev", "what", "S2 open")
    opened = log.first("contactor", "cmd", False, after=s2_open or 0)
    rec = {
        "board": board.name, "kernels": diag.kernel_impl(),
        "plug_ms": plug, "s2_close_ms": s2, "contacts_closed_ms": closed,
        "duty": [f["v"] for _, k, f in log.items if k == "duty"],
        "status_charging": charging, "energy_wh": round(wh, 3),
        "s2_open_ms": s2_open, "contactor_open_ms": opened, "unplug_ms": t_unplug,
        "status_after": after, "steps": app.ctl.steps, "clock_ticks": board.clock_ticks,
        "clock_errors": board.clock_errors, "lag": list(app.ctl.lag_stats()),
        "logs": [f["msg"] for _, k, f in log.items if k == "log"][:8],
        "heap_size": gc.mem_alloc() + gc.mem_free(), "heap_boot": boot_heap,
        "heap_peak": peak[0],
    }
    out("SESSION " + json.dumps(rec))
    return rec
