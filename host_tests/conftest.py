# CPython stand-ins for the MicroPython-only names the pure logic uses, and the repo root
# on sys.path so `firmware`, `drivers` and `boards` import as on the device.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools import mpshim  # noqa: E402,F401 (micropython and const on CPython)

# Property tests. `make test` (CI) uses the "ci" profile: derandomized, so every run draws
# the same examples, and no example database is written into the clone; no per-example
# deadline (shared CI machines say nothing about correctness by their timing). `make fuzz`
# uses "fuzz": random examples, many more of them, a database under build/ that replays
# what it found. A property that once failed keeps that case as an @example in its test.
# Tests do not set max_examples themselves (the profile decides), only `examples(k)` to
# weigh a slow or a cheap test against the profile's count.
import pytest  # noqa: E402
from hypothesis import Phase, settings  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

set_hypothesis_home_dir(os.path.join(ROOT, "build", "hypothesis"))  # never .hypothesis/
settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          print_blob=True, max_examples=200)
settings.register_profile(
    "fuzz", derandomize=False, deadline=None, print_blob=True, max_examples=5000,
    database=DirectoryBasedExampleDatabase(os.path.join(ROOT, "build", "hypothesis")))
# `make mutants` runs the tests once per mutant: "ci" with few examples (still derandomized, so
# the score is the same on every run) and no shrinking (a failure is all a kill needs).
settings.register_profile("mutants", parent=settings.get_profile("ci"), max_examples=20,
                          phases=(Phase.explicit, Phase.generate))
settings.load_profile(os.environ.get("WALLBOX_HYPOTHESIS", "ci"))


@pytest.fixture(autouse=True)
def _no_simulator_left_running():
    """A simulator the test (or its function-scoped fixtures) started and did not stop is
    stopped here and the test errors, naming it: left running it would load the CPU of every
    test after it (their timings are on the device clock, but a starved process is slow)."""
    simlib = sys.modules.get("simlib")
    before = set(simlib.LIVE) if simlib is not None else set()
    yield
    simlib = sys.modules.get("simlib")
    if simlib is None:
        return
    left = [s for s in simlib.LIVE - before if s.proc is not None and s.proc.poll() is None]
    for s in left:
        s.proc.kill()
        s.stop(timeout=5)
    assert not left, "the test left %d simulator(s) running (%s)" % (
        len(left), ", ".join(s.dir for s in left))


@pytest.fixture(autouse=True)
def _persist_globals_restored():
    """firmware.persist's process-wide state (how the last boot ended, the board's flash gate)
    as it was before the test: a test that boots an app leaves restart_reason set, and with
    two workers the next file in the same process took a power cut for a reboot
    (test_flashgate: Stop reason Reboot, not PowerLoss)."""
    p = sys.modules.get("firmware.persist")
    saved = (p.restart_reason, p._gate) if p is not None else None
    yield
    p = sys.modules.get("firmware.persist")
    if p is not None:
        p.restart_reason, p._gate = saved if saved is not None else (None, None)
