# Timing-critical kernels: the native module (wbkernels.mpy) when one matches this MicroPython,
# else the Python twins below, which give bit-identical results. Algorithms, units and the
# build: docs/native.md; the C core: drivers/native/wbkernels/wbk_core.c (keep in step).
import sys
from array import array

from micropython import const

_MAX_SAMPLES = const(65535)
_MAX_OFFSET_MV = const(1000000)
_MAX_SCALE = const(1000000)
_MAX_RATE_HZ = const(1000000)
_MAX_PHASES = const(8)
_MIN_SWING_UV = const(2000000)  # less than 2 V between the filtered extremes: no PWM
_GUARD_RATE_HZ = const(100000)  # 10 us after an edge = ceil(rate / 100 kHz) samples
_AC_MIN_RMS_CODES = const(8)  # below this AC RMS no frequency is reported
_CRC_NIBBLE = (
    0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401,
    0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01, 0x8801, 0x4400,
)  # fmt: skip
_MPY_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")  # fmt: skip

_CPY = sys.implementation.name != "micropython"
_hist = array("H", bytes(2 * 512))  # plateau-median histograms (low class, high class)
_seen = [None] * 12  # MicroPython: the last 4 arrays per slot whose typecode was checked
_seen_n = bytearray(3)


# -- argument checks (same order, exception types and messages as wbkernels.c) --------------


def _typecode(buf, slot):
    """Typecode of an array/memoryview, '' if not a buffer, None if it can't be told (a
    memoryview on MicroPython, which doesn't expose it). slot: 0 samples, 1 out, 2 bytes."""
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
            return "HiB"[slot]
        i += 1
    tc = repr(buf[:0])[7]  # MicroPython: read it from repr once per buffer (allocates)
    if tc == "HiB"[slot]:
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


# -- pilot burst ----------------------------------------------------------------------------
# Per-call state lives in preallocated arrays so that the twin runs under heap_lock() on a
# 64-bit port (on 32-bit ports a few products exceed small ints and allocate).
_BASE = const(0)  # [class 0, class 1] pairs: smallest value of histogram bin 0
_SHIFT = const(2)  # bin = (value - base) >> shift
_GUARD = const(4)  # samples after a side change that do not count
_ACTIVE = const(6)  # the class still needs a histogram pass
_RANK = const(8)  # rank of the median inside what is left
_MED = const(10)
_CNT = const(12)
_CMIN = const(14)
_CMAX = const(16)
_ms = array("i", bytes(4 * 18))
_ex = array("i", bytes(4 * 4))  # fmin, fmax, xmin, xmax
_er = array("i", bytes(4 * 15))  # what _edges reports, see there


def _hist_pass(x, n, mid, g, ms, h):
    """Histograms of the counted samples per plateau class (see hist_pass in wbk_core.c)."""
    for i in range(512):
        h[i] = 0
    b0 = ms[_BASE]
    b1 = ms[_BASE + 1]
    s0 = ms[_SHIFT]
    s1 = ms[_SHIFT + 1]
    g0 = ms[_GUARD]
    g1 = ms[_GUARD + 1]
    a0 = ms[_ACTIVE]
    a1 = ms[_ACTIVE + 1]
    c = x[0]
    prev = c > mid
    run = g
    last = n - 1
    for k in range(n):
        b = c
        f = b
        if 0 < k < last:
            c = x[k + 1]
            a = x[k - 1]
            if a > b:
                a, f = b, a
            if f > c:
                f = c
            if a > f:
                f = a
        elif k == 0 and n > 1:
            c = x[1]
        s = f > mid
        if s != prev:
            run = 0
        elif k and run < g:
            run += 1
        prev = s
        if s:
            if a1 and run >= g1:
                v = b - b1
                if v >= 0:
                    v >>= s1
                    if v < 256:
                        h[256 + v] += 1
        elif a0 and run >= g0:
            v = b - b0
            if v >= 0:
                v >>= s0
                if v < 256:
                    h[v] += 1


def _find_bin(h, s, ms):
    """Bin of 256-bin histogram s holding rank ms[_RANK + s]; leaves the rank inside it."""
    r = ms[_RANK + s]
    off = 256 * s
    cum = 0
    b = 0
    while b < 255:
        if cum + h[off + b] > r:
            break
        cum += h[off + b]
        b += 1
    ms[_RANK + s] = r - cum
    return b


def _medians(x, n, mid, g, ms, hist_pass):
    """Lower median of each active class into ms[_MED..]: one histogram pass over
    [cmin, cmax] in 1- or 256-code bins, a second one inside the chosen 256-code bin."""
    h = _hist
    for s in (0, 1):
        ms[_BASE + s] = ms[_CMIN + s]
        ms[_SHIFT + s] = 0 if ms[_CMAX + s] - ms[_CMIN + s] < 256 else 8
        ms[_RANK + s] = 0 if ms[_CNT + s] == 0 else (ms[_CNT + s] - 1) // 2
    hist_pass(x, n, mid, g, ms, h)
    again = False
    for s in (0, 1):
        if ms[_ACTIVE + s]:
            b = _find_bin(h, s, ms)
            if ms[_SHIFT + s] == 0:
                ms[_MED + s] = ms[_BASE + s] + b
                ms[_ACTIVE + s] = 0
            else:
                ms[_BASE + s] += b << 8
                ms[_SHIFT + s] = 0
                again = True
    if again:
        hist_pass(x, n, mid, g, ms, h)
        for s in (0, 1):
            if ms[_ACTIVE + s]:
                ms[_MED + s] = ms[_BASE + s] + _find_bin(h, s, ms)


def _extremes(x, n, r):
    """r = fmin, fmax, xmin, xmax of the median-of-3 filtered and of the raw signal."""
    fmin = xmin = 65535
    fmax = xmax = 0
    c = x[0]
    last = n - 1
    for k in range(n):
        b = c
        f = b
        if 0 < k < last:
            c = x[k + 1]
            a = x[k - 1]
            if a > b:
                a, f = b, a
            if f > c:
                f = c
            if a > f:
                f = a
        elif k == 0 and n > 1:
            c = x[1]
        if f < fmin:
            fmin = f
        if f > fmax:
            fmax = f
        if b < xmin:
            xmin = b
        if b > xmax:
            xmax = b
    r[0] = fmin
    r[1] = fmax
    r[2] = xmin
    r[3] = xmax


def _filt(x, n, k):
    if k == 0 or k + 1 >= n:
        return x[k]
    a = x[k - 1]
    b = x[k]
    c = x[k + 1]
    if a > b:
        a, b = b, a
    if b > c:
        b = c
    return a if a > b else b


def _edges(x, n, mid, hy, g, r):
    """Schmitt trigger at mid +/- hy on the filtered signal; edge positions are the
    interpolated crossings of mid in 1/256 sample. r receives, in order: nrise, nfall,
    first_rise, last_rise, first_fall, last_fall, acc_hi, acc_lo, nside_hi, then cnt, cmin,
    cmax of the low and the high class."""
    c = x[0]
    state = prev = c > mid
    run = g
    j_lo = j_hi = 0
    nrise = nfall = nside_hi = 0
    first_rise = last_rise = first_fall = last_fall = 0
    pend_hi = acc_hi = pend_lo = acc_lo = 0
    cnt0 = cnt1 = 0
    min0 = min1 = 65535
    max0 = max1 = 0
    last = n - 1
    for k in range(n):
        b = c
        f = b
        if 0 < k < last:
            c = x[k + 1]
            a = x[k - 1]
            if a > b:
                a, f = b, a
            if f > c:
                f = c
            if a > f:
                f = a
        elif k == 0 and n > 1:
            c = x[1]
        s = f > mid
        if s != prev:
            run = 0
        elif k and run < g:
            run += 1
        prev = s
        if s:
            nside_hi += 1
            if run >= g:
                cnt1 += 1
                if b < min1:
                    min1 = b
                if b > max1:
                    max1 = b
        elif run >= g:
            cnt0 += 1
            if b < min0:
                min0 = b
            if b > max0:
                max0 = b
        if state:
            if f > mid:
                j_hi = k
            elif f < mid - hy:
                a = _filt(x, n, j_hi)
                pos = (j_hi << 8) + ((a - mid) << 8) // (a - _filt(x, n, j_hi + 1))
                if nfall:
                    acc_lo += pend_lo
                else:
                    first_fall = pos
                if nrise:
                    pend_hi = pos - last_rise
                last_fall = pos
                nfall += 1
                state = False
                j_lo = k
        elif f <= mid:
            j_lo = k
        elif f > mid + hy:
            a = _filt(x, n, j_lo)
            pos = (j_lo << 8) + ((mid - a) << 8) // (_filt(x, n, j_lo + 1) - a)
            if nrise:
                acc_hi += pend_hi
            else:
                first_rise = pos
            if nfall:
                pend_lo = pos - last_fall
            last_rise = pos
            nrise += 1
            state = True
            j_hi = k
    r[0] = nrise
    r[1] = nfall
    r[2] = first_rise
    r[3] = last_rise
    r[4] = first_fall
    r[5] = last_fall
    r[6] = acc_hi
    r[7] = acc_lo
    r[8] = nside_hi
    r[9] = cnt0
    r[10] = min0
    r[11] = max0
    r[12] = cnt1
    r[13] = min1
    r[14] = max1


def _pilot(samples, out, offset_mv, uv_per_code, sample_rate_hz, p):
    """pilot_burst on the pass functions p = (extremes, edges, hist_pass)."""
    n = _samples(samples)
    nout = _out(out)
    _check_len(n)
    if nout < 4:
        raise ValueError("out too short")
    _range(offset_mv, -_MAX_OFFSET_MV, _MAX_OFFSET_MV, "offset out of range")
    _range(uv_per_code, 1, _MAX_SCALE, "per-code scale out of range")
    _range(sample_rate_hz, 1, _MAX_RATE_HZ, "sample_rate_hz out of range")
    g = (sample_rate_hz + _GUARD_RATE_HZ - 1) // _GUARD_RATE_HZ
    ex = _ex
    p[0](samples, n, ex)
    span = ex[1] - ex[0]
    ms = _ms
    if span * uv_per_code < _MIN_SWING_UV:
        # Constant level (x1 +12 V, F -12 V, E 0 V): the median of all samples.
        for s in (0, 1):
            ms[_GUARD + s] = 0
            ms[_ACTIVE + s] = s
            ms[_CNT + s] = s * n
            ms[_CMIN + s] = ex[2]
            ms[_CMAX + s] = ex[3]
        _medians(samples, n, -1, 0, ms, p[2])
        mv = offset_mv + ms[_MED + 1] * uv_per_code // 1000
        out[0] = mv
        out[1] = mv
        out[2] = 1000 if mv > 0 else 0
        out[3] = 0
        return
    mid = ex[0] + span // 2
    r = _er
    p[1](samples, n, mid, span // 8, g, r)
    nrise = r[0]
    freq = 0
    if nrise >= 2:
        period = r[3] - r[2]
        duty = r[6] * 1000 // period
        freq = (nrise - 1) * sample_rate_hz * 256000 // period
    elif r[1] >= 2:
        period = r[5] - r[4]
        duty = (period - r[7]) * 1000 // period
    else:
        duty = r[8] * 1000 // n
    for s in (0, 1):
        ms[_ACTIVE + s] = 1
        ms[_CNT + s] = r[9 + 3 * s]
        ms[_CMIN + s] = r[10 + 3 * s]
        ms[_CMAX + s] = r[11 + 3 * s]
        ms[_GUARD + s] = g
        if ms[_CNT + s] == 0:  # every sample of this class sits in a guard window: use all
            ms[_GUARD + s] = 0
            ms[_CNT + s] = r[8] if s else n - r[8]
            ms[_CMIN + s] = 0
            ms[_CMAX + s] = 65535
    _medians(samples, n, mid, g, ms, p[2])
    out[0] = offset_mv + ms[_MED + 1] * uv_per_code // 1000
    out[1] = offset_mv + ms[_MED] * uv_per_code // 1000
    out[2] = duty
    out[3] = freq


_PASSES = (_extremes, _edges, _hist_pass)


def py_pilot_burst(samples, out, offset_mv, uv_per_code, sample_rate_hz):
    """High/low plateau (mV), duty (per-mille) and frequency (mHz) of a CP burst into out."""
    _pilot(samples, out, offset_mv, uv_per_code, sample_rate_hz, _PASSES)


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
            out[o + 3] = (nrise - 1) * sample_rate_hz * 256000 // (last - first)


# -- Modbus CRC and WebSocket masking -------------------------------------------------------


def py_crc16_modbus(buf, n=None):
    """CRC-16/MODBUS of buf[:n] (all of buf by default); send it low byte first."""
    if not _bytes(buf, False):
        raise TypeError("buf must be a byte buffer")
    if n is None:
        n = len(buf)
    elif not 0 <= _int(n) <= len(buf):
        raise ValueError("n out of range")
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
    if not _bytes(buf, True):
        raise TypeError("buf must be a writable byte buffer")
    if not _bytes(key, False):
        raise TypeError("key must be a byte buffer")
    if len(key) != 4:
        raise ValueError("key must be 4 bytes")
    if _int(offset) < 0:
        raise ValueError("offset must be >= 0")
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


# -- viper twins: the same checks and steps, the sample loops in drivers/kernels_viper.py ---


def vp_pilot_burst(samples, out, offset_mv, uv_per_code, sample_rate_hz):
    _pilot(samples, out, offset_mv, uv_per_code, sample_rate_hz, _vpasses)


def vp_crc16_modbus(buf, n=None):
    if not _bytes(buf, False):
        raise TypeError("buf must be a byte buffer")
    if n is None:
        n = len(buf)
    elif not 0 <= _int(n) <= len(buf):
        raise ValueError("n out of range")
    return viper.crc16(buf, n)


def vp_ws_mask(buf, key, offset=0):
    if not _bytes(buf, True):
        raise TypeError("buf must be a writable byte buffer")
    if not _bytes(key, False):
        raise TypeError("key must be a byte buffer")
    if len(key) != 4:
        raise ValueError("key must be 4 bytes")
    if _int(offset) < 0:
        raise ValueError("offset must be >= 0")
    viper.mask(buf, len(buf), key, offset & 3)
    return (offset + len(buf)) & 3


_vpasses = None


# -- loader ---------------------------------------------------------------------------------

native = None  # the wbkernels natmod once loaded
viper = None  # drivers.kernels_viper when the viper emitter is there (ac_measure: bytecode)
IMPL = "python"
pilot_burst = py_pilot_burst
ac_measure = py_ac_measure
crc16_modbus = py_crc16_modbus
ws_mask = py_ws_mask


def abi():
    """(arch, 'major.sub') of this MicroPython's native code, e.g. ('x64', '6.3')."""
    v = getattr(sys.implementation, "_mpy", 0)
    a = v >> 10
    return (_MPY_ARCHS[a] if a < len(_MPY_ARCHS) else None), "%d.%d" % (v & 0xFF, v >> 8 & 3)


def _load_native():
    arch, ver = abi()
    if arch is None:
        return None
    try:
        import wbkernels  # frozen user C module, or wbkernels.mpy on sys.path (/lib)

        return wbkernels
    except (ImportError, ValueError):  # absent, or an .mpy of another arch/version
        pass
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    path = here + "/../dist/%s_%s" % (arch, ver)
    sys.path.insert(0, path)
    try:
        import wbkernels

        return wbkernels
    except (ImportError, ValueError):
        return None
    finally:
        sys.path.remove(path)


def use(impl):
    """Bind the public kernels to 'native', 'viper' or 'python' (tests, bench, diag)."""
    global IMPL, pilot_burst, ac_measure, crc16_modbus, ws_mask
    if impl == "native" and native is not None:
        m = native
        IMPL = "natmod %s" % abi()[0]
    elif impl == "viper" and viper is not None:
        pilot_burst, ac_measure = vp_pilot_burst, py_ac_measure
        crc16_modbus, ws_mask = vp_crc16_modbus, vp_ws_mask
        IMPL = "viper"
        return
    elif impl == "python":
        pilot_burst, ac_measure = py_pilot_burst, py_ac_measure
        crc16_modbus, ws_mask = py_crc16_modbus, py_ws_mask
        IMPL = "python"
        return
    else:
        raise ValueError("kernel impl not available: %s" % impl)
    pilot_burst, ac_measure = m.pilot_burst, m.ac_measure
    crc16_modbus, ws_mask = m.crc16_modbus, m.ws_mask


def _load_viper():
    global _vpasses
    try:
        from drivers import kernels_viper as v
    except (ImportError, SyntaxError, ValueError):  # a port built without the viper emitter
        return None
    _vpasses = (v.extremes, v.edges, v.hist_pass)
    return v


if not _CPY:
    native = _load_native()
    viper = _load_viper()
    use("native" if native is not None else ("viper" if viper is not None else "python"))
