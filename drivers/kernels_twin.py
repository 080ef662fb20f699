# Pure-Python twins of the native kernels (drivers/native/wbkernels): the same argument
# checks, exception types and messages, and bit-identical results. Bytecode versions py_*,
# and vp_* whose sample loops run in viper (drivers/kernels_viper.vpy) where the port has it.
# drivers/kernels.py picks between these and the natmod.
import sys
from array import array


from drivers import kernels_pilot

_MAX_SAMPLES = const(65535)
_MAX_OFFSET_MV = const(1000000)
_MAX_SCALE = const(1000000)
_MAX_RATE_HZ = const(1000000)
_MAX_PHASES = const(8)
_AC_MIN_RMS_CODES = const(8)  # below this AC RMS no frequency is reported
_I32_MAX = const(0x7FFFFFFF)

# reflex_step: state items, reasons, thresholds (WBK_REFLEX_* in wbk_core.h)
REFLEX_ST_LEN = const(4)  # st: ARMED, BEAT_LIMIT_MS, BAD, WHY
REFLEX_PILOT = const(1)  # pilot high plateau left the C/D window
REFLEX_RCM = const(2)  # residual-current monitor tripped
REFLEX_BEAT = const(3)  # charge controller's heartbeat lost
REFLEX_SAMPLES = const(2)  # consecutive bad pilot samples that fire
_REFLEX_MIN_MV = const(2000)  # C/D window of the high plateau: 2000 <= mV < 8000
_REFLEX_MAX_MV = const(8000)
_REFLEX_BAD_MAX = const(255)
# An array, not a tuple: frozen into an image, a constant tuple keeps ints above 8191 as
# long ints (mpy-tool), and every CRC step on them allocated.
_CRC_NIBBLE = array("H", (
    0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401,
    0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01, 0x8801, 0x4400,
))  # fmt: skip

_CPY = sys.implementation.name != "micropython"
_seen = [None] * 16  # MicroPython: the last 4 arrays per slot whose typecode was checked
_seen_n = bytearray(4)


# -- argument checks (same order, exception types and messages as wbkernels.c) --------------


def _typecode(buf, slot):
    """Typecode of an array/memoryview, '' if not a buffer, None if it can't be told (a
    memoryview on MicroPython, which doesn't expose it). slot: 0 samples, 1 out, 2 bytes,
    3 reflex state (its own slot: the IRQ's array is never pushed out by other arrays)."""
    t = type(buf)
    if t is bytes or t is bytearray:
        return "B"
    if isinstance(buf, memoryview):
        return buf.format if _CPY else None
    if not isinstance(buf, array):
        return ""
    if _CPY:
        return buf.typecode
    seen = _seen
    i = 4 * slot
    while i < 4 * slot + 4:
        if seen[i] is buf:
            return "HiBi"[slot]
        i += 1
    tc = repr(buf[:0])[7]  # MicroPython: read it from repr once per buffer (allocates)
    if tc == "HiBi"[slot]:
        seen[4 * slot + _seen_n[slot]] = buf
        _seen_n[slot] = (_seen_n[slot] + 1) & 3
    return tc


def _samples(samples):
    if _typecode(samples, 0) not in ("H", None):
        raise TypeError("samples must be array('H')")
    return len(samples)


def _out(out):
    if _typecode(out, 1) not in ("i", None):
        raise TypeError("out must be array('i')")
    return len(out)


def _bytes(buf, writable):
    if isinstance(buf, str) or _typecode(buf, 2) not in ("B", "b", "c", None):
        return False
    if writable:
        if isinstance(buf, bytes) or (_CPY and isinstance(buf, memoryview) and buf.readonly):
            return False
    return True


def _int(v):
    if not isinstance(v, int):
        raise TypeError("expected an int")
    return v


def _range(v, lo, hi, msg):
    if not lo <= _int(v) <= hi:
        raise ValueError(msg)


def _check_len(n):
    if n == 0:
        raise ValueError("samples is empty")
    if n > _MAX_SAMPLES:
        raise ValueError("samples longer than 65535")


# -- pilot burst: drivers/kernels_pilot.py -------------------------------------------------


def py_pilot_burst(samples, out, offset_mv, uv_per_code, sample_rate_hz):
    """High/low plateau (mV), duty (per-mille) and frequency (mHz) of a CP burst into out."""
    _pilot(samples, out, offset_mv, uv_per_code, sample_rate_hz, kernels_pilot.PASSES)


def _pilot(samples, out, offset_mv, uv_per_code, sample_rate_hz, passes):
    n = _samples(samples)
    nout = _out(out)
    _check_len(n)
    if nout < 4:
        raise ValueError("out too short")
    _range(offset_mv, -_MAX_OFFSET_MV, _MAX_OFFSET_MV, "offset out of range")
    _range(uv_per_code, 1, _MAX_SCALE, "per-code scale out of range")
    _range(sample_rate_hz, 1, _MAX_RATE_HZ, "sample_rate_hz out of range")
    kernels_pilot.analyse(samples, n, out, offset_mv, uv_per_code, sample_rate_hz, passes)


# -- AC measurement -------------------------------------------------------------------------


def _isqrt(v):
    """floor(sqrt(v)) for v >= 0 (bit by bit, as isqrt64 in the C core)."""
    r = 0
    bit = 1
    while bit <= v >> 2:  # the largest power of 4 <= v (no big int for a small v)
        bit <<= 2
    while bit:
        if v >= r + bit:
            v -= r + bit
            r = (r >> 1) + bit
        else:
            r >>= 1
        bit >>= 2
    return r


def py_ac_measure(samples, out, offset_code, uu_per_code, sample_rate_hz, phases=1):
    """Per phase p (samples interleaved): out[4p..4p+3] = mean, RMS about offset_code, AC RMS
    (about the mean), all in milli-units (code * uu_per_code / 1000), and the frequency of
    the rising mean crossings in mHz (0 without two of them or below 8 codes AC RMS)."""
    n = _samples(samples)
    nout = _out(out)
    _check_len(n)
    if not 1 <= _int(phases) <= _MAX_PHASES or n % phases:
        raise ValueError("phases out of range or not dividing the samples")
    if nout < 4 * phases:
        raise ValueError("out too short")
    _range(offset_code, 0, 65535, "offset out of range")
    _range(uu_per_code, 1, _MAX_SCALE, "per-code scale out of range")
    _range(sample_rate_hz, 1, _MAX_RATE_HZ, "sample_rate_hz out of range")
    m = n // phases
    div = m * 1000
    for p in range(phases):
        s0 = q0 = 0
        k = p
        while k < n:  # (a range() with a variable step would allocate)
            v = samples[k] - offset_code
            s0 += v
            q0 += v * v
            k += phases
        sd = _isqrt(m * q0 - s0 * s0)  # m * AC RMS in codes
        o = 4 * p
        out[o] = s0 * uu_per_code // div
        out[o + 1] = _isqrt(m * q0) * uu_per_code // div
        out[o + 2] = sd * uu_per_code // div
        out[o + 3] = 0
        if sd < _AC_MIN_RMS_CODES * m:
            continue
        hy = sd // 2
        state = (samples[p] - offset_code) * m - s0 > 0
        j = 0
        nrise = first = last = 0
        for k in range(m):
            d = (samples[p + k * phases] - offset_code) * m - s0
            if state:
                if d < -hy:
                    state = False
                    j = k
            elif d <= 0:
                j = k
            elif d > hy:
                a = (samples[p + j * phases] - offset_code) * m - s0
                b = (samples[p + (j + 1) * phases] - offset_code) * m - s0
                pos = (j << 8) + ((-a) << 8) // (b - a)
                if not nrise:
                    first = pos
                last = pos
                nrise += 1
                state = True
        if nrise >= 2:
            out[o + 3] = kernels_pilot.freq_mhz((nrise - 1) * sample_rate_hz, last - first)


# -- Modbus CRC and WebSocket masking -------------------------------------------------------


def _crc_args(buf, n):
    """Checks shared by both CRC twins; returns the byte count."""
    if not _bytes(buf, False):
        raise TypeError("buf must be a byte buffer")
    if n is None:
        return len(buf)
    if not 0 <= _int(n) <= len(buf):
        raise ValueError("n out of range")
    return n


def _mask_args(buf, key, offset):
    """Checks shared by both masking twins."""
    if not _bytes(buf, True):
        raise TypeError("buf must be a writable byte buffer")
    if not _bytes(key, False):
        raise TypeError("key must be a byte buffer")
    if len(key) != 4:
        raise ValueError("key must be 4 bytes")
    if _int(offset) < 0:
        raise ValueError("offset must be >= 0")


def py_crc16_modbus(buf, n=None):
    """CRC-16/MODBUS of buf[:n] (all of buf by default); send it low byte first."""
    n = _crc_args(buf, n)
    t = _CRC_NIBBLE
    crc = 0xFFFF
    for i in range(n):
        crc ^= buf[i]
        crc = (crc >> 4) ^ t[crc & 15]
        crc = (crc >> 4) ^ t[crc & 15]
    return crc


def py_ws_mask(buf, key, offset=0):
    """XOR buf in place with the 4-byte WebSocket key, starting at key[offset % 4]; returns
    the offset for the next chunk of the same frame."""
    _mask_args(buf, key, offset)
    n = len(buf)
    k0 = key[offset & 3]
    k1 = key[(offset + 1) & 3]
    k2 = key[(offset + 2) & 3]
    k3 = key[(offset + 3) & 3]
    i = 0
    end = n - 3
    while i < end:
        buf[i] ^= k0
        buf[i + 1] ^= k1
        buf[i + 2] ^= k2
        buf[i + 3] ^= k3
        i += 4
    while i < n:
        buf[i] ^= key[(offset + i) & 3]
        i += 1
    return (offset + n) & 3


# -- reflex: the contactor-open decision outside the scheduler -----------------------------


def py_reflex_step(st, high_mv, rcm, beat_age_ms):
    """One reflex decision (docs/native.md): 0 = keep closed, else REFLEX_RCM, REFLEX_PILOT
    (2 samples in a row outside 2000 <= mV < 8000) or REFLEX_BEAT (beat_age_ms > st[1]),
    latched in st[3], and st[0] (armed) and st[2] (bad count) cleared. Allocation-free for a
    hard IRQ once st has been seen (call it once outside the IRQ on MicroPython) as long as
    st's items stay small ints (< 2**30 on 32-bit ports)."""
    if _typecode(st, 3) not in ("i", None):
        raise TypeError("st must be array('i')")
    _int(high_mv)
    _int(rcm)
    _int(beat_age_ms)
    if len(st) < REFLEX_ST_LEN:
        raise ValueError("st too short")
    if not st[0]:
        st[2] = 0
        return 0
    why = 0
    if rcm:
        why = REFLEX_RCM
    elif high_mv < _REFLEX_MIN_MV or high_mv >= _REFLEX_MAX_MV:
        bad = st[2]
        if bad < 0:
            bad = 0
        if bad < _REFLEX_BAD_MAX:
            bad += 1
        st[2] = bad
        if bad >= REFLEX_SAMPLES:
            why = REFLEX_PILOT
    else:
        st[2] = 0
    # The binding saturates an age at INT32_MAX, so a limit of INT32_MAX never fires.
    if not why and beat_age_ms > st[1] and st[1] != _I32_MAX:
        why = REFLEX_BEAT
    if why:
        st[3] = why
        st[0] = 0
        st[2] = 0
    return why


# -- viper twins: the same checks and steps, the sample loops in drivers/kernels_viper.vpy ---


def vp_pilot_burst(samples, out, offset_mv, uv_per_code, sample_rate_hz):
    _pilot(samples, out, offset_mv, uv_per_code, sample_rate_hz, _vpasses)


def vp_crc16_modbus(buf, n=None):
    return _viper.crc16(buf, _crc_args(buf, n))


def vp_ws_mask(buf, key, offset=0):
    _mask_args(buf, key, offset)
    _viper.mask(buf, len(buf), key, offset & 3)
    return (offset + len(buf)) & 3


_viper = None
_vpasses = None
if not _CPY:
    try:
        from drivers import kernels_viper as _viper

        _vpasses = (_viper.extremes, _viper.edges, _viper.hist_pass)
    except (ImportError, SyntaxError, ValueError):  # a port built without the viper emitter
        _viper = None
VIPER = _viper is not None
