# ports/qemu builds extmod/modasyncio.c with MICROPY_PY_ASYNCIO 0 (its mpconfigport.h); this
# module compiles it once more with the switch on (boards/qemu/cmod/asyncio_on/asyncio_on.c).
SRC_USERMOD_C += $(USERMOD_DIR)/asyncio_on.c
