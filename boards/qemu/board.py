# The qemu board: boards/sim's simulated hardware and world, for a port with neither threads
# nor sockets (MicroPython's ports/qemu). What it replaces from boards/sim:
# - the clock thread (world model, RCM interrupt edges, watchdog, reflex every ms) is an
#   asyncio task here ("clock"), so the reflex runs between tasks, not beside a blocked
#   interpreter: on this board it cannot cover a controller stuck in C;
# - the control channel (a TCP server) is gone: a session is driven in-process
#   (boards/qemu/session.py) and observations go to a callable;
# - the Modbus bus (a pty) and the network are absent: no RS485 meter, no OCPP link.
import asyncio
import time

from boards.qemu import nothread

nothread.install()

from boards.sim.board import SimBoard  # noqa: E402


class QemuBoard(SimBoard):
    name = "qemu"

    def __init__(self, world, on_reset=None):
        SimBoard.__init__(self, world, on_reset)
        self._clock_task = None

    def start_clock(self):
        if not self._running:
            self._running = True
            self._clock_task = asyncio.create_task(self._clock_loop())

    def stop_clock(self):
        self._running = False
        t, self._clock_task = self._clock_task, None
        if t is not None:
            t.cancel()

    stop_reflex = stop_clock

    async def _clock_loop(self):
        last = time.ticks_ms()
        while self._running:
            now = time.ticks_ms()
            if now != last:  # once per ms of the device clock, as the sim's thread
                last = now
                try:
                    self.world.tick()
                    self.poll()
                except Exception as e:  # a dead clock would freeze the whole world
                    self.clock_errors += 1
                    self.world.obs("log", {"msg": "qemu clock: %r" % (e,)})
                self.clock_ticks += 1
            await asyncio.sleep_ms(1)

    net = None  # no network: App runs without a link (an OCPP section is refused)

    def meter_bus(self, uart, baud, parity):
        raise OSError("qemu board: no RS485 bus")


def build(world=None, observe=None):
    """The board for main.py: a world with an EV that a session plugs in (session.py)."""
    from boards.sim.world import World

    if world is None:
        world = World(observe or (lambda kind, fields: None))
    return QemuBoard(world)
