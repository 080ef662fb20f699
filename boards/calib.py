# CP calibration and burst timing of a real board, from the REPL (docs/boards.md). Uses only
# the board object (pilot, cp_burst), so it names no pins:
#   from boards.esp32_wallbox.board import build; from boards import calib
#   b = build(); calib.burst(b); calib.cp(b)
# Run it with nothing plugged in and the firmware stopped (no main.py running).
import time

_PERIOD_US = 1000  # one CP PWM period at 1 kHz
_HIGH_6A_US = 100  # the high phase at the 6 A offer (10 %)
_MAX_READ_NS = 45000  # slower reads give the 6 A high phase fewer than ~2 samples


def burst(board, n=20):
    """Time the CP burst: us per sample and the rate, against the board's constant."""
    p = board.pilot
    k = len(p.samples)
    t0 = time.ticks_us()
    for _ in range(n):
        board.cp_burst(p.samples)
    us = time.ticks_diff(time.ticks_us(), t0) // n
    rate = k * 1000000 // us
    print("burst      %d samples in %d us: %d.%02d us/sample, %d Hz (board constant %d Hz)" % (
        k, us, us // k, (us * 100 // k) % 100, rate, p.rate_hz))
    if us < _PERIOD_US * 11 // 10:
        print("warning    the burst spans less than 1.1 PWM periods: raise CP_SAMPLES")
    if us * 1000 // k > _MAX_READ_NS:
        print("warning    one ADC read takes more than %d us: at the 6 A offer the high phase "
              "(%d us) gets fewer than 2 samples and may be missed" % (
                  _MAX_READ_NS // 1000, _HIGH_6A_US))
    return rate


def _mean_code(board):
    buf = board.pilot.samples
    board.cp_burst(buf)
    s = 0
    for c in buf:
        s += c
    return s // len(buf)


def cp(board, high_mv=12000, low_mv=-12000):
    """Drive +12 V (x1) then -12 V (state F), read the mean ADC codes and print the two
    calibration constants for board.py. Measure the real levels with a meter on CP-PE and
    pass them as high_mv/low_mv for the best result."""
    p = board.pilot
    p.set_duty(1000)
    time.sleep_ms(20)
    hi = _mean_code(board)
    p.set_duty(0)
    time.sleep_ms(20)
    lo = _mean_code(board)
    p.set_duty(1000)
    if hi - lo < 100:
        print("calib: +12 V and -12 V read %d and %d: is the CP driver powered?" % (hi, lo))
        return None
    uv = (high_mv - low_mv) * 1000 // (hi - lo)
    off = high_mv - hi * uv // 1000
    print("codes      +12 V -> %d, -12 V -> %d" % (hi, lo))
    n_off, n_uv = getattr(board, "cp_names", ("CP_OFFSET_MV", "CP_UV_PER_CODE"))
    print("now        %s = %d, %s = %d" % (n_off, p.offset_mv, n_uv, p.uv_per_code))
    print("measured   %s = const(%d)" % (n_off, off))
    print("           %s = const(%d)" % (n_uv, uv))
    return off, uv
