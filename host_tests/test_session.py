"""Session state machine (pure logic, CPython): the timing table rows, faults, statuses,
and hypothesis properties over arbitrary input sequences."""
from hypothesis import event, example, given
from hypothesis import strategies as st

from firmware.charge import pilot as cp
from firmware.charge import session as S
from firmware.charge.proximity import BUTTON, INVALID

from sessionrig import HIGH, Rig  # noqa: E402
import spec


def test_plug_charge_full_unplug_statuses():
    r = Rig()
    r.step(10)
    assert r.s.act.status == S.AVAILABLE
    r.ev = "B"
    r.step(10)
    assert r.s.act.status == S.PREPARING and r.s.act.offer_da == 320
    assert cp.is_pwm(r.s.act.duty)
    r.ev = "C"
    ms = r.until(lambda a: a.close)
    assert ms <= 3000  # seq 4: closed within 3 s of C
    r.step(20)
    assert r.s.act.status == S.CHARGING
    r.ev = "B"  # EV full
    assert r.until(lambda a: not a.close) <= 100
    assert r.s.act.status == S.SUSPENDED_EV
    r.ev = "A"
    assert r.until(lambda a: a.status == S.AVAILABLE) <= 100


def test_lock_held_during_session_released_on_unplug_and_fault():
    r = Rig()
    r.step(10)
    assert not r.s.act.lock
    r.charging()
    assert r.s.act.lock
    r.ev = "E"
    r.until(lambda a: not a.close)
    r.step(10)  # the mirror contact follows (a welded one would keep the lock)
    assert not r.s.act.lock  # faulted and open: the user may take the cable
    r.ev = "A"
    r.step(200)
    assert not r.s.act.lock


def test_lock_hold_keeps_a_cable_left_in_the_socket_locked_and_never_closes():
    # OCPP UnlockConnectorOnEVSideDisconnect false: the EV side unplugged, the cable stays
    # in the socket (PP valid): locked, contactor open; released by the request, by the cable
    # leaving, or by a fault.
    r = Rig()
    r.charging()
    r.i.lock_hold = True
    r.ev = "A"  # EV side unplugged, the cable still in the socket
    r.step(200)
    assert r.s.act.lock and not r.s.act.close and r.s.act.status == S.AVAILABLE
    r.i.authorized = False
    r.step(50)
    assert r.s.act.lock and not r.s.act.close
    r.i.lock_hold = False
    r.step(2)
    assert not r.s.act.lock
    r.i.lock_hold = True
    r.step(2)
    assert r.s.act.lock
    r.i.pp_da = 0  # the cable is taken out (no valid PP): nothing left to hold
    r.step(2)
    assert not r.s.act.lock
    r.i.pp_da = 320
    r.ev = "E"  # a fault: the user may always leave
    r.step(50)
    assert not r.s.act.lock and not r.s.act.close


def test_closes_only_once_the_lock_sensor_confirms():
    r = Rig(lock_feedback=True)
    r.lock_travel = 600  # a slow actuator: the contactor waits for it
    r.step(10)
    r.ev = "C"
    r.until(lambda a: a.close)
    assert r.i.lock_fb and r.t - r._lock_at >= 600
    assert r.s.act.status == S.PREPARING or r.step(20).status == S.CHARGING


def test_jammed_lock_is_a_connector_lock_failure_and_never_closes():
    r = Rig(lock_feedback=True)
    r.lock_jam = True
    r.step(10)
    r.ev = "C"
    r.until(lambda a: a.lock)
    t = r.until(lambda a: a.status == S.FAULTED)  # from the lock command
    assert spec.LOCK_MS <= t <= spec.LOCK_MS + 20
    a = r.s.act
    assert a.error == S.LOCK_FAILURE and a.info == "lock failed"
    assert not any(closed for _, closed, _, _ in r.log)
    assert not a.lock  # released, so the user can take the cable back
    r.ev = "A"  # unplugging clears it
    r.until(lambda a: a.status == S.AVAILABLE, 1000)
    r.lock_jam = False
    r.ev = "C"
    r.until(lambda a: a.close, 3000)


def test_lock_letting_go_while_charging_opens_at_once():
    r = Rig(lock_feedback=True)
    r.charging()
    r.lock_jam = True  # the sensor says unlocked: the plug is being pulled
    t = r.until(lambda a: not a.close)
    assert t <= spec.FB_DEBOUNCE_MS + 4
    assert r.s.act.error == S.LOCK_FAILURE and r.s.act.info == "lock lost"


def test_lock_switch_bounce_while_open_is_tolerated():
    r = Rig(lock_feedback=True)
    r.ev = "B"
    r.until(lambda a: a.lock)
    r.step(100)
    r.lock_jam = True  # the switch bounces for 100 ms; nothing carries current
    r.step(50)
    r.lock_jam = False
    r.step(600)
    assert r.s.act.status == S.PREPARING and r.s.fault is None
    r.ev = "C"
    r.until(lambda a: a.close, 3000)


def test_without_a_lock_sensor_the_lock_is_not_waited_for():
    r = Rig()
    r.lock_jam = True
    assert r.charging() <= 200


def test_no_offer_without_a_valid_cable():
    r = Rig()
    r.i.pp_da = INVALID
    r.ev = "B"
    r.step(5)
    assert r.s.act.duty == cp.DUTY_X1 and r.s.act.offer_da == 0


def test_c_to_b_opens_within_100ms():
    r = Rig()
    r.charging()
    r.ev = "B"
    assert r.until(lambda a: not a.close) < 10


def test_unplug_while_charging_opens_within_100ms():
    r = Rig()
    r.charging()
    r.ev = "A"
    assert r.until(lambda a: not a.close) < 10


def test_faults_open_at_once_and_drive_f_for_300ms():
    for fault in ("E", "F", "diode", "rcm"):
        r = Rig()
        r.charging()
        if fault == "diode":
            r.diode_short = True
        elif fault == "rcm":
            r.rcm_trip = True
        else:
            r.ev = fault
        assert r.until(lambda a: not a.close) < 10, fault
        assert r.s.act.duty == cp.DUTY_F
        assert r.s.act.status == S.FAULTED
        assert r.until(lambda a: a.duty != cp.DUTY_F) >= spec.F_HOLD_MS - 10


def test_rcm_trip_reports_ground_failure_and_needs_self_test():
    r = Rig()
    r.charging()
    r.rcm_trip = True
    r.step(5)
    assert r.s.act.error == S.GROUND_FAILURE
    r.rcm_trip = False
    r.ev = "A"
    r.rcm_broken = True  # the module no longer answers its test input
    r.step(1000)
    assert r.s.act.status == S.FAULTED and r.s.rcm_tripped  # no auto-reset
    r.rcm_broken = False
    r.until(lambda a: a.status == S.AVAILABLE, 3000)  # the next self-test passes
    assert not r.s.rcm_tripped


def test_rcm_self_test_before_every_close():
    r = Rig()
    r.charging()
    codes = [c for _, c, _ in r.events.last()]
    assert codes.index("rcm test passed") < codes.index("close")
    r.rcm_broken = True
    r.ev = "B"
    r.step(10)
    r.step(3000)  # re-close spacing
    r.ev = "C"
    r.until(lambda a: a.status == S.FAULTED)
    assert not r.s.act.close and r.s.act.error == S.GROUND_FAILURE


def test_diode_fault_never_closes():
    r = Rig()
    r.diode_short = True
    r.ev = "B"
    r.step(20)
    r.ev = "C"
    r.step(2000)
    assert not any(c for _, c, _, _ in r.log)
    assert r.s.act.status == S.FAULTED and r.s.act.error == S.EV_COMM


def test_pwm_off_then_open_after_6s_even_under_load():
    r = Rig()
    r.charging()
    r.i.authorized = False  # EVSE stops; this EV ignores the PWM going away
    r.step()
    assert r.s.act.duty == cp.DUTY_X1 and r.s.act.close
    ms = r.until(lambda a: not a.close)
    assert 5900 <= ms <= 6010
    assert r.s.act.status == S.FINISHING


def test_stop_opens_at_b_when_ev_follows():
    r = Rig()
    r.charging()
    r.i.authorized = False
    r.step(500)
    r.ev = "B"
    assert r.until(lambda a: not a.close) < 10


def test_state_d_needs_ventilation():
    r = Rig()
    r.ev = "B"
    r.step(10)
    r.ev = "D"
    r.step(1000)
    assert not r.s.act.close
    assert r.s.act.status == S.SUSPENDED_EVSE and r.s.act.error == S.OTHER
    r = Rig(ventilation=True)
    r.ev = "B"
    r.step(10)
    r.ev = "D"
    r.until(lambda a: a.close)
    r.step(20)
    assert r.s.act.status == S.CHARGING


def test_overcurrent_pauses_after_7s():
    r = Rig()
    r.charging()
    r.ev_da = 320 * 11 // 10  # exactly +10 %: tolerated
    r.step(5000)
    assert r.s.act.offer_da == 320
    r.ev_da = 360  # > +10 %
    ms = r.until(lambda a: a.offer_da == 0)
    assert 6990 <= ms <= 7010
    assert r.s.act.status == S.SUSPENDED_EVSE and r.s.act.error == S.OVERCURRENT
    r.ev = "B"
    r.ev_da = -1
    assert r.until(lambda a: not a.close) < 10


def test_offer_changes_at_most_every_5s_but_decreases_at_once():
    r = Rig()
    r.charging()
    r.step(3000)
    r.i.limit_da = 100
    r.step()
    assert r.s.act.offer_da == 100  # decrease: at once
    r.i.limit_da = 200
    ms = r.until(lambda a: a.offer_da == 200)
    assert 4990 <= ms <= 5010
    r.i.limit_da = 50  # below 6 A: pause (x1), then open when EV goes to B
    r.step()
    assert r.s.act.duty == cp.DUTY_X1


def test_offer_limited_by_cable_rating_and_caps():
    r = Rig(rating_da=160)
    r.i.pp_da = 130
    r.ev = "B"
    r.step(10)
    assert r.s.act.offer_da == 130 and r.s.act.reason == S.R_CABLE
    r.i.pp_da = 320
    r = Rig(rating_da=160)
    r.ev = "B"
    r.step(10)
    assert r.s.act.offer_da == 160 and r.s.act.reason == S.R_RATING


def test_cable_lost_or_changed_stops():
    for pp in (INVALID, 130):
        r = Rig()
        r.charging()
        r.i.pp_da = pp
        assert r.until(lambda a: not a.close) <= 40
        assert r.s.act.status == S.FAULTED


def test_type1_button_opens_at_once():
    r = Rig()
    r.charging()
    r.i.pp_da = BUTTON
    assert r.until(lambda a: not a.close) < 5
    assert r.s.act.status == S.SUSPENDED_EVSE


def test_type1_button_opens_at_once_even_during_a_stop():
    # Found by test_invariants_in_consistent_worlds: a stop in progress (not authorised,
    # waiting up to 6 s for the EV) hid the S3 button press.
    r = Rig()
    r.charging()
    r.i.authorized = False
    r.step()
    assert r.s.act.close  # the EV gets its 6 s to go to B
    r.i.pp_da = BUTTON
    assert r.until(lambda a: not a.close) < 5


def test_contactor_fails_to_close():
    r = Rig()
    r.no_close = True
    r.ev = "B"
    r.step(10)
    r.ev = "C"
    r.until(lambda a: a.close)
    ms = r.until(lambda a: not a.close)
    assert 250 <= ms <= 270
    assert r.s.act.error == S.POWER_SWITCH


def test_welded_contact_locks_out_until_cleared():
    r = Rig()
    r.charging()
    r.welded = True
    r.ev = "B"
    r.until(lambda a: not a.close)
    r.step(200)
    assert r.s.act.status == S.FAULTED and r.s.lockout
    r.ev = "A"
    r.step(100)
    r.ev = "B"
    r.step(100)
    r.ev = "C"
    r.step(40000)
    assert r.s.act.status == S.FAULTED and not r.s.act.close
    assert not r.s.clear_lockout(r.t, fb_open=False)
    r.welded = False
    assert r.s.clear_lockout(r.t, fb_open=True)
    r.ev = "A"
    r.step(100)
    r.charging()


def test_reclose_spacing():
    r = Rig()
    r.charging()
    r.ev = "B"
    r.until(lambda a: not a.close)
    t_open = r.t
    r.ev = "C"
    r.until(lambda a: a.close)
    assert r.t - t_open >= spec.RECLOSE_MS


def test_disabled_config_never_charges():
    r = Rig(disabled=True)
    r.ev = "B"
    r.step(10)
    r.ev = "C"
    r.step(2000)
    assert not r.s.act.close and r.s.act.status == S.FAULTED
    assert r.s.act.error == S.INTERNAL


# -- properties over arbitrary input sequences ---------------------------------------------
PILOTS = ["A", "B", "C", "D", "E", "F", cp.FAULT, cp.DIODE]

# Random input sequences held for a while (segments), so that sessions really reach
# closings: every gate is then checked where it matters. Every expectation is derived from
# the inputs and the actions the controller would apply, never from the session's fields.
segment_st = st.tuples(
    st.one_of(st.sampled_from([300, 1000, 2500, 6000]), st.integers(2, 2500)),  # hold, ms
    st.sampled_from(["C"] * 12 + ["B"] * 4 + ["A"] * 2 + ["D", "E", "F", cp.FAULT, cp.DIODE]),
    st.sampled_from([320] * 15 + [200, 130, 630, INVALID, BUTTON]),  # PP
    st.sampled_from(["healthy"] * 20 + ["stuck", "dead", "trip"]),  # RCM
    st.sampled_from(["follow"] * 30 + [True, False]),  # mirror contact
    st.sampled_from([True] * 6 + [False]),  # authorised
    st.sampled_from([True] * 6 + [False]),  # available
    st.sampled_from([0x7FFF] * 4 + [900, 160, 60, 50, 0]),  # limit
    st.sampled_from([0x7FFF] * 4 + [320, 100, 0]),  # cap
    st.sampled_from([-1, -1, 100, 400]),  # EV current
    st.sampled_from(["follow"] * 10 + [True, False]),  # lock sensor
    st.integers(1, 5),  # step period, ms
)
CLOSING_STATS = {"examples": 0, "closed": 0}


class RcmModel:
    """A healthy RDC-DD: the fault output follows the test input 20 ms later (rise and fall)."""

    def __init__(self):
        self.on_since = None
        self.off_since = None
        self.level = False

    def read(self, t, drive, mode):
        if drive:
            self.off_since = None
            self.on_since = t if self.on_since is None else self.on_since
            if t - self.on_since >= 20:
                self.level = True
        else:
            self.on_since = None
            if self.level:
                self.off_since = t if self.off_since is None else self.off_since
                if t - self.off_since >= 20:
                    self.level = False
                    self.off_since = None
        if mode == "healthy":
            return self.level
        return mode in ("stuck", "trip")


@example(  # found by this test: closed on a stale debounced C while the raw pilot said B
    [(300, "B", 320, "healthy", "follow", True, True, 0x7FFF, 0x7FFF, -1, "follow", 2),
     (2000, "C", 320, "healthy", "follow", True, True, 0x7FFF, 0x7FFF, -1, "follow", 2)],
    False, 320, False)
@example(  # found by CI: D without ventilation, then C at once (no new 100 ms hold)
    [(300, "D", 320, "healthy", "follow", True, True, 0x7FFF, 0x7FFF, -1, "follow", 1),
     (300, "C", 320, "healthy", "follow", True, True, 0x7FFF, 0x7FFF, -1, "follow", 1)],
    False, 320, False)
@given(st.lists(segment_st, min_size=1, max_size=10), st.booleans(), st.integers(60, 800),
       st.booleans())
def test_never_closes_unless_every_condition_holds(segments, vent, rating, lock_fb):
    s = S.Session(rating, ventilation=vent, lock_feedback=lock_fb)
    i = S.Inputs()
    a = s.act
    rcm = RcmModel()
    ok_raw = ("C", "D") if vent else ("C",)
    t = 0
    diode_seen = False  # B/C/D read while PWM ran, since PWM last stopped
    test_state = None  # trace of the self-test: None, "on", "high", "off"
    passed_at = None  # a complete passed test not yet used by a closing
    cd_since = None  # since when the raw pilot says C or D (after something else)
    cable = None  # PP seen when the accepted pilot last became B/C/D
    was_plugged = False
    bad_run = (None, 0)  # (raw state outside C/D, consecutive samples)
    last_open = None  # (t, after an error)
    weld_seen = False
    mirror_bad_since = None
    lock_since = None
    last_increase = None
    f_since = None
    lock_lost_at = None
    pp_bad_since = None
    closed_any = False
    for dur, raw, pp, rcm_mode, fb, auth, avail, limit, cap, ev_da, lock, dt in segments:
        for _ in range(max(1, dur // dt)):
            t += dt
            i.pilot, i.pp_da = raw, pp
            i.rcm_fault = rcm.read(t, a.rcm_test, rcm_mode)
            i.contactor_fb = a.close if fb == "follow" else fb
            if not a.lock:
                lock_since = None
            elif lock_since is None:
                lock_since = t
            i.lock_fb = (a.lock and t - lock_since >= 100) if lock == "follow" else lock
            i.authorized, i.available, i.limit_da, i.cap_da, i.ev_da = (
                auth, avail, limit, cap, ev_da)
            pwm_before = cp.is_pwm(a.duty)
            was_closed, prev_offer, was_testing = a.close, a.offer_da, a.rcm_test
            if pwm_before and raw in ("B", "C", "D"):
                diode_seen = True
            # B -> C/D must hold 100 ms; C <-> D needs no new hold (pilot.PilotFilter).
            cd_since = (cd_since if cd_since is not None else t) if raw in ("C", "D") else None
            if raw not in ok_raw:
                bad_run = (raw, bad_run[1] + 1) if bad_run[0] == raw else (raw, 1)
            else:
                bad_run = (None, 0)
            # A mirror reading closed while the coil is off, for longer than the grace: weld.
            if i.contactor_fb and not was_closed and fb is True:
                mirror_bad_since = t if mirror_bad_since is None else mirror_bad_since
                if t - mirror_bad_since > spec.CLOSE_FB_MS + spec.FB_DEBOUNCE_MS + 5 and (
                        last_open is None or t - last_open[0] > spec.CLOSE_FB_MS + 20):
                    weld_seen = True
            else:
                mirror_bad_since = None
            # The self-test as the module's pins show it.
            if was_testing:
                test_state = "high" if (i.rcm_fault and test_state in ("on", "high")) else (
                    test_state if test_state in ("on", "high") else "on")
            elif test_state == "high":
                test_state = "off"
            if test_state == "off" and not i.rcm_fault and not was_testing:
                passed_at, test_state = t, None
            elif not was_testing and test_state == "on":
                test_state = None  # abandoned before the output rose

            s.step(t, i)

            plugged = a.pilot in ("B", "C", "D")
            if plugged and not was_plugged:
                cable = pp if pp > 0 else None
            elif plugged and cable is None and pp > 0:
                cable = pp
            was_plugged = plugged
            if a.close and not was_closed:
                closed_any = True
                assert raw in ok_raw, "closed while the latest raw pilot says %s" % raw
                assert cd_since is not None and t - cd_since >= spec.READY_HOLD_MS
                assert a.pilot in ok_raw
                assert diode_seen, "closed without a passed diode check"
                assert passed_at is not None, "closed without a passed self-test"
                assert t - passed_at <= spec.RCM_TEST_VALID_MS, "closed on a stale self-test"
                passed_at = None  # one test, one closing
                assert not i.rcm_fault
                assert pp > 0 and pp == cable, "closed on a cable other than the one plugged"
                assert auth and avail and a.offer_da >= 60
                assert min(rating, limit, cap, pp) >= 60
                assert not lock_fb or (i.lock_fb and a.lock), "closed without the lock"
                assert not weld_seen, "closed after a welded contact"
                if last_open is not None:
                    spacing = spec.RECLOSE_ERROR_MS if last_open[1] else spec.RECLOSE_MS
                    assert t - last_open[0] >= spacing
            if was_closed and not a.close:
                last_open = (t, a.status == S.FAULTED)
            if a.close:
                assert a.pilot in ok_raw
                assert a.status != S.FAULTED
                if pp != cable:  # a lost or changed cable: open once it persisted
                    pp_bad_since = t if pp_bad_since is None else pp_bad_since
                    assert pp != BUTTON and t - pp_bad_since <= spec.PP_DEBOUNCE_MS + dt
                else:
                    pp_bad_since = None
                assert bad_run[1] < spec.DEBOUNCE_SAMPLES, "stayed closed with the EV out of C"
                if lock_fb and not i.lock_fb:
                    lock_lost_at = t if lock_lost_at is None else lock_lost_at
                    assert t - lock_lost_at < spec.FB_DEBOUNCE_MS
                else:
                    lock_lost_at = None
            else:
                lock_lost_at = None
                pp_bad_since = None
            # The offer never exceeds the rating, the cable, the cap or the limit.
            assert a.offer_da == 0 or 60 <= a.offer_da <= min(rating, limit, cap)
            if cable is not None and plugged:
                assert a.offer_da <= cable
            if a.offer_da > prev_offer:
                if prev_offer and last_increase is not None:
                    assert t - last_increase >= spec.OFFER_CHANGE_MS
                last_increase = t
            elif a.offer_da < prev_offer:
                last_increase = t if plugged else None
            if not plugged:
                last_increase = None
            # After a fault, -12 V for at least 300 ms.
            if a.duty == cp.DUTY_F and f_since is None:
                f_since = t
            elif a.duty != cp.DUTY_F and f_since is not None:
                assert t - f_since >= spec.F_HOLD_MS
                f_since = None
            if not cp.is_pwm(a.duty):
                diode_seen = False
    CLOSING_STATS["examples"] += 1
    CLOSING_STATS["closed"] += closed_any


def test_the_gate_property_reaches_closings():
    """The property above checks its gates only where the contactor closes: most of its
    examples must get there."""
    if CLOSING_STATS["examples"] == 0:  # run alone (-k): draw the property's examples now
        test_never_closes_unless_every_condition_holds()
    n = CLOSING_STATS["examples"]
    assert n > 0 and CLOSING_STATS["closed"] / n >= 0.25, CLOSING_STATS


@given(st.lists(st.tuples(st.integers(1, 30), st.sampled_from(PILOTS)), max_size=200))
def test_leaving_c_always_opens_within_100ms(seq):
    """Whatever happened before: once the pilot leaves C/D, open within 100 ms."""
    r = Rig()
    r.charging()
    for dt, p in seq:
        r.ev = p if p in HIGH else "E"
        r.step(1, dt)
    r.ev = "B"
    assert r.until(lambda a: not a.close) <= 100


# Physically consistent worlds: a Rig (contactor mirror and RCM answer like hardware) driven
# by random events, so that sessions really charge and the invariants are exercised while the
# contactor is closed, not only while it is open.
_EV = st.tuples(st.just("ev"), st.sampled_from(["A", "B", "C", "C", "C", "D", "E", "F"]))
EVENT = st.one_of(
    _EV, _EV, _EV, _EV,  # mostly the EV moving, so that sessions charge
    st.tuples(st.just("wait"), st.just(0)),
    st.tuples(st.sampled_from(["diode_short", "rcm_trip", "rcm_broken", "welded", "no_close",
                               "lock_jam", "auth", "avail"]), st.booleans()),
    st.tuples(st.just("pp"), st.sampled_from([INVALID, BUTTON, 130, 200, 320])),
    st.tuples(st.sampled_from(["limit", "cap", "ev_da"]), st.integers(0, 700)),
)


WORLD_STATS = {"examples": 0, "closed": 0}


@example([(("ev", "C"), 148), (("auth", False), 2), (("pp", BUTTON), 38)], False, False)
@example([(("ev", "C"), 600), (("lock_jam", True), 40)], False, True)  # lock let go: debounce
@given(st.lists(st.tuples(EVENT, st.integers(2, 4000)), min_size=1, max_size=40),
       st.booleans(), st.booleans())
def test_invariants_in_consistent_worlds(events, vent, lock_fb):
    r = Rig(ventilation=vent, reclose_ms=1000, reclose_error_ms=1000, lock_feedback=lock_fb)
    closed_steps = 0
    state = {"pp_bad": None, "lock_bad": None, "cable": None, "plugged": False,
             "zero_at": None}

    def check():
        nonlocal closed_steps
        a, i = r.s.act, r.i
        plugged = a.pilot in ("B", "C", "D")
        if plugged and not state["plugged"]:
            state["cable"] = i.pp_da if i.pp_da > 0 else None
        elif plugged and state["cable"] is None and i.pp_da > 0:
            state["cable"] = i.pp_da
        state["plugged"] = plugged
        if a.offer_da == 0 and state["zero_at"] is None:
            state["zero_at"] = r.t
        elif a.offer_da:
            state["zero_at"] = None
        if a.close:
            closed_steps += 1
            assert a.pilot == "C" or (a.pilot == "D" and vent)
            assert a.status != S.FAULTED
            # No offer while closed: the EV gets STOP_OPEN_MS to go to B, then it opens.
            assert a.offer_da >= 60 or r.t - state["zero_at"] <= spec.STOP_OPEN_MS
            # The lock sensor letting go is acted on after its 10 ms debounce.
            if lock_fb and not i.lock_fb:
                state["lock_bad"] = r.t if state["lock_bad"] is None else state["lock_bad"]
                assert r.t - state["lock_bad"] < spec.FB_DEBOUNCE_MS
            else:
                state["lock_bad"] = None
            if i.pp_da != state["cable"]:
                state["pp_bad"] = state["pp_bad"] if state["pp_bad"] is not None else r.t
                assert r.t - state["pp_bad"] <= spec.PP_DEBOUNCE_MS + 4
            else:
                state["pp_bad"] = None
        else:
            state["lock_bad"] = state["pp_bad"] = None
        assert a.offer_da == 0 or 60 <= a.offer_da <= min(320, i.limit_da, i.cap_da)

    # Every world starts with an EV plugged in and asking for 600 ms (it charges unless the
    # draw says otherwise: no cable, ...); the random events then act on a live session.
    # Only the closed steps after that start count for the reach below.
    for n, ((kind, val), ms) in enumerate([(("ev", "C"), 600)] + list(events)):
        if n == 1:
            closed_steps = 0
        if kind == "ev":
            r.ev = val
        elif kind == "pp":
            r.i.pp_da = val
        elif kind in ("auth", "avail"):
            setattr(r.i, "authorized" if kind == "auth" else "available", val)
        elif kind in ("limit", "cap"):
            setattr(r.i, kind + "_da", val)
        elif kind == "ev_da":
            r.ev_da = val
        elif kind == "wait":
            pass
        else:
            setattr(r, kind, val)
        for _ in range(ms // 2):
            was = r.s.act.close
            r.step()
            if r.s.act.close and not was:
                codes = [c for _, c, _ in r.events.last(6)]
                assert "rcm test passed" in codes  # a self-test right before this closing
            check()
    event("closed steps > 0" if closed_steps else "never closed")
    WORLD_STATS["examples"] += 1
    WORLD_STATS["closed"] += closed_steps > 0
    r.ev = "B"  # whatever happened: leaving C opens at once
    r.step(3)
    assert not r.s.act.close


def test_the_consistent_worlds_reach_a_closed_contactor():
    """The invariants above are about a closed contactor: a good share of the worlds must
    charge, or the property checks them on an idle station only (it was 47 of 202 before
    every world started with an EV asking)."""
    if WORLD_STATS["examples"] == 0:  # run alone (-k): draw the property's examples now
        test_invariants_in_consistent_worlds()
    n = WORLD_STATS["examples"]
    assert n > 0 and WORLD_STATS["closed"] / n >= 0.75, WORLD_STATS  # ci: 182 of 202
