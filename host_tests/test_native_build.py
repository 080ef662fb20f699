"""The C core under -fsanitize=address,undefined on exact-size heap buffers (against the
twins), and the -Wall -Werror cross-compile for Cortex-M4 with its size report."""

import random
import shutil
import subprocess
from array import array

import pytest

from drivers import kernels_twin as k
from host_tests import native_helpers as h


def _pilot_req(x, off, uv, rate, nout):
    return "P %d %d %d %d %d %s" % (off, uv, rate, nout, len(x), " ".join(map(str, x)))


def _ac_req(x, off, uu, rate, phases, nout):
    return "A %d %d %d %d %d %d %s" % (off, uu, rate, phases, nout, len(x),
                                       " ".join(map(str, x)))  # fmt: skip


def _twin(fn, x, nout, *args):
    out = array("i", [0] * nout)
    try:
        fn(array("H", x), out, *args)
    except ValueError as e:
        return [e.args[0]]
    return [0] + list(out)


def _cases():
    rnd = random.Random(61851)
    reqs, want = [], []

    def pilot(x, off=h.CP_OFFSET_MV, uv=h.CP_UV_PER_CODE, rate=h.CP_RATE_HZ, nout=4):
        reqs.append(_pilot_req(x, off, uv, rate, nout))
        want.append(_twin(k.py_pilot_burst, x, nout, off, uv, rate))

    def ac(x, off=2048, uu=1000, rate=4000, phases=1, nout=None):
        nout = 4 * phases if nout is None else nout
        reqs.append(_ac_req(x, off, uu, rate, phases, nout))
        want.append(_twin(lambda s, o, *a: k.py_ac_measure(s, o, *a), x, nout, off, uu, rate,
                          phases))  # fmt: skip

    for name, x, *_ in h.pilot_vectors():
        pilot(x, rate=1000000 if name == "fast-1M" else h.CP_RATE_HZ)
    for n in (0, 1, 2, 3, 4, 7, 65535, 65536):
        pilot([rnd.randrange(65536) for _ in range(n)])
        ac([rnd.randrange(4096) for _ in range(n)])
    for _ in range(300):
        n = rnd.randrange(1, 400)
        x = [rnd.choice((rnd.randrange(65536), 0, 65535, 3000, 500)) for _ in range(n)]
        pilot(x, rnd.randrange(-20000, 20000), rnd.randrange(1, 20000),
              rnd.choice((1, 1000, 100000, 1000000)), rnd.randrange(3, 6))  # fmt: skip
        ac(x, rnd.randrange(65536), rnd.randrange(1, 1000000), rnd.randrange(1, 1000001),
           rnd.randrange(1, 9), rnd.randrange(0, 40))  # fmt: skip
    for duty in (0.05, 0.5, 0.96):
        pilot(h.pilot_wave(12000, -12000, duty, n=5000, rate=1000000, spikes=50), rate=1000000)
    ac(h.ac_wave(2047, n=3000, phases=3, noise=5.0), phases=3)
    ac([0, 65535] * 20000, off=0, uu=1000000, rate=1000000)  # the widest sums
    for n in (0, 1, 3, 4, 5, 63, 64, 65, 4096):
        data = bytes(rnd.randrange(256) for _ in range(n))
        reqs.append("C %d %s" % (n, " ".join(map(str, data))))
        want.append([k.py_crc16_modbus(data)])
        key = bytes(rnd.randrange(256) for _ in range(4))
        for align in range(4):
            off = rnd.randrange(8)
            reqs.append("M %d %d %d %s %s" % (off, align, n, " ".join(map(str, key)),
                                              " ".join(map(str, data))))  # fmt: skip
            buf = bytearray(data)
            nxt = k.py_ws_mask(buf, key, off)
            want.append([nxt] + list(buf))
    return reqs, want


def test_core_under_address_and_undefined_sanitizers_matches_twins():
    drv = h.sanitizer_driver()
    reqs, want = _cases()
    r = subprocess.run([drv], input="\n".join(reqs) + "\n", capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr
    got = r.stdout.splitlines()
    assert len(got) == len(want)
    for req, line, w in zip(reqs, got, want):
        vals = [int(v) for v in line.split()]
        if isinstance(w[0], str):  # an error: the core's code maps to the twin's message
            assert h.ERRORS[vals[0]][1] == w[0], req[:80]
        else:
            assert vals == w, req[:80]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="arm-none-eabi-gcc missing: tools/setup.sh --cross installs it")
def test_core_cross_compiles_for_cortex_m4_without_warnings(tmp_path, capsys):
    obj, size = h.cross_compile_m4(str(tmp_path))
    with capsys.disabled():
        print("\nwbk_core.c for Cortex-M4 (arm-none-eabi-gcc -Os -Wall -Wextra -Werror):")
        print(size.rstrip())
    text = int(size.splitlines()[1].split()[0])
    bss = int(size.splitlines()[1].split()[2])
    assert bss == 0  # natmods can't have static BSS
    assert text < 4096
