// Timing-critical wallbox kernels: plain C99, no MicroPython headers, no allocation, no
// static data except const tables. The same file builds into the natmod, the user C module
// and the host test library. drivers/kernels_twin.py holds the Python twins; results must
// stay bit-identical (integer arithmetic only, floor division on non-negative operands).
#ifndef WBK_CORE_H
#define WBK_CORE_H

#include <stddef.h>
#include <stdint.h>

// Error codes; the bindings and the twins map them to the same messages.
#define WBK_OK (0)
#define WBK_E_EMPTY (1)        // samples is empty
#define WBK_E_TOO_LONG (2)     // more than WBK_MAX_SAMPLES samples
#define WBK_E_OUT_SHORT (3)    // out has too few items
#define WBK_E_OFFSET (4)       // offset (mV or code) out of range
#define WBK_E_SCALE (5)        // uv/uu per code out of range
#define WBK_E_RATE (6)         // sample rate out of range
#define WBK_E_PHASES (7)       // phases out of range or length not a multiple of it
#define WBK_E_KEY (8)          // ws mask key is not 4 bytes
#define WBK_E_MASK_OFFSET (9)  // negative mask offset
#define WBK_E_ST_SHORT (10)    // reflex state has too few items

#define WBK_MAX_SAMPLES (65535)
#define WBK_MAX_OFFSET_MV (1000000)
#define WBK_MAX_SCALE (1000000)
#define WBK_MAX_RATE_HZ (1000000)
#define WBK_MAX_PHASES (8)

#define WBK_PILOT_OUT (4)  // high mV, low mV, duty per-mille, frequency mHz
#define WBK_AC_OUT (4)     // per phase: mean, rms, ac rms (milli-units), frequency mHz

// The 256-bin histograms of the plateau medians live on the caller's stack (no BSS in a
// natmod), so the caller passes scratch space of WBK_PILOT_SCRATCH uint16 words.
#define WBK_PILOT_SCRATCH (512)

int wbk_pilot_burst(const uint16_t *x, size_t n, int32_t *out, size_t out_len,
    int32_t offset_mv, int32_t uv_per_code, int32_t rate_hz, uint16_t *scratch);

int wbk_ac_measure(const uint16_t *x, size_t n, int32_t *out, size_t out_len,
    int32_t offset_code, int32_t uu_per_code, int32_t rate_hz, int32_t phases);

uint16_t wbk_crc16_modbus(const uint8_t *p, size_t n);

// Masks p[0..n) with key[(offset + i) % 4]; returns the offset for the next chunk (0..3).
uint32_t wbk_ws_mask(uint8_t *p, size_t n, const uint8_t *key, uint32_t offset);

// Reflex: the contactor-open decision that runs outside the scheduler (hard IRQ, thread,
// ESP32 C) while the contactor is closed. State st[WBK_REFLEX_ST_LEN], caller-allocated:
#define WBK_REFLEX_ST_LEN (4)
#define WBK_REFLEX_ARMED (0)          // 1 while the contactor is closed (caller writes it)
#define WBK_REFLEX_BEAT_LIMIT_MS (1)  // heartbeat timeout, ms (caller writes it once, > 0)
#define WBK_REFLEX_BAD (2)            // consecutive pilot samples outside C/D (kernel-owned)
#define WBK_REFLEX_WHY (3)            // latched reason of the last firing (caller clears it)
// Reasons (returned, and latched in st[WBK_REFLEX_WHY]); 0 = keep closed.
#define WBK_REFLEX_PILOT (1)  // pilot high plateau left the C/D window
#define WBK_REFLEX_RCM (2)    // residual-current monitor tripped
#define WBK_REFLEX_BEAT (3)   // charge controller's heartbeat lost
#define WBK_REFLEX_SAMPLES (2)       // consecutive bad pilot samples that fire
#define WBK_REFLEX_MIN_MV (2000)     // C/D window of the high plateau: 2000 <= mV < 8000
#define WBK_REFLEX_MAX_MV (8000)
#define WBK_REFLEX_BAD_MAX (255)     // st[WBK_REFLEX_BAD] saturates here

// One reflex decision; returns 0 or a reason (then also st[WHY] = reason, st[ARMED] = 0,
// st[BAD] = 0), or -WBK_E_ST_SHORT when st_len < WBK_REFLEX_ST_LEN (st untouched).
int32_t wbk_reflex_step(int32_t *st, size_t st_len, int32_t high_mv, int32_t rcm,
    int32_t beat_age_ms);

#endif // WBK_CORE_H
