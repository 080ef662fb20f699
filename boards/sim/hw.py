# MicroPython-like hardware objects backed by the simulated world: what boards/sim hands to
# the real drivers instead of machine.Pin/PWM/ADC.
import time


# The sim's CP front end: a 12-bit ADC over -13.5 V .. +13.5 V.
CP_OFFSET_MV = const(-13500)
CP_UV_PER_CODE = const(6592)  # 27 V / 4096 codes
CP_RATE_HZ = const(100000)  # one sample every 10 us
_NOISE = const(3)  # +/- codes of noise


class Pin:
    """Input/output pin. `read` gives the level of an input; `write` receives outputs."""

    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, read=None, write=None):
        self._read = read
        self._write = write
        self._v = 0
        self._irq = None
        self._trig = 0

    def value(self, v=None):
        if v is None:
            return int(self._read()) if self._read is not None else self._v
        self._v = v
        if self._write is not None:
            self._write(v)

    def irq(self, handler=None, trigger=IRQ_RISING):
        self._irq = handler
        self._trig = trigger

    def poll_irq(self, prev, now_level):
        """Called by the world's clock: fire the handler on the configured edge."""
        if self._irq is None or prev == now_level:
            return
        if (now_level and self._trig & 1) or (not now_level and self._trig & 2):
            self._irq(self)


class PWM:
    def __init__(self, world):
        self._world = world
        self._u16 = 65535

    def duty_u16(self, v=None):
        if v is None:
            return self._u16
        self._u16 = v
        self._world.set_duty((v * 1000 + 32767) // 65535)


class CpBurst:
    """Fills a buffer with CP samples: the PWM square wave at 1 kHz between the world's
    high and low plateau, with ringing after edges and a little noise."""

    def __init__(self, world):
        self._w = world
        self._seed = 12345

    def __call__(self, buf):
        w = self._w
        high, low = w.cp_levels()
        duty = w.duty
        hi_code = (high - CP_OFFSET_MV) * 1000 // CP_UV_PER_CODE
        lo_code = (low - CP_OFFSET_MV) * 1000 // CP_UV_PER_CODE
        t = time.ticks_us() % 1000  # phase within the 1 ms period, us
        step = 1000000 // CP_RATE_HZ
        on_us = duty  # per-mille of 1000 us = us
        seed = self._seed
        prev = None
        for k in range(len(buf)):
            level = hi_code if t < on_us else lo_code
            code = level
            if prev is not None and level != prev:
                code = (level + prev) // 2  # the first sample after an edge is mid-way
            prev = level
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            code += (seed >> 16) % (2 * _NOISE + 1) - _NOISE
            buf[k] = 0 if code < 0 else (4095 if code > 4095 else code)
            t += step
            if t >= 1000:
                t -= 1000
        self._seed = seed


class Watchdog:
    def __init__(self, timeout_ms, on_expire):
        self._timeout = timeout_ms
        self._fed = time.ticks_ms()
        self._on_expire = on_expire

    def feed(self):
        self._fed = time.ticks_ms()

    def check(self):
        if time.ticks_diff(time.ticks_ms(), self._fed) > self._timeout:
            self._on_expire()
