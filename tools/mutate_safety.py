"""Mutations mutmut cannot make, checked against the session tests (`make mutants`,
`make mutants-safety`; docs/testing.md).

mutmut mutates operators and literals one at a time; it never replaces `ticks_diff(a, b)`
by `a - b` (correct until the ticks clock wraps, 12.4 days after boot on the boards) and its
changes to a `const()` are off by one, not the tenfold error of a wrong unit or a wrong
reading of the standard. Each mutation here is applied to a copy of the tree (firmware/,
drivers/, host_tests/, pytest.ini in a temporary directory), then the session tests run
there: the CPython tier first, and if it passes, the unix-port checks (check_core.py,
check_wrap.py on .venv/bin/micropython). A mutant is killed when any of them fails.

    python tools/mutate_safety.py [--root DIR] [-k SUBSTRING] [--list]

--root takes the firmware and the tests from another checkout (e.g. an older commit's
worktree, to measure the score before a change of the tests). Prints one line per mutant
and the score; exits 0 (a survivor is a finding, not an error of the run).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY = ("firmware", "drivers", "host_tests", "pytest.ini")
TESTS = ("host_tests/test_session.py", "host_tests/test_session_faults.py",
         "host_tests/test_session_gates.py", "host_tests/test_session_wrap.py",
         "host_tests/test_pilot_logic.py", "host_tests/test_proximity.py")
MPY_CHECKS = ("host_tests/mpy/check_core.py", "host_tests/mpy/check_wrap.py")
TIMEOUT_S = 600

# The session logic's modules whose tick arithmetic must wrap.
TICKS_MODULES = ("watch", "offer", "rcm_test", "pilot", "session")
# Safety constants: (module, name, value); each is changed tenfold up and tenfold down.
CONSTANTS = (
    ("session", "F_HOLD_MS", 300),
    ("session", "STOP_OPEN_MS", 6000),
    ("session", "RECLOSE_MS", 5000),
    ("session", "RECLOSE_ERROR_MS", 30000),
    ("watch", "CLOSE_FB_MS", 250),
    ("watch", "FB_DEBOUNCE_MS", 10),
    ("watch", "PP_DEBOUNCE_MS", 30),
    ("watch", "LOCK_MS", 1000),
    ("offer", "OFFER_CHANGE_MS", 5000),
    ("offer", "OC_TOLERANCE_MS", 7000),
    ("offer", "OC_PAUSE_MS", 60000),
    ("rcm_test", "RCM_TRIP_MS", 1000),
    ("rcm_test", "RCM_CLEAR_MS", 1500),
    ("rcm_test", "RCM_TEST_VALID_MS", 10000),
    ("rcm_test", "RCM_RETEST_MS", 86400000),
    ("pilot", "READY_HOLD_MS", 100),
    ("pilot", "SAFE_SAMPLES", 3),
    ("pilot", "READY_SAMPLES", 3),
)
# Named by the issue that asked for this check (issue 15): the values an audit tried.
EXTRA = (("rcm_test", "RCM_TEST_VALID_MS", 600000),)


BASELINE = "unmutated"


def _path(mod):
    return "firmware/charge/%s.py" % mod


def subtract_ticks(src):
    """Every `ticks_diff(a, b)` call in `src` as `((a) - (b))`; (new source, count)."""
    out, n, i = [], 0, 0
    pat = re.compile(r"\bticks_diff\(")
    while True:
        m = pat.search(src, i)
        if m is None or src[m.start() - 1:m.start()] == ".":
            if m is None:
                out.append(src[i:])
                return "".join(out), n
            out.append(src[i:m.end()])
            i = m.end()
            continue
        if re.match(r"\s*import|.*\bimport\b", src[src.rfind("\n", 0, m.start()) + 1:m.start()]):
            out.append(src[i:m.end()])  # the import line itself
            i = m.end()
            continue
        depth, j, comma = 1, m.end(), None
        while depth:
            c = src[j]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            elif c == "," and depth == 1:
                comma = j
            j += 1
        a, b = src[m.end():comma].strip(), src[comma + 1:j - 1].strip()
        out.append(src[i:m.start()])
        out.append("((%s) - (%s))" % (a, b))
        n += 1
        i = j


def set_const(src, name, value):
    new, n = re.subn(r"^(%s = const\()[^)]*(\))" % name, r"\g<1>%d\g<2>" % value, src,
                     flags=re.M)
    return new, n


def mutants():
    """(name, file, function(source) -> (new source, number of changes))."""
    out = []
    for mod in TICKS_MODULES:
        out.append(("%s.py: ticks_diff(a, b) -> a - b" % mod, _path(mod), subtract_ticks))
    seen = set()
    for mod, name, v in CONSTANTS:
        for new in (v * 10, v // 10 if v >= 10 else v - 1):
            seen.add((name, new))
            out.append(("%s.py: %s %d -> %d" % (mod, name, v, new), _path(mod),
                        lambda s, name=name, new=new: set_const(s, name, new)))
    for mod, name, new in EXTRA:
        if (name, new) not in seen:
            out.append(("%s.py: %s -> %d" % (mod, name, new), _path(mod),
                        lambda s, name=name, new=new: set_const(s, name, new)))
    return out


def _run(cmd, cwd, env):
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    return r.returncode, r.stdout + r.stderr


def check(root, name, path, mutate, mpy):
    """'killed (by ...)' or 'survived'."""
    tmp = tempfile.mkdtemp(prefix="wb-mutant-")
    try:
        for p in COPY:
            src = os.path.join(root, p)
            if os.path.isdir(src):
                shutil.copytree(src, os.path.join(tmp, p),
                                ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
            else:
                shutil.copy(src, os.path.join(tmp, p))
        f = os.path.join(tmp, path)
        with open(f) as fh:
            src = fh.read()
        new, n = mutate(src)
        if n == 0 and name != BASELINE:
            return "not applied (nothing to change)"
        with open(f, "w") as fh:
            fh.write(new)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", WALLBOX_HYPOTHESIS="ci")
        tests = [t for t in TESTS if os.path.exists(os.path.join(tmp, t))]
        rc, out = _run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        "-p", "no:randomly"] + tests, tmp, env)
        if rc != 0:
            failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
            if failed:
                return "killed by %s" % failed[0]
            last = out.strip().splitlines()[-1:] or ["exit %s" % rc]
            return "killed by pytest (%s)" % last[0][:80]
        if mpy is None:
            return "survived (CPython tier; no micropython to run the unix-port checks)"
        env["MICROPYPATH"] = tmp + os.pathsep + ".frozen"  # asyncio is frozen in the port
        for script in MPY_CHECKS:
            if not os.path.exists(os.path.join(tmp, script)):
                continue
            rc, out = _run([mpy, script], tmp, env)
            if rc != 0 or "DONE 0 failed" not in out:
                fails = re.findall(r"^FAIL (.*)$", out, re.M)
                return "killed by %s (%s)" % (os.path.basename(script),
                                              fails[0] if fails else "exit %s" % rc)
        return "survived"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=ROOT, help="checkout to take firmware and tests from")
    ap.add_argument("-k", default="", help="only mutants whose name contains this")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = ap.parse_args()
    todo = [m for m in mutants() if args.k in m[0]]
    if args.list:
        for name, _, _ in todo:
            print(name)
        return 0
    mpy = os.path.join(os.path.dirname(sys.executable), "micropython")
    mpy = mpy if os.path.exists(mpy) else shutil.which("micropython")
    killed = 0
    t0 = time.time()
    root = os.path.abspath(args.root)
    res = check(root, BASELINE, _path("session"), lambda s: (s, 0), mpy)
    if res != "survived":
        print("the unmutated tree fails its own tests: %s" % res)
        return 1
    for name, path, mutate in todo:
        res = check(root, name, path, mutate, mpy)
        killed += res.startswith("killed")
        print("%-48s %s" % (name, res), flush=True)
    n = len(todo)
    print("safety mutants: %d killed / %d (%.1f %%), %d s" % (
        killed, n, 100.0 * killed / n if n else 0, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
