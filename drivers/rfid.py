# The card reader seam. A board's reader driver (e.g. a PN532/MFRC522 polled over SPI/I2C,
# or a Wiegand reader on two pin interrupts) calls present(uid) with the card's UID; the OCPP
# charge point takes it. present() stores into a small preallocated ring and sets a
# ThreadSafeFlag, so it may be called from a soft interrupt or another thread (the
# simulator's control channel). A reader that reports a card continuously while it is held
# reports it here once per presentation (that is the driver's business).
import asyncio

from micropython import const

_SLOTS = const(4)
MAX_LEN = const(20)  # an OCPP 1.6 idTag


class CardReader:
    def __init__(self):
        self._ring = [None] * _SLOTS
        self._head = 0
        self._tail = 0
        self.flag = asyncio.ThreadSafeFlag()
        self.refused = 0

    def present(self, uid):
        """A card seen: uid as hex text (upper case), at most 20 characters."""
        if type(uid) is not str or not 0 < len(uid) <= MAX_LEN:
            self.refused += 1
            return False
        nxt = (self._head + 1) % _SLOTS
        if nxt == self._tail:
            self.refused += 1  # nobody is taking cards: drop the newest
            return False
        self._ring[self._head] = uid
        self._head = nxt
        self.flag.set()
        return True

    def take(self):
        """The oldest card not yet taken, or None."""
        if self._tail == self._head:
            return None
        uid = self._ring[self._tail]
        self._ring[self._tail] = None
        self._tail = (self._tail + 1) % _SLOTS
        return uid
