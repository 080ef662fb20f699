# The 1p/3p policy (docs/limits.md "Phases"), pure: which phase count the limit loop asks the
# charge controller for (ChargeController.set_phases; the controller owns the switching
# sequence and its safety). The owner's lock (`limits.phases` 1 or 3) is obeyed as it is;
# "auto" compares what the limits in force allow on one phase and on three:
# - 1p -> 3p when three phases can carry at least 6 A + resume_hyst_a on EVERY phase (the main
#   fuse's headroom is the least over all three phases: evcc #26380 and EVerest #1038 tripped
#   breakers by checking one), give more power than one phase - than the limits allow on one,
#   or than the EV takes on one when it draws at least 1 A less than offered (many cars take
#   far less on one phase than the box offers: evcc #32137 stayed on 1p for good with 6 kW of
#   surplus because 1p "could" take 7.4 kW) - and every measured input is fresh, held for
#   phase_up_s;
# - 3p -> 1p when three phases cannot carry 6 A but one can, held for phase_down_s;
# - at most phase_max switches per session (plug-in), at least phase_min_s apart, and the
#   phase currents ignored for phase_ignore_s after a switch (evcc: 60 s) - no decision is
#   taken on readings made while the EV was still changing over. Nothing here learns the EV's
#   phase count from what it drew on one phase, so switching back up keeps working (evcc
#   #2244: a car seen on 2p after a switch down was never switched up again).
# Ints only; nothing allocated per decision.

from firmware.limits import rules
from firmware.ticks import ticks_diff

MIN_DA = const(60)  # 6 A
_NONE = const(-1)
_FUSE = const(4)  # arbiter slots
_TOTAL = const(5)
_PV = const(6)
_DSO = const(8)


class PhasePolicy:
    def __init__(self, s, phases):
        """s: the checked `limits` section; phases: the phases in force (the controller's)."""
        self.configure(s)
        self.want = phases if self.lock == 0 else self.lock
        self.count = 0  # switches asked for in this session
        self.total = 0  # ... since boot (diag)
        self.last = None  # ticks of the last switch, while its spacing or ignore time runs
        self.cand = 0  # the phase count the inputs point to (0: stay)
        self.since = None  # ticks the candidate started, until its hold time passed
        self.held = False  # the candidate lasted its hold time
        self.t1 = 0  # what one phase would carry (dA), last decision
        self.t3 = 0  # ... three phases, on every phase

    def configure(self, s):
        """Take a checked `limits` section (at boot, and when the owner changes a setting)."""
        lock = s["phases"]
        self.lock = lock if lock == 1 or lock == 3 else 0  # 0: auto
        self.up_ms = s["phase_up_s"] * 1000
        self.down_ms = s["phase_down_s"] * 1000
        self.min_ms = s["phase_min_s"] * 1000
        self.ignore_ms = s["phase_ignore_s"] * 1000
        self.max = s["phase_max"]
        self.hyst_da = s["resume_hyst_a"] * 10

    def session(self):
        """An EV plugged in: a new session's switch count, and its hold times from now."""
        self.count = 0
        self.cand = 0
        self.since = None
        self.held = False

    def target(self, arb, n, now):
        """The current (dA per phase) the limits in force allow on n phases: the phase-neutral
        slots as decided, the main fuse's headroom on the n phases used (the least of them),
        the total capacity, the DSO's power and the PV surplus shared over n phases (minpv's
        6 A minimum counts on one phase only: three phases only for a surplus that carries
        them)."""
        eff = arb.eff
        best = _NONE
        for k in range(len(eff)):
            v = eff[k]
            if k != _FUSE and k != _TOTAL and k != _PV and k != _DSO and v != _NONE and (
                    best == _NONE or v < best):
                best = v
        s = arb.s
        hs = arb.house
        fuse = s["main_fuse_a"]
        if fuse is not None:
            if arb.stale(_FUSE, now):
                v = arb.fb[_FUSE]
            else:
                h = hs[0]
                if n == 3:
                    h = max(h, hs[1], hs[2])
                v = fuse * 10 - h
            best = _min(best, v)
        total = s["total_a"]
        if total is not None:
            v = arb.fb[_TOTAL] if arb.stale(_TOTAL, now) else (
                total * 10 - hs[0] - hs[1] - hs[2]) // n
            best = _min(best, v)
        v = eff[_DSO]
        if v != _NONE:  # the same power on n phases, never below the 4.2 kW floor
            best = _min(best, max(v * arb.phases // n, rules.dso_floor_da(n)))
        if arb.need[_PV]:
            v = 0 if arb.stale(_PV, now) else arb.surplus_w * 10 // (arb.volts * n)
            if s["mode"] == "minpv" and v < MIN_DA and n == 1:
                v = MIN_DA  # minpv's minimum: on one phase (1.4 kW, not 4.1 kW from the grid)
            best = _min(best, v)
        return 0 if best < 0 else best

    def _fresh(self, arb, now):
        for k in (_FUSE, _TOTAL, _PV):
            if arb.need[k] and arb.stale(k, now):
                return False
        return True

    def decide(self, now, arb, plugged):
        """The phase count to ask for now (1 or 3)."""
        if self.lock:
            self.want = self.lock
            return self.want
        last = self.last
        if last is not None and ticks_diff(now, last) >= max(self.min_ms, self.ignore_ms):
            last = self.last = None  # past its use: never compared again (ticks wrap)
        if last is not None and ticks_diff(now, last) < self.ignore_ms:
            self.cand = 0  # readings from the change-over: no decision on them
            return self.want
        t1 = self.t1 = self.target(arb, 1, now)
        t3 = self.t3 = self.target(arb, 3, now)
        cand = 0
        if self.want == 1:
            ev = arb.ev_da
            if ev > 0 and ev + 10 <= arb.da and ev < t1:
                t1 = ev  # the EV takes less on one phase than it is offered
            if t3 >= MIN_DA + self.hyst_da and 3 * t3 > t1 and self._fresh(arb, now):
                cand = 3
        elif t3 < MIN_DA and t1 >= MIN_DA:
            cand = 1
        if cand != self.cand:
            self.cand = cand
            self.since = now
            self.held = False
        if cand == 0:
            self.since = None
            return self.want
        if not self.held:
            hold = 0 if not plugged else (self.up_ms if cand == 3 else self.down_ms)
            if ticks_diff(now, self.since) < hold:
                return self.want
            self.held = True
            self.since = None  # past its use: never compared again (ticks wrap)
        if last is not None or (plugged and self.count >= self.max):
            return self.want
        self.want = cand
        self.last = now
        self.cand = 0
        self.held = False
        self.total += 1
        if plugged:
            self.count += 1
        return cand


def _min(a, b):
    return b if a == _NONE or b < a else a
