# ESP32 wallbox board: `from boards.esp32_wallbox.board import build` (imports machine, so it
# is not imported here). Pins and wiring: docs/boards.md.
