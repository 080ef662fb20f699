# Wrapping millisecond arithmetic for every layer (firmware.ticks re-exports it). On
# MicroPython the clock is time.ticks_ms(): it wraps (every 2^30 ms = 12.4 days on ESP32 and
# STM32) and ticks_diff is only meaningful within half of that. The pure modules never read
# the clock, they only compare values handed to them. On CPython (host tests) the same 30-bit
# wrap is emulated, so a stamp kept past its use shows up in the tests as it would on a board.
try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:
    import time as _time

    _MASK = (1 << 30) - 1
    _HALF = 1 << 29

    def ticks_ms():
        return int(_time.monotonic() * 1000) & _MASK

    def ticks_diff(a, b):
        return ((a - b + _HALF) & _MASK) - _HALF

    def ticks_add(a, b):
        return (a + b) & _MASK
