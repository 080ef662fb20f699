# main.py of an ESP32 wallbox (tools/deploy.py writes it to the device root).
from boards.esp32_wallbox.board import build
from firmware import app

app.run(build())
