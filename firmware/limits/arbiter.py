# The limit arbiter (docs/limits.md): pure logic, no I/O, no clock reads. Every limit in
# force is an input slot with a value in dA, the ticks it was measured or published at and a
# timeout; decide(now) combines them into one offer (dA), the reason and the input that bound
# it, then applies the dynamics (dynamics.py). All arithmetic is on ints and preallocated
# arrays: a decision allocates nothing (host_tests/mpy/check_limits.py proves it).
from array import array


from firmware.limits import rules
from firmware.ticks import ticks_diff

# Input slots. A slot is absent (never published: no limit), present (its value binds while
# younger than its timeout), stale (older: its fallback binds) or bad (a refused value: its
# fallback binds at once).
RATING = const(0)
CABLE = const(1)
INSTALLER = const(2)
OCPP = const(3)
FUSE = const(4)
TOTAL = const(5)
PV = const(6)
THERMAL = const(7)
DSO = const(8)
FREQ = const(9)
SCHEDULE = const(10)
CONFIG = const(11)  # a refused `limits` key: the safe current until the config is fixed
OWNER = const(12)  # the owner's current_a / enable (web, MQTT: firmware/owner)
N_SLOTS = const(13)
NAMES = ("config rating_a", "cable", "config max_current_a", "ocpp", "main fuse",
         "total capacity", "pv surplus", "thermal", "dso dimming", "frequency",
         "off-peak schedule", "config", "owner")
SOURCES = {"ocpp": OCPP, "thermal": THERMAL, "dso": DSO}  # publish() names

ABSENT = const(0)
PRESENT = const(1)
BAD = const(2)
NONE = const(-1)  # no limit from this slot
_MAX_DA = const(8000)  # 800 A: no wallbox input is above (out of range: refused)
_UNKNOWN = const(-0x20000000)  # firmware.meter.UNKNOWN
_MIN_DA = const(60)  # dynamics.MIN_DA: 6 A
# The reaction time: a fuse overload is answered within 2 s of the grid reading that shows it.
# For that time less one loop period after a decrease, a grid reading may still hold the EV's
# current from before it (docs/limits.md "Grid and EV readings out of step").
_REACT_MS = const(2000)


class LimitsError(ValueError):
    pass


class Arbiter:
    """Inputs in (put, grid), decision out (decide): self.da, self.phases, self.bound (the
    slot whose limit is the target, -1 none) and self.state (dynamics.STATE_*)."""

    def __init__(self, s, rating_a, max_a, phases):
        """s: the checked `limits` section (conf.check); rating_a, max_a (installer), phases:
        the station's."""
        from firmware.limits.dynamics import Dynamics

        self.s = s
        self.phases = phases
        self.val = array("i", [NONE] * N_SLOTS)  # dA
        self.at = array("i", [0] * N_SLOTS)  # ticks of the value
        self.st = bytearray(N_SLOTS)  # ABSENT / PRESENT / BAD
        self.tmo = array("i", [0] * N_SLOTS)  # ms, 0: never stale
        self.fb = array("i", [0] * N_SLOTS)  # fallback dA when stale or bad
        self.need = bytearray(N_SLOTS)  # 1: absent counts as stale (a configured source)
        self.eff = array("i", [NONE] * N_SLOTS)  # each slot's limit in this decision
        self.put(RATING, rating_a * 10, 0)
        self.put(INSTALLER, max_a * 10, 0)
        self.dso_floor = rules.dso_floor_da(phases)
        self.configure(s, 0)
        self.surplus_w = _UNKNOWN  # the PV surplus (W) of the last good grid reading
        self.house = array("i", [0, 0, 0])  # ... the house's load per phase (dA, EV taken out)
        self.volts = 230  # ... and its voltage
        self.ev_da = 0  # ... and the EV's highest phase current (dA)
        self.ev = array("i", [0, 0, 0])  # ... and its phase currents (dA)
        self.g = array("i", [0, 0, 0])  # ... and the grid's (dA)
        self.ev_pre = array("i", [0, 0, 0])  # the EV's phase currents before the last decrease
        self.dec_at = None  # ticks of the decrease whose settle window runs (None: none)
        self.dyn = Dynamics(s, phases)
        self.da = 0
        self.bound = NONE
        self.state = 0
        self.target = 0

    def configure(self, s, now):
        """Take a checked `limits` section (at boot, and when the owner changes a setting:
        the loop's reconfigure): the inputs it makes necessary, their timeouts and
        fallbacks, and the owner's own limit."""
        self.s = s
        safe = s["safe_a"] * 10
        meter_ms = s["meter_timeout_s"] * 1000
        for k in range(N_SLOTS):
            self.fb[k] = safe
        for k in (FUSE, TOTAL, PV, FREQ):
            self.tmo[k] = meter_ms
        self.need[FUSE] = s["main_fuse_a"] is not None
        self.need[TOTAL] = s["total_a"] is not None
        self.need[PV] = s["mode"] != "fast"
        self.need[FREQ] = s["freq_response"]
        self.fb[PV] = 0  # no surplus known: none (minpv still gets its minimum)
        self.fb[OCPP] = 0  # a refused profile limit or temperature: the offer stops
        self.fb[THERMAL] = 0
        self.fb[OWNER] = 0
        self.fb[FREQ] = safe
        self.tmo[THERMAL] = 60000
        dso_ms = s["dso_timeout_s"] * 1000
        self.tmo[DSO] = dso_ms
        self.need[DSO] = dso_ms > 0
        self.fb[DSO] = self.dso_floor  # evcc LPC: the fail-safe limit when the signal is lost
        self.st[CONFIG] = BAD if s.get("errors") else ABSENT
        own = s.get("current_a")
        self.put(OWNER, 0 if not s.get("enable", True) else None if own is None else own * 10,
                 now)
        if hasattr(self, "dyn"):
            self.dyn.configure(s)

    # -- inputs ------------------------------------------------------------------------------
    def put(self, slot, da, now):
        """One input's limit: da (int or float dA >= 0; None: no limit, absent) measured or
        published at ticks `now`. A bad value is refused (LimitsError naming it) and the
        slot's fallback applies until a good value comes."""
        if da is None:
            self.st[slot] = ABSENT
            self.val[slot] = NONE
            return
        t = type(da)
        if (t is not int and t is not float) or da != da or da < 0 or da > _MAX_DA:
            self.st[slot] = BAD
            raise LimitsError("%s: %r dA refused (allowed 0..%d)" % (NAMES[slot], da, _MAX_DA))
        self.val[slot] = int(da)
        self.at[slot] = now
        self.st[slot] = PRESENT

    def grid(self, at, g0, g1, g2, e0, e1, e2, grid_w, ev_w, freq_chz, volts):
        """A good grid meter reading stamped `at`: phase currents g (dA, + import), the EV's
        own phase currents e (dA), the grid's total power (W, + import), the EV's power (W),
        the frequency (0.01 Hz, -1 unknown) and the voltage (V). Sets the fuse, total
        capacity, PV and frequency slots. A value out of physical range marks them bad."""
        s = self.s
        if not (_ok_da(g0) and _ok_da(g1) and _ok_da(g2) and _ok_da(e0) and _ok_da(e1)
                and _ok_da(e2) and -500000 <= grid_w <= 500000 and 0 <= ev_w <= 100000
                and 150 <= volts <= 300):
            for k in (FUSE, TOTAL, PV, FREQ):
                self.st[k] = BAD
            raise LimitsError("grid reading out of range: %d %d %d dA, %d W, %d V" % (
                g0, g1, g2, grid_w, volts))
        hs = self.house
        hs[0] = g0 - e0
        hs[1] = g1 - e1
        hs[2] = g2 - e2
        self.volts = volts
        self.ev_da = max(e0, e1, e2)
        ev = self.ev  # kept for the pause decision after a decrease (_alt_da)
        ev[0] = e0
        ev[1] = e1
        ev[2] = e2
        g = self.g
        g[0] = g0
        g[1] = g1
        g[2] = g2
        fuse = s["main_fuse_a"]
        if fuse is not None:  # per phase: fuse minus the house's load (the EV added back)
            h = fuse * 10 - (g0 - e0)
            if self.phases == 3:
                h = min(h, fuse * 10 - (g1 - e1), fuse * 10 - (g2 - e2))
            self._meas(FUSE, h, at)
        total = s["total_a"]
        if total is not None:  # SmartEVSE MaxSumMains: the sum over the phases
            h = total * 10 - (g0 - e0) - (g1 - e1) - (g2 - e2)
            self._meas(TOTAL, h // self.phases, at)
        self.surplus_w = ev_w - grid_w
        if s["mode"] != "fast":
            self._meas(PV, (self.surplus_w * 10) // (volts * self.phases), at)
        if s["freq_response"]:
            if freq_chz < 4500 or freq_chz > 5500:
                self.st[FREQ] = BAD
            else:
                self._meas(FREQ, rules.freq_da(freq_chz, s, self.val[INSTALLER]), at)

    def _meas(self, slot, da, at):
        self.val[slot] = da if da > 0 else 0
        self.at[slot] = at
        self.st[slot] = PRESENT

    def set_phases(self, n):
        """The EV is (about to be) supplied on n phases (the 1p/3p policy, limits/phases.py):
        the next grid reading's headroom, PV share and the DSO floor are per n phases."""
        self.phases = n
        self.dso_floor = rules.dso_floor_da(n)
        self.fb[DSO] = self.dso_floor

    def dso(self, dimmed, limit_w, now):
        """The DSO's control signal (§14a EnWG): dimmed or not, with its power limit (W; None:
        the 4.2 kW floor). A dimmed limit never goes below the floor."""
        if not dimmed:
            self.put(DSO, _MAX_DA, now)
            return
        w = 4200 if limit_w is None else limit_w
        self.put(DSO, max(self.dso_floor, rules.w_to_da(w, self.phases)), now)

    def thermal(self, deg_c, now):
        """The board's temperature (deg C) read at ticks `now`: the derating curve
        (rules.thermal_da). Not a number or below -40 C: refused, the fallback (0 A) binds."""
        t = type(deg_c)
        if (t is not int and t is not float) or deg_c != deg_c or deg_c < -40:
            self.st[THERMAL] = BAD
            raise LimitsError("thermal: %r C refused (allowed -40 C and above)" % (deg_c,))
        dc = int(deg_c * 10) if deg_c < 1000 else 10000
        self.put(THERMAL, rules.thermal_da(dc, self.s, self.val[INSTALLER]), now)

    # -- the decision ------------------------------------------------------------------------
    def limit_of(self, slot, now):
        """This slot's limit now (dA, NONE: no limit): its value, or its fallback when it is
        bad, stale, or required and absent."""
        st = self.st[slot]
        if st == BAD:
            return self.fb[slot]
        if st == ABSENT:
            return self.fb[slot] if self.need[slot] else NONE
        t = self.tmo[slot]
        if t and ticks_diff(now, self.at[slot]) > t:
            return self.fb[slot]
        return self.val[slot]

    def stale(self, slot, now):
        """True when the slot's fallback is what binds (bad, stale, or required and absent)."""
        st = self.st[slot]
        if st == BAD:
            return True
        if st == ABSENT:
            return bool(self.need[slot])
        t = self.tmo[slot]
        return bool(t) and ticks_diff(now, self.at[slot]) > t

    def age_ms(self, slot, now):
        return -1 if self.st[slot] == ABSENT else ticks_diff(now, self.at[slot])

    def decide(self, now, week_s=None, rnd=0):
        """The offer at ticks `now`: week_s the local time in seconds since Monday 00:00
        (None: unknown), rnd a random 0..65535 drawn by the caller (the randomised delay).
        Returns self.da."""
        s = self.s
        if s["offpeak"] and week_s is not None:
            self.put(SCHEDULE, 0 if rules.peak(week_s, s["peak_mask"]) else None, now)
        else:
            self.put(SCHEDULE, None, now)
        best = NONE
        bound = NONE
        for k in range(N_SLOTS):
            if k == PV:
                continue  # the PV target goes through the mode's thresholds (dynamics)
            v = self.limit_of(k, now)
            self.eff[k] = v
            if v != NONE and (best == NONE or v < best):
                best = v
                bound = k
        if best == NONE:
            best = 0
        da0 = self.dyn.da
        dec = self.dec_at
        if dec is not None:
            if ticks_diff(now, dec) >= _REACT_MS - s["period_ms"]:
                self.dec_at = None  # the settle window is over: a pause acts from now on
            elif best < _MIN_DA <= da0 and self._alt_da(now) >= _MIN_DA:
                # Within the settle window a headroom that is below 6 A only because the
                # reading may not show the decrease yet does not pause: the offer goes down
                # to 6 A (a decrease still acts at once).
                best = _MIN_DA
        pv = self.limit_of(PV, now) if self.need[PV] else NONE
        self.eff[PV] = pv
        self.target = best
        self.da = self.dyn.step(now, best, bound, pv, self.surplus_w, rnd, self)
        if self.da < da0 and self.dec_at is None:
            # a decrease: the settle window starts (a further decrease within it does not
            # extend it, so a pause comes at most _REACT_MS after the first one)
            self.dec_at = now
            p = self.ev_pre
            ev = self.ev
            p[0] = ev[0]
            p[1] = ev[1]
            p[2] = ev[2]
        self.bound = self.dyn.bound
        self.state = self.dyn.state
        return self.da

    def _alt_da(self, now):
        """The lowest limit of this decision (dA) with the fuse and total headroom as if the
        last grid reading still held the EV's currents from before the decrease (ev_pre; per
        phase the higher of the two EV readings): docs/limits.md "Grid and EV readings out
        of step". A stale or bad slot keeps its fallback."""
        s = self.s
        g = self.g
        e = self.ev
        p = self.ev_pre
        h0 = g[0] - max(e[0], p[0])  # the house's load per phase, as if
        h1 = g[1] - max(e[1], p[1])
        h2 = g[2] - max(e[2], p[2])
        best = NONE
        for k in range(N_SLOTS):
            v = self.eff[k]
            if k == PV or v == NONE:
                continue
            if (k == FUSE or k == TOTAL) and not self.stale(k, now):
                f = s["main_fuse_a"] if k == FUSE else s["total_a"]
                if f is not None:
                    if k == FUSE:
                        v = f * 10 - h0
                        if self.phases == 3:
                            v = min(v, f * 10 - h1, f * 10 - h2)
                    else:
                        v = (f * 10 - h0 - h1 - h2) // self.phases
            if best == NONE or v < best:
                best = v
        return best


def _ok_da(x):
    return -_MAX_DA <= x <= _MAX_DA
