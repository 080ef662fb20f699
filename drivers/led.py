# Status LED: one output, a blink pattern per OCPP status. tick() is called from the
# controller loop; it only toggles a pin (no allocation).

_SLOW = const(1000)
_FAST = const(200)

# status -> half period in ms (0 = steady on, -1 = off)
_PATTERN = {
    "Available": 0,
    "Preparing": _SLOW,
    "Charging": _SLOW // 2,
    "SuspendedEV": _SLOW * 2,
    "SuspendedEVSE": _SLOW * 2,
    "Finishing": _SLOW,
    "Unavailable": -1,
    "Faulted": _FAST,
}


class StatusLed:
    def __init__(self, pin, on_level=1):
        self._pin = pin
        self._on = on_level
        self._half = 0
        self._lit = False

    def show(self, status):
        self._half = _PATTERN.get(status, _FAST)

    def tick(self, now_ms):
        h = self._half
        lit = h == 0 or (h > 0 and (now_ms // h) & 1 == 0)
        if lit != self._lit:
            self._pin.value(self._on if lit else 1 - self._on)
            self._lit = lit
