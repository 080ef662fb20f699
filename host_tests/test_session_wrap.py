"""Whole sessions across the ticks wrap (CPython; mpy/check_wrap.py does the same on the unix
port). The rig's clock is masked to 2^30 ms as on ESP32 and STM32; each run starts the story
of session_story.py so that the wrap falls just after a phase starts (its first stamps are
taken before the wrap and compared after it) or in its middle (a running timer crosses it).
Every timing is checked against spec.py on the wrapping clock."""
import pytest

from firmware.charge import session as S
from firmware.ticks import ticks_diff

from sessionrig import PERIOD, Rig, wrap_in
import session_story
import spec
from test_session_gates import _to_the_step_before_closing


PHASES = ("plug", "self-test and close", "5 s offer rule", "overcurrent pause",
          "re-close spacing", "fault", "stop timeout", "unplug and weld")
_MARKS = []


def _marks():
    """The phases' start offsets of the story without the wrap (run once, in a test: a story
    that fails fails the test that needs it, not the collection)."""
    if not _MARKS:
        _MARKS.extend(session_story.whole_session(Rig(log=False)))
    return _MARKS


def test_the_story_has_the_phases_the_wrap_tests_name():
    assert [n for n, _ in _marks()] == list(PHASES) + ["end"]


def test_the_clock_wraps_at_2_30_ms_as_on_the_boards():
    assert PERIOD == 1 << 30
    r = Rig(t0=wrap_in(4), log=False)
    r.step(4)
    assert r.t == 4  # 2^30 - 4 + 8 ms, masked


def test_a_whole_session_without_the_wrap():
    r = Rig(log=False)
    session_story.whole_session(r)
    assert r.t < PERIOD // 2  # nowhere near the wrap


@pytest.mark.parametrize("into", ["1ms", "7ms", "half"])
@pytest.mark.parametrize("phase", PHASES, ids=[p.replace(" ", "_") for p in PHASES])
def test_a_whole_session_with_the_wrap_in(phase, into):
    marks = _marks()
    names = [n for n, _ in marks]
    start, end = marks[names.index(phase)][1], marks[names.index(phase) + 1][1]
    at = {"1ms": start + 1, "7ms": start + 7, "half": (start + end) // 2}[into]
    r = Rig(t0=wrap_in(at), log=False)
    marks = session_story.whole_session(r)
    assert marks[names.index(phase)][1] < at < marks[-1][1]  # it wrapped inside that phase
    assert r.t < 200000  # and the session ended after the wrap


# The RCM self-test's own timers across the wrap (session_story.py has a working RCM only).
def _t_of_first(code):
    """ms after t0 at which a fresh session (plug, then C) records `code`."""
    r = Rig(log=False)
    _plug_and_ask(r)
    for _ in range(2000):
        r.step()
        for t, c, _ in r.events.last(4):
            if c == code:
                return ticks_diff(t, r.t0)
    raise AssertionError("no %r" % code)


def _plug_and_ask(r):
    r.ev = "B"
    r.step(10)
    r.ev = "C"


@pytest.mark.parametrize("wrap_after", (1, 500, 999))
def test_a_self_test_that_never_sees_the_output_rise_fails_after_1s_across_the_wrap(wrap_after):
    at = _t_of_first("rcm test")
    r = Rig(t0=wrap_in(at + wrap_after))
    r.rcm_broken = True
    _plug_and_ask(r)
    r.until(lambda a: a.rcm_test, spec.CLOSE_MS)
    t = r.until(lambda a: a.status == S.FAULTED, 2 * spec.RCM_TRIP_MS)
    assert spec.RCM_TRIP_MS <= t <= spec.RCM_TRIP_MS + 4
    assert r.s.act.error == S.GROUND_FAILURE and not r.s.act.rcm_test
    assert r.closings == []


@pytest.mark.parametrize("wrap_after", (1, 5000, 9990))
def test_a_passed_self_test_goes_stale_after_10s_across_the_wrap(wrap_after):
    # The EV goes back to B in the step the self-test passes; back in C 10 s + 100 ms later
    # (C must hold 100 ms), the test is stale: a new one runs before the closing.
    r = Rig()
    _plug_and_ask(r)
    _to_the_step_before_closing(r)
    r = Rig(t0=wrap_in(ticks_diff(r.t, 0) + wrap_after))
    _plug_and_ask(r)
    _to_the_step_before_closing(r)
    r.ev = "B"
    r.step()
    assert not r.s.act.close and r.events.last(1)[0][1] == "rcm test passed"
    passed = r.events.last(1)[0][0]
    r.step((spec.RCM_TEST_VALID_MS + 2 - spec.READY_HOLD_MS) // 2 - 1)
    r.ev = "C"
    n = r.events.count
    r.until(lambda a: a.close, spec.CLOSE_MS)
    codes = [c for _, c, _ in r.events.last(r.events.count - n)]
    assert codes.index("rcm test") < codes.index("rcm test passed") < codes.index("close")
    assert ticks_diff(r.t, passed) > spec.RCM_TEST_VALID_MS
    assert ticks_diff(r.t, 0) > 0  # the clock wrapped in between
