# Contactor: coil output, optional mirror (auxiliary) contact input, and the safety latch.
# Anything that opens the contactor for safety outside the charge controller's step (the
# reflex, an interrupt, fail-safe) calls trip(why): the coil opens at once and closing is
# refused until the session has taken the reason over and cleared it (clear_trip).


class Contactor:
    """`coil` and `mirror` need only .value(). `mirror_closed` is the mirror pin level that
    means the main contacts are closed (1 for an NO mirror contact to 3V3, 0 for NC)."""

    def __init__(self, coil, mirror=None, mirror_closed=1, coil_on=1):
        self._coil = coil
        self._mirror = mirror
        self._mirror_closed = mirror_closed
        self._on = coil_on
        self.closed = False  # commanded state
        self.tripped = 0  # why it was opened for safety (session.TRIP_*), 0: not latched
        self.has_mirror = mirror is not None
        coil.value(1 - coil_on)

    def set(self, closed):
        """Command the coil. A close is refused while a trip is latched."""
        if not closed:
            self._coil.value(1 - self._on)
            self.closed = False
        elif not self.tripped:
            self._coil.value(self._on)
            self.closed = True
            if self.tripped:
                # A trip landed between the check and the write (hard IRQ or the reflex
                # thread): it wins, the coil was on for microseconds (it needs ~30 ms).
                self._coil.value(1 - self._on)
                self.closed = False

    def trip(self, why):
        """Open at once and latch `why` (the more serious, higher code is kept). Safe from
        a hard interrupt or another thread: pin writes and int stores, no allocation."""
        self._coil.value(1 - self._on)
        self.closed = False
        if why > self.tripped:
            self.tripped = why

    def clear_trip(self, why):
        """The session took `why` over; a newer or more serious trip stays latched."""
        if self.tripped == why:
            self.tripped = 0

    def open_now(self):
        """Open without latching (deploy, tools). Safe from an interrupt handler."""
        self._coil.value(1 - self._on)
        self.closed = False

    def feedback(self):
        """True if the mirror contact says closed; the command itself without a mirror."""
        if self._mirror is None:
            return self.closed
        return self._mirror.value() == self._mirror_closed
