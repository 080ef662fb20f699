# A 32-bit build of the MicroPython unix port, for heap figures at an ESP32's word size
# (tools/bench_ocpp.py uses build/mp32/micropython when it exists):
#   make mp32 MPY_DIR=/tmp/micropython
# Needs gcc-multilib (apt-get install gcc-multilib). Built without mbedTLS, ffi and btree
# (their submodules are not needed); asyncio frozen in. The build goes to $(MPY_DIR)/ports/
# unix/build-wb32 and the binary is copied to build/mp32/.
.PHONY: mp32

mp32:
	@if [ -z "$(MPY_DIR)" ] || [ ! -f "$(MPY_DIR)/ports/unix/Makefile" ]; then \
	    echo "mp32: set MPY_DIR to a MicroPython source tree, e.g. make mp32" \
	        "MPY_DIR=/tmp/micropython (docs/native.md says which)"; exit 2; fi
	@echo 'int main(void){return 0;}' > build/mp32-probe.c 2>/dev/null || \
	    (mkdir -p build && echo 'int main(void){return 0;}' > build/mp32-probe.c)
	@gcc -m32 build/mp32-probe.c -o build/mp32-probe 2>/dev/null || { \
	    echo "mp32: gcc cannot build 32-bit programs here: apt-get install gcc-multilib"; \
	    exit 2; }
	mkdir -p build/mp32/mplib && touch build/mp32/mplib/README.md
	$(MAKE) -C "$(MPY_DIR)/mpy-cross"
	$(MAKE) -C "$(MPY_DIR)/ports/unix" BUILD=build-wb32 CFLAGS_EXTRA=-m32 \
	    LDFLAGS_EXTRA=-m32 MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 \
	    MICROPY_SSL_MBEDTLS=0 FROZEN_MANIFEST="$(abspath tools/mp32_manifest.py)" \
	    MPY_LIB_DIR="$(abspath build/mp32/mplib)"
	cp "$(MPY_DIR)/ports/unix/build-wb32/micropython" build/mp32/micropython
	@echo "mp32: build/mp32/micropython ($$(file -b build/mp32/micropython | cut -d, -f1))"
