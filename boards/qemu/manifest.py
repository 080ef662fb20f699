# The qemu board's MicroPython image (mk/qemu.mk, docs/deploy.md): ports/qemu with the
# firmware frozen, the simulated world of boards/sim (in-process: no threads, no sockets) and
# asyncio's C half. `make qemu MPY_DIR=...` passes it as FROZEN_MANIFEST.
include("../manifest_firmware.py")  # noqa: F821 - manifest functions
# All of boards/sim (the board, its world and hardware models, whatever they import next);
# control.py and net.py need sockets, uart.py a pty, heapcheck.py threads: frozen, never used.
package("boards/sim", base_path="../..")  # noqa: F821
package("boards/qemu", base_path="../..",  # noqa: F821
        files=["__init__.py", "board.py", "nothread.py", "ramfs.py", "rtc.py", "session.py",
               "bench.py", "main.py"])
c_module("cmod/asyncio_on")  # noqa: F821
