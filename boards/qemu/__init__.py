# The qemu board: the firmware on MicroPython's ports/qemu (an emulated Cortex-M3 or RV32IMC)
# with the simulated world of boards/sim in-process. docs/deploy.md, mk/qemu.mk.
