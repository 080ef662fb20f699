# The limit loop (docs/limits.md): the one writer of ChargeController.set_limit. Sources
# publish (amps, reason, next change) through publish(); the loop reads the grid meter's
# cached Reading every period, hands everything to the pure arbiter (arbiter.py) and gives
# its decision to the controller with the reason. A source that never published sets no
# limit (absent, not zero); a stale or bad input makes its fallback bind.
import asyncio


from firmware import boardcaps
from firmware.charge import pilot
from firmware.limits import conf, rules
from firmware.limits.arbiter import (BAD, CONFIG, DSO, FUSE, INSTALLER, N_SLOTS, NAMES, NONE,
                                     OCPP, OWNER, PV, SOURCES, THERMAL, TOTAL, Arbiter,
                                     LimitsError)
from firmware.limits.dynamics import (STATE_DELAY, STATE_HOLD, STATE_LIMIT, STATE_PAUSE,
                                      STATE_PV_WAIT, STATE_RAMP, STATES)
from firmware.meter import UNKNOWN
from firmware.ticks import ticks_diff, ticks_ms

_THERMAL_MS = const(5000)  # the board's temperature is read this often (the stale limit: 60 s)


def _rnd16():
    try:
        import random

        return random.getrandbits(16)
    except (ImportError, AttributeError):
        import os

        b = os.urandom(2)
        return b[0] << 8 | b[1]


def _owner_why(s):
    if not s["enable"]:
        return "owner: charging paused"
    return None if s["current_a"] is None else "owner current_a=%d A" % s["current_a"]


class Limits:
    def __init__(self, ctl, rating_a, log=print, cfg=None, board=None):
        self.ctl = ctl
        self.log = log
        self.board = board if board is None else boardcaps.probe(board)
        self.s = s = conf.check(getattr(cfg, "limits", None))
        for m in s.get("errors", ()):
            log("config: %s; the offer is capped at %d A" % (m, s["safe_a"]))
        rating = rating_a or 0
        max_a = getattr(cfg, "max_current_a", rating) or 0
        self.phases = getattr(cfg, "phases", 3)
        self.arb = Arbiter(s, rating, min(rating, max_a), self.phases)
        needs = [k for k in ("main_fuse_a", "total_a") if s[k] is not None]
        if s["mode"] != "fast":
            needs.append("mode=" + s["mode"])
        if s["freq_response"]:
            needs.append("freq_response")
        if needs and (board is None or self.board.grid_reading is None):
            log("config: limits: %s needs a grid meter (meters.grid); the offer stays at "
                "safe_a=%d A" % (", ".join(needs), s["safe_a"]))
        self.reasons = [None] * N_SLOTS  # a publishing source's reason text
        self.reasons[OWNER] = _owner_why(s)
        self.next_s = [None] * N_SLOTS
        self.applied = None  # (amps, reason, bound name) last handed to the controller
        self.now_s = None  # callable: epoch seconds or None (the App hands OCPP's clock in)
        self.last_ms = ticks_ms()
        self._grid_at = None
        self._plugged = False
        self._grid_err = None
        self.history = []  # the recent decisions: (ticks, amps, reason)
        self._e = [0, 0, 0]  # the EV's phase currents (dA), reused
        self._key = [None, None, None, None]  # offer, bound, state, stale of the last one
        # The board's own inputs (docs/limits.md "Board inputs"): a §14a control box contact
        # and a temperature sensor. A board with one makes its slot needed: until the first
        # good read, and once the reads stop, the fallback binds.
        b = self.board
        self._dso_relay = b.dso_relay if b is not None else None
        self._temp = b.temperature_c if b is not None else None
        self.phase = None  # limits/phases.PhasePolicy where the controller has a phase switch
        if getattr(ctl, "phase_switch", None) is not None:
            from firmware.limits.phases import PhasePolicy

            self.phase = PhasePolicy(s, ctl.phases)
            self.phases = ctl.phases
            self.arb.set_phases(self.phases)
        self._dso_seen = 0  # the contact's last state logged: 0 none, 1 released, 2 dimmed, 3 lost
        self._temp_at = None
        self._temp_err = None
        self.temp_c = None  # the board's last good temperature (deg C)
        if self._dso_relay is not None:
            self.arb.need[DSO] = 1
        if self._temp is not None:
            self.arb.need[THERMAL] = 1

    # -- the seam ------------------------------------------------------------------------------
    def publish(self, source, amps, reason, next_s=None):
        """A source's limit now: amps (A, None: no limit), a reason for diag, and the wall
        second its limit next changes (None: not known)."""
        slot = SOURCES.get(source)
        if slot is None:
            self.log("limits: unknown source %r ignored" % (source,))
            return
        now = ticks_ms()
        self.reasons[slot] = reason
        self._key[0] = None  # its reason text may have changed: describe again
        self.next_s[slot] = next_s
        try:
            t = type(amps)
            self.arb.put(slot, amps * 10 if t is int or t is float else amps, now)
        except (LimitsError, TypeError) as e:
            self.arb.st[slot] = 2  # BAD: its fallback binds
            self.log("limits: %s %r refused (%s); the fallback applies" % (source, amps, e))
        self.apply(now)

    def reconfigure(self, section):
        """Take a changed `limits` section now (the owner's settings, firmware/owner): its
        error messages, or [] when it was taken. A refused section changes nothing."""
        s = conf.check(section)
        if s.get("errors"):
            return s["errors"]
        now = ticks_ms()
        self.s.clear()  # the same dict the arbiter and the supervisor's period read
        self.s.update(s)
        self.arb.configure(self.s, now)
        self.reasons[OWNER] = _owner_why(s)
        if self.phase is not None:
            self.phase.configure(self.s)
        self._key[0] = None
        self.apply(now)
        return []

    def dso(self, dimmed, limit_w=None):
        """The DSO control signal (a relay contact or a command): dimmed or not."""
        now = ticks_ms()
        self.arb.dso(bool(dimmed), limit_w, now)
        self.apply(now)

    def decision(self):
        """(amps, reason, source) in force."""
        return self.applied or self._describe(ticks_ms())

    def local_a(self):
        """The lowest local limit of the last decision (A), the profiles' own (OCPP) and the
        station's fixed maximum left out: what GetCompositeSchedule adds to the profiles
        (held for the whole schedule: nobody knows the house's load ahead). None: none."""
        a = self.arb
        best = NONE
        for k in range(INSTALLER + 1, N_SLOTS):
            v = a.eff[k]
            if k != OCPP and k != PV and v != NONE and (best == NONE or v < best):
                best = v
        return None if best == NONE else best / 10

    # -- the loop ------------------------------------------------------------------------------
    async def run(self):
        while True:
            self.apply(ticks_ms())
            self.last_ms = ticks_ms()
            await asyncio.sleep_ms(self.s["period_ms"])

    def _board_inputs(self, now):
        """Read the board's DSO contact (every period: a pin) and its temperature (every
        _THERMAL_MS). A contact the board reports as lost (None) or that cannot be read is
        the DSO's fail-safe at once: the 4.2 kW floor, as evcc's LPC applies its failsafe
        limit when the heartbeat is lost; it ends when the contact reads again."""
        rd = self._dso_relay
        if rd is not None:
            try:
                v = rd()
            except Exception:  # noqa: BLE001 - a failing read is a lost signal
                v = None
            a = self.arb
            if v is None:
                a.st[DSO] = BAD
                seen = 3
            else:
                a.dso(bool(v), None, now)
                seen = 2 if v else 1
            if seen != self._dso_seen:
                self._dso_seen = seen
                self.log("limits: dso contact %s" % (
                    "lost: fail-safe 4.2 kW floor", "released", "dimmed: 4.2 kW floor")[seen % 3])
        tc = self._temp
        if tc is not None and (self._temp_at is None
                               or ticks_diff(now, self._temp_at) >= _THERMAL_MS):
            self._temp_at = now
            try:
                c = tc()
                if c is not None:  # no reading this time: the last one ages (stale: 60 s)
                    self.arb.thermal(c, now)
                    self.temp_c = c
                err = None
            except Exception as e:  # noqa: BLE001 - a failing sensor is reported, not fatal
                err = "limits: temperature %s; the fallback applies" % (e,)
            if err != self._temp_err:
                self._temp_err = err
                if err:
                    self.log(err)

    def _feed(self, now):
        b = self.board
        g = b.grid_reading if b is not None else None
        if g is None or not g.fresh(now) or g.at_ms == self._grid_at:
            return
        self._grid_at = g.at_ms
        ev = b.meter_reading
        ph = self.phases
        e = self._e
        e[0] = e[1] = e[2] = 0
        ev_w = 0
        if ev is not None and ev.fresh(now):
            for p in range(ph):
                v = ev.i_da[p]
                e[p] = v if v != UNKNOWN else max(ev.i_max_da, 0)
            ev_w = ev.p_total_w
        v = g.v_dv[0]
        volts = v // 10 if v != UNKNOWN and v > 0 else 230
        if ev_w == UNKNOWN or ev_w == 0:
            ev_w = (e[0] + e[1] + e[2]) * volts // 10
        gi = g.i_da
        gw = g.p_total_w
        if gw == UNKNOWN and UNKNOWN not in gi:
            gw = (gi[0] + gi[1] + gi[2]) * volts // 10
        try:
            self.arb.grid(g.at_ms, gi[0], gi[1], gi[2], e[0], e[1], e[2], gw, ev_w,
                          g.freq_chz, volts)
            self._grid_err = None
        except LimitsError as err:
            if str(err) != self._grid_err:
                self._grid_err = str(err)
                self.log("limits: %s; the fallback applies" % err)

    def apply(self, now=None):
        if now is None:
            now = ticks_ms()
        plugged = pilot.connected(getattr(self.ctl.inputs, "pilot", None)) is True
        rnd = _rnd16()
        if plugged and not self._plugged:
            self.arb.dyn.session(now, rnd)
            if self.phase is not None:
                self.phase.session()
        self._plugged = plugged
        self._board_inputs(now)
        self._feed(now)
        if self.phase is not None:
            self._phases(now, plugged)
        week = None
        if self.s["offpeak"] and self.now_s is not None:
            t = self.now_s()
            if t is not None:
                # the UK preset's schedule is in UK local time (GMT/BST); else the fixed offset
                off = (rules.uk_offset_s(t) if self.s["preset"] == "uk"
                       else self.s["tz_offset_min"] * 60)
                week = rules.week_seconds(t, off)
        a = self.arb
        a.decide(now, week, rnd)
        b = a.bound
        stale = b != NONE and a.stale(b, now)
        k = self._key
        if (self.applied is not None and k[0] == a.da and k[1] == b and k[2] == a.state
                and k[3] == stale):
            return  # the same decision: nothing built, nothing handed on
        k[0], k[1], k[2], k[3] = a.da, b, a.state, stale
        d = self._describe(now)
        if d == self.applied:
            return
        self.applied = d
        self.history.append((now, d[0], d[1]))
        if len(self.history) > 8:
            self.history.pop(0)
        self.log("limits: %s A (%s)" % (d[0], d[1]))
        try:
            self.ctl.set_limit(d[0], d[1])
        except ValueError as e:
            self.log("limits: %s refused: %s" % (d[2], e))

    def _phases(self, now, plugged):
        """Ask the controller for the policy's phase count (before the limit: the limit that
        follows is already the new phase count's; the offer stays 0 while it switches)."""
        p = self.phase
        if getattr(self.ctl.phase_switch, "failed", False):
            n = p.want = self.ctl.phases  # its mirror did not follow: what it confirms
            why = "the phase switch failed"
        else:
            n = p.decide(now, self.arb, plugged)
            why = None
        if n == self.arb.phases:
            return
        try:
            self.ctl.set_phases(n)
        except ValueError as e:
            self.log("limits: phases %d refused: %s" % (n, e))
            return
        if why is None:
            why = "config limits.phases" if p.lock else (
                "auto: 1 phase %d dA, 3 phases %d dA on every phase" % (p.t1, p.t3))
        self.log("limits: phases %d -> %d (%s)" % (self.arb.phases, n, why))
        self.arb.set_phases(n)
        self.phases = n
        self._key[0] = None
        self._grid_at = None  # the last grid reading again, on n phases
        self._feed(now)

    def _describe(self, now):
        a = self.arb
        da = a.da
        amps = da // 10 if da % 10 == 0 else da / 10
        k = a.bound
        name = NAMES[k] if k != NONE else "none"
        why = self.reasons[k] if k != NONE and self.reasons[k] else name
        if k == CONFIG:
            why = "config " + self.s.get("error_text", "limits refused")
        elif k == THERMAL and self._temp is not None and not a.stale(k, now):
            why = "thermal: board at %d C" % self.temp_c
        elif k != NONE and a.stale(k, now):
            why = name + (" (grid meter stale or bad: safe current)" if k in (FUSE, TOTAL)
                          else " (input stale or bad: fallback)")
        st = a.state
        if st == STATE_PAUSE:
            why = "pause: %s below 6 A" % why
        elif st == STATE_HOLD:
            why = "pause held (minimum pause / hysteresis): %s" % why
        elif st == STATE_DELAY:
            why = "randomised delay, then %s" % why
        elif st == STATE_PV_WAIT:
            why = "pv: waiting for surplus"
        elif st == STATE_RAMP:
            why = "ramp to %s" % why
        elif k == OCPP and self.reasons[k]:
            why = self.reasons[k]
        return (amps, why, name)

    def diag(self, out):
        now = ticks_ms()
        a = self.arb
        d = self.decision()
        out("limit      %s A  (%s)  state %s  target %d dA  cycles %d" % (
            d[0], d[1], STATES[a.state] if a.state != STATE_LIMIT else "limit", a.target,
            a.dyn.pauses))
        for t, amps, why in self.history:
            out("  history            %s A  (%s)  %d s ago" % (amps, why,
                                                            ticks_diff(now, t) // 1000))
        p = self.phase
        if p is not None:
            out("  phases             %d (%s)  switches %d this session, %d since boot  "
                "1p %d dA  3p %d dA" % (a.phases, "auto" if not p.lock else "locked",
                                         p.count, p.total, p.t1, p.t3))
        for k in range(N_SLOTS):
            st = a.st[k]
            if st == 0 and not a.need[k]:
                continue
            v = a.limit_of(k, now)
            out("  %-18s %s  %s%s" % (
                NAMES[k], "none" if v == NONE else "%d dA" % v,
                "fixed" if k <= INSTALLER else "age %d ms" % a.age_ms(k, now),
                "  STALE/BAD: fallback" if a.stale(k, now) else ""))
