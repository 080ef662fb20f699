// Test driver for the C core under -fsanitize=address,undefined: reads one request per line
// on stdin, runs the kernel on heap buffers of exactly the requested size (so any access
// outside them trips ASan) and prints the result. Requests (all integers):
//   P offset_mv uv rate nout n x...          -> rc out...
//   A offset uu rate phases nout n x...      -> rc out...
//   C n b...                                 -> crc
//   M offset align n k0 k1 k2 k3 b...        -> next b...
//   R n st... high_mv rcm beat_age_ms        -> rc st...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wbk_core.h"

static long rd(void) {
    long v;
    if (scanf("%ld", &v) != 1) {
        exit(3);
    }
    return v;
}

int main(void) {
    char op[2];
    while (scanf("%1s", op) == 1) {
        if (op[0] == 'P' || op[0] == 'A') {
            long a = rd(), b = rd(), c = rd();
            long phases = op[0] == 'A' ? rd() : 1;
            size_t nout = (size_t)rd(), n = (size_t)rd();
            uint16_t *x = malloc((n ? n : 1) * sizeof(uint16_t));
            int32_t *out = malloc((nout ? nout : 1) * sizeof(int32_t));
            uint16_t *scratch = malloc(WBK_PILOT_SCRATCH * sizeof(uint16_t));
            for (size_t i = 0; i < n; i++) {
                x[i] = (uint16_t)rd();
            }
            memset(out, 0, (nout ? nout : 1) * sizeof(int32_t));
            int rc = op[0] == 'P'
                ? wbk_pilot_burst(x, n, out, nout, (int32_t)a, (int32_t)b, (int32_t)c, scratch)
                : wbk_ac_measure(x, n, out, nout, (int32_t)a, (int32_t)b, (int32_t)c,
                    (int32_t)phases);
            printf("%d", rc);
            for (size_t i = 0; i < nout; i++) {
                printf(" %ld", (long)out[i]);
            }
            printf("\n");
            free(x);
            free(out);
            free(scratch);
        } else if (op[0] == 'C') {
            size_t n = (size_t)rd();
            uint8_t *p = malloc(n ? n : 1);
            for (size_t i = 0; i < n; i++) {
                p[i] = (uint8_t)rd();
            }
            printf("%u\n", (unsigned)wbk_crc16_modbus(p, n));
            free(p);
        } else if (op[0] == 'M') {
            uint32_t off = (uint32_t)rd();
            size_t align = (size_t)rd(), n = (size_t)rd();
            uint8_t key[4];
            for (int i = 0; i < 4; i++) {
                key[i] = (uint8_t)rd();
            }
            uint8_t *raw = malloc(n + align + 1);
            uint8_t *p = raw + align;
            for (size_t i = 0; i < n; i++) {
                p[i] = (uint8_t)rd();
            }
            printf("%u", (unsigned)wbk_ws_mask(p, n, key, off));
            for (size_t i = 0; i < n; i++) {
                printf(" %u", p[i]);
            }
            printf("\n");
            free(raw);
        } else if (op[0] == 'R') {
            size_t n = (size_t)rd();
            int32_t *st = malloc((n ? n : 1) * sizeof(int32_t));
            for (size_t i = 0; i < n; i++) {
                st[i] = (int32_t)rd();
            }
            long hi = rd(), rcm = rd(), age = rd();
            int32_t rc = wbk_reflex_step(n ? st : NULL, n, (int32_t)hi, (int32_t)rcm,
                (int32_t)age);
            printf("%ld", (long)rc);
            for (size_t i = 0; i < n; i++) {
                printf(" %ld", (long)st[i]);
            }
            printf("\n");
            free(st);
        } else {
            return 2;
        }
    }
    return 0;
}
