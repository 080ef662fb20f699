"""The 1p/3p switching sequence in the session (CPython, sessionrig.Rig with a phase contactor
and an EV that follows the PWM): a request stops the offer, the main contactor opens when the
EV went to B (or after the stop timeout), the phase contactor switches only after the main
contactor has been open for the whole pause, its mirror must follow, and the main contactor
closes again through the usual gates. The numbers are written here, not taken from the
modules: 12 s default pause, 10 s floor, 6 s stop timeout, 250 ms for a mirror."""
import pytest

from firmware.charge import pilot as cp
from firmware.charge import session as S
from firmware.charge.phases import PhaseSwitch

from sessionrig import Rig

PAUSE_MS = 12000  # the default pause (EVerest's 10 s + a margin)
STOP_OPEN_MS = 6000  # PWM off -> open at the latest
MIRROR_MS = 250  # a mirror contact must follow its coil within this


class PhaseRig(Rig):
    """Rig + a phase contactor (mirror follows the coil after 20 ms unless welded or stuck)
    + an EV that goes to B 500 ms after the PWM stops and back to C 300 ms after it starts.
    `load` records every step where current flows: main closed and the EV in C."""

    def __init__(self, pause_ms=None, **kw):
        self.ps = PhaseSwitch() if pause_ms is None else PhaseSwitch(pause_ms)
        super().__init__(phase=self.ps, **kw)
        self.phase_welded = False
        self.phase_stuck = False
        self.ignore_stop = False
        self.follow = False  # the EV answers the PWM by itself
        self._coil_at = None
        self._coil = False
        self._pwm_at = None
        self._pwm = False
        self.switched = []  # (t, three, main mirror, EV state) at every phase coil change
        self.main_open_at = None  # last time the main mirror went open
        self.fb_main = False

    def step(self, n=1, dt=2):
        for _ in range(n):
            three = self.ps.three
            fb = self.i.phase_fb
            if self.phase_welded:
                fb = fb or three
            elif self.phase_stuck:
                fb = False
            elif self.since(self._coil_at or self.t0) >= 20:
                fb = three
            self.i.phase_fb = fb
            pwm = cp.is_pwm(self.s.act.duty)
            if pwm != self._pwm:
                self._pwm = pwm
                self._pwm_at = self.t
            if self.follow and self.ev in ("B", "C"):
                if not pwm and self.ev == "C" and not self.ignore_stop and \
                        self.since(self._pwm_at) >= 500:
                    self.ev = "B"
                elif pwm and self.ev == "B" and self.since(self._pwm_at) >= 300:
                    self.ev = "C"
            t = self.t
            super().step(1, dt)
            fbm = self.i.contactor_fb  # what the session saw in this step
            if self.ps.three != self._coil:  # the session changed the phase coil in it
                self._coil = self.ps.three
                self._coil_at = t
                self.switched.append((t, self._coil, fbm, self.ev, self.main_open_at))
            if self.fb_main and not fbm:
                self.main_open_at = t
            self.fb_main = fbm
        return self.s.act


def _charging(r, phases_req=1):
    r.i.phases_req = phases_req
    r.step(PAUSE_MS // 2 + 100)  # the boot counts as an opening: the first pause passes
    r.charging()
    r.follow = True


def test_a_request_stops_the_offer_opens_at_b_pauses_switches_and_closes_again():
    r = PhaseRig(pause_ms=PAUSE_MS)
    _charging(r)
    assert not r.ps.three and r.s.act.close
    t_req = r.t
    r.i.phases_req = 3
    r.step()
    a = r.s.act
    assert a.offer_da == 0 and a.duty == cp.DUTY_X1 and a.reason == "phase switch"
    assert a.close  # the EV gets its time to go to B
    r.until(lambda a: not a.close)
    assert r.ev == "B" and 500 <= r.since(t_req) < 600  # the EV followed: open at B
    r.until(lambda a: r.ps.three, limit_ms=PAUSE_MS + 1000)
    t, three, main_fb, ev, opened = r.switched[-1]
    assert three and not main_fb and ev == "B"
    assert PAUSE_MS <= t - opened <= PAUSE_MS + 10  # the whole pause, no more
    r.until(lambda a: a.close, limit_ms=3000)  # offer back, EV to C, self-test, close
    assert r.ps.phases == 3 and r.s.act.offer_da == 320
    assert r.s.act.status == S.CHARGING


def test_an_ev_that_ignores_the_pwm_stop_is_opened_after_6s_and_the_pause_counts_from_there():
    r = PhaseRig()
    _charging(r, 3)
    r.ignore_stop = True
    t_req = r.t
    r.i.phases_req = 1
    r.until(lambda a: not a.close, limit_ms=STOP_OPEN_MS + 100)
    assert STOP_OPEN_MS <= r.since(t_req) <= STOP_OPEN_MS + 10 and r.ev == "C"
    r.step(20)
    assert r.main_open_at is not None and r.ps.three  # not yet: the pause runs
    r.until(lambda a: not r.ps.three, limit_ms=PAUSE_MS + 1000)
    t, three, main_fb, ev, opened = r.switched[-1]
    assert PAUSE_MS <= t - opened <= PAUSE_MS + 10


def test_the_phase_contactor_is_never_switched_with_the_main_contactor_closed():
    """Requests at random moments (every few seconds, both ways): every coil change happens
    with the main mirror open for at least the pause, and never with current flowing."""
    r = PhaseRig(pause_ms=10000, log=False)
    _charging(r)
    want = 1
    for k in range(12):
        want = 4 - want if k % 3 else want
        r.i.phases_req = want
        r.step(1500 + 2111 * (k % 5))  # 3 .. 20 s
    assert len(r.switched) >= 2
    for t, three, main_fb, ev, opened in r.switched:
        assert not main_fb
        assert opened is not None and t - opened >= 10000


def test_the_pause_is_never_below_10s_whatever_is_configured():
    r = PhaseRig(pause_ms=2000)
    _charging(r)
    r.i.phases_req = 3
    r.until(lambda a: not a.close)
    r.until(lambda a: r.ps.three, limit_ms=12000)
    t, three, main_fb, ev, opened = r.switched[-1]
    assert 10000 <= t - opened <= 10010


@pytest.mark.parametrize("fault, info", [("phase_stuck", "phase contactor did not close"),
                                         ("phase_welded", "phase contactor welded")])
def test_a_phase_contactor_that_does_not_follow_is_a_fault_and_nothing_closes(fault, info):
    r = PhaseRig()
    _charging(r, 1 if fault == "phase_stuck" else 3)
    setattr(r, fault, True)
    r.i.phases_req = 3 if fault == "phase_stuck" else 1
    r.until(lambda a: r.switched and r.switched[-1][0] == r.t - 2, limit_ms=PAUSE_MS + 2000)
    t_sw = r.t
    r.until(lambda a: a.status == S.FAULTED, limit_ms=1000)
    assert MIRROR_MS <= r.since(t_sw) <= MIRROR_MS + 20
    a = r.s.act
    assert a.error == S.POWER_SWITCH and a.info == info
    assert not a.close and not r.ps.three  # open all: the phase coil is released too
    r.step(30000 // 2)
    assert not r.s.act.close and r.s.act.status == S.FAULTED
    if fault == "phase_welded":  # unplugged and back: still never closes on 3p unknown
        r.ev = "A"
        r.step(100)
        r.ev = "B"
        r.step(20000)
        assert not any(a for _, a, *_ in r.log[-10000:] if a)
        assert r.s.act.status == S.FAULTED


def test_after_a_stuck_phase_contactor_it_is_never_switched_again_and_one_phase_charges():
    r = PhaseRig()
    r.phase_stuck = True
    r.i.phases_req = 3
    r.step(PAUSE_MS // 2 + 500)  # unplugged: the switch after the pause from power-up fails
    assert len(r.switched) == 2  # energised, then released after the 250 ms
    assert "phase contactor did not close" in str(r.events.last(r.events.count))
    r.step(60000 // 2)  # no EV: the fault clears, and the coil is not tried again
    assert len(r.switched) == 2 and r.s.act.status == S.AVAILABLE
    r.charging()  # on the phase the mirror confirms
    r.step(30000 // 2)
    assert len(r.switched) == 2 and r.ps.phases == 1 and r.s.act.status == S.CHARGING


def test_a_person_clears_a_failed_phase_switch_only_when_its_mirror_matches_its_coil():
    r = PhaseRig()
    r.phase_welded = True
    _charging(r, 3)
    r.i.phases_req = 1
    r.until(lambda a: a.status == S.FAULTED, limit_ms=PAUSE_MS + 8000)
    assert r.ps.failed and not r.ps.clear(True)  # still welded: refused
    r.phase_welded = False
    r.step(10)  # its contacts open
    assert r.ps.clear(r.i.phase_fb) and not r.ps.failed


def test_a_mirror_that_changes_while_charging_opens_the_main_contactor():
    r = PhaseRig()
    _charging(r, 3)
    r.phase_stuck = True  # the phase mirror drops out under load
    t = r.t
    r.until(lambda a: not a.close, limit_ms=100)
    assert r.since(t) <= 20 and r.s.act.info == "phase contactor did not close"


def test_without_a_request_a_board_with_a_phase_switch_charges_as_before():
    r = PhaseRig()
    r.step(PAUSE_MS // 2 + 100)
    r.charging()
    assert r.switched == [] and r.s.act.offer_da == 320


def test_a_request_of_the_phases_in_force_changes_nothing():
    r = PhaseRig()
    _charging(r, 1)
    n = len(r.log)
    r.i.phases_req = 1
    r.step(5000)
    assert all(c for _, c, _, _ in r.log[n:]) and r.switched == []


class _Pin:
    def __init__(self, v=0):
        self.v = v

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v


def test_the_controller_validates_a_phase_request_and_drives_the_coil_from_the_session(
        monkeypatch):
    import time

    monkeypatch.setattr(time, "ticks_ms", lambda: 0, raising=False)
    from drivers.contactor import Contactor
    from firmware import config
    from firmware.charge.controller import ChargeController
    from firmware.events import EventLog

    class Board:
        pass

    b = Board()
    b.pilot = type("P", (), {"duty": 1000, "set_duty": lambda s, d: setattr(s, "duty", d),
                             "read": lambda s: (12000, -12000)})()
    b.pilot_period_ms = 2
    b.pp = type("PP", (), {"ohms": lambda s: 100000})()  # no cable
    b.contactor = Contactor(_Pin(), _Pin())
    b.rcm = type("R", (), {"fault": lambda s: False, "set_test": lambda s, on: None})()
    b.lock = b.led = None
    b.watchdog = b.reset = None
    coil, mirror = _Pin(), _Pin()
    b.phase_switch = Contactor(coil, mirror)
    ctl = ChargeController(b, config.from_dict({"rating_a": 16, "limits": {
        "phase_pause_s": 10}}), EventLog(8))
    assert ctl.phase_switch is not None and ctl.phase_switch.pause_ms == 10000
    for bad in (2, "3", True, None, 3.0):
        with pytest.raises(ValueError, match="set_phases: expects 1 or 3, got %r" % (bad,)):
            ctl.set_phases(bad)
    assert ctl.inputs.phases_req == 0 and ctl.phases == 1  # released at power-up
    ctl.set_phases(3)
    t = 0
    while coil.v == 0 and t < 11000:
        ctl.step(t)
        t += 10
    assert coil.v == 1 and t >= 10000  # the pause from power-up, then the coil
    mirror.v = 1
    ctl.step(t)
    assert ctl.phases == 3 and ctl.session.act.status == "Available"
    one = config.from_dict({"rating_a": 16, "phases": 1})
    assert ChargeController(b, one, EventLog(8)).phase_switch is None  # a 1-phase supply
