"""The kernels on the real MicroPython unix port: the bytecode and viper twins, and (with
MPY_DIR set) the x64 natmod built by `make natmod`, all against the CPython twins on the same
vectors, each call under micropython.heap_lock(), and the same errors for bad input."""

import os
from array import array

import pytest

from drivers import kernels_twin as k
from host_tests import native_helpers as h

# Runs on micropython: request JSON on stdin, one JSON line per implementation out.
MP_RUN = r"""
import sys, json, micropython
from array import array
from drivers import kernels, kernels_twin as k
req = json.loads(sys.stdin.read())
impls = [("python", k.py_pilot_burst, k.py_ac_measure, k.py_crc16_modbus, k.py_ws_mask)]
if k.VIPER:
    impls.append(("viper", k.vp_pilot_burst, k.py_ac_measure, k.vp_crc16_modbus, k.vp_ws_mask))
if req["natmod"]:
    sys.path.insert(0, req["natmod"])
    import wbkernels as n
    impls.append(("natmod", n.pilot_burst, n.ac_measure, n.crc16_modbus, n.ws_mask))

def locked(f):
    f()  # once unlocked: the twins note each array's typecode on first sight
    micropython.heap_lock()
    try:
        r = f()  # (a call with *args would allocate by itself)
        alloc = False
    except MemoryError:
        r = None
        alloc = True
    micropython.heap_unlock()
    return r, alloc

def err(f, *args):
    try:
        f(*args)
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None

H1 = array("H", [1, 2, 3])
O4 = array("i", bytes(16))
for name, pb, am, crc, mask in impls:
    res = {"impl": name, "pilot": [], "ac": [], "crc": [], "mask": [], "alloc": []}
    for x, off, uv, rate in req["pilot"]:
        x = array("H", x)
        o = array("i", bytes(16))
        res["alloc"].append(locked(lambda: pb(x, o, off, uv, rate))[1])
        res["pilot"].append(list(o))
    for x, off, uu, rate, ph in req["ac"]:
        x = array("H", x)
        o = array("i", bytes(16 * ph))
        res["alloc"].append(locked(lambda: am(x, o, off, uu, rate, ph))[1])
        res["ac"].append(list(o))
    for data in req["crc"]:
        b = bytearray(data)
        c, a = locked(lambda: crc(b))
        res["alloc"].append(a)
        res["crc"].append(c)
    for data, key, off in req["mask"]:
        b = bytearray(data)
        key = bytes(key)
        nxt = mask(b, key, off)
        res["alloc"].append(locked(lambda: mask(b, key, off))[1])  # two more: odd = masked
        res["mask"].append([nxt, list(b)])
    res["errors"] = [
        err(pb, b"\x00\x01", O4, 0, 1000, 1000),
        err(pb, [1, 2], O4, 0, 1000, 1000),
        err(pb, array("h", [1]), O4, 0, 1000, 1000),
        err(pb, H1, array("H", [0] * 4), 0, 1000, 1000),
        err(pb, H1, bytearray(16), 0, 1000, 1000),
        err(pb, array("H"), O4, 0, 1000, 1000),
        err(pb, H1, array("i", bytes(12)), 0, 1000, 1000),
        err(pb, H1, O4, 2000000, 1000, 1000),
        err(pb, H1, O4, 0, 0, 1000),
        err(pb, H1, O4, 0, 1000, 0),
        err(pb, H1, O4, 0, 1000, 2000000),
        err(pb, H1, O4, 0, 1000.0, 1000),
        err(pb, array("H", bytes(131072)), O4, 0, 1000, 1000),
        err(am, H1, O4, 0, 1000, 1000, 2),
        err(am, H1, O4, 0, 1000, 1000, 0),
        err(am, array("H", bytes(12)), O4, 0, 1000, 1000, 3),
        err(am, H1, O4, -1, 1000, 1000),
        err(am, H1, O4, 0, 1000001, 1000),
        err(am, array("H"), O4, 0, 1000, 1000),
        err(crc, "123"),
        err(crc, H1),
        err(crc, b"123", 4),
        err(crc, b"123", -1),
        err(mask, b"123", b"abcd"),
        err(mask, bytearray(3), b"abc"),
        err(mask, bytearray(3), 1234),
        err(mask, bytearray(3), b"abcd", -1),
    ]
    print(json.dumps(res))
picked = kernels.IMPL
kernels.use("viper")
print(json.dumps(["USE", kernels.IMPL, kernels.pilot_burst is k.vp_pilot_burst
                  and kernels.reflex_step is k.py_reflex_step]))
print(json.dumps(["IMPL", picked]))
"""


def _request():
    pilot = [[x, h.CP_OFFSET_MV, h.CP_UV_PER_CODE, 1000000 if name == "fast-1M" else 100000]
             for name, x, *_ in h.pilot_vectors()]  # fmt: skip
    pilot += [[[7] * n, 0, 1000, 1000] for n in (1, 2, 3)]
    ac = [[h.ac_wave(1000), 2048, 10000, 4000, 1],
          [h.ac_wave(700, n=300, phases=3, dc=300.0, noise=3.0), 2048, 1000, 3000, 3],
          [h.ac_wave(3, n=100, noise=2.0), 2048, 1000, 4000, 1]]  # fmt: skip
    crc = [[1, 4, 0, 0, 0, 2], list(b"123456789"), [], list(range(256)) * 4]
    mask = [[list(range(256)) * 16, [0x12, 0x34, 0x56, 0x78], 0],
            [list(range(13)), [1, 2, 3, 4], 3], [[], [1, 2, 3, 4], 5]]  # fmt: skip
    return {"pilot": pilot, "ac": ac, "crc": crc, "mask": mask}


def _expected(req):
    exp = {"pilot": [], "ac": [], "crc": [], "mask": []}
    for x, off, uv, rate in req["pilot"]:
        o = array("i", [0] * 4)
        k.py_pilot_burst(array("H", x), o, off, uv, rate)
        exp["pilot"].append(list(o))
    for x, off, uu, rate, ph in req["ac"]:
        o = array("i", [0] * 4 * ph)
        k.py_ac_measure(array("H", x), o, off, uu, rate, ph)
        exp["ac"].append(list(o))
    exp["crc"] = [k.py_crc16_modbus(bytes(d)) for d in req["crc"]]
    for data, key, off in req["mask"]:
        b = bytearray(data)
        nxt = k.py_ws_mask(b, bytes(key), off)
        exp["mask"].append([nxt, list(b)])
    return exp


def _run(natmod_dir=None):
    req = _request()
    req["natmod"] = natmod_dir
    lines = h.run_micropython(MP_RUN, req)
    return req, {r["impl"]: r for r in lines if isinstance(r, dict)}, lines[-1]


@pytest.fixture(scope="module")
def twins_run():
    return _run()


def test_twins_on_micropython_equal_cpython_and_do_not_allocate(twins_run):
    req, got, _ = twins_run
    assert set(got) >= {"python", "viper"}
    exp = _expected(req)
    for name, res in got.items():
        for kind in ("pilot", "ac", "crc", "mask"):
            assert res[kind] == exp[kind], (name, kind)
        assert not any(res["alloc"]), (name, res["alloc"])


def test_loader_can_switch_to_the_viper_twins(twins_run):
    req = _request()
    req["natmod"] = None
    lines = h.run_micropython(MP_RUN, req)
    assert lines[-2] == ["USE", "viper", True]
    assert lines[-1][1] in ("viper", "natmod x64")  # natmod when dist/ has one


def test_twins_on_micropython_raise_the_cpython_errors(twins_run):
    _, got, _ = twins_run
    py, vp = got["python"]["errors"], got["viper"]["errors"]
    assert None not in py
    assert py == vp
    assert py[0] == ["TypeError", "samples must be array('H')"]
    assert py[5] == ["ValueError", "samples is empty"]


@pytest.fixture(scope="module")
def natmod_run():
    if h.mpy_dir() is None:
        pytest.skip(h.NO_MPY_DIR)
    path = h.build_x64_natmod()
    assert os.path.getsize(path) > 0
    return _run(os.path.dirname(path))


def test_natmod_equals_twins_on_the_same_vectors_without_allocating(natmod_run):
    req, got, _ = natmod_run
    exp = _expected(req)
    nat = got["natmod"]
    for kind in ("pilot", "ac", "crc", "mask"):
        assert nat[kind] == exp[kind], kind
    assert not any(nat["alloc"]), nat["alloc"]


def test_natmod_bad_input_errors_match_the_twins(natmod_run):
    _, got, _ = natmod_run
    nat, py = got["natmod"]["errors"], got["python"]["errors"]
    for i, (a, b) in enumerate(zip(nat, py)):
        assert a is not None and a[0] == b[0], (i, a, b)
        if "convert" not in a[1]:  # int conversion messages are MicroPython's own
            assert a[1] == b[1], (i, a, b)


def test_loader_picks_the_natmod_for_this_abi(natmod_run):
    _, _, impl = natmod_run
    assert impl == ["IMPL", "natmod x64"]
