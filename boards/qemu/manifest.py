# The qemu board's MicroPython image (mk/qemu.mk, docs/deploy.md): ports/qemu with the
# firmware frozen, the simulated world of boards/sim (in-process: no threads, no sockets) and
# asyncio's C half. `make qemu MPY_DIR=...` passes it as FROZEN_MANIFEST.
include("../manifest_firmware.py")  # noqa: F821 - manifest functions
# From boards/sim only the models and the simulated hardware: control.py and net.py need
# sockets, uart.py a pty, heapcheck.py threads.
package("boards/sim", base_path="../..",  # noqa: F821
        files=["__init__.py", "board.py", "hw.py", "rtc.py", "world.py"])
package("boards/qemu", base_path="../..",  # noqa: F821
        files=["__init__.py", "board.py", "nothread.py", "ramfs.py", "session.py", "bench.py",
               "main.py"])
c_module("cmod/asyncio_on")  # noqa: F821
