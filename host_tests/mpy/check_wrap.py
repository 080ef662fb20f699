# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): whole
# charging sessions across the wrap of time.ticks_ms() at this port's own ticks period, with
# the session logic's ticks_diff/ticks_add being MicroPython's (host_tests/session_story.py,
# each timing checked against host_tests/spec.py). The CPython twin is test_session_wrap.py.
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.append(HERE + "/..")  # host_tests: sessionrig, session_story, spec

from firmware.ticks import ticks_add, ticks_diff  # noqa: E402
from sessionrig import PERIOD, Rig, wrap_in  # noqa: E402
import session_story  # noqa: E402

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


check("port ticks period is a power of two (%d)" % PERIOD, PERIOD & (PERIOD - 1) == 0)
check("the rig's clock wraps like time.ticks_add", ticks_add(wrap_in(3), 5) == 2)
marks = session_story.whole_session(Rig(log=False))
check("whole session, no wrap", marks[-1][1] > 100000)
for (name, start), (_, end) in zip(marks, marks[1:]):
    for at in (start + 1, (start + end) // 2):
        r = Rig(t0=wrap_in(at), log=False)
        try:
            session_story.whole_session(r)
            ok = ticks_diff(r.t, 0) > 0 and ticks_diff(r.t, 0) < 200000
            msg = ""
        except AssertionError as e:
            ok, msg = False, ": %s" % (e,)
        check("whole session, wrap %d ms into %s%s" % (at - start, name, msg), ok)



# The RCM self-test's 1 s limit across the wrap: a module that never trips fails the test.
def first_test_start():
    r = Rig(log=False)
    r.ev = "B"
    r.step(10)
    r.ev = "C"
    r.until(lambda a: a.rcm_test, 3000)
    return ticks_diff(r.t, r.t0)


at = first_test_start()
for after in (1, 500):
    r = Rig(t0=wrap_in(at + after), log=False)
    r.rcm_broken = True
    r.ev = "B"
    r.step(10)
    r.ev = "C"
    try:
        r.until(lambda a: a.rcm_test, 3000)
        ms = r.until(lambda a: a.status == "Faulted", 2000)
        ok, msg = 1000 <= ms <= 1004 and not r.s.act.close, "%d ms" % ms
    except AssertionError as e:
        ok, msg = False, str(e)
    check("broken RCM fails its self-test 1 s after it started, wrap %d ms in: %s"
          % (after, msg), ok)

print("DONE %d failed" % len(FAILS))
