# main.py of the qemu board (make deploy BOARD=qemu writes it to the RAM filesystem's root):
# the firmware on the emulated board, its world with no EV until one is plugged in
# (boards/qemu/session.py plugs one in for `make qemu`).
from boards.qemu.board import build
from firmware import app

app.run(build())
