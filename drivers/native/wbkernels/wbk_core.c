// C core of the wallbox kernels. See wbk_core.h and docs/native.md for the algorithms; the
// Python twins in drivers/kernels_twin.py follow this file step by step.
#include "wbk_core.h"

#define MIN_SWING_UV (2000000)   // less than 2 V between the filtered extremes: no PWM
#define GUARD_RATE_HZ (100000)   // 10 us after an edge = ceil(rate / 100 kHz) samples
#define POS_ONE (256)            // edge positions in 1/256 sample
#define AC_MIN_RMS_CODES (8)     // below this AC RMS no frequency is reported

typedef uint32_t __attribute__((may_alias)) u32_alias_t;

static int64_t floordiv(int64_t a, int64_t b) {  // b > 0; Python's // for any sign of a
    int64_t q = a / b;
    if (a % b != 0 && a < 0) {
        q -= 1;
    }
    return q;
}

static uint64_t isqrt64(uint64_t v) {  // floor(sqrt(v))
    uint64_t r = 0;
    uint64_t bit = (uint64_t)1 << 62;
    while (bit > v) {
        bit >>= 2;
    }
    while (bit != 0) {
        if (v >= r + bit) {
            v -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

// Median of three neighbours (the ends are taken as they are): removes one-sample spikes
// from the edge detection without moving a clean edge.
static int32_t filt(const uint16_t *x, size_t n, size_t k) {
    if (k == 0 || k + 1 >= n) {
        return x[k];
    }
    int32_t a = x[k - 1];
    int32_t b = x[k];
    int32_t c = x[k + 1];
    if (a > b) {
        int32_t t = a;
        a = b;
        b = t;
    }
    if (b > c) {
        b = c;
    }
    return a > b ? a : b;
}

static int32_t code_to_mv(int32_t code, int32_t offset_mv, int32_t uv_per_code) {
    return offset_mv + (int32_t)(((int64_t)code * uv_per_code) / 1000);
}

// One plateau class (0 = low, 1 = high) in a histogram pass of the median selection.
typedef struct {
    int32_t base;    // smallest value that goes in bin 0
    int32_t shift;   // bin = (value - base) >> shift
    uint32_t guard;  // samples after a side change that do not count (g, or 0 as fallback)
    int32_t active;  // this class still needs this pass
} cls_t;

// Histogram of the counted samples of each class. A sample counts for class side(f > mid)
// when the filtered signal has stayed on that side for at least `guard` samples.
static void hist_pass(const uint16_t *x, size_t n, int32_t mid, uint32_t g,
    const cls_t *c, uint16_t *hist) {
    for (size_t i = 0; i < 2 * 256; i++) {
        hist[i] = 0;
    }
    int prev = filt(x, n, 0) > mid;
    uint32_t run = g;
    for (size_t k = 0; k < n; k++) {
        int s = filt(x, n, k) > mid;
        if (s != prev) {
            run = 0;
        } else if (k > 0 && run < g) {
            run++;
        }
        prev = s;
        if (!c[s].active || run < c[s].guard) {
            continue;
        }
        int32_t v = (int32_t)x[k] - c[s].base;
        if (v < 0) {
            continue;
        }
        v >>= c[s].shift;
        if (v < 256) {
            hist[s * 256 + v]++;
        }
    }
}

// Bin holding rank *r (0-based) of a 256-bin histogram; *r becomes the rank inside it.
static int32_t find_bin(const uint16_t *h, uint32_t *r) {
    uint32_t cum = 0;
    int32_t b = 0;
    for (; b < 255; b++) {
        if (cum + h[b] > *r) {
            break;
        }
        cum += h[b];
    }
    *r -= cum;
    return b;
}

// Lower median of each active class, exactly, in one or two histogram passes: first over
// [cmin, cmax] in bins of 1 or 256 codes, then inside the chosen 256-code bin.
static void medians(const uint16_t *x, size_t n, int32_t mid, uint32_t g, cls_t *c,
    const uint32_t *cnt, const int32_t *cmin, const int32_t *cmax, int32_t *med,
    uint16_t *hist) {
    uint32_t rank[2];
    int again = 0;
    for (int s = 0; s < 2; s++) {
        c[s].base = cmin[s];
        c[s].shift = (cmax[s] - cmin[s] < 256) ? 0 : 8;
        rank[s] = cnt[s] == 0 ? 0 : (cnt[s] - 1) / 2;
    }
    hist_pass(x, n, mid, g, c, hist);
    for (int s = 0; s < 2; s++) {
        if (!c[s].active) {
            continue;
        }
        int32_t b = find_bin(hist + s * 256, &rank[s]);
        if (c[s].shift == 0) {
            med[s] = c[s].base + b;
            c[s].active = 0;
        } else {
            c[s].base += b << 8;
            c[s].shift = 0;
            again = 1;
        }
    }
    if (again) {
        hist_pass(x, n, mid, g, c, hist);
        for (int s = 0; s < 2; s++) {
            if (c[s].active) {
                med[s] = c[s].base + find_bin(hist + s * 256, &rank[s]);
            }
        }
    }
}

int wbk_pilot_burst(const uint16_t *x, size_t n, int32_t *out, size_t out_len,
    int32_t offset_mv, int32_t uv_per_code, int32_t rate_hz, uint16_t *scratch) {
    if (n == 0) {
        return WBK_E_EMPTY;
    }
    if (n > WBK_MAX_SAMPLES) {
        return WBK_E_TOO_LONG;
    }
    if (out_len < WBK_PILOT_OUT) {
        return WBK_E_OUT_SHORT;
    }
    if (offset_mv < -WBK_MAX_OFFSET_MV || offset_mv > WBK_MAX_OFFSET_MV) {
        return WBK_E_OFFSET;
    }
    if (uv_per_code < 1 || uv_per_code > WBK_MAX_SCALE) {
        return WBK_E_SCALE;
    }
    if (rate_hz < 1 || rate_hz > WBK_MAX_RATE_HZ) {
        return WBK_E_RATE;
    }
    uint32_t g = ((uint32_t)rate_hz + GUARD_RATE_HZ - 1) / GUARD_RATE_HZ;

    // Pass 1: extremes of the raw and of the filtered signal.
    int32_t fmin = 65535, fmax = 0, xmin = 65535, xmax = 0;
    for (size_t k = 0; k < n; k++) {
        int32_t f = filt(x, n, k);
        fmin = f < fmin ? f : fmin;
        fmax = f > fmax ? f : fmax;
        xmin = x[k] < xmin ? x[k] : xmin;
        xmax = x[k] > xmax ? x[k] : xmax;
    }
    int32_t span = fmax - fmin;
    cls_t c[2];
    uint32_t cnt[2];
    int32_t cmin[2], cmax[2], med[2];

    if ((int64_t)span * uv_per_code < MIN_SWING_UV) {
        // Constant level (x1 +12 V, F -12 V, E 0 V): the median of all samples.
        c[0].active = 0;
        c[0].guard = 0;
        c[1].active = 1;
        c[1].guard = 0;
        cnt[0] = 0;
        cnt[1] = (uint32_t)n;
        cmin[0] = cmin[1] = xmin;
        cmax[0] = cmax[1] = xmax;
        medians(x, n, -1, 0, c, cnt, cmin, cmax, med, scratch);
        int32_t mv = code_to_mv(med[1], offset_mv, uv_per_code);
        out[0] = mv;
        out[1] = mv;
        out[2] = mv > 0 ? 1000 : 0;
        out[3] = 0;
        return WBK_OK;
    }

    // Pass 2: edges (Schmitt trigger at mid +/- span/8, crossing of mid interpolated),
    // full periods for duty and frequency, counted samples per plateau.
    int32_t mid = fmin + span / 2;
    int32_t hy = span / 8;
    int32_t f0 = filt(x, n, 0);
    int state = f0 > mid;
    int prev = state;
    uint32_t run = g;
    size_t j_lo = 0, j_hi = 0;
    uint32_t nrise = 0, nfall = 0, nside_hi = 0;
    int64_t first_rise = 0, last_rise = 0, first_fall = 0, last_fall = 0;
    int64_t pend_hi = 0, acc_hi = 0, pend_lo = 0, acc_lo = 0;
    cnt[0] = cnt[1] = 0;
    cmin[0] = cmin[1] = 65535;
    cmax[0] = cmax[1] = 0;
    for (size_t k = 0; k < n; k++) {
        int32_t fk = filt(x, n, k);
        int s = fk > mid;
        if (s != prev) {
            run = 0;
        } else if (k > 0 && run < g) {
            run++;
        }
        prev = s;
        nside_hi += s;
        if (run >= g) {
            cnt[s]++;
            cmin[s] = x[k] < cmin[s] ? x[k] : cmin[s];
            cmax[s] = x[k] > cmax[s] ? x[k] : cmax[s];
        }
        if (state) {
            if (fk > mid) {
                j_hi = k;
            } else if (fk < mid - hy) {
                int32_t a = filt(x, n, j_hi), b = filt(x, n, j_hi + 1);
                int64_t pos = (int64_t)j_hi * POS_ONE + ((int64_t)(a - mid) * POS_ONE) / (a - b);
                if (nfall > 0) {
                    acc_lo += pend_lo;
                } else {
                    first_fall = pos;
                }
                if (nrise > 0) {
                    pend_hi = pos - last_rise;
                }
                last_fall = pos;
                nfall++;
                state = 0;
                j_lo = k;
            }
        } else {
            if (fk <= mid) {
                j_lo = k;
            } else if (fk > mid + hy) {
                int32_t a = filt(x, n, j_lo), b = filt(x, n, j_lo + 1);
                int64_t pos = (int64_t)j_lo * POS_ONE + ((int64_t)(mid - a) * POS_ONE) / (b - a);
                if (nrise > 0) {
                    acc_hi += pend_hi;
                } else {
                    first_rise = pos;
                }
                if (nfall > 0) {
                    pend_lo = pos - last_fall;
                }
                last_rise = pos;
                nrise++;
                state = 1;
                j_hi = k;
            }
        }
    }
    int32_t duty;
    int32_t freq = 0;
    if (nrise >= 2) {
        int64_t period = last_rise - first_rise;
        duty = (int32_t)(acc_hi * 1000 / period);
        freq = (int32_t)((int64_t)(nrise - 1) * rate_hz * (POS_ONE * 1000) / period);
    } else if (nfall >= 2) {
        int64_t period = last_fall - first_fall;
        duty = (int32_t)((period - acc_lo) * 1000 / period);
    } else {
        duty = (int32_t)((uint64_t)nside_hi * 1000 / n);
    }

    // Plateau medians; a class whose samples all sit inside guard windows uses them all.
    uint32_t nside[2] = {(uint32_t)n - nside_hi, nside_hi};
    for (int s = 0; s < 2; s++) {
        c[s].active = 1;
        c[s].guard = g;
        if (cnt[s] == 0) {
            c[s].guard = 0;
            cnt[s] = nside[s];
            cmin[s] = 0;
            cmax[s] = 65535;
        }
    }
    medians(x, n, mid, g, c, cnt, cmin, cmax, med, scratch);
    out[0] = code_to_mv(med[1], offset_mv, uv_per_code);
    out[1] = code_to_mv(med[0], offset_mv, uv_per_code);
    out[2] = duty;
    out[3] = freq;
    return WBK_OK;
}

int wbk_ac_measure(const uint16_t *x, size_t n, int32_t *out, size_t out_len,
    int32_t offset_code, int32_t uu_per_code, int32_t rate_hz, int32_t phases) {
    if (n == 0) {
        return WBK_E_EMPTY;
    }
    if (n > WBK_MAX_SAMPLES) {
        return WBK_E_TOO_LONG;
    }
    if (phases < 1 || phases > WBK_MAX_PHASES || n % (size_t)phases != 0) {
        return WBK_E_PHASES;
    }
    if (out_len < (size_t)phases * WBK_AC_OUT) {
        return WBK_E_OUT_SHORT;
    }
    if (offset_code < 0 || offset_code > 65535) {
        return WBK_E_OFFSET;
    }
    if (uu_per_code < 1 || uu_per_code > WBK_MAX_SCALE) {
        return WBK_E_SCALE;
    }
    if (rate_hz < 1 || rate_hz > WBK_MAX_RATE_HZ) {
        return WBK_E_RATE;
    }
    size_t m = n / (size_t)phases;
    int64_t div = (int64_t)m * 1000;
    for (int32_t p = 0; p < phases; p++) {
        const uint16_t *xp = x + p;
        int64_t s0 = 0;
        uint64_t q0 = 0;
        for (size_t k = 0; k < m; k++) {
            int64_t v = (int64_t)xp[k * phases] - offset_code;
            s0 += v;
            q0 += (uint64_t)(v * v);
        }
        uint64_t s0abs = (uint64_t)(s0 < 0 ? -s0 : s0);
        uint64_t sd = isqrt64((uint64_t)m * q0 - s0abs * s0abs);  // m * AC RMS in codes
        int32_t *o = out + p * WBK_AC_OUT;
        o[0] = (int32_t)floordiv(s0 * uu_per_code, div);
        o[1] = (int32_t)((int64_t)isqrt64((uint64_t)m * q0) * uu_per_code / div);
        o[2] = (int32_t)((int64_t)sd * uu_per_code / div);
        o[3] = 0;
        if (sd < (uint64_t)AC_MIN_RMS_CODES * m) {
            continue;
        }
        // Rising crossings of the mean, Schmitt trigger at +/- half the AC RMS; in units of
        // m * codes: d = m * (x - mean).
        int64_t hy = (int64_t)(sd / 2);
        int64_t d0 = ((int64_t)xp[0] - offset_code) * (int64_t)m - s0;
        int state = d0 > 0;
        size_t j = 0;
        uint32_t nrise = 0;
        int64_t first = 0, last = 0;
        for (size_t k = 0; k < m; k++) {
            int64_t d = ((int64_t)xp[k * phases] - offset_code) * (int64_t)m - s0;
            if (state) {
                if (d < -hy) {
                    state = 0;
                    j = k;
                }
            } else if (d <= 0) {
                j = k;
            } else if (d > hy) {
                int64_t a = ((int64_t)xp[j * phases] - offset_code) * (int64_t)m - s0;
                int64_t b = ((int64_t)xp[(j + 1) * phases] - offset_code) * (int64_t)m - s0;
                int64_t pos = (int64_t)j * POS_ONE + (-a * POS_ONE) / (b - a);
                if (nrise == 0) {
                    first = pos;
                }
                last = pos;
                nrise++;
                state = 1;
            }
        }
        if (nrise >= 2) {
            o[3] = (int32_t)((int64_t)(nrise - 1) * rate_hz * (POS_ONE * 1000) / (last - first));
        }
    }
    return WBK_OK;
}

static const uint16_t crc_nibble[16] = {
    0x0000, 0xCC01, 0xD801, 0x1400, 0xF001, 0x3C00, 0x2800, 0xE401,
    0xA001, 0x6C00, 0x7800, 0xB401, 0x5000, 0x9C01, 0x8801, 0x4400,
};

uint16_t wbk_crc16_modbus(const uint8_t *p, size_t n) {
    uint32_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 15];
        crc = (crc >> 4) ^ crc_nibble[crc & 15];
    }
    return (uint16_t)crc;
}

uint32_t wbk_ws_mask(uint8_t *p, size_t n, const uint8_t *key, uint32_t offset) {
    size_t i = 0;
    offset &= 3;
    while (i < n && ((uintptr_t)(p + i) & 3) != 0) {
        p[i] ^= key[(offset + i) & 3];
        i++;
    }
    if (n - i >= 4) {
        // Word at a time on the aligned middle; the key rotated to this byte's phase.
        union {
            uint8_t b[4];
            uint32_t w;
        } k;
        for (uint32_t t = 0; t < 4; t++) {
            k.b[t] = key[(offset + i + t) & 3];
        }
        u32_alias_t *w = (u32_alias_t *)(p + i);
        size_t nw = (n - i) / 4;
        for (size_t t = 0; t < nw; t++) {
            w[t] ^= k.w;
        }
        i += nw * 4;
    }
    while (i < n) {
        p[i] ^= key[(offset + i) & 3];
        i++;
    }
    return (uint32_t)((offset + n) & 3);
}

// Rules in this order: disarmed -> nothing (and no stale count); RCM; pilot outside C/D
// (4-5 V and 7-8 V count as inside) for WBK_REFLEX_SAMPLES samples in a row; heartbeat.
int32_t wbk_reflex_step(int32_t *st, size_t st_len, int32_t high_mv, int32_t rcm,
    int32_t beat_age_ms) {
    if (st_len < WBK_REFLEX_ST_LEN) {
        return -WBK_E_ST_SHORT;
    }
    if (st[WBK_REFLEX_ARMED] == 0) {
        st[WBK_REFLEX_BAD] = 0;
        return 0;
    }
    int32_t why = 0;
    if (rcm != 0) {
        why = WBK_REFLEX_RCM;
    } else if (high_mv < WBK_REFLEX_MIN_MV || high_mv >= WBK_REFLEX_MAX_MV) {
        int32_t bad = st[WBK_REFLEX_BAD] < 0 ? 0 : st[WBK_REFLEX_BAD];
        if (bad < WBK_REFLEX_BAD_MAX) {
            bad++;
        }
        st[WBK_REFLEX_BAD] = bad;
        if (bad >= WBK_REFLEX_SAMPLES) {
            why = WBK_REFLEX_PILOT;
        }
    } else {
        st[WBK_REFLEX_BAD] = 0;
    }
    if (why == 0 && beat_age_ms > st[WBK_REFLEX_BEAT_LIMIT_MS]) {
        why = WBK_REFLEX_BEAT;
    }
    if (why != 0) {
        st[WBK_REFLEX_WHY] = why;
        st[WBK_REFLEX_ARMED] = 0;
        st[WBK_REFLEX_BAD] = 0;
    }
    return why;
}
