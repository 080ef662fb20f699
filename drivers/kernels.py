# Timing-critical kernels: the native module `wbkernels` (natmod .mpy or built into the
# firmware) when one matches this MicroPython, else the Python twins (drivers/kernels_twin.py,
# viper where the port has it), which give bit-identical results. The drivers call
# kernels.pilot_burst(...) etc.; IMPL says which one runs (diag). Algorithms, units, the
# build: docs/native.md. The twins are only imported when the natmod is missing.
import sys

_MPY_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")  # fmt: skip

native = None  # the wbkernels module once loaded
IMPL = "python"
pilot_burst = ac_measure = crc16_modbus = ws_mask = None


def abi():
    """(arch, 'major.sub') of this MicroPython's native code, e.g. ('x64', '6.3')."""
    v = getattr(sys.implementation, "_mpy", 0)
    a = v >> 10
    return (_MPY_ARCHS[a] if a < len(_MPY_ARCHS) else None), "%d.%d" % (v & 0xFF, v >> 8 & 3)


def _load_native():
    arch, ver = abi()
    if arch is None:  # CPython, or a port without native code
        return None
    try:
        import wbkernels  # user C module, or wbkernels.mpy on sys.path (e.g. /lib)

        return wbkernels
    except (ImportError, ValueError):  # absent, or an .mpy of another arch/version
        pass
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    path = here + "/../dist/%s_%s" % (arch, ver)  # make natmod's output, as make deploy copies
    sys.path.insert(0, path)
    try:
        import wbkernels

        return wbkernels
    except (ImportError, ValueError):
        return None
    finally:
        sys.path.remove(path)


def use(impl):
    """Bind the public kernels to "native", "viper" or "python" (tests, bench, diag)."""
    global IMPL, pilot_burst, ac_measure, crc16_modbus, ws_mask
    if impl == "native":
        if native is None:
            raise ValueError("no wbkernels natmod for %s %s" % abi())
        m = native
        pilot_burst, ac_measure, crc16_modbus, ws_mask = (
            m.pilot_burst, m.ac_measure, m.crc16_modbus, m.ws_mask)  # fmt: skip
        kind = "natmod" if hasattr(m, "__file__") else "cmodule"  # .mpy, or built in
        IMPL = "%s %s" % (kind, abi()[0])
        return
    from drivers import kernels_twin as t

    if impl == "viper" and t.VIPER:
        pilot_burst, crc16_modbus, ws_mask = t.vp_pilot_burst, t.vp_crc16_modbus, t.vp_ws_mask
        ac_measure = t.py_ac_measure  # no viper version: its sums outgrow a 32-bit word
    elif impl == "python":
        pilot_burst, crc16_modbus, ws_mask = t.py_pilot_burst, t.py_crc16_modbus, t.py_ws_mask
        ac_measure = t.py_ac_measure
    else:
        raise ValueError("kernel impl not available: %s" % impl)
    IMPL = impl


native = _load_native()
if native is not None:
    use("native")
else:
    try:
        use("viper")
    except ValueError:
        use("python")
