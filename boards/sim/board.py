# The simulated wallbox board: real drivers on top of simulated pins, PWM, ADC and meter.
import asyncio
import gc

from boards.sim import hw
from drivers.contactor import Contactor
from drivers.led import StatusLed
from drivers.lock import Lock
from drivers.pilot import Pilot
from drivers.proximity import Proximity
from drivers.rcm import Rcm

_PP_PULLUP_OHM = 1000
_PP_VREF_MV = 3300


class SimBoard:
    name = "sim"
    pilot_period_ms = 2  # one CP burst + session step every 2 ms

    def __init__(self, world, on_reset=None):
        self.world = world
        self._on_reset = on_reset
        self.pilot = Pilot(
            hw.PWM(world), hw.CpBurst(world), 128, hw.CP_RATE_HZ, hw.CP_OFFSET_MV,
            hw.CP_UV_PER_CODE,
        )
        self.pp = Proximity(self._pp_mv, _PP_PULLUP_OHM, _PP_VREF_MV)
        self.contactor = Contactor(hw.Pin(write=world.set_coil), hw.Pin(read=world.mirror))
        self.rcm_pin = hw.Pin(read=world.rcm_fault)
        self.rcm = Rcm(self.rcm_pin, hw.Pin(write=world.set_rcm_test))
        self.lock = Lock(
            hw.Pin(write=world.set_lock), sense=hw.Pin(read=world.lock_sensor), sense_locked=0
        )
        self.led = StatusLed(hw.Pin())
        self.meter = hw.Meter(world)
        self.wdt = None
        self._rcm_level = 0

    def _pp_mv(self):
        r = self.world.pp_ohms()
        if r is None:
            return _PP_VREF_MV
        return _PP_VREF_MV * r // (r + _PP_PULLUP_OHM)

    def poll(self):
        """The world's clock calls this every ms: hardware interrupts and the watchdog."""
        level = 1 if self.world.rcm_fault() else 0
        if level != self._rcm_level:
            prev, self._rcm_level = self._rcm_level, level
            self.rcm_pin.poll_irq(prev, level)
        if self.wdt is not None:
            self.wdt.check()

    async def run_clock(self):
        """The world's clock: advance the EV, contactor and meter models every ms."""
        while True:
            self.world.tick()
            self.poll()
            await asyncio.sleep_ms(1)

    def watchdog(self, timeout_ms):
        self.wdt = hw.Watchdog(timeout_ms, self._wdt_expired)
        return self.wdt

    def _wdt_expired(self):
        self.world.obs("watchdog", {"reset": True})
        self.reset()

    def reset(self):
        if self._on_reset is not None:
            self._on_reset()


async def heap_sampler(peak, period_ms):
    """Live data after a collection, every period: peak[0] keeps the highest."""
    while True:
        gc.collect()
        m = gc.mem_alloc()
        if m > peak[0]:
            peak[0] = m
        await asyncio.sleep_ms(period_ms)
