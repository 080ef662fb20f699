# The firmware's wrapping millisecond arithmetic: drivers/ticks.py (one definition for every
# layer; the drivers sit below the firmware, so it lives there).
from drivers.ticks import ticks_add, ticks_diff, ticks_ms  # noqa: F401
