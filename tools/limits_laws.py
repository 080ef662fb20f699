"""The control laws compared by tools/bench_limits.py on the days of tools/limits_days.py.

Each law: `Law(day)`, then `step(t, g, ev_a, hz)` once a second with the grid meter's three
phase currents g (A, + import), the EV's own phase current (A) and the frequency (Hz); it
returns the offer (A): 0, or 6..32. Ours is the firmware's arbiter itself; the anchors' laws
are written here from their documented parameters and behaviour (facts cited, code ours).
Where a detail is not documented the choice made is said ("assumed").
"""
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools import mpshim  # noqa: E402,F401 (the pure logic's MicroPython names)

from firmware.limits import conf  # noqa: E402
from firmware.limits.arbiter import Arbiter  # noqa: E402

V = 230.0
MIN_A, MAX_A = 6, 32


class Ours:
    """The real arbiter and dynamics (firmware/limits), their defaults, with the day's fuse,
    the PV mode on PV days and the frequency response on; one grid reading a second."""

    name = "ours"

    def __init__(self, day, **keys):
        sec = {"main_fuse_a": day.fuse_a, "mode": "pv" if day.mode == "pv" else "fast",
               "freq_response": True}
        sec.update(keys)
        s = conf.check(sec)
        if s.get("errors"):
            raise ValueError(s["errors"])
        self.arb = Arbiter(s, MAX_A, MAX_A, 3)

    def step(self, t, g, ev_a, hz):
        now = t * 1000 + 1
        e = int(round(ev_a * 10))
        self.arb.grid(now, int(round(g[0] * 10)), int(round(g[1] * 10)), int(round(g[2] * 10)),
                      e, e, e, int(sum(g) * V), int(ev_a * 3 * V), int(round(hz * 100)), 230)
        return self.arb.decide(now) / 10


class OursPhaseSwitch(Ours):
    """Ours on a box with a phase switch (limits/phases.py, its defaults: "auto"): the policy
    decides before each decision, as the loop does; a switch holds the offer at 0 for the
    controller's sequence (the EV to B, the 12 s pause with the contactor open, the close:
    PAUSE_S in all) and then the EV draws on the new phase count."""

    name = "ours 1p/3p"
    PAUSE_S = 15

    def __init__(self, day):
        from firmware.limits.phases import PhasePolicy

        Ours.__init__(self, day)
        self.policy = PhasePolicy(self.arb.s, 3)
        self.policy.session()
        self.phases = 3
        self.switches = 0
        self.until = -1

    def step(self, t, g, ev_a, hz):
        now = t * 1000 + 1
        a = self.arb
        e = int(round(ev_a * 10))
        e1 = e if self.phases == 3 else 0
        a.grid(now, int(round(g[0] * 10)), int(round(g[1] * 10)), int(round(g[2] * 10)),
               e, e1, e1, int(sum(g) * V), int(ev_a * self.phases * V), int(round(hz * 100)),
               230)
        n = self.policy.decide(now, a, True)
        if n != a.phases:
            a.set_phases(n)
            self.phases = n
            self.switches += 1
            self.until = t + self.PAUSE_S
        da = a.decide(now)
        return 0.0 if t < self.until else da / 10


class OursAtSmartEvseThresholds(Ours):
    """Ours with SmartEVSE's start and stop in our keys, for a like-for-like PV figure:
    start at 920 W of surplus (its START 4 A summed over the phases x 230 V), stop after
    600 s (its STOP 10 min) below the same 920 W (our stop may not be above our start)."""

    name = "ours*"

    def __init__(self, day):
        Ours.__init__(self, day, pv_start_w=920, pv_stop_w=920, pv_stop_s=600)


class SmartEvse:
    """SmartEVSE-3 (SmartEVSE/SmartEVSE-3 docs/configuration.md, CalcBalancedCurrent in its
    main.cpp). Solar mode: START 4 A (export summed over the phases, needed to start), STOP
    10 min (StopTime: below MIN while importing this long stops), IMPORT 0 A; the current
    moves by +0.5 A (+0.1 A under 1 A of export) and down by half the import (0.5 A, 0.1 A for
    small imports) per mains reading; it never goes below MIN (6 A) while charging. Smart mode
    (the fuse): the difference MaxMains - the highest phase current is added at once when
    negative, a quarter of it when positive. Three "no current" readings in a row (below MIN,
    or a phase over MaxMains while importing in solar mode) stop the charge, and a new start
    waits CHARGEDELAY 60 s. Assumed: a mains reading every 2 s (the Sensorbox's rate)."""

    name = "SmartEVSE"
    START_A, STOP_MIN, IMPORT_A, CHARGEDELAY_S, PERIOD_S = 4, 10, 0, 60, 2

    def __init__(self, day):
        self.solar = day.mode == "pv"
        self.mains = day.fuse_a or 999
        self.active = False
        self.iset = 0  # dA per phase
        self.timer = self.nocur = self.delay = 0
        self.out = 0.0

    def _stop(self, delay):
        self.active = False
        self.iset = self.nocur = self.timer = 0
        self.delay = delay

    def step(self, t, g, ev_a, hz):
        if self.timer:  # the solar stop timer counts seconds
            self.timer -= 1
            if self.timer == 0:
                self._stop(0)
        if self.delay:
            self.delay -= 1
        if t % self.PERIOD_S == 0:
            self._reading(int(sum(g) * 10), int(max(g) * 10), int(ev_a * 10))
        self.out = self.iset / 10 if self.active else 0.0
        return self.out

    def _reading(self, isum, imeas, ev):
        mains = self.mains * 10
        if not self.active:
            if self.delay:
                return
            if self.solar and isum < -self.START_A * 10:
                self.active, self.iset = True, MIN_A * 10
            elif not self.solar and imeas - ev + MIN_A * 10 <= mains:
                self.active, self.iset = True, min(MAX_A * 10, mains - (imeas - ev))
            return
        if self.solar:
            imp = isum - self.IMPORT_A * 10
            if imp < 0:
                self.iset += 5 if imp < -10 else 1
            elif imp > 20:
                self.iset -= imp // 2
            elif imp > 10:
                self.iset -= 5
            elif imp > 3:
                self.iset -= 1
            if self.iset < MIN_A * 10:
                self.iset = MIN_A * 10
                if self.STOP_MIN and imp > 10:
                    if not self.timer:
                        self.timer = self.STOP_MIN * 60
                else:
                    self.timer = 0
            else:
                self.timer = 0
        else:
            diff = mains - imeas
            self.iset += diff // 4 if diff > 0 else diff
        self.iset = max(0, min(MAX_A * 10, self.iset))
        if self.iset < MIN_A * 10 or (self.solar and isum > 10 and imeas > mains):
            self.iset = MIN_A * 10
            self.nocur += 1
            if self.nocur > 2:
                self._stop(self.CHARGEDELAY_S)
        else:
            self.nocur = 0


def _smooth(prev, x, tau_s):
    return x if tau_s <= 0 else prev + (x - prev) * (1 - math.exp(-1.0 / tau_s))


class OpenEvse:
    """OpenEVSE (openevse_esp32_firmware divert.cpp, current_shaper.cpp, their config
    defaults). Eco mode on a grid feed: available = the export (A) + the EV's own current,
    smoothed with the attack time constant (20 s) when it rises and the decay one (600 s)
    when it falls; charging starts when the smoothed current reaches the EVSE's minimum (6 A;
    hysteresis power assumed 0 W) at int(smoothed) amps (the EVSE never offers below 6 A) and
    stops when it falls below it, but not before the minimum charge time (600 s). The current
    shaper (the fuse, fast days): max = (max power - live power) / V + the EV's current, on the
    total power (max_pwr = fuse x 3 x 230 V: the shaper knows no phases); assumed: a fall acts
    at once, a rise through its 60 s smoothing time; below 6 A it pauses at least 300 s."""

    name = "OpenEVSE"
    ATTACK_S, DECAY_S, MIN_CHARGE_S = 20, 600, 600
    SHAPER_SMOOTH_S, SHAPER_PAUSE_S = 60, 300

    def __init__(self, day):
        self.eco = day.mode == "pv"
        self.max_pwr = day.fuse_a * 3 * V if day.fuse_a else None
        self.smoothed = 0.0
        self.active = False
        self.started = 0
        self.cap = float(MAX_A)
        self.paused_until = None

    def step(self, t, g, ev_a, hz):
        offer = float(MAX_A)
        if self.eco:
            avail = max(0.0, -sum(g) / 3 + ev_a)
            tau = self.ATTACK_S if avail > self.smoothed else self.DECAY_S
            self.smoothed = _smooth(self.smoothed, avail, tau)
            if self.smoothed >= MIN_A:
                if not self.active:
                    self.active, self.started = True, t
            elif self.active and t - self.started >= self.MIN_CHARGE_S:
                self.active = False
            offer = max(MIN_A, min(MAX_A, int(self.smoothed))) if self.active else 0.0
        if self.max_pwr is not None:
            live = sum(g) * V
            m = (self.max_pwr - live) / (3 * V) + ev_a
            self.cap = m if m < self.cap else _smooth(self.cap, m, self.SHAPER_SMOOTH_S)
            if self.paused_until is not None and t < self.paused_until:
                return 0.0
            self.paused_until = None
            if self.cap < MIN_A:
                if offer:
                    self.paused_until = t + self.SHAPER_PAUSE_S
                return 0.0
            offer = min(offer, float(int(self.cap)))
        return offer


class Evcc:
    """evcc (core/loadpoint_pv.go pvMaxCurrent, evcc.dist.yaml). PV mode: target = the EV's
    current + (-site power) / (230 V x phases); charging at the target (6..32 A); below 6 A it
    keeps 6 A until the site has imported (>= the disable threshold, 0 W) for the disable
    delay (3 min), then stops; stopped, it starts at 6 A once the target has reached 6 A for
    the enable delay (1 min). The control loop runs every `interval` (30 s by default), so a
    timer is seen at those ticks; GuardDuration (5 min) keeps the charger's enable state at
    least that long (contactor protection). The fuse: a circuit's limit, the load of its
    busiest phase taken off, applied at the same 30 s ticks ("now" mode on the fast days)."""

    name = "evcc"
    INTERVAL_S, ENABLE_S, DISABLE_S, GUARD_S = 30, 60, 180, 300

    def __init__(self, day):
        self.pv = day.mode == "pv"
        self.fuse = day.fuse_a
        self.enabled = not self.pv
        self.timer = None
        self.guard = -self.GUARD_S
        self.offer = float(MAX_A) if not self.pv else 0.0

    def step(self, t, g, ev_a, hz):
        if t % self.INTERVAL_S:
            return self.offer
        cur = float(MAX_A)
        if self.pv:
            site_w = sum(g) * V
            target = max(ev_a + -site_w / (3 * V), 0.0)
            cur = self._pv(t, site_w, target)
        if self.fuse is not None and cur:
            cap = self.fuse - (max(g) - ev_a)
            cur = min(cur, cap) if cap >= MIN_A else 0.0
        self.offer = cur
        return cur

    def _pv(self, t, site_w, target):
        if self.enabled and target < MIN_A:
            if site_w >= 0:
                if self.timer is None:
                    self.timer = t
                if t - self.timer >= self.DISABLE_S and t - self.guard >= self.GUARD_S:
                    self.enabled, self.guard, self.timer = False, t, None
                    return 0.0
            else:
                self.timer = None
            return float(MIN_A)
        if not self.enabled:
            if target >= MIN_A:
                if self.timer is None:
                    self.timer = t
                if t - self.timer >= self.ENABLE_S and t - self.guard >= self.GUARD_S:
                    self.enabled, self.guard, self.timer = True, t, None
                    return float(MIN_A)
            else:
                self.timer = None
            return 0.0
        self.timer = None
        return min(target, float(MAX_A))


ANCHORS = (SmartEvse, OpenEvse, Evcc)
