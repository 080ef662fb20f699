"""reflex_step, the contactor-open decision that runs outside the scheduler: each rule and
threshold on the C core (ctypes) and the twin, C == twin on hypothesis step sequences with
int32 extremes, the core under the sanitizers, and on the unix port the twin under
heap_lock() and (with MPY_DIR) the natmod equal to the twin."""

import os
import random
import re
import subprocess
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from drivers import kernels
from drivers import kernels_twin as k
from host_tests import native_helpers as h

LIB = h.CoreLib()
I32_MIN, I32_MAX = h.I32_MIN, h.I32_MAX
ARMED, LIMIT, BAD, WHY = range(4)
PILOT, RCM, BEAT = k.REFLEX_PILOT, k.REFLEX_RCM, k.REFLEX_BEAT
OK_MV = 6000  # state C


def c_step(st, high_mv, rcm, beat_age_ms):
    """The core as the binding calls it: the same exception for a short st."""
    r = LIB.reflex_step(st, high_mv, rcm, beat_age_ms)
    if r < 0:
        exc, msg = h.ERRORS[-r]
        raise exc(msg)
    return r


IMPLS = {"twin": k.py_reflex_step, "c": c_step}


@pytest.fixture(params=sorted(IMPLS))
def step(request):
    return IMPLS[request.param]


def armed(limit=100, bad=0, why=0):
    return array("i", [1, limit, bad, why])


# -- the rules, one by one ------------------------------------------------------------------


def test_disarmed_never_fires_and_clears_the_bad_count(step):
    st = array("i", [0, 100, 1, 7])
    assert step(st, -12000, 1, I32_MAX) == 0
    assert list(st) == [0, 100, 0, 7]  # WHY is the caller's to clear


def test_rcm_fires_at_once_and_disarms(step):
    st = armed()
    assert step(st, OK_MV, 1, 0) == RCM
    assert list(st) == [0, 100, 0, RCM]


def test_rcm_wins_over_pilot_and_heartbeat(step):
    st = armed(bad=1)
    assert step(st, -12000, 1, 10**6) == RCM
    assert list(st) == [0, 100, 0, RCM]


@pytest.mark.parametrize("mv, inside", [
    (1999, False), (2000, True), (3000, True), (4500, True), (6000, True), (7500, True),
    (7999, True), (8000, False), (9000, False), (12000, False), (0, False), (-12000, False),
])  # fmt: skip
def test_pilot_window_edges(step, mv, inside):
    st = armed()
    assert step(st, mv, 0, 0) == 0  # one sample never fires
    assert st[BAD] == (0 if inside else 1)
    assert step(st, mv, 0, 0) == (0 if inside else PILOT)
    assert list(st) == ([1, 100, 0, 0] if inside else [0, 100, 0, PILOT])


def test_one_bad_sample_is_not_enough_two_in_a_row_are(step):
    st = armed()
    assert step(st, 9000, 0, 0) == 0 and list(st) == [1, 100, 1, 0]
    assert step(st, 9000, 0, 0) == PILOT and list(st) == [0, 100, 0, PILOT]


def test_a_good_sample_resets_the_count(step):
    st = armed()
    for mv in (9000, 6000, 9000, 3000, 12000, 7999):
        assert step(st, mv, 0, 0) == 0
    assert list(st) == [1, 100, 0, 0]
    assert step(st, 0, 0, 0) == 0
    assert step(st, 0, 0, 0) == PILOT


def test_heartbeat_at_the_limit_keeps_closed_one_ms_later_fires(step):
    st = armed(limit=100)
    assert step(st, OK_MV, 0, 100) == 0 and list(st) == [1, 100, 0, 0]
    assert step(st, OK_MV, 0, 101) == BEAT and list(st) == [0, 100, 0, BEAT]


def test_pilot_wins_over_heartbeat_and_a_single_bad_sample_does_not(step):
    st = armed(bad=1)
    assert step(st, 9000, 0, 10**6) == PILOT
    st = armed()
    assert step(st, 9000, 0, 101) == BEAT and list(st) == [0, 100, 0, BEAT]


def test_fired_stays_open_until_rearmed_and_why_stays_latched(step):
    st = armed()
    assert step(st, OK_MV, 0, 500) == BEAT
    assert step(st, OK_MV, 1, 500) == 0 and list(st) == [0, 100, 0, BEAT]
    st[ARMED] = 1
    assert step(st, OK_MV, 0, 50) == 0 and st[WHY] == BEAT
    assert step(st, OK_MV, 1, 50) == RCM and st[WHY] == RCM


@pytest.mark.parametrize("bad, fires", [(-7, False), (0, False), (1, True), (254, True),
                                        (255, True), (I32_MAX, True)])  # fmt: skip
def test_bad_count_saturates_and_a_negative_one_counts_as_zero(step, bad, fires):
    st = armed(bad=bad)
    assert step(st, 9000, 0, 0) == (PILOT if fires else 0)
    assert st[BAD] == (0 if fires else 1)


def test_beyond_int32_saturates_never_wraps(step):
    st = armed()
    assert step(st, OK_MV, 0, 1 << 32) == BEAT  # wrapped: 0
    st = armed()
    assert step(st, OK_MV, 1 << 32, 0) == RCM  # wrapped: 0, no fault
    st = armed()
    assert step(st, -(1 << 40) + 6000, 0, 0) == 0 and st[BAD] == 1  # wrapped: 6000, good
    assert step(st, 1 << 63, 0, 0) == PILOT
    st = armed(limit=I32_MAX)  # an age saturates at INT32_MAX: this limit never fires
    assert step(st, OK_MV, 0, 1 << 80) == 0
    st = armed(limit=I32_MAX - 1)
    assert step(st, OK_MV, 0, 1 << 80) == BEAT


def test_the_states_of_a_real_pilot_burst():
    """The high plateau pilot_burst reads: C and D keep the contactor closed; A (unplugged),
    B (EV paused), E (short), F and the +12 V of x1 open it on the second burst."""
    want = {"stateA": PILOT, "stateB": PILOT, "stateC": 0, "stateD": 0, "stateE": PILOT,
            "x1": PILOT, "F": PILOT, "pwmC-533": 0, "pwmB-533": PILOT}  # fmt: skip
    seen = set()
    for name, x, *_ in h.pilot_vectors():
        if name not in want:
            continue
        out = array("i", [0] * 4)
        k.py_pilot_burst(array("H", x), out, h.CP_OFFSET_MV, h.CP_UV_PER_CODE, h.CP_RATE_HZ)
        for impl in IMPLS.values():
            st = armed()
            first, second = impl(st, out[0], 0, 5), impl(st, out[0], 0, 5)
            assert first == 0 and second == want[name], (name, out[0])
        seen.add(name)
    assert seen == set(want)


@pytest.mark.parametrize("st, exc, msg", [
    (array("H", [1, 100, 0, 0]), TypeError, "st must be array\\('i'\\)"),
    (bytearray(16), TypeError, "st must be array\\('i'\\)"),
    ([1, 100, 0, 0], TypeError, "st must be array\\('i'\\)"),
    (array("i", [1, 100, 0]), ValueError, "st too short"),
    (array("i"), ValueError, "st too short"),
])  # fmt: skip
def test_bad_state_raises_with_the_message(st, exc, msg):
    with pytest.raises(exc, match=msg):
        k.py_reflex_step(st, OK_MV, 1, 0)
    if exc is ValueError:  # the core refuses it without touching st
        with pytest.raises(exc, match=msg):
            c_step(st, OK_MV, 1, 0)
        assert list(st) == [1, 100, 0][: len(st)]
    with pytest.raises(TypeError):
        k.py_reflex_step(array("i", [1, 100, 0, 0]), 6000.0, 0, 0)


def test_constants_agree_with_the_header_and_the_loader():
    with open(os.path.join(h.CORE_DIR, "wbk_core.h")) as f:
        defs = dict(re.findall(r"#define WBK_REFLEX_(\w+) \((\d+)\)", f.read()))
    for name in ("ST_LEN", "PILOT", "RCM", "BEAT", "SAMPLES"):
        assert int(defs[name]) == getattr(k, "REFLEX_" + name) == getattr(kernels,
                                                                          "REFLEX_" + name)
    assert (int(defs["MIN_MV"]), int(defs["MAX_MV"])) == (2000, 8000)
    assert kernels.reflex_step is k.py_reflex_step  # CPython: the bytecode twin


# -- C == twin on any sequence --------------------------------------------------------------

EDGES = [I32_MIN - 1, I32_MIN, I32_MIN + 1, -1, 0, 1, 1999, 2000, 7999, 8000, I32_MAX - 1,
         I32_MAX, I32_MAX + 1, -(1 << 70), (1 << 64) + 5, 1 << 80]  # fmt: skip


def anyint(lo=-3000, hi=13000):
    return hs.one_of(hs.sampled_from(EDGES), hs.integers(I32_MIN, I32_MAX),
                     hs.integers(lo, hi))  # fmt: skip


I32 = hs.one_of(hs.sampled_from([I32_MIN, -1, 0, 1, 2, 254, 255, I32_MAX]),
                hs.integers(I32_MIN, I32_MAX), hs.integers(-3, 300))  # fmt: skip
STEPS = hs.lists(hs.tuples(hs.sampled_from([0, 0, 0, 1, 2]), anyint(), anyint(-2, 2),
                           anyint(0, 300)), max_size=40)  # fmt: skip


def run_steps(impl, st0, steps):
    """Runs a sequence as the runtime would: rearm 1 closes again, 2 also clears WHY."""
    st = array("i", st0)
    trace = []
    for rearm, mv, rcm, age in steps:
        if rearm:
            st[ARMED] = 1
            if rearm == 2:
                st[WHY] = 0
        trace.append((impl(st, mv, rcm, age), list(st)))
    return trace


@settings(max_examples=500)
@given(hs.lists(I32, min_size=4, max_size=6), STEPS)
def test_any_sequence_c_equals_twin(st0, steps):
    assert run_steps(c_step, st0, steps) == run_steps(k.py_reflex_step, st0, steps)


@settings(max_examples=300)
@given(hs.integers(1, 10**6), STEPS)
def test_any_sequence_keeps_the_state_consistent(limit, steps):
    for why, st in run_steps(k.py_reflex_step, [1, limit, 0, 0], steps):
        assert st[LIMIT] == limit and 0 <= st[BAD] < k.REFLEX_SAMPLES
        if why:
            assert st[ARMED] == 0 and st[BAD] == 0 and st[WHY] == why


def _random_steps(seed, n):
    rnd = random.Random(seed)
    pick = [-12000, 0, 1999, 2000, 3000, 6000, 7999, 8000, 9000, 12000, I32_MIN, I32_MAX]
    steps = []
    for _ in range(n):
        mv = rnd.choice(pick + [rnd.randrange(-13000, 13000), rnd.choice(EDGES)])
        rcm = 1 if rnd.random() < 0.03 else rnd.choice([0] * 30 + [1 << 32, -1])
        age = rnd.choice([rnd.randrange(0, 150), 100, 101, rnd.choice(EDGES)])
        steps.append((rnd.choice([0] * 6 + [1, 2]), mv, rcm, age))
    return steps


def test_core_under_sanitizers_on_exact_size_state_equals_twin():
    rnd = random.Random(1851)
    reqs, want = [], []
    for n in range(7):
        for rearm, mv, rcm, age in _random_steps(n, 150):
            st0 = [rnd.choice([0, 1, 1, 1]), rnd.choice([100, I32_MAX, 0]),
                   rnd.choice([0, 1, 255, -3]), rnd.randrange(4)][:n] + [9] * (n - 4)
            args = [h.sat32(v) for v in (mv, rcm, age)]
            reqs.append("R %d %s %d %d %d" % (n, " ".join(map(str, st0)), *args))
            st = array("i", st0)
            try:
                r = k.py_reflex_step(st, mv, rcm, age)
            except ValueError:
                r = -10
            want.append([r] + list(st))
    r = subprocess.run([h.sanitizer_driver()], input="\n".join(reqs) + "\n",
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr
    got = [[int(v) for v in line.split()] for line in r.stdout.splitlines()]
    assert got == want


# -- on the unix port -----------------------------------------------------------------------

MP_RUN = r"""
import sys, json, micropython
from array import array
from drivers import kernels, kernels_twin as k
req = json.loads(sys.stdin.read())
impls = [("python", k.py_reflex_step)]
if req["natmod"]:
    sys.path.insert(0, req["natmod"])
    import wbkernels as n
    impls.append(("natmod", n.reflex_step))

def err(f, *args):
    try:
        f(*args)
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None

for name, rs in impls:
    st = array("i", req["st0"])
    st[0] = 0
    rs(st, 6000, 0, 0)  # the twin notes st's typecode (allocates once), st as it was
    st[0] = req["st0"][0]
    trace = []
    alloc = 0
    for rearm, mv, rcm, age in req["steps"]:
        if rearm:
            st[0] = 1
            if rearm == 2:
                st[3] = 0
        micropython.heap_lock()
        try:
            r = rs(st, mv, rcm, age)
        except MemoryError:
            r = None
            alloc += 1
        micropython.heap_unlock()
        trace.append([r, list(st)])
    O4 = array("i", [1, 100, 0, 0])
    errors = [
        err(rs, array("H", [1, 100, 0, 0]), 6000, 0, 0),
        err(rs, bytearray(16), 6000, 0, 0),
        err(rs, [1, 100, 0, 0], 6000, 0, 0),
        err(rs, array("i", [1, 100, 0]), 6000, 0, 0),
        err(rs, array("i"), 6000, 0, 0),
        err(rs, O4, 6000.0, 0, 0),
        err(rs, O4, 6000, None, 0),
    ]
    print(json.dumps({"impl": name, "trace": trace, "alloc": alloc, "errors": errors}))
bound = []
for impl in ("python", "viper", "native"):
    try:
        kernels.use(impl)
    except ValueError:
        continue
    bound.append([impl, kernels.IMPL, kernels.reflex_step is k.py_reflex_step])
consts = [kernels.REFLEX_ST_LEN, kernels.REFLEX_PILOT, kernels.REFLEX_RCM, kernels.REFLEX_BEAT,
          k.REFLEX_ST_LEN, k.REFLEX_PILOT, k.REFLEX_RCM, k.REFLEX_BEAT]
print(json.dumps(["BOUND", bound, consts]))
"""

ST0 = [1, 100, 0, 0]


def _run(natmod_dir=None):
    steps = _random_steps(61851, 600)
    lines = h.run_micropython(MP_RUN, {"st0": ST0, "steps": steps, "natmod": natmod_dir})
    got = {r["impl"]: r for r in lines if isinstance(r, dict)}
    expected = [list(t) for t in run_steps(k.py_reflex_step, ST0, steps)]
    assert [list(t) for t in run_steps(c_step, ST0, steps)] == expected
    assert sum(1 for why, _ in expected if why) > 20  # the sequence does fire, often
    return got, expected, lines[-1]


@pytest.fixture(scope="module")
def twin_run():
    return _run()


def test_twin_on_micropython_equals_cpython_under_heap_lock(twin_run):
    got, expected, _ = twin_run
    py = got["python"]
    assert py["alloc"] == 0
    assert py["trace"] == expected


def test_twin_on_micropython_raises_the_cpython_errors(twin_run):
    err = twin_run[0]["python"]["errors"]
    assert err[:5] == [["TypeError", "st must be array('i')"]] * 3 + [
        ["ValueError", "st too short"]] * 2  # fmt: skip
    assert err[5][0] == err[6][0] == "TypeError"


def test_loader_binds_the_twin_for_python_and_viper(twin_run):
    _, _, (tag, bound, consts) = twin_run
    assert tag == "BOUND"
    assert ["python", "python", True] in bound and ["viper", "viper", True] in bound
    assert consts == [4, 1, 2, 3] * 2


@pytest.fixture(scope="module")
def natmod_run():
    if h.mpy_dir() is None:
        pytest.skip(h.NO_MPY_DIR)
    return _run(os.path.dirname(h.build_x64_natmod()))


def test_natmod_equals_twin_under_heap_lock(natmod_run):
    got, expected, (_, bound, _) = natmod_run
    nat = got["natmod"]
    assert nat["alloc"] == 0
    assert nat["trace"] == expected
    assert ["native", "natmod x64", False] in bound


def test_natmod_raises_the_twins_errors(natmod_run):
    got, _, _ = natmod_run
    nat, py = got["natmod"]["errors"], got["python"]["errors"]
    for a, b in zip(nat, py):
        assert a is not None and a[0] == b[0], (a, b)
        if "convert" not in a[1]:  # int conversion messages are MicroPython's own
            assert a == b
