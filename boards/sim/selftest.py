# A short charging session on the simulated board without the control channel: what a
# virtual board (docs/deploy.md) runs from its REPL to show that the deployed firmware works.
#   from boards.sim import selftest; selftest.run(1500)
# Builds the world (EV + grid model) and the sim board, runs the real App, plugs an EV in and
# prints diag.status() and diag.why() at the end. The App stays attached to diag afterwards.
import asyncio

from boards.sim.board import SimBoard
from boards.sim.world import World
from firmware import app as fw_app
from firmware import config, diag


async def _session(app, world, board, ms, plug_ms, cable_a):
    app.start()
    await asyncio.sleep_ms(plug_ms)
    world.plug(cable_a)
    await asyncio.sleep_ms(ms - plug_ms)
    app.stop()
    await asyncio.sleep_ms(0)  # let the cancellations run (the controller fails safe)


def run(ms=1500, rating_a=16, cable_a=32, plug_ms=100, out=print):
    """Run the firmware for `ms` with an EV plugged in after `plug_ms`; print diag."""
    world = World(lambda kind, fields: None)
    board = SimBoard(world)
    cfg = config.from_dict({"rating_a": rating_a, "max_current_a": rating_a})
    app = fw_app.App(board, cfg=cfg, log=out)
    try:
        asyncio.run(_session(app, world, board, ms, plug_ms, cable_a))
    finally:
        asyncio.new_event_loop()  # a clean loop for whatever the REPL runs next
    out("selftest   %d ms, EV %s, %.1f Wh" % (ms, world.ev_state(), world.energy_wh))
    diag.status(out=out)
    diag.why(out=out)
    return app
