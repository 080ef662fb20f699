# The simulated world around the wallbox: the EV (plug, S2, diode, ventilation request,
# battery, current draw with a reaction delay), the cable, the contactor's mechanics, the
# residual-current monitor and the energy meter. It advances in real time from its own
# task (tick every ms), so the firmware sees changes at the moment they happen.
import json
import math
import time

import _thread

from boards.sim.grid import Grid
from firmware.charge.pilot import amps_for_duty, is_pwm

# EV-side pilot resistances (ohm): S2 open -> 2.74 k, S2 closed -> 882 (C) or 246 (D).
_R_B = 2740
_R_C = 882
_R_D = 246
_R_SRC = 1000  # EVSE generator source resistance
_V = 12000  # generator amplitude, mV

CABLE_OHMS = {13: 1500, 20: 680, 32: 220, 63: 100, 70: 100}
FAULTS = (
    "diode_short", "cp_short", "rcm_trip", "rcm_broken", "welded", "no_close",
    "overcurrent", "ignore_stop", "lock_fail", "meter_silent", "phase_welded", "phase_no_close",
)
# A meter's register is non-volatile: it lives in the state folder (the process's working
# folder), so a restarted simulator on the same --state counts on from where it was, as a
# real meter does after a power cut. FAULTS_FILE (optional, written by a test) sets faults
# that are there from power-up (a meter that does not answer at boot).
REGISTER_FILE = "sim_meter_wh"
FAULTS_FILE = "sim_faults.json"
LOCK_TRAVEL_MS = 150  # socket lock actuator: command -> position switch
METER_OBS_MS = 200  # "meter" observation period while the EV draws (emulated meters follow it)
S0_PULSE_MS = 35  # the S0 output's impulse (SDM72D-M), with a 1 ms bounce at each edge
S0_GAP_MS = 30  # shortest off time between impulses (IEC 62053-31)


class Ev:
    def __init__(self):
        self.plugged = False
        self.s2 = False  # EV ready switch: closed = state C (or D)
        self.auto = True  # closes S2 by itself when offered current and not full
        self.vent = False  # asks for ventilation (state D instead of C)
        self.max_da = 160
        self.phases = 3
        self.reaction_ms = 1000  # delay to follow a duty change (<= 5 s allowed)
        self.ready_ms = 300  # plug -> S2 close once offered
        self.stop_ms = 500  # PWM off -> S2 open
        self.capacity_wh = 60000
        self.soc_wh = 30000
        self.draw_da = 0  # present current per phase
        self._target = 0
        self._target_at = 0
        self._seen_duty = -1
        self._wait_until = None  # when the EV will move S2 by itself

    @property
    def full(self):
        return self.soc_wh >= self.capacity_wh


class World:
    def __init__(self, observe):
        self.obs = observe  # callable(kind, dict)
        self.ev = Ev()
        self.cable_ohms = None  # None: no cable in the socket
        # Every fault has its entry from the start: set_fault() only replaces values, so
        # the clock thread never reads the dict while it is resized.
        self.faults = {name: False for name in FAULTS}
        for name in _boot_faults():  # no observation yet: the control channel is not up
            if name in self.faults:
                self.faults[name] = True
        self._later = []  # [due ticks_ms, method name, argument], run by the clock thread
        self._later_lock = _thread.allocate_lock()
        self.duty = 1000  # what the PWM drives, per-mille
        self.coil = False
        self.contacts = False  # main contacts physically closed
        self._contacts_at = 0
        self.lock_cmd = False
        self._lock_at = 0
        self.locked = False  # the lock pin is in the locked position
        self.rcm_test = False
        self._rcm_test_at = 0
        self._rcm_release_at = None
        self.energy_wh = _load_register()
        self._saved_wh = int(self.energy_wh)
        self.volts = 230
        self.phase = None  # boards/sim/phase.PhaseContactor when the board has a phase switch
        self.grid = Grid(self.volts)  # house load, PV, frequency, DSO signal (grid.py)
        self._meter_at = 0  # ticks of the last "meter" observation
        self._meter_da = 0
        self.s0_imp = 0  # S0 output off until a meter uses it (s0_start)
        self._s0_next = 0.0
        self._s0_at = None  # ticks of the impulse in progress
        self._last_ms = time.ticks_ms()
        self._t0_us = time.ticks_us()
        self._us = 0  # monotonic microseconds since start (never wraps)
        self._last_us = self._t0_us

    # -- time ------------------------------------------------------------------------------
    def now_us(self):
        t = time.ticks_us()
        self._us += time.ticks_diff(t, self._last_us)
        self._last_us = t
        return self._us

    # -- what the firmware's hardware reads ------------------------------------------------
    def cp_levels(self):
        """(high mV, low mV) on the CP line for the present duty and EV."""
        ev = self.ev
        if self.faults.get("cp_short"):
            return 0, 0
        if not ev.plugged:
            return _V, -_V
        r = _R_B
        if ev.s2:
            r = _R_D if ev.vent else _R_C
        high = _V * r // (r + _R_SRC)
        low = -high if self.faults.get("diode_short") else -_V
        return high, low

    def cp_high(self):
        """The CP high plateau alone, without allocating (the reflex's sample)."""
        if self.duty == 0:
            return -_V  # the EVSE drives -12 V (state F): there is no high phase
        ev = self.ev
        if self.faults.get("cp_short"):
            return 0
        if not ev.plugged:
            return _V
        r = (_R_D if ev.vent else _R_C) if ev.s2 else _R_B
        return _V * r // (r + _R_SRC)

    def power_cut(self):
        """The supply goes: the whole process dies at once (SIGKILL from a child shell, whose
        parent is this process): no flush, no cleanup, as on a board."""
        import os

        self.obs("powercut", {})
        os.system("kill -9 $PPID")

    def later(self, delay_ms, name, arg):
        """Run self.<name>(arg) from the clock thread in delay_ms: a change that happens
        even while the firmware's interpreter is blocked."""
        with self._later_lock:
            self._later.append([time.ticks_add(time.ticks_ms(), delay_ms), name, arg])

    def _run_later(self, now):
        with self._later_lock:
            due = [x for x in self._later if time.ticks_diff(now, x[0]) >= 0]
            for x in due:
                self._later.remove(x)
        for _, name, arg in due:
            if name == "powercut":
                self.power_cut()
            elif name == "s2":
                self.set_s2(arg, "scheduled")
            elif name == "fault":
                self.set_fault(arg[0], arg[1])
            elif name == "unplug":
                self.unplug(bool(arg))

    def pp_ohms(self):
        return self.cable_ohms

    def rcm_fault(self):
        if self.faults.get("rcm_trip"):
            return True
        if self.faults.get("rcm_broken"):
            return False
        now = time.ticks_ms()
        if self.rcm_test:
            return time.ticks_diff(now, self._rcm_test_at) >= 20
        if self._rcm_release_at is not None:
            return time.ticks_diff(now, self._rcm_release_at) < 25
        return False

    def mirror(self):
        return self.contacts

    def lock_sensor(self):
        """Position switch level: 0 = locked (switch to GND), 1 = unlocked (pull-up)."""
        return 0 if self.locked and not self.faults.get("lock_fail") else 1

    # -- what the firmware's outputs do ----------------------------------------------------
    def set_duty(self, pm):
        if pm != self.duty:
            self.duty = pm
            self.obs("duty", {"v": pm})

    def set_coil(self, on):
        on = bool(on)
        if on != self.coil:
            self.coil = on
            self._contacts_at = time.ticks_ms()
            self.obs("contactor", {"cmd": on})

    def set_lock(self, on):
        on = bool(on)
        if on != self.lock_cmd:
            self.lock_cmd = on
            self._lock_at = time.ticks_ms()
            self.obs("lock", {"v": on})

    def set_rcm_test(self, on):
        on = bool(on)
        if on != self.rcm_test:
            if on:
                self._rcm_test_at = time.ticks_ms()
                self._rcm_release_at = None
            elif self.rcm_fault():
                self._rcm_release_at = time.ticks_ms()
            self.rcm_test = on
            self.obs("rcm_test", {"v": on})

    # -- injected changes ------------------------------------------------------------------
    @property
    def house_w(self):
        return self.grid.house_w(self.volts)

    def set_grid(self, c):
        """A `grid` command's fields (grid.py checks them): observed with the whole state."""
        self.grid.set(c)
        self.obs("grid", self.grid.state())

    def plug(self, cable_a=32):
        self.cable_ohms = CABLE_OHMS.get(cable_a, cable_a)  # amps or raw ohms
        self.ev.plugged = True
        self.ev.s2 = False
        self.ev._seen_duty = -1
        self.ev._wait_until = None
        self.obs("ev", {"what": "plug", "cable_ohms": self.cable_ohms})

    def unplug(self, ev_only=False):
        """The EV leaves; ev_only: the cable stays in the socket (unplugged at the EV side)."""
        self.ev.plugged = False
        self.ev.s2 = False
        if not ev_only:
            self.cable_ohms = None
        self.obs("ev", {"what": "unplug", "ev_only": ev_only})

    def set_s2(self, closed, why="command"):
        ev = self.ev
        if closed != ev.s2:
            ev.s2 = closed
            self.obs("ev", {"what": "S2 close" if closed else "S2 open", "why": why,
                            "state": self.ev_state()})

    def ev_state(self):
        ev = self.ev
        if not ev.plugged:
            return "A"
        if not ev.s2:
            return "B"
        return "D" if ev.vent else "C"

    def set_fault(self, name, on=True):
        if name not in FAULTS:
            raise ValueError("unknown fault %r; known: %s" % (name, ", ".join(FAULTS)))
        self.faults[name] = bool(on)
        self.obs("ev", {"what": "fault", "fault": name, "on": bool(on)})

    # -- the world's own clock -------------------------------------------------------------
    def tick(self):
        now = time.ticks_ms()
        dt = time.ticks_diff(now, self._last_ms)
        self._last_ms = now
        if self._later:
            self._run_later(now)
        ev = self.ev
        # Contactor mechanics: 30 ms to close, 15 ms to open; faults can hold either way.
        settle = 30 if self.coil else 15
        want = self.coil
        if self.faults.get("welded") and self.contacts:
            want = True
        if self.faults.get("no_close"):
            want = False if not self.contacts else want
        if want != self.contacts and time.ticks_diff(now, self._contacts_at) >= settle:
            self.contacts = want
            self.obs("contacts", {"closed": want})
        if self.phase is not None:
            self.phase.tick(now)
        if self.lock_cmd != self.locked and time.ticks_diff(now, self._lock_at) >= LOCK_TRAVEL_MS:
            self.locked = self.lock_cmd
        offered = amps_for_duty(self.duty) if is_pwm(self.duty) else 0
        if ev.plugged:
            self._ev_logic(now, offered)
        # Current draw follows the offer after the EV's reaction delay.
        powered = self.contacts and ev.plugged and ev.s2
        draw = ev.draw_da
        if not powered:
            draw = 0
        elif self.faults.get("overcurrent"):
            draw = max(ev.max_da, offered + offered // 2)
        elif time.ticks_diff(now, ev._target_at) >= 0 or draw == 0:
            draw = ev._target
        if draw != ev.draw_da:
            ev.draw_da = draw
        if ev.draw_da and dt > 0:
            wh = ev.draw_da * self.ev_phases() * self.volts * dt / 36000000.0  # dA*V*ms -> Wh
            self.energy_wh += wh
            ev.soc_wh += wh
            if int(self.energy_wh) != self._saved_wh:
                self._saved_wh = int(self.energy_wh)
                _save_register(self.energy_wh)
            if ev.full and ev.auto and ev.s2:
                ev._target = 0
                ev.draw_da = 0
                self.set_s2(False, "battery full")
        if ev.draw_da != self._meter_da or ev.draw_da and time.ticks_diff(
                now, self._meter_at) >= METER_OBS_MS:
            self._meter_obs(now)
        if self.s0_imp:
            self._s0_tick(now)

    # -- the meters' view: observations, S0 impulses, CT samples ----------------------------
    def ev_phases(self):
        """The phases the EV draws on: its own, one while a phase switch keeps L2/L3 off."""
        p = self.phase
        return self.ev.phases if p is None or p.contacts else 1

    def _meter_obs(self, now):
        ev = self.ev
        self._meter_at = now
        self._meter_da = ev.draw_da
        self.obs("meter", {"i_da": ev.draw_da, "wh": int(self.energy_wh),
                           "mwh": int(self.energy_wh * 1000), "phases": self.ev_phases(),
                           "v": self.volts, "house_w": self.house_w})

    def s0_start(self, imp_per_kwh):
        """Switch the S0 output on: one impulse per 1000 / imp_per_kwh Wh from now on."""
        self.s0_imp = imp_per_kwh
        self._s0_next = self.energy_wh + 1000.0 / imp_per_kwh

    def _s0_tick(self, now):
        at = self._s0_at
        if at is not None and time.ticks_diff(now, at) >= S0_PULSE_MS + S0_GAP_MS:
            self._s0_at = at = None
        if at is None and self.energy_wh >= self._s0_next:
            self._s0_next += 1000.0 / self.s0_imp
            self._s0_at = now

    def s0_level(self):
        """The S0 input: 1 idle (pull-up), 0 during an impulse; 1 ms bounces at both edges."""
        at = self._s0_at
        if at is None:
            return 1
        age = time.ticks_diff(time.ticks_ms(), at)
        if age < 0 or age >= S0_PULSE_MS + 2 or age == 1 or age == S0_PULSE_MS:
            return 1
        return 0

    def ct_samples(self, buf, grid):
        """Three CT channels interleaved: the EV's phase currents (grid: plus the house
        load), 50 Hz sines in 12-bit codes around 2048 at 20 mA per code, 4 kHz."""
        ev = self.ev
        amps = [0.0, 0.0, 0.0]
        ph = self.ev_phases()
        for p in range(3):
            if p < ph:
                amps[p] = ev.draw_da / 10
            if grid:
                amps[p] += self.grid.load_a[p]
        n = len(buf) // 3
        for k in range(n):
            for p in range(3):
                ph = 2 * math.pi * (50 * k / 4000 - p / 3)
                code = 2048 + int(amps[p] * 70.71 * math.sin(ph))  # sqrt(2) / 0.02 A
                buf[3 * k + p] = 0 if code < 0 else 4095 if code > 4095 else code

    def _ev_logic(self, now, offered):
        ev = self.ev
        if self.duty != ev._seen_duty:
            ev._seen_duty = self.duty
            # Follow the new offer after the reaction delay (draw decreases on time).
            ev._target_at = time.ticks_add(now, ev.reaction_ms)
            ev._target = min(ev.max_da, offered)
            if ev.auto:
                if offered and not ev.s2 and not ev.full:
                    ev._wait_until = time.ticks_add(now, ev.ready_ms)
                elif not offered and ev.s2 and not self.faults.get("ignore_stop"):
                    ev._wait_until = time.ticks_add(now, ev.stop_ms)
                else:
                    ev._wait_until = None
        if ev._wait_until is not None and time.ticks_diff(now, ev._wait_until) >= 0:
            ev._wait_until = None
            if offered and not ev.full:
                self.set_s2(True, "offer")
            elif not offered:
                self.set_s2(False, "PWM off")


def _load_register():
    try:
        with open(REGISTER_FILE) as f:
            return float(f.read())
    except (OSError, ValueError):
        return 0.0


def _save_register(wh):
    try:
        with open(REGISTER_FILE, "w") as f:
            f.write("%.3f" % wh)
    except OSError:
        pass


def _boot_faults():
    try:
        with open(FAULTS_FILE) as f:
            names = json.load(f)
    except (OSError, ValueError):
        return ()
    return names if type(names) is list else ()
