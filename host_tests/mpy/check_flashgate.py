# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the
# flash gate's scenarios of host_tests/test_flashgate.py (the journal's RAM tail, a power cut
# at every step of its settle, held whole-file saves) on MicroPython's struct, io, json and
# files.
import sys

sys.path.append(__file__.rsplit("/", 2)[0])  # host_tests: flashsim, flashgate_scenarios

import flashgate_scenarios as fs  # noqa: E402

FAILS = []
for name, fn in (("ram_tail", fs.ram_tail), ("held_files", fs.held_files)):
    try:
        problems = fn()
    except Exception as e:  # noqa: BLE001 - reported as a failure of this scenario
        problems = ["%r" % (e,)]
    print(("PASS " if not problems else "FAIL ") + name)
    for p in problems[:5]:
        print("  " + p)
    if problems:
        FAILS.append(name)
try:
    n, problems = fs.settle_cuts()
except Exception as e:  # noqa: BLE001
    n, problems = 0, ["%r" % (e,)]
ok = n > 6 and not problems
print(("PASS " if ok else "FAIL ") + "settle_cuts: %d cuts" % n)
for p in problems[:5]:
    print("  " + p)
if not ok:
    FAILS.append("settle_cuts")
print("DONE %d failed" % len(FAILS))
