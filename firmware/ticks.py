# Wrapping millisecond arithmetic for the pure logic. On MicroPython the clock is
# time.ticks_ms() and wraps; the pure modules never read it, they only compare values
# handed to them. On CPython (host tests) plain integers are used and never wrap.
try:
    from time import ticks_add, ticks_diff
except ImportError:

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b
