# Control-pilot driver: a PWM output that drives the +/-12 V stage and an ADC burst that reads
# the CP line back. The board hands in the objects; this module names no pins.
from array import array


from drivers import kernels

_OUT_N = const(4)


class Pilot:
    """`pwm` has duty_u16(); `burst(buf)` fills buf (array 'H') with raw ADC codes spanning
    at least one PWM period at `rate_hz`. Calibration: mV = offset_mv + code*uv_per_code/1000.
    """

    def __init__(self, pwm, burst, n_samples, rate_hz, offset_mv, uv_per_code, analyse=None):
        if analyse is None:
            analyse = kernels.pilot_burst
        self._pwm = pwm
        self._burst = burst
        self._analyse = analyse
        self.samples = array("H", bytes(2 * n_samples))
        self.out = array("i", bytes(4 * _OUT_N))  # high mV, low mV, duty per-mille, mHz
        self.rate_hz = rate_hz
        self.offset_mv = offset_mv
        self.uv_per_code = uv_per_code
        self.duty = -1  # per-mille applied; -1 until the first set_duty()

    def set_duty(self, permille):
        """0 = constant -12 V (state F), 1000 = constant +12 V (x1), else PWM."""
        if permille != self.duty:
            self._pwm.duty_u16((permille * 65535) // 1000)
            self.duty = permille

    def read(self):
        """Capture one burst; high and low plateaus land in out[0] and out[1] (mV)."""
        self._burst(self.samples)
        self._analyse(self.samples, self.out, self.offset_mv, self.uv_per_code, self.rate_hz)
        return self.out
