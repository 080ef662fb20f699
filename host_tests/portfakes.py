"""Faithful fakes of the stm32 (`pyb`, `machine`) and esp32 (`machine`) port objects the board
files use, on one device clock (microseconds), built from the port sources (MicroPython
v1.29, github.com/micropython/micropython):

- ports/stm32/adc.c: every pyb.ADC is ADC1. read() configures the channel, starts, waits for
  EOC, reads DR and ends with HAL_ADC_Stop. read_timed/read_timed_multi start once and then
  only set SWSTART: after a stop each conversion waits out EOC_TIMEOUT (10 ms) and returns
  the stale DR.
- ports/stm32/timer.c: callbacks are hard IRQs; one that raises is disabled for good;
  prescaler/period from compute_prescaler_period_from_freq.
- ports/stm32/pin.c, extint.c: Pin.irq(hard=False) by default: a scheduled (soft) handler
  runs only between bytecodes; hard=True runs in the interrupt.
- ports/stm32/storage.c, irq.h: the flash cache is written back in FLASH_IRQHandler at
  priority 6, masking the timers (13) and EXTI (14) for the erase (0.25-1 s per sector).
- ports/stm32/machine_uart.c: write() returns after the last stop bit; flush() at once.
- ports/esp32/machine_pin.c: every Pin.irq handler is scheduled (no hard=).
- ports/esp32/machine_uart.c: write() fills the FIFO and returns; flush() waits until sent.
- ports/esp32/modules/machine.py, esp32_pcnt.c: machine.Counter (v1.26+, chips with a PCNT)
  is a singleton per unit, counts the chosen edge of its pin in hardware (no interpreter
  needed), filter = min(filter_ns * 80 // 1000, 1023) APB cycles (80 MHz: 12.8 us at most;
  a level must hold that long to count), value() = overflows * 32000 + count + offset,
  value(v) returns the old value and sets it.
- ports/esp32/adc.c, machine_adc.c: raw codes carry the chip's zero offset (~142 mV at
  11 dB) and gain; read_uv() is eFuse-calibrated and raises on a chip without eFuse values.

The tests drive `Dev`: `advance(us)` moves the clock and fires due timer interrupts (unless
masked), `edge(pin, level)` changes an input, `run_scheduled()` is the interpreter reaching
its next bytecode. Nothing here knows a board's calibration constants."""
import datetime
import math
import types

from portfakes_esp32 import make_counter_class

_R1, _R2, _R3 = 100e3, 20e3, 15e3
_G = 1 / _R1 + 1 / _R2 + 1 / _R3
EOC_TIMEOUT_US = 10000
SCHED_DEPTH = 8  # micropython.schedule's queue


def node_volts(cp_mv):
    return (cp_mv / 1000 / _R1 + 3.3 / _R2) / _G


class Dev:
    def __init__(self):
        self.t = 0  # us
        self.timers = []
        self.masked = False  # an erase in FLASH_IRQHandler: timers and EXTI wait
        self.pending = set()  # timers whose update came while masked
        self.in_irq = False
        self.sched = []  # soft handlers waiting for the interpreter
        self.dropped = 0  # schedule queue full
        self.printed = []
        self.pins = {}
        self.watch = {}  # pin id -> hardware watching its level (PCNT units)
        # the analog world
        self.ev_high_mv = 12000
        self.pp_ohms = None
        self.ct_amps = 0.0
        self.pwm_u16 = lambda: 65535
        self.cp_pin = None
        self.pp_pin = None
        self.ct_pins = ()
        # esp32 ADC personality: zero offset and gain of this chip, eFuse calibration
        self.esp_offset_v = 0.142
        self.esp_gain = 1.0
        self.esp_efuse = True
        self.esp_read_us = 35

    # -- time and interrupts ------------------------------------------------------------
    def _next_update(self, end):
        best = None
        for tm in self.timers:
            if tm.cb is None:
                continue
            per = tm.period_us
            nxt = (self.t // per + 1) * per
            if nxt <= end and (best is None or nxt < best[0]):
                best = (nxt, tm)
        return best

    def _fire(self, tm):
        if tm.cb is None:
            return
        self.in_irq = True
        try:
            tm.cb(tm)
        except Exception as e:  # timer.c: uncaught -> print, disable the callback for good
            self.printed.append("uncaught exception in Timer(%d) interrupt handler: %r"
                                % (tm.n, e))
            tm.cb = None
        finally:
            self.in_irq = False

    def advance(self, us):
        end = self.t + us
        if self.in_irq:  # an interrupt's own work: nothing of the same level nests
            self.t = end
            return
        while True:
            nxt = self._next_update(end)
            if nxt is None:
                break
            self.t = nxt[0]
            if self.masked:
                self.pending.add(nxt[1])
            else:
                self._fire(nxt[1])
        self.t = end

    def until(self, t_us):
        if t_us > self.t:
            self.advance(t_us - self.t)

    def flash_erase(self, us=250000):
        """A sector erase: instruction fetch stalls, timers and EXTI wait until it ends."""
        self.masked = True
        self.advance(us)
        self.masked = False
        for tm in list(self.pending):
            self._fire(tm)  # one pending update each, as the NVIC keeps it
        self.pending.clear()

    def edge(self, pin_id, level):
        p = self.pins[pin_id]
        old = p.v
        p.v = level
        for w in self.watch.get(pin_id, ()):
            w(level)
        if p.handler is None or old == level:
            return
        rising = level > old
        if not (p.trigger & (p.IRQ_RISING if rising else p.IRQ_FALLING)):
            return
        if p.hard and not self.masked:
            p.handler(p)
        elif len(self.sched) < SCHED_DEPTH:
            self.sched.append((p.handler, p))
        else:
            self.dropped += 1

    def run_scheduled(self):
        q, self.sched = self.sched, []
        for fn, arg in q:
            fn(arg)

    # -- the analog world ---------------------------------------------------------------
    def cp_mv(self):
        u16 = self.pwm_u16()
        if u16 >= 65535 or self.t % 1000 < u16 * 1000 // 65535:
            return self.ev_high_mv
        return -12000

    def volts(self, pin_id):
        if pin_id == self.cp_pin:
            return node_volts(self.cp_mv())
        if pin_id == self.pp_pin:
            r = self.pp_ohms
            return 3.3 if r is None else 3.3 * r / (r + 1000)
        if pin_id in self.ct_pins:
            k = self.ct_pins.index(pin_id)
            amp = self.ct_amps * math.sqrt(2) / 2000 * 33  # 100 A : 50 mA, 33 ohm
            return 1.65 + amp * math.sin(2 * math.pi * (50 * self.t / 1e6 - k / 3))
        return 0.0


def make_pin_class(dev, hard_supported):
    class Pin:
        IN, OUT, OPEN_DRAIN = 1, 2, 3  # no OUT_PP: legacy, gone in MicroPython 2
        PULL_UP, PULL_DOWN = 1, 2
        IRQ_RISING, IRQ_FALLING = 1, 2

        def __init__(self, pid, mode=None, pull=None, value=None):
            self.id = pid
            self.mode = mode
            self.pull = pull
            self.v = (1 if pull == 1 else 0) if value is None else value  # pulls hold it
            self.handler = None
            self.trigger = 0
            self.hard = False
            self.log = []  # (t_us, value) of every write
            dev.pins[pid] = self

        def value(self, v=None):
            if v is None:
                return self.v
            self.v = v
            self.log.append((dev.t, v))

        __call__ = value  # pin(v), as the ports allow

        if hard_supported:
            def irq(self, handler=None, trigger=3, hard=False):
                self.handler, self.trigger, self.hard = handler, trigger, hard
        else:
            def irq(self, handler=None, trigger=3, wake=None):
                self.handler, self.trigger, self.hard = handler, trigger, False

    return Pin


class _Mem32:
    def __init__(self):
        self.words = {}

    def __getitem__(self, a):
        return self.words.get(a, 0)

    def __setitem__(self, a, v):
        self.words[a] = v & 0xFFFFFFFF


class _WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass


def make_stm32(dev):
    """(machine, pyb) of the stm32 port."""
    Pin = make_pin_class(dev, True)
    adc1 = types.SimpleNamespace(adon=False, ch=None, dr=0)

    def convert():
        v = dev.volts(adc1.ch)
        adc1.dr = max(0, min(4095, int(v / 3.3 * 4096)))
        dev.advance(1)

    class ADC:
        def __init__(self, pin):
            self.ch = pin.id

        def read(self):
            adc1.ch = self.ch  # adc_config_channel
            dev.advance(1)
            adc1.adon = True  # HAL_ADC_Start
            convert()
            v = adc1.dr
            adc1.adon = False  # HAL_ADC_Stop
            return v

        @staticmethod
        def _swstart():
            if adc1.adon:
                convert()
            else:
                dev.advance(EOC_TIMEOUT_US)  # SWSTART ignored: EOC never comes

        @staticmethod
        def _tick(timer):
            per = timer.period_us
            dev.until((dev.t // per + 1) * per)

        def read_timed(self, buf, timer):
            adc1.ch = self.ch
            for i in range(len(buf)):
                ADC._tick(timer)
                if i == 0:
                    adc1.adon = True
                    convert()
                else:
                    ADC._swstart()
                buf[i] = adc1.dr
            adc1.adon = False
            return len(buf)

        @staticmethod
        def read_timed_multi(adcs, bufs, timer):
            adc1.ch = adcs[0].ch
            adc1.adon = True
            convert()
            ADC._tick(timer)
            for i in range(len(bufs[0])):
                ADC._tick(timer)
                for a, b in zip(adcs, bufs):
                    adc1.ch = a.ch
                    ADC._swstart()
                    b[i] = adc1.dr
            adc1.adon = False
            return True

    class Channel:
        def __init__(self, timer, pulse_width_percent):
            self.top = timer.period() + 1
            self.cmp = self.top * pulse_width_percent // 100
            dev.pwm_u16 = self.u16

        def pulse_width(self, w=None):
            if w is None:
                return self.cmp
            self.cmp = w

        def u16(self):
            return 65535 if self.cmp >= self.top else self.cmp * 65535 // self.top

    class Timer:
        PWM = 0

        def __init__(self, n, freq=None):
            self.n = n
            self.freq = freq
            self.cb = None
            self.period_us = max(1, 1000000 // freq)
            # timer.c compute_prescaler_period_from_freq; TIM1, 8-11 on APB2 (168 MHz)
            src = 168000000 if n in (1, 8, 9, 10, 11) else 84000000
            mask = 0xFFFFFFFF if n in (2, 5) else 0xFFFF
            period, pre = src // freq, 1
            while period > mask:
                if period % 5 == 0:
                    pre, period = pre * 5, period // 5
                elif period % 3 == 0:
                    pre, period = pre * 3, period // 3
                else:
                    pre, period = pre * 2, period >> 1
            self._prescaler, self._period = pre - 1, period - 1
            dev.timers.append(self)

        def prescaler(self):
            return self._prescaler

        def period(self):
            return self._period

        def callback(self, fn):
            self.cb = fn

        def channel(self, k, mode, pin=None, pulse_width_percent=None):
            return Channel(self, pulse_width_percent)

    class UART:
        def __init__(self, n, baud, bits=8, parity=None, stop=1, read_buf_len=64):
            self.char_us = 11 * 1000000 // baud
            self.sent_at = 0  # t_us of the last stop bit

        def write(self, data):
            dev.advance(len(data) * self.char_us)  # returns after the last stop bit
            self.sent_at = dev.t
            return len(data)

        def flush(self):
            pass  # "uart.write() waits up to the last byte"

        def txdone(self):
            return dev.t >= self.sent_at

    pyb = types.ModuleType("pyb")
    pyb.Pin, pyb.Timer, pyb.ADC, pyb.UART = Pin, Timer, ADC, UART
    machine = types.ModuleType("machine")
    machine.Pin, machine.WDT = Pin, _WDT
    machine.reset = lambda: None
    machine.mem32 = _Mem32()
    return machine, pyb


def make_esp32(dev, pcnt=True):
    """machine of the esp32 port; pcnt=False: a chip without PCNT (ESP32-C3) or a port
    before v1.26, whose machine has no Counter."""
    Pin = make_pin_class(dev, False)

    class PWM:
        def __init__(self, pin, freq=None, duty_u16=None, invert=False):
            self.u16 = duty_u16
            dev.pwm_u16 = lambda: self.u16

        def duty_u16(self, v=None):
            if v is None:
                return self.u16
            self.u16 = v

    class ADC:
        ATTN_11DB = 3

        def __init__(self, pin, atten=None):
            self.id = pin.id

        def _v(self):
            dev.advance(dev.esp_read_us)
            return dev.volts(self.id)

        def read_u16(self):
            # raw 12-bit code over ~3.1 V full scale at 11 dB, with the chip's offset/gain
            raw = (self._v() - dev.esp_offset_v) * dev.esp_gain / 3.3 * 4095
            return max(0, min(4095, int(raw))) * 65535 // 4095

        def read_uv(self):
            if not dev.esp_efuse:
                raise OSError(22)  # no calibration scheme: esp_err EINVAL
            return int(min(self._v(), 3.1) * 1e6)

    class UART:
        def __init__(self, n, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None,
                     rxbuf=256):
            self.char_us = 11 * 1000000 // baudrate
            self.sent_at = 0

        def write(self, data):  # into the FIFO: the bytes go out after we return
            self.sent_at = max(self.sent_at, dev.t) + len(data) * self.char_us
            dev.advance(5)
            return len(data)

        def flush(self):
            dev.until(self.sent_at)

        def txdone(self):
            return dev.t >= self.sent_at

    class RTC:
        def memory(self, data=None):  # RTC slow memory: survives a reset, not a power cut
            if data is None:
                return bytes(dev.rtc_mem)
            dev.rtc_mem = bytes(data)

        def datetime(self, dt=None):
            # the system time (gettimeofday: what mbedTLS checks certificate dates against);
            # 2000-01-01 after a power-up; the weekday given is ignored (computed, Monday 0)
            if dt is None:
                return dev.rtc_datetime
            y, mo, d = dt[:3]
            wd = datetime.date(y, mo, d).weekday()
            dev.rtc_datetime = (y, mo, d, wd) + tuple(dt[4:7]) + (0,)

    dev.rtc_mem = b""
    dev.rtc_datetime = (2000, 1, 1, 5, 0, 0, 0, 0)
    machine = types.ModuleType("machine")
    machine.Pin, machine.PWM, machine.ADC, machine.UART = Pin, PWM, ADC, UART
    machine.WDT, machine.RTC = _WDT, RTC
    if pcnt:
        machine.Counter = make_counter_class(dev)
    machine.reset = lambda: None
    return machine
