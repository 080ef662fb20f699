# STM32 wallbox board (STM32F405 at 168 MHz, MicroPython stm32 port, pyboard-style pin names).
# The only file that names this board's pins, timers and calibration; wiring assumptions are
# in docs/boards.md.
#   from boards.stm32_wallbox.board import build; board = build()
import pyb
from machine import WDT
from machine import reset as machine_reset

from boards.rtc import MachineRtc, reset_cause
from drivers.contactor import Contactor
from drivers.led import StatusLed
from drivers.lock import Lock
from drivers.pilot import Pilot
from drivers.proximity import Proximity
from drivers.rcm import Rcm

NAME = "stm32_wallbox"
# Native code target (Cortex-M4F, single-precision FPU): mpy-cross -march for @native/@viper
# modules and the natmods from dist/ that make deploy copies.
MPY_ARCH = "armv7emsp"

# -- pins (CPU names) ---------------------------------------------------------------------------
CP_PWM_PIN = "B6"  # TIM4_CH1 -> +/-12 V CP driver (non-inverting)
CP_ADC_PIN = "C0"  # ADC123_IN10, CP read back through the divider below
PP_ADC_PIN = "C1"  # ADC123_IN11, PP with PP_PULLUP_OHM to 3V3
CONTACTOR_PIN = "B12"  # coil driver input, high = energised; 10k pull-down on the board
MIRROR_PIN = "B13"  # mirror contact (NO) to 3V3; internal pull-down
RCM_FAULT_PIN = "B14"  # RDC-DD fault output, high = tripped; internal pull-up
RCM_TEST_PIN = "B15"  # RDC-DD test input, high = inject the test current
LOCK_PIN = "B1"  # socket lock actuator driver, high = locked
LOCK_SENSE_PIN = "C7"  # lock position switch to GND when locked; internal pull-up
LED_PIN = "C6"  # status LED to GND
# Energy meters (config "meters", firmware/meters/roles.py): RS485 through a MAX3485 on
# UART2 (TX A2, RX A3), DE and /RE tied together, high while sending.
METER_UART = const(2)
METER_DE = "A1"  # 10k pull-down on the board: receive while the pin floats at boot
S0_INPUT = "A8"  # S0 input: the meter's open collector to GND; internal + 10k pull-up
# Card reader (config "rfid", firmware/rfid.py): a PN532 module on the 4-pin reader header
# (GND, 3V3, SDA/TXD, SCL/RXD); its switches pick I2C or HSU, the config's "bus" says which.
# B10/B11 are I2C2 (SCL, SDA) and also USART3 (TX, RX): the same two wires serve either mode.
RFID_I2C = const(2)  # SCL B10, SDA B11 (pyboard Y9, Y10); 4k7 pull-ups on the module
RFID_I2C_HZ = const(100000)
RFID_UART = const(3)  # TX B10 -> module RXD (SCL line), RX B11 <- module TXD (SDA line)
# ... or an MFRC522 (RC522) module on the SPI reader header: SPI1 SCK A5, MISO A6, MOSI A7
# (pyboard X6-X8), its SDA pin (chip select) on RFID_CS; RST to 3V3, IRQ not connected.
RFID_SPI = const(1)
RFID_CS = "A4"  # pyboard X5
RFID_SPI_HZ = const(1000000)  # the chip takes 10 MHz; 1 MHz for a cable to the front panel
# Three CTs (100 A : 50 mA, 33 ohm burden, biased at VDDA / 2) on ADC123_IN12/13, ADC12_IN14:
# 0.8057 mV per code / 33 ohm x 2000 = 48.83 mA per code.
CT_ADC_PINS = ("C2", "C3", "C4")
CT_OFFSET_CODE = const(2048)
CT_UA_PER_CODE = const(48830)
CT_RATE_HZ = const(4000)  # per channel, paced by CT_PACE_TIMER
CT_SAMPLES = const(320)  # 4 mains periods at 50 Hz
CT_PACE_TIMER = const(8)  # free on this port (2, 3, 5, 6 have default uses; 4 and 7 are CP's)
CT_CAL = (1000, 1000, 1000)  # per-phase factor, per-mille: measure against a meter

# Energy registers (boards/backed.py): RTC->BKP0R..BKP19R (20 x 32 bit, kept by a cell on
# VBAT through a power cut, written without an erase); 8 words (two 16-byte records) each.
# BKP0R..BKP3R are left alone (some boards' bootloader entry uses BKP0R).
RTC_BKP0R = const(0x40002850)
BKP_WORDS = const(20)
BKP_ENERGY = {"energy_ev": 4, "energy_grid": 12}

# -- timers -------------------------------------------------------------------------------------
# TIM2, 3, 5, 6 have default uses on this port (LED, servo, DAC/read_timed); TIM4 and TIM7
# are free. TIM4 is 16 bit on APB1 (84 MHz timer clock): 84000 counts per 1 kHz period do not
# fit, so pyb (ports/stm32/timer.c compute_prescaler_period_from_freq) divides by 5 first:
# prescaler 5 (PSC 4), period 16800 (ARR 16799), 59.5 ns steps, 0.006 % duty resolution.
CP_TIMER = const(4)
CP_CHANNEL = const(1)
CP_PACE_TIMER = const(7)  # basic timer (no pins) that paces ADC.read_timed

# -- levels -------------------------------------------------------------------------------------
CONTACTOR_ON = const(1)
MIRROR_CLOSED = const(1)  # NO mirror contact: reads 1 when the main contacts are closed
RCM_FAULT_LEVEL = const(1)  # the pull-up makes a broken fault wire read as a trip (fail safe)
RCM_TEST_LEVEL = const(1)
LOCK_LEVEL = const(1)
LOCK_SENSE_LOCKED = const(0)  # a broken sensor wire reads "unlocked": no charging (fail safe)
LED_ON = const(1)

# -- control pilot ------------------------------------------------------------------------------
CP_FREQ_HZ = const(1000)
CP_SAFE_PERCENT = const(100)  # +12 V constant = state x1 (compare = period + 1: a true 100 %)
# Same CP front end as the ESP32 board: CP -100k- node -20k- 3V3, node -15k- GND,
# V_node = 1.3026 V + 0.078947 * V_cp; V_cp = (V_node - 1.3026 V) * 12.667. 12-bit ADC on
# VDDA = 3.3 V: 805.7 uV per code at the pin -> 10205 uV per code on the CP line.
# Calibrate each unit: `from boards import calib; calib.cp(board)` prints both numbers.
CP_OFFSET_MV = const(-16500)  # CP voltage at code 0
CP_UV_PER_CODE = const(10205)
# Burst: ADC.read_timed paced by CP_PACE_TIMER, no heap, exact spacing: 200 samples at
# 100 kHz = 2.00 ms, two whole PWM periods (both timers run from the same clock, so the
# share of high samples is the duty), 10 us from an edge to the next sample.
CP_RATE_HZ = const(100000)
CP_SAMPLES = const(200)
# One step = burst 2 ms + analysis + session + this sleep; 3 samples for a safety
# transition (pilot.SAFE_SAMPLES) stay well inside the 50 ms rule.
PILOT_PERIOD_MS = const(5)

# -- proximity ----------------------------------------------------------------------------------
PP_PULLUP_OHM = const(1000)
PP_VREF_MV = const(3300)
_ADC_FULL = const(4095)


class TimerPwm:
    """A pyb timer channel seen as a PWM with duty_u16(), which drivers.pilot.Pilot drives.
    65535 sets the compare to period + 1: the output never goes low (a true 100 %)."""

    def __init__(self, timer, channel):
        self._ch = channel
        self._top = timer.period() + 1
        self._u16 = CP_SAFE_PERCENT * 65535 // 100

    def duty_u16(self, v=None):
        if v is None:
            return self._u16
        self._u16 = v
        if v >= 65535:
            w = self._top
        else:
            # (v >> 2) * top stays a small int for any 16-bit period: no allocation.
            w = (v >> 2) * self._top // 16384
        self._ch.pulse_width(w)


class AdcGuard:
    """Every pyb.ADC on this port is ADC1 (ports/stm32/adc.c). The reflex's one conversion in
    the CP timer's interrupt ends with HAL_ADC_Stop: inside read_timed/read_timed_multi (which
    start the ADC once, then only set SWSTART) every later conversion then waits out the
    10 ms EOC timeout and returns the stale value, and a read() it lands in the middle of
    (channel set, not yet started) converts the CP channel instead. So every ADC user holds
    `busy` while it converts; the interrupt then takes no sample of its own."""

    def __init__(self):
        self.busy = False


class CpBurst:
    """The burst reader: read_timed fills the whole buffer, one sample per pace-timer tick,
    holding the ADC guard (the reflex uses the burst's result meanwhile)."""

    def __init__(self, adc, pace, guard):
        self._read_timed = adc.read_timed
        self._pace = pace
        self._guard = guard

    @property
    def busy(self):
        return self._guard.busy

    def __call__(self, buf):
        g = self._guard
        g.busy = True
        try:
            self._read_timed(buf, self._pace)
        finally:
            g.busy = False


class CtBurst:
    """The CT channels sampled together by read_timed_multi, then interleaved into the
    meter's buffer (L1 L2 L3 L1 ...): no allocation after the first call."""

    def __init__(self, adcs, timer, samples, guard):
        from array import array

        self._adcs = adcs
        self._timer = timer
        self._guard = guard
        self._bufs = tuple(array("H", bytes(2 * samples)) for _ in adcs)

    def __call__(self, buf):
        bufs = self._bufs
        g = self._guard
        g.busy = True  # CT_SAMPLES / CT_RATE_HZ = 80 ms without a reflex CP sample
        try:
            pyb.ADC.read_timed_multi(self._adcs, bufs, self._timer)
        finally:
            g.busy = False
        n = len(bufs)
        for p in range(n):
            b = bufs[p]
            for k in range(len(b)):
                buf[k * n + p] = b[k]


class HardIrqPin:
    """A pyb.Pin whose irq() is always hard (the stm32 port's Pin.irq defaults to hard=False:
    a scheduled handler that runs only between bytecodes)."""

    def __init__(self, pin):
        self.pin = pin
        self.value = pin.value
        self.IRQ_RISING = pin.IRQ_RISING
        self.IRQ_FALLING = pin.IRQ_FALLING

    def irq(self, handler=None, trigger=None):
        return self.pin.irq(handler=handler, trigger=trigger, hard=True)


def pp_reader(adc, guard):
    read = adc.read

    def read_mv():
        guard.busy = True
        try:
            code = read()
        finally:
            guard.busy = False
        return code * PP_VREF_MV // _ADC_FULL

    return read_mv


class Stm32Board:
    name = NAME
    pilot_period_ms = PILOT_PERIOD_MS
    meter = None  # no energy meter driver yet
    phase_switch = None  # no 1p/3p switch contactor on this design (docs/boards.md)

    def __init__(self):
        Pin = pyb.Pin
        self.rtc = MachineRtc(1)  # backup domain: kept through a power cut with a VBAT cell
        # Outputs first, each created at its safe level: coil off, CP at +12 V (x1).
        coil = Pin(CONTACTOR_PIN, Pin.OUT, value=1 - CONTACTOR_ON)
        self.contactor = Contactor(
            coil, Pin(MIRROR_PIN, Pin.IN, Pin.PULL_DOWN), mirror_closed=MIRROR_CLOSED,
            coil_on=CONTACTOR_ON,
        )
        self.cp_timer = pyb.Timer(CP_TIMER, freq=CP_FREQ_HZ)
        ch = self.cp_timer.channel(
            CP_CHANNEL, pyb.Timer.PWM, pin=Pin(CP_PWM_PIN), pulse_width_percent=CP_SAFE_PERCENT
        )
        self.cp_pwm = TimerPwm(self.cp_timer, ch)
        self.cp_pace = pyb.Timer(CP_PACE_TIMER, freq=CP_RATE_HZ)
        self.adc_guard = AdcGuard()
        self.cp_adc = pyb.ADC(Pin(CP_ADC_PIN))
        self.cp_burst = CpBurst(self.cp_adc, self.cp_pace, self.adc_guard)
        self._cp_read = self.cp_adc.read
        self.pilot = Pilot(
            self.cp_pwm, self.cp_burst, CP_SAMPLES, CP_RATE_HZ, CP_OFFSET_MV, CP_UV_PER_CODE
        )
        self.pp_adc = pyb.ADC(Pin(PP_ADC_PIN))
        self.pp = Proximity(pp_reader(self.pp_adc, self.adc_guard), PP_PULLUP_OHM, PP_VREF_MV)
        self.rcm = Rcm(
            Pin(RCM_FAULT_PIN, Pin.IN, Pin.PULL_UP),
            Pin(RCM_TEST_PIN, Pin.OUT, value=1 - RCM_TEST_LEVEL),
            fault_level=RCM_FAULT_LEVEL, test_level=RCM_TEST_LEVEL, hard_irq=True,
        )
        self.lock = Lock(
            Pin(LOCK_PIN, Pin.OUT, value=1 - LOCK_LEVEL), locked_level=LOCK_LEVEL,
            sense=Pin(LOCK_SENSE_PIN, Pin.IN, Pin.PULL_UP), sense_locked=LOCK_SENSE_LOCKED,
        )
        self.led = StatusLed(Pin(LED_PIN, Pin.OUT, value=1 - LED_ON), on_level=LED_ON)

    def cp_high_mv(self):
        """The reflex's CP sample, taken in the CP timer's update interrupt: the counter has
        just wrapped, the PWM output is high (>= 100 us at the lowest offer), so one
        conversion reads the high plateau. While another ADC user holds the guard (CP burst,
        PP read, CT burst): the last burst's high plateau."""
        if self.adc_guard.busy:
            return self.pilot.out[0]
        return CP_OFFSET_MV + self._cp_read() * CP_UV_PER_CODE // 1000

    def start_reflex(self, reflex):
        """The reflex runs in the CP timer's update interrupt, 1 kHz: pyb.Timer callbacks
        are hard IRQs that pre-empt the interpreter even inside C (a TLS handshake). An
        exception escaping a timer callback makes the port disable it for good
        (ports/stm32/timer.c): Reflex.tick catches its own and opens the contactor, and the
        controller fails safe if tick stops running while armed (Reflex.stalled)."""
        reflex.driven = True
        self.cp_timer.callback(reflex.tick)

    def stop_reflex(self):
        self.cp_timer.callback(None)

    def flash_write_ok(self):
        """False while the contactor is closed. The port's flash cache is written back in
        FLASH_IRQHandler (priority 6, storage.c) and a sector erase (16-128 KB, 0.25-2 s on
        the F405) stalls instruction fetch: the CP timer's interrupt (priority 13), the
        controller and the RCM interrupt are all blind meanwhile, so nothing may write the
        filesystem during a session (firmware/persist.py asks this)."""
        return not self.contactor.closed

    def energy_backend(self, name):
        """Where an energy register lives (firmware/meters/energy.py): the RTC backup
        registers (no erase, battery-backed on VBAT), copied to flash when a session ends."""
        from machine import mem32

        from boards.backed import BackedEnergy, Mem32Words

        first = BKP_ENERGY.get(name)
        if first is None:
            raise ValueError("no backup registers for energy register %r" % (name,))
        return BackedEnergy(Mem32Words(mem32, RTC_BKP0R, BKP_WORDS), first,
                            self.flash_write_ok)

    def meter_bus(self, uart, baud, parity):
        """The RS485 bus of the Modbus meters: (UART, DE pin)."""
        if uart != METER_UART:
            raise ValueError("this board's RS485 bus is uart %d, not %d" % (METER_UART, uart))
        u = pyb.UART(METER_UART, baud, bits=8, parity=parity, stop=1, read_buf_len=512)
        return u, pyb.Pin(METER_DE, pyb.Pin.OUT, value=0)

    def s0_pin(self, role, imp_per_kwh):
        """The one S0 input (either role), its interrupt hard: the handler runs at the edge,
        so the time and the level it reads are the edge's (a soft one runs after a block)."""
        return HardIrqPin(pyb.Pin(S0_INPUT, pyb.Pin.IN, pyb.Pin.PULL_UP))

    def card_reader(self, reader, bus):
        """The card reader chip on a reader header: pn532 on "i2c" or "uart" (HSU), mfrc522
        on "spi"."""
        if reader == "pn532" and bus == "i2c":
            from machine import I2C

            from drivers import pn532

            return pn532.Pn532(pn532.I2cLink(I2C(RFID_I2C, freq=RFID_I2C_HZ)))
        if reader == "pn532" and bus == "uart":
            from drivers import pn532

            u = pyb.UART(RFID_UART, pn532.HSU_BAUD, bits=8, parity=None, stop=1, timeout=0,
                         read_buf_len=256)
            return pn532.Pn532(pn532.UartLink(u), wake=True)
        if reader == "mfrc522" and bus == "spi":
            from machine import SPI

            from drivers.mfrc522 import Mfrc522

            spi = SPI(RFID_SPI, baudrate=RFID_SPI_HZ, polarity=0, phase=0)
            return Mfrc522(spi, pyb.Pin(RFID_CS, pyb.Pin.OUT, value=1))
        raise ValueError("reader %r on bus %r: this board has pn532 on i2c or uart, mfrc522 "
                         "on spi" % (reader, bus))

    def ct_input(self, role):
        """The three CTs (either role), read by ADC.read_timed_multi."""
        adcs = tuple(pyb.ADC(pyb.Pin(p)) for p in CT_ADC_PINS)
        burst = CtBurst(adcs, pyb.Timer(CT_PACE_TIMER, freq=CT_RATE_HZ), CT_SAMPLES,
                        self.adc_guard)
        return {"burst": burst,
                "phases": 3, "offset_code": CT_OFFSET_CODE, "ua_per_code": CT_UA_PER_CODE,
                "rate_hz": CT_RATE_HZ, "samples": CT_SAMPLES, "cal": CT_CAL}

    def net(self, section):
        """None: the STM32F405 has no Ethernet MAC (and this board no Wi-Fi module), so the
        firmware runs without a network (no OCPP). A board on an F407/F429 with an RMII PHY
        returns firmware.net_lan.LanNet(section, lan_args={"phy_type": ..., "phy_addr": ...})
        here."""
        return None

    def watchdog(self, timeout_ms):
        """The independent watchdog (IWDG, up to ~32 s); it cannot be stopped once started.
        It counts the LSI oscillator, 17-47 kHz on the F405 (datasheet), while the port sets
        the prescaler for 32 kHz: the reset comes 0.68x to 1.9x timeout_ms after the last
        feed (3.4-9.4 s for 5000). The supervisor's own hang limit (timeout_ms / 2) stays
        below the shortest of these."""
        return WDT(timeout=timeout_ms)

    def reset(self):
        machine_reset()

    def reset_cause(self):
        return reset_cause()


def build():
    return Stm32Board()
