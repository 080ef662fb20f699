# The simulator's bootloader (docs/ota.md): `micropython -m boards.sim.boot --port N ...` boots
# the slot the boot pointer names (firmware/ota/slots.py: a trial boots once, then the previous
# slot) and runs boards/sim/main.py from it. Without an ota_boot.json: the base install.
from firmware.ota import slots

SLOT = slots.boot()
import boards.sim.main  # noqa: E402,F401  (from the slot: runs the firmware until it quits)
