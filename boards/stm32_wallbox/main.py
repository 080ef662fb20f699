# main.py of an STM32 wallbox (tools/deploy.py writes it to the device root).
from firmware.ota import slots

slots.boot()  # the A/B slot the boot pointer names, else the base install (docs/ota.md)
from boards.stm32_wallbox.board import build  # noqa: E402  (from that slot)
from firmware import app  # noqa: E402

app.run(build())
