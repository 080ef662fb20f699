# Wallbox firmware: host toolchain, simulator, tests, benchmarks, deploy.
# `make sim` and `make test` set up .venv on first use (tools/setup.sh).
VENV := .venv
PY := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff
MPY := $(VENV)/bin/micropython
SETUP := $(VENV)/.setup-done
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup sim test test-fast lint bench mpy clean
.DEFAULT_GOAL := help

help:
	@echo "make sim        run the default charging session on the simulated wallbox"
	@echo "make test       all tests (CPython pure logic, real MicroPython, simulator)"
	@echo "make test-fast  the tests not marked slow; stops at the first failure"
	@echo "make lint       ruff over the repository (pyproject.toml) and mpy-cross over device code"
	@echo "make fuzz       property tests with many more examples (exploration, not CI)"
	@echo "make mutants    mutation testing of firmware/charge: mutmut, then mutants-safety"
	@echo "make mutants-safety   ticks_diff -> subtraction, safety constants x10 and /10:"
	@echo "                killed or survived each, and the score (SAFETY_MUTANTS=NAME)"
	@echo "make mutants-mutmut   only mutmut's mutants (MUTANTS='firmware.charge.watch*')"
	@echo "make bench      benchmarks: safety reaction times, heap, kernels, limit laws"
	@echo "make plots      simulated days (a PV day, a fuse-limited evening) as docs/img/*.png"
	@echo "make mpy        compile every device file with mpy-cross into build/mpy"
	@echo "make deploy BOARD=esp32_wallbox PORT=/dev/ttyUSB0 [CONFIG=f.json] [RESET=1] [FORCE=1]"
	@echo "                compile and copy to a board (docs/deploy.md)"
	@echo "make repl PORT=...   serial REPL;  make diag PORT=...   status, offer reasons, events"
	@echo "make vboard     a virtual board without hardware (BOARD=sim PORT=build/vboard/ttyV0)"
	@echo "make keys       an update signing key pair in keys/ (docs/ota.md; keep ota_sign.pem safe)"
	@echo "make bundle [BOARD=sim] [MARCH=x64] [VERSION=...]   a signed update bundle in build/ota/"
	@echo "make natmod MPY_DIR=... [ARCH=...]   native kernels (docs/native.md)"
	@echo "make natmod-size   sizes of the built natmods;  make natmod-clean   delete them"
	@echo "make mp32 MPY_DIR=...   a 32-bit unix port for ESP32-sized heap figures (make bench)"
	@echo "make qemu MPY_DIR=... [ARCH=armv7m|rv32imc]   the firmware frozen into MicroPython's"
	@echo "                qemu port, run on an emulated MCU: checks, a session, natmods"
	@echo "make qemu-image MPY_DIR=... [ARCH=...]   only build that image (docs/deploy.md)"
	@echo "make setup      create .venv and install what sim and test need (tools/setup.sh;"
	@echo "                natmod and qemu install the cross compilers: tools/setup.sh --cross)"
	@echo "make clean      delete build/ and dist/ (compiled files and natmods)"

setup: $(SETUP)
$(SETUP): requirements.txt tools/setup.sh
	tools/setup.sh

# Every device file compiled with mpy-cross into build/mpy (mirrors the source tree).
mpy: $(SETUP)
	$(PY) tools/build.py --out build/mpy

sim: $(SETUP)
	$(PY) tools/sim.py --scenario scenarios/default.json --events build/sim-events.jsonl

# Two workers, a test file each at a time (docs/testing.md: most of the simulator tests wait on
# the device's clock, not the CPU).
test: $(SETUP)
	$(PY) -m pytest -q -n 2 --dist loadfile host_tests

test-fast: $(SETUP)
	$(PY) -m pytest -q -x -m "not slow" host_tests

# The style check the tests also run: ruff with the project's config (pyproject.toml: line
# length 99, micropython-lib's ignores), then every firmware/, drivers/, boards/ file through
# mpy-cross (what a board would refuse to import).
lint: $(SETUP)
	$(RUFF) check .
	$(PY) tools/build.py --check
	@echo "lint: ruff and mpy-cross found nothing"

bench: $(SETUP)
	$(PY) tools/bench.py

clean:
	rm -rf build dist

# Component fragments (native modules, deploy, ...) add their own targets here.
-include mk/*.mk
