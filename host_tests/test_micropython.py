"""Device code on the real MicroPython unix port: every file compiles with mpy-cross, and the
scripts in host_tests/mpy/ pass (pure logic on MicroPython, heap_lock on the safety path)."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build  # noqa: E402
import simlib  # noqa: E402


def test_every_device_file_compiles_with_mpy_cross():
    files = build.device_files()
    assert len(files) > 20
    _, errors = build.compile_all(None, check=True)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("script", sorted(glob.glob(os.path.join(ROOT, "host_tests", "mpy",
                                                                 "check_*.py"))),
                         ids=os.path.basename)
def test_on_micropython(script):
    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy_dir)
    assert not errors
    env = dict(os.environ, MICROPYPATH=mpy_dir + os.pathsep + ".frozen")
    r = subprocess.run([simlib.micropython_exe(), script], capture_output=True, text=True,
                       env=env, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "DONE 0 failed" in out, out
    assert "FAIL" not in out, out


# ruff: host_tests/test_make_help.py runs `make lint` (ruff and mpy-cross).
