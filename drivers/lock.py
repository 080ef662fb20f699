# Socket cable lock: a latching actuator driven by one output, with an optional position
# sensor (microswitch) that says whether the pin really reached the locked position.


class Lock:
    """`pin` drives the actuator (`locked_level` = locked); `sense`, if wired, reads the
    position switch (`sense_locked` = locked)."""

    def __init__(self, pin, locked_level=1, sense=None, sense_locked=1):
        self._pin = pin
        self._level = locked_level
        self._sense = sense
        self._sense_locked = sense_locked
        self.has_sense = sense is not None
        self.locked = False  # commanded
        pin.value(1 - locked_level)

    def set(self, locked):
        if locked != self.locked:
            self._pin.value(self._level if locked else 1 - self._level)
            self.locked = locked

    def feedback(self):
        """True if the sensor says locked; the command itself without a sensor."""
        if self._sense is None:
            return self.locked
        return self._sense.value() == self._sense_locked
