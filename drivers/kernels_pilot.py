# Control-pilot burst analysis, the Python twin of wbk_pilot_burst (wbk_core.c): same steps,
# same integers, bit-identical results. drivers/kernels_twin.py checks the arguments first.
# The sample loops are the "passes"; drivers/kernels_viper.vpy has viper versions of them.
# Each pass inlines the same median-of-3 filter (as wbk_core.c does): a call per sample
# would cost more than the pass itself in bytecode. _filt is the out-of-loop version.
from array import array


_MIN_SWING_UV = const(2000000)  # less than 2 V between the filtered extremes: no PWM
_GUARD_RATE_HZ = const(100000)  # 10 us after an edge = ceil(rate / 100 kHz) samples
_hist = array("H", bytes(2 * 512))  # plateau-median histograms (low class, high class)
# Per-call state lives in preallocated arrays so that the twin runs under heap_lock(); every
# intermediate stays within 31-bit small ints for the boards' bursts (test_boards.py), so
# it allocates nothing on 32-bit ports either.
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


def freq_mhz(cycles_x_rate, period):
    """cycles_x_rate * 256000 // period (period in 1/256 samples), exactly, without the
    product: on a 32-bit port it would leave small ints and allocate on every call."""
    q = cycles_x_rate // period
    t = (cycles_x_rate - q * period) << 8
    q2 = t // period
    return q * 256000 + q2 * 1000 + (t - q2 * period) * 1000 // period


def analyse(samples, n, out, offset_mv, uv_per_code, sample_rate_hz, p):
    """out = high mV, low mV, duty per-mille, mHz of samples[:n] (arguments checked) with
    the pass functions p = (extremes, edges, hist_pass)."""
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
        freq = freq_mhz((nrise - 1) * sample_rate_hz, period)
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


PASSES = (_extremes, _edges, _hist_pass)
