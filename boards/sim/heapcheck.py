# Heap figures of the charge-control core for a full session on the simulated board, without
# the control channel and its observation stream (the measuring apparatus of the simulator):
#   micropython [-X heapsize=N] -m boards.sim.heapcheck
# Prints one JSON line: code (gc.mem_alloc after every import), peak (live data after a
# collection, sampled every 10 ms through the session), runtime = peak - code, and whether the
# session completed (plug, charge, EV full, unplug, Available).
import gc
import json

from boards.sim.board import SimBoard, heap_sampler
from boards.sim.world import World
from firmware import app as fw_app
from firmware import config

import asyncio  # noqa: E402 (frozen, already loaded)
import time  # noqa: E402

gc.collect()
CODE = gc.mem_alloc()


async def _wait(app, status, ms):
    t0 = time.ticks_ms()
    while app.ctl.session.act.status != status:
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            return False
        await asyncio.sleep_ms(5)
    return True


async def _session(app, world, board, peak, seen):
    app.start([("heap", lambda: heap_sampler(peak, 10))])
    await asyncio.sleep_ms(200)
    world.plug(32)
    ok = await _wait(app, "Charging", 5000)
    seen.append(app.ctl.session.act.status)
    ok = ok and await _wait(app, "SuspendedEV", 60000)  # battery full: EV opens S2
    seen.append(app.ctl.session.act.status)
    await asyncio.sleep_ms(500)
    world.unplug()
    ok = ok and await _wait(app, "Available", 3000)
    seen.append(app.ctl.session.act.status)
    await asyncio.sleep_ms(200)
    app.stop()
    await asyncio.sleep_ms(0)
    return ok


def main():
    world = World(lambda kind, fields: None)
    world.ev.capacity_wh = 1000
    world.ev.soc_wh = 970
    board = SimBoard(world)
    cfg = config.from_dict({"rating_a": 32, "max_current_a": 16})
    app = fw_app.App(board, cfg=cfg, log=lambda m: None)
    peak = [0]
    seen = []
    ok = asyncio.run(_session(app, world, board, peak, seen))
    print(json.dumps({"code": CODE, "peak": peak[0], "runtime": peak[0] - CODE,
                      "completed": ok, "statuses": seen, "energy_wh": world.energy_wh,
                      "kernels": fw_app.diag.kernel_impl()}))


main()
