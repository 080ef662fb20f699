# Entry point of the simulated wallbox on the MicroPython unix port:
#   micropython boards/sim/main.py --port 7700 [--config config.json] [--heap]
# Runs the real firmware (firmware.app) on boards/sim until the control channel says quit.
import gc
import sys

from boards.sim.board import SimBoard, heap_sampler
from boards.sim.control import Control
from boards.sim.world import World
from firmware import app as fw_app

import asyncio  # noqa: E402  (already loaded by the imports above)
import time  # noqa: E402

gc.collect()
CODE_HEAP = gc.mem_alloc()  # bytes held once every module is imported


def _args(argv):
    opts = {"--port": "7700", "--config": "config.json"}
    flags = set()
    k = 1
    while k < len(argv):
        a = argv[k]
        if a in opts and k + 1 < len(argv):
            opts[a] = argv[k + 1]
            k += 2
        elif a == "--heap":
            flags.add(a)
            k += 1
        else:
            print("sim: unknown argument %r (use --port N, --config FILE, --heap)" % a)
            sys.exit(2)
    return int(opts["--port"]), opts["--config"], "--heap" in flags


async def _main(port, cfg_path, heap):
    reset = []
    control = None

    def observe(kind, fields):
        control.observe(kind, fields)

    world = World(observe)
    control = Control(world, port)
    board = SimBoard(world, on_reset=lambda: reset.append(1) or control.quit.set())
    app = fw_app.App(board, cfg_path=cfg_path, log=lambda m: observe("log", {"msg": m}))
    control.app = app
    server = await control.serve()
    peak = [0]
    extra = control.tasks()
    if heap:
        extra.append(("heap", lambda: heap_sampler(peak, 20)))  # the runtime heap figure
    app.start(extra)
    observe("ready", {"port": port, "code_heap": CODE_HEAP, "board": board.name,
                      "kernels": fw_app.diag.kernel_impl()})
    t0 = time.ticks_ms()
    await control.quit.wait()
    if heap:
        observe("heap", {"code": CODE_HEAP, "peak": peak[0], "runtime": peak[0] - CODE_HEAP})
    observe("end", {"ms": time.ticks_diff(time.ticks_ms(), t0), "reset": bool(reset),
                    "energy_wh": world.energy_wh, "dropped": control.dropped})
    await control.flush()
    await asyncio.sleep_ms(50)
    app.stop()
    server.close()


def main():
    port, cfg_path, heap = _args(sys.argv)
    from boards.sim import pollfix

    pollfix.reserve()  # before the first registration: a unix-port crash (pollfix.py)
    asyncio.run(_main(port, cfg_path, heap))


main()
