# The firmware frozen into a MicroPython image (docs/deploy.md, route 2): bytecode runs from
# flash and only the objects made at import and run time take heap. Included by a board's
# manifest.py (boards/<board>/manifest.py), which adds the board's own folder:
#   include("../manifest_firmware.py")
# `options.viper=False` leaves the viper twins out (a port whose mpy-cross has no -march).
import os

options.defaults(viper=True)  # noqa: F821 - manifest functions and `options`

_ROOT = os.path.dirname(os.getcwd())  # include() runs a manifest from its own folder

include("$(MPY_DIR)/extmod/asyncio")  # noqa: F821 - as the ports' own manifests freeze it
package("firmware", base_path=_ROOT)  # noqa: F821
package("drivers", base_path=_ROOT)  # noqa: F821
module("boards/__init__.py", base_path=_ROOT)  # noqa: F821
module("boards/calib.py", base_path=_ROOT)  # noqa: F821
module("boards/rtc.py", base_path=_ROOT)  # noqa: F821 - board.rtc, board.ntp_s
module("boards/backed.py", base_path=_ROOT)  # noqa: F821 - board.energy_backend

if options.viper:  # noqa: F821
    # drivers/kernels_viper.vpy is Python with @viper functions, named .vpy so that only a
    # build for a known machine compiles it (tools/build.py); the freezer takes .py files,
    # so it is frozen from a copy under build/frozen-src/ (mpy-cross gets the port's -march).
    _gen = os.path.join(_ROOT, "build", "frozen-src")
    _dst = os.path.join(_gen, "drivers", "kernels_viper.py")
    os.makedirs(os.path.dirname(_dst), exist_ok=True)
    with open(os.path.join(_ROOT, "drivers", "kernels_viper.vpy")) as _f:
        _text = _f.read()
    _old = None
    if os.path.exists(_dst):
        with open(_dst) as _f:
            _old = _f.read()
    if _old != _text:  # rewrite only on change: the freezer rebuilds by timestamp
        with open(_dst, "w") as _f:
            _f.write(_text)
    module("drivers/kernels_viper.py", base_path=_gen)  # noqa: F821
