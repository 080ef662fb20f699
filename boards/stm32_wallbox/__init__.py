# STM32 wallbox board: `from boards.stm32_wallbox.board import build` (imports pyb, so it is
# not imported here). Pins and wiring: docs/boards.md.
