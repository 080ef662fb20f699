# The charging-session state machine (IEC 61851-1 Mode 3, one connector). Pure logic:
# `step(now_ms, inputs)` turns the latest measurements into actions. It enforces every
# safety rule itself; authorisation, availability and current limits can only lower the
# offer or stop. Statuses and error codes are OCPP 1.6's, so the OCPP client reports them
# as they are. Steady-state steps allocate nothing (checked under heap_lock). Components:
# the RCM self-test (rcm_test.py), the offer policy (offer.py), the feedback watches on the
# contactor, lock and cable (watch.py), the 1p/3p phase switch (phases.py).

from firmware.charge import pilot as cp
from firmware.charge import rcm_test as rt
from firmware.charge import watch as w
from firmware.charge.offer import (  # noqa: F401
    OC_TOLERANCE_MS, OFFER_CHANGE_MS, R_CABLE, R_CAP, R_RATE, R_RATING, OfferPolicy)
from firmware.charge.proximity import BUTTON, INVALID
from firmware.charge.watch import CLOSE_FB_MS, FB_DEBOUNCE_MS, LOCK_MS, PP_DEBOUNCE_MS  # noqa
from firmware.ticks import ticks_add, ticks_diff

from firmware.charge.codes import (  # noqa: F401  (re-exported: S.CHARGING, ...)
    AVAILABLE, CHARGING, EV_COMM, FAULTED, FINISHING, GROUND_FAILURE, INTERNAL, LOCK_FAILURE,
    NO_ERROR, OTHER, OVERCURRENT, POWER_SWITCH, PREPARING, SUSPENDED_EV, SUSPENDED_EVSE,
    UNAVAILABLE)

# Timing (ms), docs/safety.md
F_HOLD_MS = const(300)  # drive -12 V at least this long after a fault
STOP_OPEN_MS = const(6000)  # PWM off -> open even under load after this
RECLOSE_MS = const(5000)  # minimum open time after leaving C (relay wear)
RECLOSE_ERROR_MS = const(30000)  # ... and after an error

# Why the offer is what it is (Actions.reason); R_RATING, R_CABLE, R_CAP, R_RATE: offer.py
R_NO_EV = "no EV"
R_FAULT = "fault"
R_UNAVAILABLE = "unavailable"
R_UNAUTHORISED = "not authorised"
R_LIMIT = "limit"
R_OVERCURRENT = "paused: EV overcurrent"
R_BUTTON = "plug button pressed"
R_VENT = "state D without ventilation"
R_DISABLED = "charging disabled (config)"
R_NO_CABLE = "no valid cable"
R_RETEST = "paused: RCM self-test due (24 h)"
R_PHASE_SWITCH = "phase switch"  # 1p/3p: offer 0 until switched (phases.py)

# Why something outside the session opened the contactor (Inputs.trip), latched by the
# contactor driver until the session acknowledges it (Actions.ack_trip). 1-3 are the
# reflex's reasons (kernels.reflex_step), with the same numbers.
TRIP_PILOT = const(1)  # reflex: the pilot's high plateau left C/D
TRIP_RCM = const(2)  # reflex: the RCM fault output
TRIP_BEAT = const(3)  # reflex: the controller's heartbeat stopped
TRIP_RCM_IRQ = const(4)  # the RCM fault edge interrupt
TRIP_FAIL_SAFE = const(5)  # fail_safe(): the supervisor, a crash, the firmware stopping

_PILOT_FAULTS = (cp.E, cp.F, cp.FAULT, cp.DIODE)


class Inputs:
    """Latest measurements and requests; the controller updates them in place."""

    def __init__(self):
        self.pilot = cp.A  # raw classification of the latest burst (pilot.classify)
        self.pp_da = INVALID  # cable ampacity from PP, proximity.INVALID or BUTTON
        self.rcm_fault = False
        self.contactor_fb = False  # mirror contact says closed
        self.trip = 0  # TRIP_* latched by the contactor driver, 0 when none
        self.authorized = True  # free vend until OCPP decides
        self.available = True
        self.limit_da = 0x7FFF  # from the limit arbiter (smoothed there)
        self.limit_reason = R_LIMIT
        self.cap_da = 0x7FFF  # hard caps (e.g. a fuse); like the limit, a decrease acts at once
        self.ev_da = -1  # highest phase current from the meter, -1 unknown
        self.lock_fb = False  # socket lock sensor says locked (used with lock_feedback)
        self.lock_hold = False  # keep the cable locked in the socket with the EV side gone
        self.phases_req = 0  # phases asked for by the limit loop (1 or 3; 0: none)
        self.phase_fb = False  # the phase switch's mirror says closed (three phases)


class Actions:
    """What the controller must apply; fields change only when the decision does."""

    def __init__(self):
        self.duty = cp.DUTY_X1
        self.close = False
        self.lock = False
        self.rcm_test = False
        self.ack_trip = 0  # the TRIP_* the session took over this step: clear the latch
        self.status = AVAILABLE
        self.error = NO_ERROR
        self.info = ""  # vendor detail for the error (what tripped)
        self.offer_da = 0
        self.reason = R_NO_EV
        self.pilot = None  # accepted (debounced) pilot state


class Session:
    def __init__(
        self, rating_da, ventilation=False, feedback=True, events=None, lockout=False,
        disabled=False, reclose_ms=RECLOSE_MS, reclose_error_ms=RECLOSE_ERROR_MS,
        lock_feedback=False, phase=None,
    ):
        self.reclose_ms = reclose_ms
        self.reclose_error_ms = reclose_error_ms
        self._spacing_max = max(reclose_ms, reclose_error_ms, CLOSE_FB_MS)
        self.rating_da = rating_da
        self.disabled = disabled  # the config was refused: never offer
        self.ventilation = ventilation
        self.feedback = feedback  # a mirror contact is wired
        self.lock_feedback = lock_feedback  # the socket lock has a position sensor
        self.phase = phase  # phases.PhaseSwitch when the board has a phase switch, else None
        self.events = events
        self.act = Actions()
        self.filter = cp.PilotFilter()
        self.offer = OfferPolicy(rating_da)
        self.rcm = rt.RcmSelfTest()
        self.lockout = lockout  # welded contactor: persisted, cleared only by a person
        self.halted = False  # fail-safe: never closes again until a restart
        self.fault = None  # error code of the latched fault, None when healthy
        self.rcm_tripped = False  # latched until a self-test passes
        self.rcm_masked = False  # a self-test holds the RCM output high: not a trip
        self._f_until = 0
        self._f_hold = False
        self._diode_ok = False
        self.cable = w.CableWatch()
        self.lock = w.LockWatch()
        self.mirror = w.ContactorWatch()
        self._was_plugged = False
        self._charged = False  # this session reached Charging at least once
        self._closed_at = 0
        self._opened_at = None  # None: no re-close spacing or weld grace due
        self._reclose_ms = 0
        self._stop_since = None

    # -- helpers -------------------------------------------------------------------------
    def _event(self, now, code, val=0):
        if self.events is not None:
            self.events.record(now, code, val)

    def _open(self, now, why):
        a = self.act
        if a.close:
            a.close = False
            self._opened_at = now
            self._reclose_ms = self.reclose_ms
            self._stop_since = None
            self._event(now, "open", why)

    def _trip(self, now, code, info):
        """Latch a fault: contactor open at once, -12 V (state F) for F_HOLD_MS."""
        self._open(now, info)
        self._reclose_ms = self.reclose_error_ms
        self.rcm.abandon(now)
        if self.fault is None:
            self.fault = code
            self.act.info = info
            self._event(now, "fault", info)
            self._f_hold = True
            self._f_until = ticks_add(now, F_HOLD_MS)
            self.act.duty = cp.DUTY_F

    def _start_test(self, now):
        self.rcm.start(now)
        self._event(now, "rcm test")

    def _rcm_trip(self, now, info):
        if not self.rcm_tripped:
            self.rcm_tripped = True
            self._event(now, "rcm trip")
        if self.act.close or self.fault is None:
            self._trip(now, GROUND_FAILURE, info)

    def clear_lockout(self, now, fb_open=True):
        """A person cleared a welded contactor (diag). Refused while the mirror says closed."""
        if not fb_open:
            return False
        self.lockout = False
        if self.fault == POWER_SWITCH:
            self.fault = None
        self._event(now, "lockout cleared")
        return True

    # -- the step ------------------------------------------------------------------------
    def step(self, now, i):
        a = self.act
        a.ack_trip = 0

        # Pilot. While we drive -12 V ourselves the reading tells nothing about the EV.
        if self._f_hold:
            ev = None
            if ticks_diff(now, self._f_until) > 0:  # strictly: now is whole ms, truncated
                self._f_hold = False
                a.duty = cp.DUTY_X1
                self.filter.reset()
        else:
            ev = self.filter.update(i.pilot, now)
            # B/C/D while the burst was taken with PWM: its low plateau was at -12 V.
            if cp.is_pwm(a.duty) and (i.pilot == cp.B or i.pilot == cp.C or i.pilot == cp.D):
                self._diode_ok = True
        a.pilot = ev
        plugged = cp.connected(ev) is True
        if self._opened_at is not None and ticks_diff(now, self._opened_at) > self._spacing_max:
            self._opened_at = None  # past its longest use: never compared again (ticks wrap)

        # Session start / end, before the checks: nothing of the last cable or lock remains.
        if plugged and not self._was_plugged:
            self._was_plugged = True
            self._charged = False
            self.cable.plug(i.pp_da)
            self._event(now, "plugged", self.cable.cable_da)
        elif ev == cp.A:
            if self._was_plugged:
                self._was_plugged = False
                self._diode_ok = False
                self.cable.unplug()
                self.lock.reset()
                self.offer.end_session()
                self._event(now, "unplugged")
            self._open(now, "unplugged")

        # Immediate faults.
        if i.trip:
            self._take_trip(now, i.trip)
        if self.lockout and self.fault is None:
            self._trip(now, POWER_SWITCH, "welded")
        if i.rcm_fault and not self.rcm.masked:
            self._rcm_trip(now, "rcm")
        if ev in _PILOT_FAULTS:
            self._trip(now, EV_COMM, _PILOT_INFO[ev])
        self._check_contactor(now, i)
        ph = self.phase
        if ph is not None:
            info = ph.step(now, i.phases_req, i.phase_fb, a.close, i.contactor_fb,
                           self.fault is not None)
            if info is not None:
                self._trip(now, POWER_SWITCH, info)
        if self.lock_feedback:
            info = self.lock.check(now, a.lock, i.lock_fb, a.close)
            if info is not None:
                self._trip(now, LOCK_FAILURE, info)
        if plugged:
            info = self.cable.check(now, i.pp_da)
            if info is not None:
                self._trip(now, OTHER, info)

        if ev == cp.A:
            latched = self.lockout or self.halted or (
                self.fault == GROUND_FAILURE and self.rcm_tripped
            )
            if self.fault is not None and not latched and not self._f_hold:
                self.fault = None
                a.info = ""
                self._event(now, "fault cleared")
            if self.rcm_tripped and not (self.rcm.masked or i.rcm_fault or self._f_hold):
                self._start_test(now)  # no auto-reset after a trip without a passed test

        self._rcm_test(now, i)
        self._decide_offer(now, i, ev, plugged)
        self._decide_contactor(now, i, ev)
        self._decide_status(ev, plugged, i)
        # Masked before the controller drives the test input (the RCM interrupt reads it).
        self.rcm_masked = self.rcm.masked
        a.rcm_test = self.rcm.drive
        return a

    # -- parts ---------------------------------------------------------------------------
    def _take_trip(self, now, t):
        """The contactor was opened outside the session (reflex, interrupt, fail-safe):
        take it over, report why, and let the controller clear the driver's latch."""
        if t == TRIP_RCM or t == TRIP_RCM_IRQ:
            self._rcm_trip(now, _TRIP_INFO[t])
        elif t == TRIP_FAIL_SAFE:
            self.halted = True
            self.fault = None  # replace a lesser fault: this one must be reported
            self._trip(now, INTERNAL, _TRIP_INFO[t])
            return  # never acknowledged: the latch holds until a restart
        else:
            self._open(now, _TRIP_INFO.get(t, "reflex"))
            if t == TRIP_BEAT:
                self._reclose_ms = self.reclose_error_ms
        self._event(now, "trip", t)
        self.act.ack_trip = t

    def _check_contactor(self, now, i):
        if not self.feedback:
            return
        a = self.act
        info = self.mirror.check(now, i.contactor_fb, a.close, self._closed_at, self._opened_at)
        if info is w.CONTACTOR_STUCK:
            self._trip(now, POWER_SWITCH, info)
        elif info is w.WELDED and not self.lockout:
            # Mirror says closed while the coil is off: welded. Lock out until cleared.
            self.lockout = True
            self._event(now, "welded")
            self.fault = None  # replace a lesser fault: this one must be reported
            self._trip(now, POWER_SWITCH, info)

    def _rcm_test(self, now, i):
        r = self.rcm.step(now, i.rcm_fault)
        if r == rt.PASSED:
            self._event(now, "rcm test passed")
            if self.rcm_tripped:
                self.rcm_tripped = False
                if self.fault == GROUND_FAILURE:
                    self.fault = None
                    self.act.info = ""
        elif r == rt.FAILED:
            self.rcm_tripped = True
            self._trip(now, GROUND_FAILURE, "rcm self-test failed")

    def _decide_offer(self, now, i, ev, plugged):
        a = self.act
        stop = None
        if not plugged:
            stop = R_FAULT if self.fault is not None else R_NO_EV
        elif self.fault is not None or self._f_hold:
            stop = R_FAULT
        elif self.disabled:
            stop = R_DISABLED
        elif not i.available:
            stop = R_UNAVAILABLE
        elif not i.authorized:
            stop = R_UNAUTHORISED
        elif self.offer.oc_paused:
            stop = R_OVERCURRENT
        elif i.pp_da == BUTTON:
            stop = R_BUTTON
        elif self.cable.cable_da == INVALID:
            stop = R_NO_CABLE
        elif ev == cp.D and not self.ventilation:
            stop = R_VENT
        elif a.close and ticks_diff(now, self._closed_at) >= rt.RCM_RETEST_MS:
            stop = R_RETEST  # IEC 62955: a new self-test at least every 24 h
        elif self.phase is not None and self.phase.busy(i.phases_req):
            stop = R_PHASE_SWITCH  # PWM off, open when the EV went to B, then switch

        off = self.offer
        if off.decide(now, i, self.cable.cable_da, stop, plugged):
            new = off.offer_da
            if a.close and new == 0 and self._stop_since is None:
                self._stop_since = now  # EV gets STOP_OPEN_MS to go to B
            elif new != 0:
                self._stop_since = None
            a.offer_da = new
            self._event(now, "offer", new)
        a.reason = off.reason
        if not self._f_hold:
            a.duty = cp.duty_for_amps(a.offer_da)
            if not cp.is_pwm(a.duty):
                self._diode_ok = False  # checked again after the next PWM start
        if off.watch_draw(now, a.close, i.ev_da):
            self._event(now, "overcurrent", i.ev_da)

    def _decide_contactor(self, now, i, ev):
        a = self.act
        ready = (ev == cp.C or (ev == cp.D and self.ventilation)) and a.offer_da >= cp.MIN_OFFER_DA
        if a.close:
            if ready:
                return
            # Read the conditions, not a.reason: a stop already under way (e.g. not
            # authorised) must not hide a button press or state D without ventilation.
            if i.pp_da == BUTTON:
                self._open(now, R_BUTTON)  # the user is about to unplug: never under load
            elif ev == cp.D and not self.ventilation:
                self._open(now, R_VENT)
            elif ev != cp.C and ev != cp.D:
                self._open(now, "EV left C")
            elif self._stop_since is None:
                self._open(now, a.reason)
            elif ticks_diff(now, self._stop_since) >= STOP_OPEN_MS:
                self._open(now, "stop timeout")  # EV ignored PWM off: open under load
            return
        allowed = (
            ready
            and self._diode_ok
            and cp.is_pwm(a.duty)
            and self.fault is None
            and not self.halted
            and not self.rcm_tripped
            and not self.lockout
            and not self.disabled
            and self.cable.cable_da != INVALID
            and i.pp_da == self.cable.cable_da
            and (not self.lock_feedback or (a.lock and i.lock_fb))
            and (self.phase is None or self.phase.ready(i.phases_req))  # a confirmed phase state
            and (self._opened_at is None or ticks_diff(now, self._opened_at) >= self._reclose_ms)
        )
        test = self.rcm
        if not allowed:
            if not self.rcm_tripped:
                test.abandon(now)  # conditions went away mid-test
            return
        if not test.fresh(now):
            if not test.masked:
                self._start_test(now)
            return
        # The debounced state lags the line by a few samples: the latest raw reading must
        # say the EV asks for power too, or the coil could close on an EV already in B.
        raw = i.pilot
        if not (raw == cp.C or (raw == cp.D and self.ventilation)):
            return
        test.use()  # one passed test, one closing
        a.close = True
        self._closed_at = now
        self.mirror.closed()
        self._charged = True
        self._event(now, "close", a.offer_da)

    def _decide_status(self, ev, plugged, i):
        a = self.act
        error = NO_ERROR
        if self.fault is not None:
            status, error = FAULTED, self.fault
        elif self.disabled:
            status, error = FAULTED, INTERNAL
        elif not plugged:
            status = AVAILABLE if i.available else UNAVAILABLE
        elif a.close and a.offer_da:
            status = CHARGING
        elif not i.available:
            status = UNAVAILABLE
        elif not i.authorized:
            status = FINISHING if self._charged else PREPARING
        elif a.offer_da == 0 or (ev == cp.D and not self.ventilation):
            status = SUSPENDED_EVSE
            if self.offer.oc_paused:
                error = OVERCURRENT
            elif ev == cp.D:
                error = OTHER
        else:
            status = SUSPENDED_EV if self._charged else PREPARING
        # The socket lock holds the plug while a session may deliver power; it is released
        # on a fault (so the user can leave) but never while the contactor is closed or its
        # mirror contact says closed (a welded contact keeps the socket live). lock_hold
        # (OCPP UnlockConnectorOnEVSideDisconnect false) keeps a cable left in the socket
        # locked after the EV side unplugged; it never closes the contactor.
        a.lock = a.close or (self.feedback and i.contactor_fb) or (
            plugged and i.authorized and i.available and self.fault is None and not self.disabled
        ) or (i.lock_hold and i.pp_da > 0 and self.fault is None)
        if status != a.status or error != a.error:
            a.status = status
            a.error = error
            if error == NO_ERROR and self.fault is None:
                a.info = ""


_PILOT_INFO = {cp.E: "pilot state E", cp.F: "pilot state F", cp.FAULT: "pilot fault",
               cp.DIODE: "diode fault"}
_TRIP_INFO = {TRIP_PILOT: "reflex: pilot left C/D", TRIP_RCM: "reflex: rcm",
              TRIP_BEAT: "reflex: controller silent", TRIP_RCM_IRQ: "rcm interrupt",
              TRIP_FAIL_SAFE: "fail-safe"}
