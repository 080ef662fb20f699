# Native C kernels (drivers/native/*): natmod .mpy files per architecture.
#   make natmod MPY_DIR=/tmp/micropython             every arch with a toolchain here
#   make natmod MPY_DIR=/tmp/micropython ARCH=x64    one arch (fails without its toolchain)
# The ARM and RISC-V cross compilers are installed when missing (tools/setup.sh --cross).
# Output: dist/<arch>_<mpy abi>/<mod>.mpy, e.g. dist/x64_6.3/wbkernels.mpy. docs/native.md
# says which MicroPython to check out for MPY_DIR.
NATMOD_MODS := wbkernels
NATMOD_ARCHS := x64 armv7m armv7emsp xtensawin rv32imc
NATMOD_ARCH := $(if $(ARCH),$(ARCH),$(NATMOD_ARCHS))
NATMOD_STRICT := $(if $(ARCH),1,)

# Compiler each arch needs (the CROSS prefix py/dynruntime.mk uses).
natmod_cc = $(strip $(if $(filter x64,$(1)),x86_64-linux-gnu-gcc,\
	$(if $(filter armv7m armv7emsp,$(1)),arm-none-eabi-gcc,\
	$(if $(filter xtensawin,$(1)),xtensa-esp32-elf-gcc,\
	$(if $(filter rv32imc,$(1)),riscv64-unknown-elf-gcc,unknown-arch-$(1))))))

.PHONY: natmod natmod-size natmod-clean

natmod: $(SETUP)
	@if [ -z "$(MPY_DIR)" ] || [ ! -f "$(MPY_DIR)/py/dynruntime.mk" ]; then \
	    echo "natmod: set MPY_DIR to a MicroPython v1.29 source tree (.mpy v6.3)," \
	        "e.g. make natmod MPY_DIR=/tmp/micropython; see docs/native.md"; exit 2; fi
	@$(if $(filter armv7m armv7emsp rv32imc,$(NATMOD_ARCH)),tools/setup.sh --cross,:)
	@set -e; \
	mpydir="$(abspath $(MPY_DIR))"; \
	ver=$$(sed -n 's/^#define MPY_VERSION \([0-9]*\).*/\1/p' "$$mpydir/py/persistentcode.h"); \
	sub=$$(sed -n 's/^#define MPY_SUB_VERSION \([0-9]*\).*/\1/p' "$$mpydir/py/persistentcode.h"); \
	built=""; skipped=""; \
	$(foreach a,$(NATMOD_ARCH),\
	if ! command -v $(call natmod_cc,$(a)) >/dev/null 2>&1; then \
	    if [ -n "$(NATMOD_STRICT)" ]; then \
	        echo "natmod: $(a) needs $(call natmod_cc,$(a)), not found"; exit 1; fi; \
	    skipped="$$skipped $(a)"; \
	else \
	    $(foreach m,$(NATMOD_MODS),\
	    rm -f drivers/native/$(m)/$(m).mpy; \
	    $(MAKE) --no-print-directory -C drivers/native/$(m) MPY_DIR="$$mpydir" ARCH=$(a) \
	        BUILD="$(CURDIR)/build/natmod/$(m)-$(a)" PYTHON="$(CURDIR)/$(PY)" >/dev/null; \
	    mkdir -p dist/$(a)_$$ver.$$sub; \
	    mv drivers/native/$(m)/$(m).mpy dist/$(a)_$$ver.$$sub/$(m).mpy; \
	    echo "natmod: dist/$(a)_$$ver.$$sub/$(m).mpy" \
	        "$$(wc -c < dist/$(a)_$$ver.$$sub/$(m).mpy) bytes";) \
	fi;) \
	if [ -n "$$skipped" ]; then echo "natmod: no toolchain here for:$$skipped (skipped)"; fi

natmod-size:
	@ls -l dist/*/*.mpy 2>/dev/null | awk '{print $$5, $$9}' || echo "no natmods in dist/"

natmod-clean:
	rm -rf build/natmod $(addprefix dist/*/,$(addsuffix .mpy,$(NATMOD_MODS)))
