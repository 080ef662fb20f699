# The simulator's bootloader (docs/ota.md): `micropython -m boards.sim.boot --port N ...` picks
# the slot the boot pointer names (firmware/ota/slots.py: a trial boots once, then the
# previous slot), puts that slot's folder first on the module path and the base install off
# it, forgets the modules it loaded itself, and runs boards/sim/main.py from the slot. Without
# an ota_boot.json it runs the base install, as before.
import sys

from firmware import persist
from firmware.ota import slots


def _boot():
    try:
        marker = persist.read(persist.RESTART_FILE)  # peeked: the firmware takes it
    except (OSError, ValueError):
        marker = None
    slot = slots.pick(marker.strip() if marker else None)
    d = slots.slot_dir(slot)
    if d:
        here = persist.os.getcwd()
        base = [p for p in sys.path if p and persist.exists(p + "/firmware")]
        for p in base:
            sys.path.remove(p)
        sys.path.insert(0, here + "/" + d)
        for name in list(sys.modules):
            if name.split(".")[0] in ("firmware", "boards", "drivers"):
                del sys.modules[name]
    return slot


SLOT = _boot()
import boards.sim.main  # noqa: E402,F401  (runs the firmware until it quits)
