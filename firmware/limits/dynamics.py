# The arbiter's dynamics (docs/limits.md), pure: a decrease acts at once; an increase waits
# 5 s after the last change (IEC 61851-1 gives the EV up to 5 s to follow a new duty) and
# ramps by a share of the gap; below 6 A the charge pauses, and resumes only a hysteresis
# above it after a minimum pause; the PV modes start and stop on thresholds held for a delay
# (evcc's defaults: 1 min on, 3 min off) after a minimum charge time; the UK randomised delay
# holds a start and a rise after a grid signal. Ints and preallocated state only.

from firmware.ticks import ticks_add, ticks_diff

MIN_DA = const(60)  # IEC 61851-1: 6 A, the lowest current an EV is offered
_STEP_MS = const(5000)  # at most one increase per 5 s
_NONE = const(-1)
_FUSE = const(4)  # arbiter slots
_TOTAL = const(5)
_PV = const(6)
_DSO = const(8)
_FREQ = const(9)
_SCHEDULE = const(10)

STATE_LIMIT = const(0)  # at the target
STATE_RAMP = const(1)  # rising toward it
STATE_PAUSE = const(2)  # below 6 A: paused
STATE_HOLD = const(3)  # paused: minimum pause or hysteresis not yet passed
STATE_DELAY = const(4)  # the randomised delay runs
STATE_PV_WAIT = const(5)  # pv mode: the surplus is not (yet) enough
STATES = ("limit", "ramp", "pause", "pause held", "randomised delay", "waiting for surplus")


class Dynamics:
    def __init__(self, s, phases):
        self.da = 0  # the offer
        self.changed = None  # ticks of the last change of the offer
        self.paused_at = None  # ticks the offer went to 0 (None: not paused by us)
        self.charge_at = None  # ticks the offer left 0
        self.delay_until = None  # ticks the randomised delay ends
        self.pv_on = False
        self.pv_since = None  # ticks the surplus crossed the threshold the pv state waits on
        self.pv_switch = False  # switched to pv while charging: decided on the next surplus
        self.mode = None
        self.configure(s)
        self.prev_bound = _NONE
        self.bound = _NONE
        self.state = STATE_PAUSE
        self.pauses = 0  # pause -> charge cycles (diag, tests)

    def configure(self, s):
        """The checked `limits` section's values (at boot and on an owner's change; a
        running randomised delay, pause or PV timer goes on)."""
        self.ramp_pct = s["ramp_pct"]
        self.hyst_da = s["resume_hyst_a"] * 10
        self.min_pause_ms = s["min_pause_s"] * 1000
        self.min_charge_ms = s["min_charge_s"] * 1000
        self.delay_ms = 0 if s["delay_override"] else s["random_delay_s"] * 1000
        if s["delay_override"]:
            self.delay_until = None  # the owner's override (UK SCPR) ends a running delay
        if s["mode"] == "pv" and self.mode != "pv":
            # switched to pv: a charge on a surplus at the stop threshold goes on under pv's
            # stop rule (not a pause until the start delay passed); no charge: the start rule
            self.pv_on = False
            self.pv_switch = self.da > 0
            self.pv_since = None
        self.mode = s["mode"]
        self.start_w = s["pv_start_w"]
        self.stop_w = s["pv_stop_w"]
        self.start_ms = s["pv_start_s"] * 1000
        self.stop_ms = s["pv_stop_s"] * 1000

    def session(self, now, rnd):
        """An EV plugged in: the randomised delay (UK) runs before its first offer."""
        self._arm(now, rnd)
        du = self.delay_until
        if du is not None and ticks_diff(du, now) > 0:
            self.da = 0  # the loop decides without an EV too: its offer may be up already

    def _arm(self, now, rnd):
        du = self.delay_until  # a running delay is not cut short; one that ran out is over
        if self.delay_ms and (du is None or ticks_diff(now, du) >= 0):
            self.delay_until = ticks_add(now, (self.delay_ms >> 8) * (rnd & 0xFFFF) >> 8)

    def _pv(self, now, surplus_w, stale, min_w):
        """The pv mode's on/off state: on after the surplus stayed >= the start threshold for
        the start delay, off after it stayed below the stop threshold for the stop delay and
        the minimum charge time passed. A stale meter counts as no surplus."""
        sw = -1 if stale else surplus_w
        start = min_w if self.start_w is None else self.start_w
        stop = min_w if self.stop_w is None else self.stop_w
        if self.pv_switch:
            self.pv_switch = False
            self.pv_on = sw >= stop
        if self.pv_on:
            if sw >= stop:
                self.pv_since = None
                return
            if self.pv_since is None:
                self.pv_since = now
            ca = self.charge_at
            if ticks_diff(now, self.pv_since) >= self.stop_ms and (
                    ca is None or self.da == 0
                    or ticks_diff(now, ca) >= self.min_charge_ms):
                self.pv_on = False
                self.pv_since = None
        else:
            if sw < start:
                self.pv_since = None
                return
            if self.pv_since is None:
                self.pv_since = now
            if ticks_diff(now, self.pv_since) >= self.start_ms:
                self.pv_on = True
                self.pv_since = None

    def step(self, now, target, bound, pv, surplus_w, rnd, arb):
        """The offer (dA) at ticks now, given the lowest hard limit (target, from `bound`)
        and the PV limit (pv, dA or -1 when the mode is fast)."""
        want = target
        wait_pv = False
        if self.mode != "fast":
            if self.mode == "pv":
                self._pv(now, surplus_w, arb.stale(_PV, now), arb.phases * 230 * MIN_DA // 10)
            p = pv if pv > MIN_DA else MIN_DA
            if self.mode == "pv" and not self.pv_on:
                p = 0
                wait_pv = True
            if p < want:
                want = p
                bound = _PV
        cur = self.da
        self.bound = bound
        if want < MIN_DA:  # below 6 A: pause (at once, it is a decrease)
            if cur:
                self._set(now, 0)
                self.paused_at = now
            self.state = STATE_PV_WAIT if wait_pv else STATE_PAUSE
            self.prev_bound = bound
            return 0
        if want < cur:
            self._set(now, want)
            self.state = STATE_LIMIT
            self.prev_bound = bound
            return want
        if want == cur:
            self.state = STATE_LIMIT
            self.prev_bound = bound
            return cur
        # An increase. After a grid signal (schedule, frequency, DSO) let go, the UK
        # randomised delay holds it first.
        pb = self.prev_bound
        if pb != bound and (pb == _SCHEDULE or pb == _FREQ or pb == _DSO):
            self._arm(now, rnd)
        self.prev_bound = bound
        du = self.delay_until
        if du is not None:
            if ticks_diff(now, du) < 0:
                self.state = STATE_DELAY
                return cur
            self.delay_until = None
        if cur == 0:
            # resume: a hysteresis above 6 A (never above the station's own cap) and
            # after the minimum pause
            cap = arb.eff[0]
            for k in (1, 2):
                v = arb.eff[k]
                if v != _NONE and v < cap:
                    cap = v
            need = MIN_DA + self.hyst_da
            if need > cap:
                need = cap
            pa = self.paused_at  # None: not paused by a limit (boot): no hysteresis
            if bound == _PV and self.pv_on:
                need = MIN_DA  # pv: its start threshold, held pv_start_s, is the hysteresis
            if pa is not None and (want < need or ticks_diff(now, pa) < self.min_pause_ms):
                self.state = STATE_HOLD
                return 0
        ch = self.changed
        if ch is not None and ticks_diff(now, ch) < _STEP_MS:
            self.state = STATE_RAMP
            return cur
        new = want
        if ch is not None and (bound == _FUSE or bound == _TOTAL or bound == _PV):
            # a measured headroom: close a share of the gap per step (the first offer after
            # boot and a set limit, OCPP's or the installer's, go straight to it)
            base = cur if cur else MIN_DA
            new = base + (want - base) * self.ramp_pct // 100
            if new < base + 10:
                new = base + 10
            if new > want:
                new = want
        if cur == 0:
            self.charge_at = now
            self.paused_at = None
            self.pauses += 1
        self._set(now, new)
        self.state = STATE_LIMIT if new == want else STATE_RAMP
        return new

    def _set(self, now, da):
        self.da = da
        self.changed = now
