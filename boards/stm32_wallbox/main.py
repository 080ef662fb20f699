# main.py of an STM32 wallbox (tools/deploy.py writes it to the device root).
from boards.stm32_wallbox.board import build
from firmware import app

app.run(build())
