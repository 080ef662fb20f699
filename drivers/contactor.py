# Contactor: coil output and optional mirror (auxiliary) contact input.


class Contactor:
    """`coil` and `mirror` need only .value(). `mirror_closed` is the mirror pin level that
    means the main contacts are closed (1 for an NO mirror contact to 3V3, 0 for NC)."""

    def __init__(self, coil, mirror=None, mirror_closed=1, coil_on=1):
        self._coil = coil
        self._mirror = mirror
        self._mirror_closed = mirror_closed
        self._on = coil_on
        self.closed = False  # commanded state
        self.has_mirror = mirror is not None
        coil.value(1 - coil_on)

    def set(self, closed):
        self._coil.value(self._on if closed else 1 - self._on)
        self.closed = closed

    def open_now(self):
        """Safe from an interrupt handler: one pin write, no allocation."""
        self._coil.value(1 - self._on)
        self.closed = False

    def feedback(self):
        """True if the mirror contact says closed; the command itself without a mirror."""
        if self._mirror is None:
            return self.closed
        return self._mirror.value() == self._mirror_closed
