# The simulated wallbox board: real drivers on top of simulated pins, PWM, ADC and meter.
# The world (EV, contactor mechanics, RCM, meter) and the board's "hardware" - interrupt
# edges, the watchdog and the reflex - run in a thread every ms, like hardware that goes on
# while the interpreter is blocked in C (the unix port's _thread has no GIL).
import asyncio
import gc
import os
import time

import _thread

from boards.sim import hw
from boards.sim import rtc as sim_rtc
from drivers.contactor import Contactor
from drivers.led import StatusLed
from drivers.lock import Lock
from drivers.pilot import Pilot
from drivers.proximity import Proximity
from drivers.rcm import Rcm
from drivers.rfid import CardReader
from firmware.meter import UNKNOWN, Reading

_PP_PULLUP_OHM = 1000
_PP_VREF_MV = 3300
METER_POLL_MS = 200  # the meter task's poll period (a Modbus meter: ~1 s)

WDT_RESET_FILE = "sim_wdt_reset"  # left by a watchdog reset, taken by reset_cause()


class _Words:
    """n 32-bit words in RAM (BackedEnergy's words)."""

    def __init__(self, n):
        self.n = n
        self._w = [0] * n

    def __getitem__(self, k):
        return self._w[k]

    def __setitem__(self, k, v):
        self._w[k] = v & 0xFFFFFFFF


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
        self.meter_reading = Reading()
        self.s0_in = None  # the S0 input's Pin once a meter uses it (s0_pin)
        self._s0_level = 1
        self.cards = CardReader()  # the simulated RFID reader (control command "card")
        self.wdt = None
        self.reflex = None
        self._rcm_level = 0
        self._running = False
        self.clock_ticks = 0
        self.clock_errors = 0
        boot = sim_rtc.boot_settings()  # sim_clock.json: this power-up's RTC, NTP and link
        self.rtc = sim_rtc.SimRtc(boot.get("rtc", "set"))
        self._has_ntp = boot.get("ntp", False) is True
        self._net_at_boot = boot.get("net", "up")
        if boot.get("phase_switch") is True:
            # sim_clock.json "phase_switch": a second contactor switches L2/L3 (1p/3p) with
            # its own mirror contact (boards/sim/phase.py)
            from boards.sim.phase import PhaseContactor

            world.phase = p = PhaseContactor(world)
            self.phase_switch = Contactor(hw.Pin(write=p.set_coil), hw.Pin(read=p.mirror))
        if boot.get("flash_gate") is True:
            # sim_clock.json "flash_gate": a board whose safety path a flash erase blinds
            # (STM32, ESP32): no file is written while the contactor is closed
            # (firmware/persist.py's gate) and the energy registers live in RAM words, as
            # in the ESP32's RTC memory (a power cut loses them; boards/backed.py)
            self.flash_write_ok = self._contactor_open
            self.energy_backend = self._energy_words

    def _contactor_open(self):
        return not self.contactor.closed

    def _energy_words(self, name):
        from boards.backed import BackedEnergy

        return BackedEnergy(_Words(8), 0, self.flash_write_ok)

    def _pp_mv(self):
        r = self.world.pp_ohms()
        if r is None:
            return _PP_VREF_MV
        return _PP_VREF_MV * r // (r + _PP_PULLUP_OHM)

    def cp_high_mv(self):
        """The reflex's one CP sample in the high phase (a board's ADC read at the PWM's
        rising edge): the EV's plateau, or -12 V while the EVSE drives state F."""
        return self.world.cp_high()

    def dso_relay(self):
        """The §14a EnWG control box's relay contact: the grid model's `dso` (True: dimming
        ordered), read by the limit loop every period as a board's input pin would be."""
        return self.world.grid.dso

    def ntp_s(self, host):
        """NTP (MicroPython's ntptime on a board): the host's clock while the link is up,
        when sim_clock.json gives the network NTP; OSError otherwise."""
        return sim_rtc.ntp_s(self.net().state == "up", self._has_ntp)

    def poll(self):
        """Every ms from the clock thread: hardware interrupts, the watchdog, the reflex."""
        level = 1 if self.world.rcm_fault() else 0
        if level != self._rcm_level:
            prev, self._rcm_level = self._rcm_level, level
            self.rcm_pin.poll_irq(prev, level)
        if self.s0_in is not None:
            level = self.world.s0_level()
            if level != self._s0_level:
                prev, self._s0_level = self._s0_level, level
                self.s0_in.poll_irq(prev, level)
        if self.reflex is not None:
            self.reflex.tick()
        if self.wdt is not None:
            self.wdt.check()

    def start_reflex(self, reflex):
        self.reflex = reflex
        self.start_clock()

    def start_clock(self):
        """The world's clock thread (EV, contactor, meter models; poll())."""
        if not self._running:
            self._running = True
            _thread.start_new_thread(self._clock, ())

    def stop_clock(self):
        self._running = False

    stop_reflex = stop_clock

    def _clock(self):
        while self._running:
            try:
                self.world.tick()
                self.poll()
            except Exception as e:  # a dead clock thread would freeze the whole world
                self.clock_errors += 1
                self.world.obs("log", {"msg": "sim clock: %r" % (e,)})
            self.clock_ticks += 1
            time.sleep_ms(1)

    async def poll_meter(self):
        """The EV meter's own task: reads the meter, stamps the cached reading."""
        r = self.meter_reading
        while True:
            await asyncio.sleep_ms(METER_POLL_MS)
            if self.world.faults["meter_silent"]:
                continue  # no answer: the reading goes stale
            r.i_max_da = self.world.ev.draw_da
            r.energy_wh = int(self.world.energy_wh)
            r.stamp(time.ticks_ms())

    # -- meters named by the config (firmware/meters/roles.py) ---------------------------------
    def meter_bus(self, uart, baud, parity):
        """The RS485 bus: a pty in the working folder, ttyMB<uart>, whose other end is the
        emulated meters (tools/meter_emu.py, started by tools/simlib.py). No DE pin."""
        from boards.sim.uart import PtyUart

        return PtyUart("ttyMB%d" % uart, baud), None

    def s0_pin(self, role, imp_per_kwh):
        """The S0 input: the world's meter pulses imp_per_kwh from its energy."""
        self.world.s0_start(imp_per_kwh)
        self.s0_in = hw.Pin(read=self.world.s0_level)
        return self.s0_in

    def ct_input(self, role):
        """Three CTs on the EV's phases (grid: plus the house load): 12-bit codes around
        2048, 20 mA per code, 4 kHz per phase, 4 mains periods."""
        grid = role == "grid"
        w = self.world
        return {"burst": lambda buf: w.ct_samples(buf, grid), "phases": 3,
                "offset_code": 2048, "ua_per_code": 20000, "rate_hz": 4000, "samples": 320}

    def meter_polled(self, task):
        """After every meter poll: the reading as an observation (tests, summary)."""
        r = task.reading
        self.world.obs("reading", {"role": task.role, "wh": r.energy_wh, "i_da": r.i_max_da,
                                   "p_w": r.p_total_w, "fresh": r.at_ms is not None,
                                   "errors": r.errors, "fault": task.fault,
                                   "i3": [None if x == UNKNOWN else x for x in r.i_da],
                                   "hz": None if r.freq_chz < 0 else r.freq_chz / 100})

    def tasks(self):
        """The board's own supervised tasks, for App.start(extra=...)."""
        return [("meter", self.poll_meter)]

    def net(self, section=None):
        """The simulated link (boards/sim/net.py): the host's network behind a fault switch
        that the control channel's "net" command turns; one per board, made on first use."""
        n = getattr(self, "_net", None)
        if n is None:
            from boards.sim.net import SimNet

            n = self._net = SimNet(section, log=lambda m: self.world.obs("log", {"msg": m}))
            if self._net_at_boot == "down":  # sim_clock.json: no link from power-up
                n.set_state("down")
        return n

    def watchdog(self, timeout_ms):
        self.wdt = hw.Watchdog(timeout_ms, self._wdt_expired)
        return self.wdt

    def _wdt_expired(self):
        self.world.obs("watchdog", {"reset": True})
        try:  # what a port's reset-cause register keeps across the reset
            with open(WDT_RESET_FILE, "w") as f:
                f.write("1")
        except OSError:
            pass
        self.reset()

    def reset_cause(self):
        """"watchdog" when the simulated watchdog ended the last run on this state folder
        (as machine.reset_cause() on a board), else None."""
        try:
            os.remove(WDT_RESET_FILE)
            return "watchdog"
        except OSError:
            return None

    def reset(self):
        self.stop_clock()
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
