# Runs on the MicroPython unix port, started by host_tests/test_ota_bundle.py with a folder of
# bundles (host_tests/ota_cases.py): the device's own check of each, one JSON line per case
# ({"case", "error" or null, "written": files left in the staging folder}), then the measured
# signature verify time and the time of a whole good bundle's check and unpack.
import json
import os
import sys
import time

from firmware.ota import bundle, rsa

D = sys.argv[1]


def tree(d):
    """Every file under d (relative paths)."""
    out = []
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for n in names:
        p = d + "/" + n
        if os.stat(p)[0] & 0x4000:
            out.extend(n + "/" + x for x in tree(p))
        else:
            out.append(n)
    return out


with open(D + "/keys.json") as f:
    KEYS = [rsa.key_from_json(k) for k in json.load(f)["keys"]]
with open(D + "/cases.json") as f:
    SPEC = json.load(f)
running = SPEC["running"]
for i, (name, fn, words) in enumerate(SPEC["cases"]):
    dest = "%s/out%02d" % (D, i)
    err = None
    with open(D + "/" + fn, "rb") as f:
        try:
            bundle.verify_stream(f, KEYS, running, dest)
        except bundle.BundleError as e:
            err = str(e)
    print(json.dumps({"case": name, "error": err, "written": sorted(tree(dest))}))

# timing: the signature alone, and the whole good bundle
with open(D + "/" + SPEC["cases"][0][1], "rb") as f:
    mbytes, sig = bundle.read_head(f)
import hashlib  # noqa: E402

h = hashlib.sha256(mbytes).digest()
times = []
for _ in range(15):
    t0 = time.ticks_us()
    rsa.verify_pss(KEYS[0], h, sig)
    times.append(time.ticks_diff(time.ticks_us(), t0))
times.sort()
t0 = time.ticks_us()
with open(D + "/" + SPEC["cases"][0][1], "rb") as f:
    bundle.verify_stream(f, KEYS, running, D + "/timed")
whole = time.ticks_diff(time.ticks_us(), t0)
print(json.dumps({"verify_us": times[len(times) // 2], "bits": KEYS[0].bits,
                  "bundle_us": whole}))
