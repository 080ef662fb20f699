# Viper versions of the kernel passes (drivers/kernels.py runs the argument checks and the
# few per-call steps around them). Machine-word ints: every value here stays below 2**31.
# Only imported on a MicroPython with the viper emitter.
# ruff: noqa: F821 (ptr8/ptr16/ptr32 are viper built-ins)
import micropython


@micropython.viper
def _filt(x: ptr16, n: int, k: int) -> int:
    if k == 0 or k + 1 >= n:
        return int(x[k])
    a = int(x[k - 1])
    b = int(x[k])
    c = int(x[k + 1])
    if a > b:
        t = a
        a = b
        b = t
    if b > c:
        b = c
    return a if a > b else b


@micropython.viper
def extremes(samples, n: int, r):
    x = ptr16(samples)
    o = ptr32(r)
    fmin = 65535
    xmin = 65535
    fmax = 0
    xmax = 0
    last = n - 1
    k = 0
    while k < n:
        b = int(x[k])
        f = b
        if 0 < k and k < last:
            a = int(x[k - 1])
            c = int(x[k + 1])
            if a > b:
                f = a
                a = b
            if f > c:
                f = c
            if a > f:
                f = a
        if f < fmin:
            fmin = f
        if f > fmax:
            fmax = f
        if b < xmin:
            xmin = b
        if b > xmax:
            xmax = b
        k += 1
    o[0] = fmin
    o[1] = fmax
    o[2] = xmin
    o[3] = xmax


@micropython.viper
def edges(samples, n: int, mid: int, hy: int, g: int, r):
    x = ptr16(samples)
    o = ptr32(r)
    state = 1 if int(_filt(x, n, 0)) > mid else 0
    prev = state
    run = g
    j_lo = 0
    j_hi = 0
    nrise = 0
    nfall = 0
    nside_hi = 0
    first_rise = 0
    last_rise = 0
    first_fall = 0
    last_fall = 0
    pend_hi = 0
    acc_hi = 0
    pend_lo = 0
    acc_lo = 0
    cnt0 = 0
    cnt1 = 0
    min0 = 65535
    min1 = 65535
    max0 = 0
    max1 = 0
    last = n - 1
    k = 0
    while k < n:
        b = int(x[k])
        f = b
        if 0 < k and k < last:
            a = int(x[k - 1])
            c = int(x[k + 1])
            if a > b:
                f = a
                a = b
            if f > c:
                f = c
            if a > f:
                f = a
        s = 1 if f > mid else 0
        if s != prev:
            run = 0
        elif k > 0 and run < g:
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
                a = int(_filt(x, n, j_hi))
                pos = (j_hi << 8) + ((a - mid) << 8) // (a - int(_filt(x, n, j_hi + 1)))
                if nfall:
                    acc_lo += pend_lo
                else:
                    first_fall = pos
                if nrise:
                    pend_hi = pos - last_rise
                last_fall = pos
                nfall += 1
                state = 0
                j_lo = k
        elif f <= mid:
            j_lo = k
        elif f > mid + hy:
            a = int(_filt(x, n, j_lo))
            pos = (j_lo << 8) + ((mid - a) << 8) // (int(_filt(x, n, j_lo + 1)) - a)
            if nrise:
                acc_hi += pend_hi
            else:
                first_rise = pos
            if nfall:
                pend_lo = pos - last_fall
            last_rise = pos
            nrise += 1
            state = 1
            j_hi = k
        k += 1
    o[0] = nrise
    o[1] = nfall
    o[2] = first_rise
    o[3] = last_rise
    o[4] = first_fall
    o[5] = last_fall
    o[6] = acc_hi
    o[7] = acc_lo
    o[8] = nside_hi
    o[9] = cnt0
    o[10] = min0
    o[11] = max0
    o[12] = cnt1
    o[13] = min1
    o[14] = max1


@micropython.viper
def hist_pass(samples, n: int, mid: int, g: int, ms_in, h_in):
    x = ptr16(samples)
    ms = ptr32(ms_in)
    h = ptr16(h_in)
    i = 0
    while i < 512:
        h[i] = 0
        i += 1
    b0 = int(ms[0])
    b1 = int(ms[1])
    s0 = int(ms[2])
    s1 = int(ms[3])
    g0 = int(ms[4])
    g1 = int(ms[5])
    a0 = int(ms[6])
    a1 = int(ms[7])
    prev = 1 if int(_filt(x, n, 0)) > mid else 0
    run = g
    last = n - 1
    k = 0
    while k < n:
        b = int(x[k])
        f = b
        if 0 < k and k < last:
            a = int(x[k - 1])
            c = int(x[k + 1])
            if a > b:
                f = a
                a = b
            if f > c:
                f = c
            if a > f:
                f = a
        s = 1 if f > mid else 0
        if s != prev:
            run = 0
        elif k > 0 and run < g:
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
        k += 1


@micropython.viper
def crc16(buf, n: int) -> int:
    p = ptr8(buf)
    crc = 0xFFFF
    i = 0
    while i < n:
        crc ^= int(p[i])
        j = 0
        while j < 8:
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
            j += 1
        i += 1
    return crc


@micropython.viper
def mask(buf, n: int, key, offset: int):
    p = ptr8(buf)
    k = ptr8(key)
    i = 0
    while i < n:
        p[i] = int(p[i]) ^ int(k[(offset + i) & 3])
        i += 1
