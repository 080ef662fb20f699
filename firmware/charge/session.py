# The charging-session state machine (IEC 61851-1 Mode 3, one connector). Pure logic:
# `step(now_ms, inputs)` turns the latest measurements into actions. It enforces every
# safety rule itself; authorisation, availability and current limits can only lower the
# offer or stop. Statuses and error codes are OCPP 1.6's, so the OCPP client reports them
# as they are. Steady-state steps allocate nothing (checked under heap_lock).
from micropython import const

from firmware.charge import pilot as cp
from firmware.charge.proximity import BUTTON, INVALID
from firmware.ticks import ticks_add, ticks_diff

# OCPP 1.6 ChargePointStatus
AVAILABLE = "Available"
PREPARING = "Preparing"
CHARGING = "Charging"
SUSPENDED_EV = "SuspendedEV"
SUSPENDED_EVSE = "SuspendedEVSE"
FINISHING = "Finishing"
UNAVAILABLE = "Unavailable"
FAULTED = "Faulted"

# OCPP 1.6 ChargePointErrorCode
NO_ERROR = "NoError"
GROUND_FAILURE = "GroundFailure"
EV_COMM = "EVCommunicationError"
POWER_SWITCH = "PowerSwitchFailure"
OVERCURRENT = "OverCurrentFailure"
OTHER = "OtherError"
INTERNAL = "InternalError"
LOCK_FAILURE = "ConnectorLockFailure"

# Timing (ms), spec/iec61851.md
F_HOLD_MS = const(300)  # drive -12 V at least this long after a fault
STOP_OPEN_MS = const(6000)  # PWM off -> open even under load after this
CLOSE_FB_MS = const(250)  # mirror contact must follow the coil within this
FB_DEBOUNCE_MS = const(10)
RECLOSE_MS = const(5000)  # minimum open time after leaving C (relay wear)
RECLOSE_ERROR_MS = const(30000)  # ... and after an error
OFFER_CHANGE_MS = const(5000)  # offer increases at most this often; decreases at once
OC_TOLERANCE_MS = const(7000)  # EV may draw offer + 10 % this long
OC_PAUSE_MS = const(60000)  # then no offer for this long
RCM_TRIP_MS = const(1000)  # self-test: fault output must rise within this
RCM_CLEAR_MS = const(1500)  # ... and fall within this after the test input drops
PP_DEBOUNCE_MS = const(30)  # a lost or changed cable must persist this long
LOCK_MS = const(1000)  # socket lock sensor must confirm within this of the command

# Why the offer is what it is (Actions.reason).
R_NO_EV = "no EV"
R_FAULT = "fault"
R_UNAVAILABLE = "unavailable"
R_UNAUTHORISED = "not authorised"
R_RATING = "EVSE rating"
R_CABLE = "cable"
R_CAP = "safety cap"
R_LIMIT = "limit"
R_OVERCURRENT = "paused: EV overcurrent"
R_BUTTON = "plug button pressed"
R_VENT = "state D without ventilation"
R_RATE = "held: 5 s between changes"
R_DISABLED = "charging disabled (config)"
R_NO_CABLE = "no valid cable"

_PILOT_FAULTS = (cp.E, cp.F, cp.FAULT, cp.DIODE)


class Inputs:
    """Latest measurements and requests; the controller updates them in place."""

    def __init__(self):
        self.pilot = cp.A  # raw classification of the latest burst (pilot.classify)
        self.pp_da = INVALID  # cable ampacity from PP, proximity.INVALID or BUTTON
        self.rcm_fault = False
        self.contactor_fb = False  # mirror contact says closed
        self.authorized = True  # free vend until OCPP decides
        self.available = True
        self.limit_da = 0x7FFF  # from the limit arbiter (smoothed there)
        self.limit_reason = R_LIMIT
        self.cap_da = 0x7FFF  # hard caps (e.g. a fuse); like the limit, a decrease acts at once
        self.ev_da = -1  # highest phase current from the meter, -1 unknown
        self.lock_fb = False  # socket lock sensor says locked (used with lock_feedback)


class Actions:
    """What the controller must apply; fields change only when the decision does."""

    def __init__(self):
        self.duty = cp.DUTY_X1
        self.close = False
        self.lock = False
        self.rcm_test = False
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
        lock_feedback=False,
    ):
        self.reclose_ms = reclose_ms
        self.reclose_error_ms = reclose_error_ms
        self.rating_da = rating_da
        self.disabled = disabled  # the config was refused: never offer
        self.ventilation = ventilation
        self.feedback = feedback  # a mirror contact is wired
        self.lock_feedback = lock_feedback  # the socket lock has a position sensor
        self.events = events
        self.act = Actions()
        self.filter = cp.PilotFilter()
        self.lockout = lockout  # welded contactor: persisted, cleared only by a person
        self.fault = None  # error code of the latched fault, None when healthy
        self.rcm_tripped = False  # latched until a self-test passes
        self._f_until = 0
        self._f_hold = False
        self._diode_ok = False
        self._cable_da = INVALID  # ampacity seen at plug-in
        self._pp_bad_since = None
        self._was_plugged = False
        self._charged = False  # this session reached Charging at least once
        self._closed_at = 0
        self._opened_at = None  # None: never opened since boot, no spacing due
        self._reclose_ms = 0
        self._fb_bad_since = None
        self._lock_bad_since = None
        self._lock_ok = False  # the sensor confirmed the lock since it was last commanded
        self._stop_since = None
        self._offer_at = None  # when the offer last changed; None: never
        self._oc_since = None
        self._oc_until = None
        self._test = 0  # RCM self-test phase: 0 idle, 1 await trip, 2 await clear
        self._test_at = 0
        self._test_ok = False  # a self-test passed since the contactor last opened

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
            self._test_ok = False
            self._stop_since = None
            self._event(now, "open", why)

    def _trip(self, now, code, info):
        """Latch a fault: contactor open at once, -12 V (state F) for F_HOLD_MS."""
        self._open(now, info)
        self._reclose_ms = self.reclose_error_ms
        if self._test:
            self._test = 0
            self.act.rcm_test = False
        if self.fault is None:
            self.fault = code
            self.act.info = info
            self._event(now, "fault", info)
            self._f_hold = True
            self._f_until = ticks_add(now, F_HOLD_MS)
            self.act.duty = cp.DUTY_F

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
        sampled_pwm = cp.is_pwm(a.duty)  # the duty the latest burst was taken with

        # Pilot. While we drive -12 V ourselves the reading tells nothing about the EV.
        if self._f_hold:
            ev = None
            if ticks_diff(now, self._f_until) > 0:  # strictly: now is whole ms, truncated
                self._f_hold = False
                a.duty = cp.DUTY_X1
                self.filter.reset()
        else:
            ev = self.filter.update(i.pilot, now)
            if sampled_pwm and (i.pilot == cp.B or i.pilot == cp.C or i.pilot == cp.D):
                self._diode_ok = True  # low plateau at -12 V seen while PWM ran
        a.pilot = ev
        plugged = ev == cp.B or ev == cp.C or ev == cp.D

        # Immediate faults.
        if self.lockout and self.fault is None:
            self._trip(now, POWER_SWITCH, "welded")
        if i.rcm_fault and not self._test:
            if not self.rcm_tripped:
                self.rcm_tripped = True
                self._event(now, "rcm trip")
            if a.close or self.fault is None:
                self._trip(now, GROUND_FAILURE, "rcm")
        if ev in _PILOT_FAULTS:
            self._trip(now, EV_COMM, _PILOT_INFO[ev])
        self._check_contactor(now, i)
        self._check_lock(now, i)
        if plugged:
            self._check_cable(now, i)

        # Session start / end.
        if plugged and not self._was_plugged:
            self._was_plugged = True
            self._charged = False
            self._cable_da = i.pp_da if i.pp_da > 0 else INVALID
            self._event(now, "plugged", self._cable_da)
        elif ev == cp.A:
            if self._was_plugged:
                self._was_plugged = False
                self._diode_ok = False
                self._oc_since = self._oc_until = None
                self._offer_at = None  # the 5 s rule is per session: a new EV gets its offer
                self._event(now, "unplugged")
            self._open(now, "unplugged")
            latched = self.lockout or (self.fault == GROUND_FAILURE and self.rcm_tripped)
            if self.fault is not None and not latched and not self._f_hold:
                self.fault = None
                a.info = ""
                self._event(now, "fault cleared")
            if self.rcm_tripped and not self._test and not i.rcm_fault and not self._f_hold:
                self._start_test(now)  # no auto-reset after a trip without a passed test

        self._rcm_test(now, i)
        self._decide_offer(now, i, ev, plugged)
        self._decide_contactor(now, i, ev)
        self._decide_status(ev, plugged, i)
        return a

    # -- parts ---------------------------------------------------------------------------
    def _check_contactor(self, now, i):
        if not self.feedback:
            return
        a = self.act
        if i.contactor_fb == a.close:
            self._fb_bad_since = None
            return
        if self._fb_bad_since is None:
            self._fb_bad_since = now
        if ticks_diff(now, self._fb_bad_since) < FB_DEBOUNCE_MS:
            return
        if a.close:
            if ticks_diff(now, self._closed_at) > CLOSE_FB_MS:
                self._trip(now, POWER_SWITCH, "contactor did not close")
        elif not self.lockout and (
            self._opened_at is None or ticks_diff(now, self._opened_at) > CLOSE_FB_MS
        ):
            # Mirror says closed while the coil is off: welded. Lock out until cleared.
            self.lockout = True
            self._event(now, "welded")
            self.fault = None  # replace a lesser fault: this one must be reported
            self._trip(now, POWER_SWITCH, "welded")

    def _check_lock(self, now, i):
        """A socket lock that does not confirm within LOCK_MS, or lets go while the
        contactor is closed, is a ConnectorLockFailure: the plug could be pulled under load."""
        a = self.act
        if not self.lock_feedback or not a.lock:
            self._lock_ok = False
            self._lock_bad_since = None
            return
        if i.lock_fb:
            self._lock_ok = True
            self._lock_bad_since = None
            return
        if self._lock_bad_since is None:
            self._lock_bad_since = now
        # Under load the plug must not move: act on the switch at once (debounced).
        # Otherwise the lock gets LOCK_MS to reach (or regain) its position.
        limit = FB_DEBOUNCE_MS if a.close else LOCK_MS
        if ticks_diff(now, self._lock_bad_since) >= limit:
            self._trip(now, LOCK_FAILURE, "lock lost" if self._lock_ok else "lock failed")

    def _check_cable(self, now, i):
        pp = i.pp_da
        if pp == BUTTON:
            self._pp_bad_since = None
            return  # handled as a stop, not a fault
        bad = pp == INVALID or (self._cable_da != INVALID and pp != self._cable_da)
        if not bad:
            self._pp_bad_since = None
            if self._cable_da == INVALID:
                self._cable_da = pp
            return
        if self._pp_bad_since is None:
            self._pp_bad_since = now
        elif ticks_diff(now, self._pp_bad_since) >= PP_DEBOUNCE_MS:
            self._trip(now, OTHER, "cable lost" if pp == INVALID else "cable changed")

    def _start_test(self, now):
        self._test = 1
        self._test_at = now
        self.act.rcm_test = True
        self._event(now, "rcm test")

    def _rcm_test(self, now, i):
        if self._test == 1:
            if i.rcm_fault:
                self._test = 2
                self._test_at = now
                self.act.rcm_test = False
            elif ticks_diff(now, self._test_at) > RCM_TRIP_MS:
                self._test_failed(now)
        elif self._test == 2:
            if not i.rcm_fault:
                self._test = 0
                self._test_ok = True
                self._event(now, "rcm test passed")
                if self.rcm_tripped:
                    self.rcm_tripped = False
                    if self.fault == GROUND_FAILURE:
                        self.fault = None
                        self.act.info = ""
            elif ticks_diff(now, self._test_at) > RCM_CLEAR_MS:
                self._test_failed(now)

    def _test_failed(self, now):
        self._test = 0
        self.act.rcm_test = False
        self.rcm_tripped = True
        self._trip(now, GROUND_FAILURE, "rcm self-test failed")

    def _decide_offer(self, now, i, ev, plugged):
        a = self.act
        cap = self.rating_da
        reason = R_RATING
        if 0 < self._cable_da < cap:
            cap, reason = self._cable_da, R_CABLE
        if i.cap_da < cap:
            cap, reason = i.cap_da, R_CAP
        want, why = cap, reason
        if i.limit_da < want:
            want, why = i.limit_da, i.limit_reason

        if self._oc_until is not None and ticks_diff(now, self._oc_until) >= 0:
            self._oc_until = None
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
        elif self._oc_until is not None:
            stop = R_OVERCURRENT
        elif i.pp_da == BUTTON:
            stop = R_BUTTON
        elif self._cable_da == INVALID:
            stop = R_NO_CABLE
        elif ev == cp.D and not self.ventilation:
            stop = R_VENT

        if stop is not None:
            new, why = 0, stop  # stops act at once
        elif want <= a.offer_da:
            new = want  # every decrease acts at once: a lower limit must never be exceeded
        elif self._offer_at is not None and ticks_diff(now, self._offer_at) < OFFER_CHANGE_MS:
            new, why = a.offer_da, R_RATE  # increases: at most one per 5 s
        else:
            new = want
        if new < cp.MIN_OFFER_DA:
            new = 0
        if new != a.offer_da:
            if a.close and new == 0 and self._stop_since is None:
                self._stop_since = now  # EV gets STOP_OPEN_MS to go to B
            elif new != 0:
                self._stop_since = None
            a.offer_da = new
            self._offer_at = now
            self._event(now, "offer", new)
        a.reason = why
        if not self._f_hold:
            a.duty = cp.duty_for_amps(new)
            if not cp.is_pwm(a.duty):
                self._diode_ok = False  # checked again after the next PWM start

        # EV drawing more than offered: tolerate +10 % for OC_TOLERANCE_MS, then pause.
        if a.close and i.ev_da * 10 > a.offer_da * 11:
            if self._oc_since is None:
                self._oc_since = now
            elif ticks_diff(now, self._oc_since) >= OC_TOLERANCE_MS:
                self._oc_since = None
                self._oc_until = ticks_add(now, OC_PAUSE_MS)
                self._event(now, "overcurrent", i.ev_da)
        else:
            self._oc_since = None

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
            and not self.rcm_tripped
            and not self.lockout
            and not self.disabled
            and self._cable_da != INVALID
            and i.pp_da == self._cable_da
            and (not self.lock_feedback or (a.lock and i.lock_fb))
            and (self._opened_at is None or ticks_diff(now, self._opened_at) >= self._reclose_ms)
        )
        if not allowed:
            if self._test and not self.rcm_tripped:
                self._test = 0  # conditions went away mid-test: abandon it
                a.rcm_test = False
            return
        if not self._test_ok:
            if not self._test:
                self._start_test(now)
            return
        a.close = True
        self._closed_at = now
        self._fb_bad_since = None
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
            if self._oc_until is not None:
                error = OVERCURRENT
            elif ev == cp.D:
                error = OTHER
        else:
            status = SUSPENDED_EV if self._charged else PREPARING
        # The socket lock holds the plug while a session may deliver power; it is released
        # on a fault (so the user can leave) but never while the contactor is closed.
        a.lock = a.close or (
            plugged and i.authorized and i.available and self.fault is None and not self.disabled
        )
        if status != a.status or error != a.error:
            a.status = status
            a.error = error
            if error == NO_ERROR and self.fault is None:
                a.info = ""


_PILOT_INFO = {
    cp.E: "pilot state E",
    cp.F: "pilot state F",
    cp.FAULT: "pilot fault",
    cp.DIODE: "diode fault",
}
