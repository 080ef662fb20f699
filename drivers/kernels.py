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
pilot_burst = ac_measure = crc16_modbus = ws_mask = reflex_step = None

# reflex_step(st, high_mv, rcm, beat_age_ms): st items and the reasons it returns (the same
# as kernels_twin.REFLEX_* and WBK_REFLEX_* in wbk_core.h; docs/native.md)
REFLEX_ST_LEN = 4  # st: ARMED, BEAT_LIMIT_MS, BAD, WHY
REFLEX_PILOT = 1  # pilot high plateau left the C/D window
REFLEX_RCM = 2  # residual-current monitor tripped
REFLEX_BEAT = 3  # charge controller's heartbeat lost
REFLEX_SAMPLES = 2  # consecutive bad pilot samples that fire


def abi():
    """(arch, 'major.sub') of this MicroPython's native code, e.g. ('x64', '6.3')."""
    v = getattr(sys.implementation, "_mpy", 0)
    a = v >> 10 & 0x3F  # bits 16 and up: the RV32 extensions the port emits (Zba, Zcmp)
    return (_MPY_ARCHS[a] if a < len(_MPY_ARCHS) else None), "%d.%d" % (v & 0xFF, v >> 8 & 3)


# A Thumb-2 core loads natmods of its own arch and every ARM one below it (py/persistentcode.h,
# MPY_FEATURE_ARCH_TEST); one without an FPU reports armv7em, for which make natmod builds
# nothing: a Cortex-M3 runs the armv7m natmod.
_ARM_ARCHS = ("armv7emdp", "armv7emsp", "armv7em", "armv7m", "armv6m")


def natmod_archs(arch):
    """The natmod archs this machine can run, its own first."""
    if arch in _ARM_ARCHS:
        return _ARM_ARCHS[_ARM_ARCHS.index(arch):]
    return (arch,)


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
    for a in natmod_archs(arch):
        path = here + "/../dist/%s_%s" % (a, ver)  # make natmod's output, as deploy copies it
        sys.path.insert(0, path)
        try:
            import wbkernels

            return wbkernels
        except (ImportError, ValueError):
            pass
        finally:
            sys.path.remove(path)
    return None


def use(impl):
    """Bind the public kernels to "native", "viper" or "python" (tests, bench, diag)."""
    global IMPL, pilot_burst, ac_measure, crc16_modbus, ws_mask, reflex_step
    if impl == "native":
        if native is None:
            raise ValueError("no wbkernels natmod for %s %s" % abi())
        m = native
        pilot_burst, ac_measure, crc16_modbus, ws_mask, reflex_step = (
            m.pilot_burst, m.ac_measure, m.crc16_modbus, m.ws_mask, m.reflex_step)  # fmt: skip
        kind = "natmod" if hasattr(m, "__file__") else "cmodule"  # .mpy, or built in
        IMPL = "%s %s" % (kind, abi()[0])
        return
    from drivers import kernels_twin as t

    if impl == "viper" and t.VIPER:
        pilot_burst, crc16_modbus, ws_mask = t.vp_pilot_burst, t.vp_crc16_modbus, t.vp_ws_mask
        ac_measure = t.py_ac_measure  # no viper version: its sums outgrow a 32-bit word
        reflex_step = t.py_reflex_step  # no sample loop: the bytecode twin
    elif impl == "python":
        pilot_burst, crc16_modbus, ws_mask = t.py_pilot_burst, t.py_crc16_modbus, t.py_ws_mask
        ac_measure, reflex_step = t.py_ac_measure, t.py_reflex_step
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
