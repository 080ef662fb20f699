"""One whole charging story on a sessionrig.Rig, every timing asserted against the numbers of
host_tests/spec.py: plug, RCM self-test, close, the 5 s offer rule, an overcurrent pause,
re-close spacing, a fault with its -12 V hold and 30 s spacing, the stop timeout, unplug and
a contact that welds as it opens. Runs on CPython (test_session_wrap.py) and on the unix port
(mpy/check_wrap.py), started anywhere on the ticks clock so that the wrap falls inside any
phase. Returns the phases' start offsets (ms after the rig's t0)."""
from firmware.charge import pilot as cp
from firmware.charge import session as S
from firmware.ticks import ticks_diff

import spec

STEP = 2  # the rig's step, ms: an edge is seen at most one step late


def _within(what, ms, lo, hi):
    if not lo <= ms <= hi:
        raise AssertionError("%s: %d ms, expected %d..%d ms" % (what, ms, lo, hi))


def _last_event(r, code):
    for t, c, _ in reversed(r.events.last()):
        if c == code:
            return t
    raise AssertionError("no %r event" % code)


def _check(what, ok):
    if not ok:
        raise AssertionError(what)


def whole_session(r):
    marks = []
    a = r.s.act

    def phase(name):
        marks.append((name, ticks_diff(r.t, r.t0)))

    phase("plug")
    r.step(10)
    _check("idle: Available", a.status == S.AVAILABLE and not a.close)
    r.ev = "B"
    _within("plug -> offer (PWM)", r.until(lambda a: cp.is_pwm(a.duty), 100), 0, spec.OPEN_MS)
    _check("plugged: Preparing, 32 A", a.status == S.PREPARING and a.offer_da == 320)

    phase("self-test and close")
    r.ev = "C"
    t_c = r.t
    ms = r.until(lambda a: a.close, spec.CLOSE_MS)
    _within("C -> closed", ms, spec.READY_HOLD_MS, spec.CLOSE_MS)
    t_close = _last_event(r, "close")
    _within("passed self-test -> closing",
            ticks_diff(t_close, _last_event(r, "rcm test passed")), 0, spec.RCM_TEST_VALID_MS)
    _check("self-test after C", ticks_diff(_last_event(r, "rcm test"), t_c) >= 0)
    r.step(20)
    _check("Charging", a.status == S.CHARGING)

    phase("5 s offer rule")
    r.i.limit_da = 160
    r.step()
    _check("a decrease acts at once", a.offer_da == 160)
    t_down = ticks_diff(r.t, STEP)
    r.i.limit_da = 0x7FFF
    r.until(lambda a: a.offer_da == 320, 2 * spec.OFFER_CHANGE_MS)
    _within("decrease -> next increase", ticks_diff(r.t, t_down),
            spec.OFFER_CHANGE_MS, spec.OFFER_CHANGE_MS + 2 * STEP)

    phase("overcurrent pause")
    r.ev_da = 360  # 36 A on a 32 A offer: more than +10 %
    r.step()
    t_over = ticks_diff(r.t, STEP)
    r.until(lambda a: a.offer_da == 0, 2 * spec.OC_TOLERANCE_MS)
    t_pause = ticks_diff(r.t, STEP)
    _within("overcurrent tolerated", ticks_diff(t_pause, t_over),
            spec.OC_TOLERANCE_MS, spec.OC_TOLERANCE_MS + 2 * STEP)
    _check("SuspendedEVSE, OverCurrentFailure",
           a.status == S.SUSPENDED_EVSE and a.error == S.OVERCURRENT)
    r.ev = "B"  # the EV follows the PWM stop
    r.ev_da = -1
    _within("C->B opens", r.until(lambda a: not a.close, spec.OPEN_MS), 0, spec.OPEN_MS)
    r.ev = "C"
    r.until(lambda a: a.offer_da > 0, 2 * spec.OC_PAUSE_MS)
    _within("overcurrent pause", ticks_diff(r.t, t_pause),
            spec.OC_PAUSE_MS, spec.OC_PAUSE_MS + 2 * STEP)
    r.until(lambda a: a.close, spec.CLOSE_MS)
    r.step(20)
    _check("Charging after the pause", a.status == S.CHARGING)

    phase("re-close spacing")
    r.ev = "B"
    _within("C->B opens", r.until(lambda a: not a.close, spec.OPEN_MS), 0, spec.OPEN_MS)
    t_open = _last_event(r, "open")
    r.ev = "C"
    r.until(lambda a: a.close, spec.RECLOSE_MS + spec.CLOSE_MS)
    _within("open -> re-close", ticks_diff(_last_event(r, "close"), t_open),
            spec.RECLOSE_MS, spec.RECLOSE_MS + spec.CLOSE_MS)
    r.step(20)

    phase("fault")
    r.ev = "E"
    _within("state E opens", r.until(lambda a: not a.close, spec.OPEN_MS), 0, spec.OPEN_MS)
    t_open = _last_event(r, "open")
    _check("Faulted at once, -12 V", a.status == S.FAULTED and a.duty == cp.DUTY_F)
    r.until(lambda a: a.duty != cp.DUTY_F, 2 * spec.F_HOLD_MS)
    _within("-12 V hold", ticks_diff(r.t, t_open), spec.F_HOLD_MS, spec.F_HOLD_MS + 2 * STEP)
    r.ev = "A"
    r.until(lambda a: a.status == S.AVAILABLE, spec.OPEN_MS)
    r.ev = "B"
    r.step(10)
    r.ev = "C"
    r.until(lambda a: a.close, spec.RECLOSE_ERROR_MS + spec.CLOSE_MS)
    _within("fault -> re-close", ticks_diff(_last_event(r, "close"), t_open),
            spec.RECLOSE_ERROR_MS, spec.RECLOSE_ERROR_MS + spec.CLOSE_MS)
    r.step(20)

    phase("stop timeout")
    r.i.authorized = False  # the EVSE stops; this EV ignores the PWM going away
    r.step()
    t_stop = ticks_diff(r.t, STEP)
    _check("PWM off at once", a.duty == cp.DUTY_X1 and a.close)
    r.until(lambda a: not a.close, 2 * spec.STOP_OPEN_MS)
    _within("stop -> open under load", ticks_diff(r.t, t_stop),
            spec.STOP_OPEN_MS, spec.STOP_OPEN_MS + 2 * STEP)
    r.i.authorized = True
    r.ev = "B"
    r.step(10)
    r.ev = "C"
    r.until(lambda a: a.close, spec.RECLOSE_MS + spec.CLOSE_MS)
    r.step(20)

    phase("unplug and weld")
    r.ev = "A"
    r.welded = True  # the contact welds as it opens: the mirror stays closed
    _within("unplug opens", r.until(lambda a: not a.close, spec.OPEN_MS), 0, spec.OPEN_MS)
    t_open = _last_event(r, "open")
    r.until(lambda a: a.error == S.POWER_SWITCH, 2 * spec.CLOSE_FB_MS)
    _within("opening -> weld seen", ticks_diff(_last_event(r, "welded"), t_open),
            spec.CLOSE_FB_MS, spec.CLOSE_FB_MS + spec.FB_DEBOUNCE_MS + 2 * STEP)
    _check("welded: lockout, Faulted", r.s.lockout and a.status == S.FAULTED)
    r.step(100)
    _check("welded: stays Faulted", a.status == S.FAULTED and not a.close)
    phase("end")
    return marks
