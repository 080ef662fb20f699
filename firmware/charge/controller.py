# The charge-controller task: the whole safety path (pilot burst -> classification ->
# session step -> contactor/PWM) in one synchronous step that never awaits anything and,
# once warmed up, never allocates. The task only sleeps between steps.
#
# Seams for the other tasks (no callbacks inside the step): validated inputs (set_limit,
# set_cap, set_auth, set_available), published state (`version` bumps and every
# subscribe()d flag is set when what is reported changes; events through a cursor into the
# event log), cached meter readings (firmware/meter.py), and the reflex (drivers/reflex.py)
# armed while the contactor is closed.
import asyncio
import time


from firmware import boardcaps
from firmware.charge import pilot as cp
from firmware.charge import proximity as pp
from firmware.charge.session import TRIP_FAIL_SAFE, TRIP_RCM_IRQ, Inputs, Session

_WRAP = const(0x3FFFFFFF)  # counters stay small ints on 32-bit ports
_MAX_DA = const(0x7FFF)  # "no limit"
_LAG_BINS = const(64)  # loop-lag histogram: 0..62 ms one bin each, the last for >= 63 ms


class ChargeController:
    def __init__(self, board, cfg, events, lockout=False):
        self.board = boardcaps.probe(board)
        self.cfg = cfg
        self.events = events
        rating = (cfg.rating_a or 6) * 10
        self.phase_switch = None  # phases.PhaseSwitch: the board has one, the supply 3 phases
        if board.phase_switch is not None and cfg.phases == 3:
            from firmware.charge.phases import PhaseSwitch
            from firmware.limits.conf import phase_pause_ms

            self.phase_switch = PhaseSwitch(phase_pause_ms(getattr(cfg, "limits", None)), events)
        self._max_da = cfg.limit_da  # the installer's ceiling: set_limit never lifts above it
        self.session = Session(
            rating,
            ventilation=cfg.ventilation,
            feedback=cfg.contactor_feedback and board.contactor.has_mirror,
            events=events,
            lockout=lockout,
            disabled=cfg.refuse,
            reclose_ms=cfg.reclose_ms,
            reclose_error_ms=cfg.reclose_error_ms,
            lock_feedback=cfg.lock_feedback and cfg.connector == "type2_socket"
            and board.lock is not None and board.lock.has_sense,
            phase=self.phase_switch,
        )
        self.inputs = Inputs()
        self.inputs.authorized = cfg.free_vend
        self.inputs.limit_da = cfg.limit_da
        self.inputs.limit_reason = "config max_current_a"
        self.period_ms = board.pilot_period_ms
        self.last_step_ms = time.ticks_ms()  # heartbeat: the supervisor and the reflex
        self.steps = 0
        self.version = 0  # bumps whenever status, error, pilot, offer or reason changes
        self._flags = []  # subscribers' ThreadSafeFlags, set on every new version
        self.lag = [0] * _LAG_BINS  # how late each step ran against its grid, ms
        self.lag_max = 0
        self.meter = board.meter_reading  # firmware.meter.Reading
        self._seen = [None, None, None, 0, None]  # status, error, pilot, offer, reason
        self._connector = cfg.connector
        self._cable_da = cfg.cable_a * 10
        self._phases = cfg.phases
        board.pilot.set_duty(cp.DUTY_X1)
        self.reflex = None
        if board.cp_high_mv is not None:
            from drivers.reflex import Reflex

            self.reflex = Reflex(board.contactor, board.rcm, board.cp_high_mv, self)
        rcm = board.rcm
        if rcm is not None and hasattr(rcm, "on_trip"):
            # Fastest path: the RCM edge opens the coil from the interrupt itself and
            # latches it; the session takes it over on its next step like a sampled trip.
            self._trip = board.contactor.trip
            rcm.on_trip(self._rcm_irq)

    def _rcm_irq(self, _pin):
        if not self.session.rcm_masked:  # a self-test holds the output high: not a trip
            self._trip(TRIP_RCM_IRQ)

    # -- validated inputs: a bad value never reaches the PWM -----------------------------
    # Each refuses what it cannot use with a ValueError naming it, and then takes the safe
    # side (no offer, not authorised, unavailable): a bad value can only lower the current.
    def set_limit(self, amps, reason):
        """Limit in force from the limit loop or OCPP: amps (int or float, >= 0) and a
        non-empty reason shown by diag."""
        i = self.inputs
        da, err = _to_da(amps)
        if err is None and (type(reason) is not str or not reason):
            err = "reason must be a non-empty string, got %r" % (reason,)
        if err is not None:
            i.limit_da, i.limit_reason = 0, "limit refused"
            raise ValueError("set_limit: " + err)
        if da > self._max_da:  # OCPP or the limit loop can only lower the installer's limit
            da, reason = self._max_da, "config max_current_a"
        i.limit_da, i.limit_reason = da, reason

    def set_cap(self, amps):
        """A hard cap (e.g. a fuse); like the limit, a decrease acts at once."""
        da, err = _to_da(amps)
        if err is not None:
            self.inputs.cap_da = 0
            raise ValueError("set_cap: " + err)
        self.inputs.cap_da = da

    def set_auth(self, on):
        i = self.inputs
        i.authorized = False
        i.authorized = _check_bool("set_auth", on)

    def set_phases(self, n):
        """The phase count the limit loop asks for (1 or 3), on a board with a phase switch.
        The session switches only through its sequence (docs/safety.md); a bad value keeps
        the phases in force."""
        if self.phase_switch is None:
            raise ValueError("set_phases: this station has no phase switch")
        if type(n) is not int or (n != 1 and n != 3):
            raise ValueError("set_phases: expects 1 or 3, got %r" % (n,))
        self.inputs.phases_req = n

    @property
    def phases(self):
        """The phases the EV is (or will be) supplied on: the phase switch's confirmed state,
        else the config's."""
        ps = self.phase_switch
        return self._phases if ps is None else ps.phases

    def set_lock_hold(self, on):
        """Keep a cable left in the socket locked while the EV side is unplugged (OCPP
        UnlockConnectorOnEVSideDisconnect false). Only the lock: no power without a session."""
        i = self.inputs
        i.lock_hold = False
        i.lock_hold = _check_bool("set_lock_hold", on)

    def set_available(self, on):
        i = self.inputs
        i.available = False
        i.available = _check_bool("set_available", on)

    # -- published state -----------------------------------------------------------------
    def subscribe(self):
        """A flag set whenever `version` changes; read session.act and the event log
        (events.since(cursor)) after waiting on it. One flag per reader."""
        flag = asyncio.ThreadSafeFlag()
        self._flags.append(flag)
        return flag

    # -- the safety path -----------------------------------------------------------------
    def sample(self, now):
        b = self.board
        i = self.inputs
        out = b.pilot.read()
        i.pilot = cp.classify(out[0], out[1], cp.is_pwm(b.pilot.duty), i.pilot)
        if self._connector == "type2_socket":
            i.pp_da = pp.type2_ampacity(b.pp.ohms(), self._phases)
        elif self._connector == "type1_tethered":
            i.pp_da = pp.type1_state(b.pp.ohms(), self._cable_da)
        else:
            i.pp_da = self._cable_da
        i.rcm_fault = b.rcm.fault()
        i.contactor_fb = b.contactor.feedback()
        i.trip = b.contactor.tripped
        if b.lock is not None:
            i.lock_fb = b.lock.feedback()
        if self.phase_switch is not None:
            i.phase_fb = b.phase_switch.feedback()
        if self.meter is not None:
            i.ev_da = self.meter.current_da(now)

    def apply(self, a):
        b = self.board
        c = b.contactor
        if a.ack_trip:
            c.clear_trip(a.ack_trip)
        if a.close != c.closed:
            if a.close:
                c.set(True)  # refused while a trip is latched
                if self.reflex is not None and c.closed:
                    self.reflex.arm(True)
            else:
                if self.reflex is not None:
                    self.reflex.arm(False)
                c.set(False)  # opening first: the PWM change below can wait
        ps = self.phase_switch
        if ps is not None and ps.three != b.phase_switch.closed:
            b.phase_switch.set(ps.three)  # after the main contactor's opening above
        b.pilot.set_duty(a.duty)
        b.rcm.set_test(a.rcm_test)
        if b.lock is not None:
            b.lock.set(a.lock)

    def step(self, now):
        """One pass of the safety path. Returns the session's actions."""
        r = self.reflex
        if r is not None and r.stalled(now):
            self.fail_safe()  # armed and nothing runs it (a disabled IRQ): never charge blind
        self.sample(now)
        a = self.session.step(now, self.inputs)
        self.apply(a)
        s = self._seen
        if (
            a.status is not s[0] or a.error is not s[1] or a.pilot is not s[2]
            or a.offer_da != s[3] or a.reason is not s[4]
        ):
            s[0] = a.status  # one by one: a 5-tuple assignment would allocate
            s[1] = a.error
            s[2] = a.pilot
            s[3] = a.offer_da
            s[4] = a.reason
            if self.board.led is not None:
                self.board.led.show(a.status)
            self.version = (self.version + 1) & _WRAP
            for f in self._flags:
                f.set()
        if self.board.led is not None:
            self.board.led.tick(now)
        self.steps = (self.steps + 1) & _WRAP
        self.last_step_ms = now
        return a

    async def run(self):
        period = self.period_ms
        due = time.ticks_ms()
        lag = self.lag
        try:
            while True:
                now = time.ticks_ms()
                late = time.ticks_diff(now, due)
                if late > self.lag_max:
                    self.lag_max = late
                lag[late if late < _LAG_BINS - 1 else _LAG_BINS - 1] += 1
                self.step(now)
                # Fixed rate, not fixed gap: the step's own time does not stretch the period.
                due = time.ticks_add(due, period)
                wait = time.ticks_diff(due, time.ticks_ms())
                if wait < 0:
                    due = time.ticks_ms()  # overrun: restart the grid, never burst-catch-up
                    wait = 0
                await asyncio.sleep_ms(wait)
        finally:
            self.fail_safe()

    def lag_stats(self):
        """(p50, p99, max) of the loop lag in ms since boot (diag, bench)."""
        total = sum(self.lag)
        out = []
        for q in (50, 99):
            need = (total * q + 99) // 100
            acc = 0
            for ms, n in enumerate(self.lag):
                acc += n
                if acc >= need:
                    out.append(ms)
                    break
        while len(out) < 2:
            out.append(0)
        return out[0], out[1], self.lag_max

    def fail_safe(self):
        """Contactor open and latched, no offer. Safe to call at any time, from anywhere:
        no later step closes the contactor again (the session stays Faulted until a
        restart)."""
        if self.reflex is not None:
            self.reflex.arm(False)
        self.board.contactor.trip(TRIP_FAIL_SAFE)
        if self.phase_switch is not None:
            self.board.phase_switch.open_now()
        self.board.pilot.set_duty(cp.DUTY_X1)


def _to_da(amps):
    """(deci-amps, None) or (0, why not)."""
    t = type(amps)
    if t is not int and t is not float:
        return 0, "amps must be a number, got %r" % (amps,)
    if not amps >= 0 or amps > 1000:  # `not >=` also refuses NaN
        return 0, "amps out of range 0..1000, got %r" % (amps,)
    return min(int(amps * 10), _MAX_DA), None


def _check_bool(name, on):
    if type(on) is not bool:
        raise ValueError("%s: expects True or False, got %r" % (name, on))
    return on
