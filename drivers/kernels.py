# Timing-critical kernels: the native module when one matches this MicroPython, else the
# pure-Python twins below (identical results). See docs/native.md.
IMPL = "python"


def pilot_burst(samples, out, offset_mv, uv_per_code, sample_rate_hz):
    """High/low plateau (mV), duty (per-mille) and frequency (mHz) of a CP burst."""
    n = len(samples)
    if n == 0:
        raise ValueError("pilot_burst: empty sample buffer")
    lo = hi = samples[0]
    for c in samples:
        if c < lo:
            lo = c
        elif c > hi:
            hi = c
    mid = (lo + hi) >> 1
    sh = sl = nh = nl = 0
    prev = samples[0] > mid
    above = 0
    for k in range(n):
        c = samples[k]
        up = c > mid
        if up:
            above += 1
        if up == prev and (k + 1 >= n or (samples[k + 1] > mid) == up):
            if up:
                sh += c
                nh += 1
            else:
                sl += c
                nl += 1
        prev = up
    if hi - lo < 64:  # constant level: no PWM
        nh = n
        sh = 0
        for c in samples:
            sh += c
        sl, nl = sh, nh
    if nh == 0:
        sh, nh = hi, 1
    if nl == 0:
        sl, nl = lo, 1
    out[0] = offset_mv + (sh // nh) * uv_per_code // 1000
    out[1] = offset_mv + (sl // nl) * uv_per_code // 1000
    out[2] = above * 1000 // n
    out[3] = 0
