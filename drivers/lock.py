# Socket cable lock: a latching actuator driven by one output (1 = locked).


class Lock:
    def __init__(self, pin, locked_level=1):
        self._pin = pin
        self._level = locked_level
        self.locked = False
        pin.value(1 - locked_level)

    def set(self, locked):
        if locked != self.locked:
            self._pin.value(self._level if locked else 1 - self._level)
            self.locked = locked
