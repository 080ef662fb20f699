# ESP32 wallbox board (ESP32-WROOM-32, MicroPython esp32 port). The only file that names this
# board's pins and calibration; wiring assumptions are in docs/boards.md.
#   from boards.esp32_wallbox.board import build; board = build()
from machine import ADC, PWM, WDT, Pin
from machine import reset as machine_reset

from boards.rtc import MachineRtc, reset_cause
from boards.rtc import ntp_s as _ntp_s
from drivers.contactor import Contactor
from drivers.led import StatusLed
from drivers.lock import Lock
from drivers.pilot import Pilot
from drivers.proximity import Proximity
from drivers.rcm import Rcm

NAME = "esp32_wallbox"
# Native code target (ESP32: Xtensa LX6, windowed ABI): mpy-cross -march for @native/@viper
# modules and the natmods from dist/ that make deploy copies.
MPY_ARCH = "xtensawin"

# -- pins (GPIO numbers) ------------------------------------------------------------------------
# ADC2 (GPIO0, 2, 4, 12-15, 25-27) returns junk while Wi-Fi runs: both analog inputs are ADC1.
CP_PWM_PIN = const(25)  # LEDC output -> +/-12 V CP driver (non-inverting, see CP_INVERT)
CP_ADC_PIN = const(36)  # ADC1_CH0 (SENSOR_VP), CP read back through the divider below
PP_ADC_PIN = const(39)  # ADC1_CH3 (SENSOR_VN), PP with PP_PULLUP_OHM to 3V3
CONTACTOR_PIN = const(26)  # coil driver input, high = energised; 10k pull-down on the board
MIRROR_PIN = const(34)  # mirror contact (NO) to 3V3; input-only pin, 10k pull-down on the board
RCM_FAULT_PIN = const(35)  # RDC-DD fault output, high = tripped; input-only, 10k pull-up
RCM_TEST_PIN = const(32)  # RDC-DD test input, high = inject the test current
LOCK_PIN = const(27)  # socket lock actuator driver, high = locked
LOCK_SENSE_PIN = const(33)  # lock position switch to GND when locked; internal pull-up
LED_PIN = const(2)  # status LED on the carrier board (the DevKitC itself has only a power
# LED; some clones have one on GPIO2); strapping pin: an LED to GND is harmless
# Energy meters (config "meters", firmware/meters/roles.py): RS485 through a MAX3485 on
# UART1 (pins remapped), DE and /RE tied together, high while sending.
METER_UART = const(1)
METER_TX = const(17)
METER_RX = const(16)
METER_DE = const(4)  # 10k pull-down on the board: receive while the pin floats at boot
S0_INPUT = const(13)  # S0 input: the meter's open collector to GND; internal + 10k pull-up
S0_PCNT_UNIT = const(0)  # machine.Counter (PCNT unit) counting the S0 impulses in hardware
S0_FILTER_NS = const(13000)  # the port takes min(this * 80 // 1000, 1023) cycles: 12.8 us
# Card reader (config "rfid", firmware/rfid.py): a PN532 module on the 4-pin reader header
# (GND, 3V3, SDA/TXD, SCL/RXD, as PN532 breakouts label it); the module's switches pick I2C
# or HSU and the config's "bus" says which. I2C0 on GPIO21/22 (the ESP32's usual I2C pins,
# 4k7 pull-ups on the module), or UART2 with RX on the module's TXD line and TX on its RXD.
RFID_I2C = const(0)
RFID_SDA = const(21)
RFID_SCL = const(22)
RFID_I2C_HZ = const(100000)
RFID_UART = const(2)
RFID_RX = const(21)  # from the module's TXD (the SDA line)
RFID_TX = const(22)  # to the module's RXD (the SCL line)
# ... or an MFRC522 (RC522) module on the SPI reader header: VSPI, its SDA pin is the chip
# select; its RST pin to 3V3 (the driver resets the chip by command), IRQ not connected.
RFID_SPI = const(2)  # VSPI
RFID_SCK = const(18)
RFID_MOSI = const(23)
RFID_MISO = const(19)
RFID_CS = const(5)  # strapping pin: idles high, as the chip select does
RFID_SPI_HZ = const(1000000)  # the chip takes 10 MHz; 1 MHz for a cable to the front panel
# No CT inputs: ADC1 (GPIO32-39) is taken by CP, PP, mirror, RCM and lock; ADC2 returns
# junk while Wi-Fi runs.
# GPIO36/39 glitch for ~80 ns when the ADC powers up: fine for analog, never a digital input.

# Energy registers in RTC slow memory (machine.RTC().memory(), boards/backed.py): 16 words.
RTC_WORDS = const(16)
RTC_ENERGY = {"energy_ev": 0, "energy_grid": 8}

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
# The CP driver (op-amp on +/-12 V) follows the GPIO: high -> +12 V, low -> -12 V. duty_u16
# 65535 is then a true 100 % = +12 V constant = state x1, the safe state; a floating pin at
# boot reads low = -12 V = state F, also safe. A driver that inverts (single transistor
# stage): set CP_INVERT = True (PWM invert=, MicroPython >= 1.26) and keep everything else.
CP_INVERT = False
CP_SAFE_DUTY_U16 = const(65535)
# Divider: CP -100k- node -20k- 3V3, node -15k- GND. V_node = 1.3026 V + 0.078947 * V_cp,
# so -13.5 .. +13.5 V maps to 0.24 .. 2.37 V, inside the ADC's linear range at 11 dB
# (0.15 .. 2.45 V). V_cp = (V_node - 1.3026 V) * 12.667.
# Codes: read_uv() // 50, i.e. 50 uV per code at the pin, from the eFuse-calibrated
# read_uv() (ports/esp32/machine_adc.c, adc.c: the chip's Vref/two-point eFuse values remove
# the ADC's zero offset, ~142 mV at 11 dB, and its per-chip gain; raw read_u16() codes with
# nominal constants read a B at its low tolerance, 8.4 V, as C). 50 uV x 12.667 = 633 uV
# per code on the CP line. A chip without eFuse calibration (read_uv raises at build) falls
# back to read_u16() and these constants only if CP_CALIBRATED says a unit calibration
# (calib.cp) wrote them; otherwise the board refuses to charge and says how to calibrate.
CP_OFFSET_MV = const(-16500)  # CP voltage at code 0 (V_node = 0)
CP_UV_PER_CODE = const(633)
_UV_PER_CODE = const(50)  # read_uv() // this = the code the pilot analysis gets
# read_u16() fallback (no eFuse calibration): written by calib.cp(board) for this unit.
CP_CALIBRATED = False
CP_RAW_OFFSET_MV = const(-16500)
CP_RAW_UV_PER_CODE = const(638)
# Burst: one read in a tight Python loop takes ~35 us (an old report; v1.29's oneshot
# driver may be faster; read_uv adds the calibration arithmetic). CP_SAMPLES * CP_SAMPLE_US
# must span > 1 PWM period: 64 samples x 35 us = 2.24 ms = two periods. Measure on your
# unit with calib.burst(board) (it warns above 45 us a read: the 6 A offer's 100 us high
# phase would get fewer than 2 samples) and put the measured us here: the rate only scales
# the frequency result, plateaus and duty come out right at any rate that spans a period.
CP_SAMPLE_US = const(35)
CP_RATE_HZ = const(1000000 // CP_SAMPLE_US)  # 28571 Hz
CP_SAMPLES = const(64)
# One controller step = burst (~2.3 ms) + analysis + session (~2 ms) + this sleep; a safety
# transition needs 3 samples (pilot.SAFE_SAMPLES), ~30 ms, inside the 50 ms rule.
PILOT_PERIOD_MS = const(5)

# -- proximity ----------------------------------------------------------------------------------
PP_PULLUP_OHM = const(1000)  # PP -1k- 3V3: 1.5 kOhm -> 1.98 V, 100 Ohm -> 0.30 V
PP_VREF_MV = const(3300)


def cp_burst(adc):
    """A burst reader: fills the whole buffer with back-to-back calibrated samples
    (read_uv() // 50: small ints, no allocation)."""
    read_uv = adc.read_uv

    def burst(buf):
        for i in range(len(buf)):
            buf[i] = read_uv() // _UV_PER_CODE

    return burst


def cp_burst_raw(adc):
    """The fallback for a chip without eFuse calibration: raw read_u16() codes."""
    read = adc.read_u16

    def burst(buf):
        for i in range(len(buf)):
            buf[i] = read()

    return burst


def has_efuse_cal(adc):
    """True if read_uv() works (the chip has eFuse calibration values)."""
    try:
        adc.read_uv()
        return True
    except (OSError, ValueError, RuntimeError):
        return False


def pp_reader(adc):
    read_uv = adc.read_uv  # eFuse-calibrated

    def read_mv():
        return read_uv() // 1000

    return read_mv


def pp_reader_raw(adc):
    read = adc.read_u16

    def read_mv():
        return read() * PP_VREF_MV // 65535

    return read_mv


class Esp32Board:
    name = NAME
    pilot_period_ms = PILOT_PERIOD_MS
    meter = None  # no energy meter driver yet
    phase_switch = None  # no 1p/3p switch contactor on this design (docs/boards.md)

    def __init__(self):
        # Outputs first, each created at its safe level: coil off, CP at +12 V (x1).
        coil = Pin(CONTACTOR_PIN, Pin.OUT, value=1 - CONTACTOR_ON)
        self.contactor = Contactor(
            coil, Pin(MIRROR_PIN, Pin.IN), mirror_closed=MIRROR_CLOSED, coil_on=CONTACTOR_ON
        )
        if CP_INVERT:
            self.cp_pwm = PWM(Pin(CP_PWM_PIN), freq=CP_FREQ_HZ, duty_u16=CP_SAFE_DUTY_U16,
                              invert=True)
        else:
            self.cp_pwm = PWM(Pin(CP_PWM_PIN), freq=CP_FREQ_HZ, duty_u16=CP_SAFE_DUTY_U16)
        self.cp_adc = ADC(Pin(CP_ADC_PIN), atten=ADC.ATTN_11DB)
        self.refuse_why = None  # set: App refuses to charge and says this
        self.cp_calibrated = has_efuse_cal(self.cp_adc)
        if self.cp_calibrated:
            self.cp_burst = cp_burst(self.cp_adc)
            off, uv = CP_OFFSET_MV, CP_UV_PER_CODE
        else:
            self.cp_burst = cp_burst_raw(self.cp_adc)
            off, uv = CP_RAW_OFFSET_MV, CP_RAW_UV_PER_CODE
            self.cp_names = ("CP_RAW_OFFSET_MV", "CP_RAW_UV_PER_CODE")  # for calib.cp
            self.cp_calibrated = CP_CALIBRATED
            if not CP_CALIBRATED:
                self.refuse_why = (
                    "board: this ESP32 has no eFuse ADC calibration and CP_RAW_OFFSET_MV/"
                    "CP_RAW_UV_PER_CODE are not calibrated for this unit; charging refused. "
                    "Calibrate: calib.cp(build()), put the numbers in board.py and set "
                    "CP_CALIBRATED = True (docs/boards.md)")
        self.pilot = Pilot(self.cp_pwm, self.cp_burst, CP_SAMPLES, CP_RATE_HZ, off, uv)
        self.pp_adc = ADC(Pin(PP_ADC_PIN), atten=ADC.ATTN_11DB)
        if self.cp_calibrated and has_efuse_cal(self.pp_adc):
            self.pp = Proximity(pp_reader(self.pp_adc), PP_PULLUP_OHM, PP_VREF_MV)
        else:  # ~4 % gain and 142 mV offset matter less across PP's wide bands
            self.pp = Proximity(pp_reader_raw(self.pp_adc), PP_PULLUP_OHM, PP_VREF_MV)
        self.rcm = Rcm(
            Pin(RCM_FAULT_PIN, Pin.IN),
            Pin(RCM_TEST_PIN, Pin.OUT, value=1 - RCM_TEST_LEVEL),
            fault_level=RCM_FAULT_LEVEL, test_level=RCM_TEST_LEVEL,
        )
        self.lock = Lock(
            Pin(LOCK_PIN, Pin.OUT, value=1 - LOCK_LEVEL), locked_level=LOCK_LEVEL,
            sense=Pin(LOCK_SENSE_PIN, Pin.IN, Pin.PULL_UP), sense_locked=LOCK_SENSE_LOCKED,
        )
        self.led = StatusLed(Pin(LED_PIN, Pin.OUT, value=1 - LED_ON), on_level=LED_ON)
        # The RTC is also the system time mbedTLS checks certificate dates against: kept
        # through soft and watchdog resets, at 2000-01-01 after a power cut (boards/rtc.py)
        self.rtc = MachineRtc(0)

    def meter_bus(self, uart, baud, parity):
        """The RS485 bus of the Modbus meters: (UART, DE pin)."""
        if uart != METER_UART:
            raise ValueError("this board's RS485 bus is uart %d, not %d" % (METER_UART, uart))
        from machine import UART

        u = UART(METER_UART, baudrate=baud, bits=8, parity=parity, stop=1, tx=METER_TX,
                 rx=METER_RX, rxbuf=512)
        return u, Pin(METER_DE, Pin.OUT, value=0)

    def s0_pin(self, role, imp_per_kwh):
        """The one S0 input (either role)."""
        return Pin(S0_INPUT, Pin.IN, Pin.PULL_UP)

    def s0_counter(self, pin, active):
        """(counter, None): a machine.Counter (the PCNT: v1.26+ on chips that have one)
        counting the impulses' release edges in hardware, behind its longest glitch filter;
        or (None, why) where there is none: the S0 meter then counts in this port's
        scheduled pin interrupt, which loses an impulse inside a block of the interpreter."""
        try:
            from machine import Counter
        except ImportError:
            return None, ("S0: this firmware has no machine.Counter (esp32 port v1.26 or later "
                          "on a chip with PCNT); impulses counted in the scheduled pin "
                          "interrupt: one that starts and ends inside a block of the "
                          "interpreter (TLS, flash, GC) is lost")
        edge = Counter.RISING if active == 0 else Counter.FALLING
        return Counter(S0_PCNT_UNIT, pin, edge=edge, filter_ns=S0_FILTER_NS), None

    def card_reader(self, reader, bus):
        """The card reader chip on a reader header: pn532 on "i2c" or "uart" (HSU), mfrc522
        on "spi"."""
        if reader == "pn532" and bus == "i2c":
            from machine import I2C

            from drivers import pn532

            i2c = I2C(RFID_I2C, scl=Pin(RFID_SCL), sda=Pin(RFID_SDA), freq=RFID_I2C_HZ)
            return pn532.Pn532(pn532.I2cLink(i2c))
        if reader == "pn532" and bus == "uart":
            from machine import UART

            from drivers import pn532

            u = UART(RFID_UART, baudrate=pn532.HSU_BAUD, bits=8, parity=None, stop=1,
                     tx=RFID_TX, rx=RFID_RX, timeout=0, rxbuf=256)
            return pn532.Pn532(pn532.UartLink(u), wake=True)
        if reader == "mfrc522" and bus == "spi":
            from machine import SPI

            from drivers.mfrc522 import Mfrc522

            spi = SPI(RFID_SPI, baudrate=RFID_SPI_HZ, polarity=0, phase=0, sck=Pin(RFID_SCK),
                      mosi=Pin(RFID_MOSI), miso=Pin(RFID_MISO))
            return Mfrc522(spi, Pin(RFID_CS, Pin.OUT, value=1))
        raise ValueError("reader %r on bus %r: this board has pn532 on i2c or uart, mfrc522 "
                         "on spi" % (reader, bus))

    def net(self, section):
        """The Wi-Fi station (firmware/net_wlan.py) for the config's "network" section: one
        object per board, made on first use (no radio is touched before up())."""
        n = getattr(self, "_net", None)
        if n is None:
            from firmware.net_wlan import WlanNet

            n = self._net = WlanNet(section)
            n.gate = self.blocking_ok
        return n

    def ntp_s(self, host):
        """Epoch seconds from NTP, asked only while blocking_ok(). The name is resolved by
        firmware/dns.py, not by ntptime's getaddrinfo (lwIP's retries outlast the watchdog):
        one try of 1 s, else the last address it had; ntptime then waits up to 1 s for the
        answer: the interpreter blocks 2 s at most (the supervisor's hang limit is
        watchdog_ms / 2, 2.5 s by default)."""
        from firmware import dns

        n = getattr(self, "_net", None)
        server = n._dns_server() if n is not None and n.isup() else None
        if server is not None and not dns.numeric(host):
            try:
                host = dns.resolve_blocking(server, host, tries=1)
            except (OSError, ValueError) as e:
                old = dns.cached(host)
                if old is None:
                    raise OSError("dns: cannot resolve %r (%s)" % (host, e))
                host = old
        return _ntp_s(host)

    def blocking_ok(self):
        """False while the contactor is closed: this port has no hard timer interrupt, so no
        reflex runs while the interpreter is blocked in C (the GIL is held through an mbedTLS
        handshake, a blocking getaddrinfo, a flash erase). Net.open() refuses meanwhile (the
        OCPP link retries after the session); persist and the energy register ask it as
        flash_write_ok."""
        return not self.contactor.closed

    flash_write_ok = blocking_ok

    def energy_backend(self, name):
        """The energy register in RTC slow memory (no erase; kept through a reset and the
        watchdog, not through a power cut), copied to flash when the contactor is open
        (boards/backed.py): a power cut during a session loses that session's energy."""
        from boards.backed import BackedEnergy, RtcWords

        first = RTC_ENERGY.get(name)
        if first is None:
            raise ValueError("no RTC memory words for energy register %r" % (name,))
        return BackedEnergy(RtcWords(RTC_WORDS), first, self.flash_write_ok)

    def watchdog(self, timeout_ms):
        """The ESP-IDF task watchdog (panic reset); it cannot be stopped once started."""
        return WDT(timeout=timeout_ms)

    def reset(self):
        machine_reset()

    def reset_cause(self):
        return reset_cause()


def build():
    return Esp32Board()
