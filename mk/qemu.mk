# The firmware frozen into MicroPython's ports/qemu and run on an emulated microcontroller
# (docs/deploy.md "The emulated board", tools/qemu_run.py):
#   make qemu MPY_DIR=/work/mpy [ARCH=armv7m|rv32imc]
# armv7m: Cortex-M3 (mps2-an385, qemu-system-arm); rv32imc: RV32 virt (qemu-system-riscv32).
# Heap: QEMU_HEAP bytes, what an ESP32-WROOM (no PSRAM) gives MicroPython with Wi-Fi up
# (ports/esp32/mpconfigport.h: a 56 KiB first heap that may grow once by as much).
# The image goes to build/qemu/<arch>/firmware.elf (the port's build dir is ours).
# The cross compilers and QEMU are installed when missing (tools/setup.sh --cross, --qemu).
.PHONY: qemu qemu-image qemu-bench

QEMU_ARCH_NAME := $(if $(ARCH),$(ARCH),armv7m)
QEMU_HEAP ?= 114688
QEMU_STACK ?= 16384
qemu_board = $(if $(filter rv32imc,$(1)),VIRT_RV32,$(if $(filter armv7m,$(1)),MPS2_AN385,\
	unknown-arch-$(1)))
QEMU_BUILD = $(CURDIR)/build/qemu/$(QEMU_ARCH_NAME)
# Debian's riscv64-unknown-elf-gcc 12 picks its rv64 libgcc for -march=rv32imac_zicsr (the
# multilib is named rv32imac): name the rv32 one.
# Frozen @viper code for rv32imc without the port's Zba/Zcmp flags: Debian 12's QEMU 7.2 has
# no Zcmp (8.1 added it), and a natmod for rv32imc carries no flags either.
# (The shell asks the compiler when the line runs: tools/setup.sh --cross may install it first.)
QEMU_LIBS = $(if $(filter rv32imc,$(QEMU_ARCH_NAME)),LIBS="$$(riscv64-unknown-elf-gcc \
	-march=rv32imac -mabi=ilp32 -print-libgcc-file-name 2>/dev/null)" \
	MPY_CROSS_FLAGS=-march=rv32imc)

qemu-image:
	@if [ -z "$(MPY_DIR)" ] || [ ! -f "$(MPY_DIR)/ports/qemu/Makefile" ]; then \
	    echo "qemu: set MPY_DIR to a MicroPython v1.29 source tree (.mpy v6.3)," \
	        "e.g. make qemu MPY_DIR=/work/mpy; docs/native.md says which"; exit 2; fi
	@case "$(QEMU_ARCH_NAME)" in armv7m|rv32imc) ;; *) \
	    echo "qemu: ARCH=$(QEMU_ARCH_NAME) is not one of armv7m, rv32imc"; exit 2;; esac
	@tools/setup.sh --cross
	@mkdir -p $(QEMU_BUILD)/mplib && touch $(QEMU_BUILD)/mplib/README.md
	$(MAKE) -C "$(MPY_DIR)/mpy-cross" >/dev/null
	$(MAKE) -C "$(MPY_DIR)/ports/qemu" BOARD=$(call qemu_board,$(QEMU_ARCH_NAME)) \
	    BUILD="$(QEMU_BUILD)" FROZEN_MANIFEST="$(CURDIR)/boards/qemu/manifest.py" \
	    MPY_LIB_DIR="$(QEMU_BUILD)/mplib" MICROPY_HEAP_SIZE=$(QEMU_HEAP) \
	    MICROPY_STACK_SIZE=$(QEMU_STACK) $(QEMU_LIBS) $(QEMU_BUILD)/firmware.elf

qemu: qemu-image $(SETUP)
	@tools/setup.sh --qemu
	$(PY) tools/qemu_run.py --arch $(QEMU_ARCH_NAME) --mpy-dir "$(MPY_DIR)" all
