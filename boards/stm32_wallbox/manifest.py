# The STM32 wallbox firmware frozen into a MicroPython image (docs/deploy.md, route 2):
#   make -C $MPY_DIR/ports/stm32 BOARD=PYBV11 \
#       FROZEN_MANIFEST=$PWD/boards/stm32_wallbox/manifest.py
# The port's own frozen modules, the firmware, this board's folder and the native kernels
# compiled in as a user C module (drivers/native/wbkernels: kernels.IMPL "cmodule armv7emsp").
include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821 - manifest functions
include("../manifest_firmware.py")  # noqa: F821
package("boards/stm32_wallbox", base_path="../..", files=["__init__.py", "board.py"])  # noqa: F821
c_module("../../drivers/native/wbkernels")  # noqa: F821
