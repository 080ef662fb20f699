// MicroPython binding of the wallbox kernels: argument checks, then the C core.
// Built two ways: as a native module (.mpy, MICROPY_ENABLE_DYNRUNTIME, see Makefile) and as a
// user C module frozen into a firmware (micropython.mk / micropython.cmake).
#ifdef MICROPY_ENABLE_DYNRUNTIME
#include "py/dynruntime.h"
#else
#include "py/obj.h"
#include "py/runtime.h"
#endif

#include "wbk_core.h"

static MP_NORETURN void raise_code(int code) {
    switch (code) {
        case WBK_E_EMPTY:
            mp_raise_ValueError(MP_ERROR_TEXT("samples is empty"));
        case WBK_E_TOO_LONG:
            mp_raise_ValueError(MP_ERROR_TEXT("samples longer than 65535"));
        case WBK_E_OUT_SHORT:
            mp_raise_ValueError(MP_ERROR_TEXT("out too short"));
        case WBK_E_OFFSET:
            mp_raise_ValueError(MP_ERROR_TEXT("offset out of range"));
        case WBK_E_SCALE:
            mp_raise_ValueError(MP_ERROR_TEXT("per-code scale out of range"));
        case WBK_E_RATE:
            mp_raise_ValueError(MP_ERROR_TEXT("sample_rate_hz out of range"));
        case WBK_E_PHASES:
            mp_raise_ValueError(MP_ERROR_TEXT("phases out of range or not dividing the samples"));
        case WBK_E_KEY:
            mp_raise_ValueError(MP_ERROR_TEXT("key must be 4 bytes"));
        case WBK_E_ST_SHORT:
            mp_raise_ValueError(MP_ERROR_TEXT("st too short"));
        default:
            mp_raise_ValueError(MP_ERROR_TEXT("offset must be >= 0"));
    }
}

// A buffer of 16-bit codes (array('H') or a memoryview of one).
static void get_samples(mp_obj_t o, mp_buffer_info_t *bi) {
    if (!mp_get_buffer(o, bi, MP_BUFFER_READ) || bi->typecode != 'H') {
        mp_raise_TypeError(MP_ERROR_TEXT("samples must be array('H')"));
    }
}

static void get_out(mp_obj_t o, mp_buffer_info_t *bi) {
    if (!mp_get_buffer(o, bi, MP_BUFFER_WRITE) || bi->typecode != 'i') {
        mp_raise_TypeError(MP_ERROR_TEXT("out must be array('i')"));
    }
}

// Bytes-like of single bytes (bytes, bytearray, memoryview/array of 'B' or 'b'); not str.
static bool get_bytes(mp_obj_t o, mp_buffer_info_t *bi, mp_uint_t flags) {
    if (mp_obj_get_type(o) == &mp_type_str || !mp_get_buffer(o, bi, flags)) {
        return false;
    }
    // bytearray (and views of it) report typecode 1 (BYTEARRAY_TYPECODE).
    return bi->typecode == 'B' || bi->typecode == 'b' || bi->typecode == 1;
}

// An int argument as int32; values outside int32 become INT32_MIN, which every range check
// of the core rejects.
static int32_t arg_i32(mp_obj_t o) {
    mp_int_t v = mp_obj_get_int(o);
    if (v < INT32_MIN || v > INT32_MAX) {
        return INT32_MIN;
    }
    return (int32_t)v;
}

// An int argument saturated to int32, for reflex_step: an age beyond int32 stays "too old",
// a level far below 0 V stays outside the window; nothing wraps and nothing allocates. A long
// int lies outside the small-int range and its sign comes from a compare with small 0. With a
// 64-bit word that puts it beyond int32; with a 32-bit word its value is its low word when
// that word has the same sign (exact up to +-2^32: ticks_diff results and array('i') items
// never go beyond).
static int32_t arg_i32_sat(mp_obj_t o) {
    if (mp_obj_is_small_int(o)) {
        int64_t v = MP_OBJ_SMALL_INT_VALUE(o);
        return v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v;
    }
    mp_int_t v = mp_obj_get_int_truncated(o);  // TypeError if o is no int
    if (o == mp_const_false || o == mp_const_true) {
        return (int32_t)v;
    }
    bool neg = mp_binary_op(MP_BINARY_OP_LESS, o, MP_OBJ_NEW_SMALL_INT(0)) == mp_const_true;
    if (sizeof(mp_int_t) > 4 || (v < 0) != neg) {
        return neg ? INT32_MIN : INT32_MAX;
    }
    return (int32_t)v;
}

// pilot_burst(samples, out, offset_mv, uv_per_code, sample_rate_hz)
static mp_obj_t pilot_burst(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t xs, os;
    get_samples(args[0], &xs);
    get_out(args[1], &os);
    uint16_t scratch[WBK_PILOT_SCRATCH];
    int code = wbk_pilot_burst(xs.buf, xs.len / 2, os.buf, os.len / 4, arg_i32(args[2]),
        arg_i32(args[3]), arg_i32(args[4]), scratch);
    if (code != WBK_OK) {
        raise_code(code);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(pilot_burst_obj, 5, 5, pilot_burst);

// ac_measure(samples, out, offset_code, uu_per_code, sample_rate_hz[, phases])
static mp_obj_t ac_measure(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t xs, os;
    get_samples(args[0], &xs);
    get_out(args[1], &os);
    int32_t phases = n_args > 5 ? arg_i32(args[5]) : 1;
    int code = wbk_ac_measure(xs.buf, xs.len / 2, os.buf, os.len / 4, arg_i32(args[2]),
        arg_i32(args[3]), arg_i32(args[4]), phases);
    if (code != WBK_OK) {
        raise_code(code);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ac_measure_obj, 5, 6, ac_measure);

// crc16_modbus(buf[, n]) -> int
static mp_obj_t crc16_modbus(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t bi;
    if (!get_bytes(args[0], &bi, MP_BUFFER_READ)) {
        mp_raise_TypeError(MP_ERROR_TEXT("buf must be a byte buffer"));
    }
    size_t n = bi.len;
    if (n_args > 1 && args[1] != mp_const_none) {
        mp_int_t v = mp_obj_get_int(args[1]);
        if (v < 0 || (size_t)v > bi.len) {
            mp_raise_ValueError(MP_ERROR_TEXT("n out of range"));
        }
        n = (size_t)v;
    }
    return MP_OBJ_NEW_SMALL_INT(wbk_crc16_modbus(bi.buf, n));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(crc16_modbus_obj, 1, 2, crc16_modbus);

// ws_mask(buf, key[, offset]) -> offset for the next chunk
static mp_obj_t ws_mask(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t bi, ki;
    if (!get_bytes(args[0], &bi, MP_BUFFER_WRITE)) {
        mp_raise_TypeError(MP_ERROR_TEXT("buf must be a writable byte buffer"));
    }
    if (!get_bytes(args[1], &ki, MP_BUFFER_READ)) {
        mp_raise_TypeError(MP_ERROR_TEXT("key must be a byte buffer"));
    }
    if (ki.len != 4) {
        raise_code(WBK_E_KEY);
    }
    mp_int_t off = n_args > 2 ? mp_obj_get_int(args[2]) : 0;
    if (off < 0) {
        raise_code(WBK_E_MASK_OFFSET);
    }
    uint32_t next = wbk_ws_mask(bi.buf, bi.len, ki.buf, (uint32_t)(off & 3));
    return MP_OBJ_NEW_SMALL_INT(next);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ws_mask_obj, 2, 3, ws_mask);

// reflex_step(st, high_mv, rcm, beat_age_ms) -> 0 or the reason it fired
static mp_obj_t reflex_step(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    mp_buffer_info_t si;
    if (!mp_get_buffer(args[0], &si, MP_BUFFER_WRITE) || si.typecode != 'i') {
        mp_raise_TypeError(MP_ERROR_TEXT("st must be array('i')"));
    }
    int32_t high_mv = arg_i32_sat(args[1]);
    int32_t rcm = arg_i32_sat(args[2]);
    int32_t age = arg_i32_sat(args[3]);
    int32_t why = wbk_reflex_step(si.buf, si.len / 4, high_mv, rcm, age);
    if (why < 0) {
        raise_code(-why);
    }
    return MP_OBJ_NEW_SMALL_INT(why);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(reflex_step_obj, 4, 4, reflex_step);

#ifdef MICROPY_ENABLE_DYNRUNTIME

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY
    mp_store_global(MP_QSTR_pilot_burst, MP_OBJ_FROM_PTR(&pilot_burst_obj));
    mp_store_global(MP_QSTR_ac_measure, MP_OBJ_FROM_PTR(&ac_measure_obj));
    mp_store_global(MP_QSTR_crc16_modbus, MP_OBJ_FROM_PTR(&crc16_modbus_obj));
    mp_store_global(MP_QSTR_ws_mask, MP_OBJ_FROM_PTR(&ws_mask_obj));
    mp_store_global(MP_QSTR_reflex_step, MP_OBJ_FROM_PTR(&reflex_step_obj));
    MP_DYNRUNTIME_INIT_EXIT
}

#else

static const mp_rom_map_elem_t wbkernels_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_wbkernels) },
    { MP_ROM_QSTR(MP_QSTR_pilot_burst), MP_ROM_PTR(&pilot_burst_obj) },
    { MP_ROM_QSTR(MP_QSTR_ac_measure), MP_ROM_PTR(&ac_measure_obj) },
    { MP_ROM_QSTR(MP_QSTR_crc16_modbus), MP_ROM_PTR(&crc16_modbus_obj) },
    { MP_ROM_QSTR(MP_QSTR_ws_mask), MP_ROM_PTR(&ws_mask_obj) },
    { MP_ROM_QSTR(MP_QSTR_reflex_step), MP_ROM_PTR(&reflex_step_obj) },
};
static MP_DEFINE_CONST_DICT(wbkernels_globals, wbkernels_globals_table);

const mp_obj_module_t wbkernels_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&wbkernels_globals,
};

MP_REGISTER_MODULE(MP_QSTR_wbkernels, wbkernels_user_cmodule);

#endif
