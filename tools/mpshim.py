"""CPython stand-ins for the MicroPython names the device code uses, for the host tests and the
tools that import firmware modules on CPython: a `micropython` module (const, native, viper)
and `const` as a builtin. Device files call const() without importing it: MicroPython's
compiler folds `NAME = const(value)` by itself, and the import would cost every module about
17 B of .mpy and a global in its dict (a frozen board's RAM)."""
import builtins
import sys
import types

if "micropython" not in sys.modules:
    _shim = sys.modules["micropython"] = types.ModuleType("micropython")
    _shim.const = lambda x: x
    _shim.native = _shim.viper = lambda f: f
if not hasattr(builtins, "const"):
    builtins.const = lambda x: x
