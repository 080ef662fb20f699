# The one retry policy of the firmware: exponential backoff with jitter, in integers.
# Used by the supervisor (task restarts) and the network manager (link and connect retries).
# Wait n (n = 0, 1, ...) is base_n +/- jitter, base_n = min(first_ms * 2^n, max_ms): with the
# defaults 1 s, 2 s, 4 s ... 32 s, then 60 s for good, each within +/-25 %. The jitter keeps a
# fleet of wallboxes that lost the same CSMS or access point from coming back in lockstep.
# A seed makes the sequence reproducible (tests; the same figures on CPython and MicroPython).

_MASK = const(0x3FFFFFFF)  # 30-bit generator state: a small int on every port
_ONE = const(1024)  # jitter is held in 1/1024ths: no floats after the constructor


def _random_seed():
    try:
        import os

        return int.from_bytes(os.urandom(4), "little")
    except (ImportError, AttributeError, OSError):  # a port without a random source
        pass
    import time

    try:
        return int(time.time())
    except AttributeError:  # and without a clock (ports/qemu): microseconds since power-on
        return time.ticks_us()


class Backoff:
    """first_ms, 2x, 4x ... capped at max_ms, each +/- jitter (a fraction, 0 <= jitter < 1)."""

    def __init__(self, first_ms=1000, max_ms=60000, jitter=0.25, seed=None):
        if type(first_ms) is not int or first_ms < 1:
            raise ValueError("backoff first_ms must be an integer >= 1, got %r" % (first_ms,))
        if type(max_ms) is not int or max_ms < first_ms:
            raise ValueError("backoff max_ms must be an integer >= first_ms (%d), got %r"
                             % (first_ms, max_ms))
        if not 0 <= jitter < 1:
            raise ValueError("backoff jitter must be 0 <= jitter < 1, got %r" % (jitter,))
        self.first_ms = first_ms
        self.max_ms = max_ms
        self._jit = int(jitter * _ONE + 0.5)
        self._state = (_random_seed() if seed is None else seed) & _MASK
        self._base = first_ms
        self.count = 0  # waits handed out since the last reset

    def _rand(self):
        # Linear congruential generator modulo 2^30; the low bits of such a generator are
        # weak, so the caller uses the high ones.
        self._state = (self._state * 1103515245 + 12345) & _MASK
        return self._state >> 8

    def next_ms(self):
        """The next wait in ms: the base doubles (up to max_ms) on every call."""
        base = self._base
        if base < self.max_ms:
            self._base = min(base * 2, self.max_ms)
        self.count += 1
        spread = base * self._jit // _ONE
        if spread == 0:
            return base
        return base - spread + self._rand() % (2 * spread + 1)

    def reset(self):
        """Back to first_ms (after a success)."""
        self._base = self.first_ms
        self.count = 0
