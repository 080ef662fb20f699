# Runs on the MicroPython unix port, started by host_tests/test_ota_slots.py with a folder
# holding keys.json, bundle.wbota and releases.json (host_tests/ota_cuts.py's scenarios): the
# same power cuts as on CPython, on MicroPython's files, json and hashlib. Prints
# "PASS name: N cuts" or "FAIL ..." per scenario, then "DONE n failed".
import json
import sys
from binascii import unhexlify

sys.path.append(__file__.rsplit("/", 2)[0])  # host_tests: flashsim, ota_cuts

import ota_cuts  # noqa: E402
from firmware.ota import rsa  # noqa: E402

D = sys.argv[1]
with open(D + "/keys.json") as f:
    KEYS = [rsa.key_from_json(k) for k in json.load(f)["keys"]]
with open(D + "/releases.json") as f:
    R = json.load(f)
with open(D + "/bundle.wbota", "rb") as f:
    DATA = f.read()


def files(lst):
    return [(p, unhexlify(h)) for p, h in lst]


releases, scs = ota_cuts.scenarios(KEYS, R["running"], files(R["old"]), files(R["new"]), DATA)
failed = 0
for name, setup, action, allowed, done_is in scs:
    try:
        n, problems = ota_cuts.cut_everywhere(name, setup, action, releases, allowed,
                                              done_is)
    except Exception as e:  # noqa: BLE001 - reported as this scenario's failure
        n, problems = 0, ["%s: %r" % (name, e)]
    ok = n > 6 and not problems
    failed += not ok
    print(("PASS " if ok else "FAIL ") + "%s: %d cuts" % (name, n))
    for p in problems[:5]:
        print("  " + p)
print("DONE %d failed" % failed)
