// The C half of asyncio (_asyncio: TaskQueue and Task), as ESP32 and STM32 firmware have it.
// ports/qemu sets MICROPY_PY_ASYNCIO to 0 in its mpconfigport.h, which a -D cannot override
// (-Werror turns the redefinition into an error), so extmod/modasyncio.c compiles to nothing
// there; this file compiles it again with the switch on. Nothing of it is copied here.
#include "py/mpconfig.h"
#undef MICROPY_PY_ASYNCIO
#define MICROPY_PY_ASYNCIO (1)
#include "extmod/modasyncio.c"
