# CPython stand-ins for the MicroPython-only names the pure logic uses, and the repo root
# on sys.path so `firmware`, `drivers` and `boards` import as on the device.
import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

if "micropython" not in sys.modules:
    shim = types.ModuleType("micropython")
    shim.const = lambda x: x
    shim.native = shim.viper = lambda f: f
    sys.modules["micropython"] = shim

# Property tests: no per-example deadline (CI machines are shared and their timing says
# nothing about correctness); a failure prints the blob that reproduces it.
from hypothesis import settings  # noqa: E402

settings.register_profile("project", deadline=None, print_blob=True)
settings.load_profile("project")
