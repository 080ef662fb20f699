# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the power
# cut scenarios of host_tests/test_persist_cuts.py (every store, every step of its write, the
# three ways a flash boots, with and without FAT rename) on MicroPython's json, struct, files
# and module globals.
import sys

sys.path.append(__file__.rsplit("/", 2)[0])  # host_tests: flashsim, persist_scenarios

import persist_scenarios as ps  # noqa: E402

FAILS = []
total = 0
for s in ps.SCENARIOS:
    try:
        n, problems = ps.run(s)
    except Exception as e:  # noqa: BLE001 - reported as a failure of this scenario
        n, problems = 0, ["%s: %r" % (s[0], e)]
    total += n
    ok = n > 6 and not problems
    print(("PASS " if ok else "FAIL ") + "%s: %d cuts" % (s[0], n))
    for p in problems[:5]:
        print("  " + p)
    if not ok:
        FAILS.append(s[0])
print("%d cuts in %d scenarios" % (total, len(ps.SCENARIOS)))
print("DONE %d failed" % len(FAILS))
