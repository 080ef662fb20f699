"""The firmware frozen into MicroPython's ports/qemu and run on emulated microcontrollers
(Cortex-M3 mps2-an385 and RV32IMC virt; tools/qemu_run.py, docs/deploy.md). The emulator
tests need MPY_DIR (a MicroPython source tree to build the image from), qemu-system-arm /
qemu-system-riscv32 and the cross compilers; without them they are skipped, saying which is
missing. The first test runs everywhere: what the emulator found, kept on CPython."""
import os
import shutil
import subprocess
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def test_backoff_starts_on_a_port_without_urandom_or_a_clock(monkeypatch):
    # ports/qemu has neither os.urandom nor time.time(): every supervised task's Backoff
    # raised AttributeError there and the App did not start.
    from firmware import backoff

    monkeypatch.setitem(sys.modules, "os", types.ModuleType("os"))
    fake_time = types.ModuleType("time")
    fake_time.ticks_us = lambda: 123456
    monkeypatch.setitem(sys.modules, "time", fake_time)
    b = backoff.Backoff()
    waits = [b.next_ms() for _ in range(3)]
    assert 750 <= waits[0] <= 1250 and 1500 <= waits[1] <= 2500


# -- on the emulator (MPY_DIR) ---------------------------------------------------------------

_NEEDS = {"armv7m": ("qemu-system-arm", "arm-none-eabi-gcc"),
          "rv32imc": ("qemu-system-riscv32", "riscv64-unknown-elf-gcc")}


def _mpy_dir():
    d = os.environ.get("MPY_DIR")
    return d if d and os.path.isfile(os.path.join(d, "ports", "qemu", "Makefile")) else None


def _need(arch):
    if _mpy_dir() is None:
        pytest.skip("MPY_DIR is not set to a MicroPython source tree (docs/deploy.md)")
    for exe in _NEEDS[arch]:
        if shutil.which(exe) is None:
            pytest.skip("%s is not installed (apt-get install qemu-system-arm "
                        "qemu-system-misc gcc-arm-none-eabi gcc-riscv64-unknown-elf)" % exe)


_BUILT = {}


def qemu(arch):
    """The emulator with the frozen image of this tree, built once per test run."""
    import qemu_run

    _need(arch)
    if arch not in _BUILT:
        r = subprocess.run(["make", "-s", "qemu-image", "ARCH=" + arch, "MPY_DIR=" + _mpy_dir()],
                           cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        _BUILT[arch] = True
    return qemu_run.Qemu(arch).connect()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["armv7m", "rv32imc"])
def test_a_charging_session_on_the_emulated_board(arch):
    import qemu_run

    with qemu(arch) as q:
        rec = qemu_run.run_session(q, log=lambda m: None)
    assert qemu_run.session_problems(rec) == [], rec
    assert rec["board"] == "qemu" and rec["status_charging"] == "Charging"
    # The EV closed S2 after the 16 A offer, the contactor followed; S2 opening (the battery
    # stops) opened the contactor within IEC 61851-1's 100 ms, on the device clock.
    assert 0 <= rec["contactor_open_ms"] - rec["s2_open_ms"] <= 100
    assert rec["energy_wh"] > 1
    # The frozen image leaves the code in flash: the heap after boot is a fraction of the
    # ESP32-WROOM-sized heap (112 KiB), with room for the session's peak.
    assert rec["heap_size"] > 100000
    assert rec["heap_peak"] < rec["heap_size"] // 2, rec


def test_kernels_abi_reads_the_arch_of_an_rv32_port_with_extension_flags(monkeypatch):
    # ports/qemu's RV32 build reports _mpy 208646: v6.3, rv32imc, and Zba|Zcmp in bits 16+;
    # the loader took the whole upper part for the arch, found none and ran the twins.
    from drivers import kernels

    monkeypatch.setattr(sys.implementation, "_mpy", 208646, raising=False)
    assert kernels.abi() == ("rv32imc", "6.3")
    monkeypatch.setattr(sys.implementation, "_mpy", 6918, raising=False)  # Cortex-M3
    assert kernels.abi() == ("armv7em", "6.3")
    # a Thumb-2 core without an FPU reports armv7em and runs the armv7m natmod
    assert kernels.natmod_archs("armv7em")[:2] == ("armv7em", "armv7m")
    assert kernels.natmod_archs("xtensawin") == ("xtensawin",)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["armv7m", "rv32imc"])
def test_the_natmod_runs_on_its_own_isa_and_equals_the_twins(arch):
    import qemu_natmod

    qemu(arch).close()  # the image, built once
    lines = []
    problems = qemu_natmod.run(arch, _mpy_dir(), log=lines.append)
    assert problems == [], "\n".join(lines)
    assert "natmod 45" in lines[0] and "the natmod allocates nothing" in lines[0], lines


@pytest.mark.slow
def test_pure_logic_checks_and_schema_vectors_on_the_emulated_cortex_m3():
    import qemu_run

    with qemu("armv7m") as q:
        res = qemu_run.run_checks(q, names=["check_core.py"], log=lambda m: None)
        wrong = qemu_run.run_schema(q, log=lambda m: None)
    assert res["check_core.py"][0] is True, res
    assert wrong == 0


@pytest.mark.slow
def test_modbus_steady_polling_allocates_nothing_in_the_frozen_image():
    # It did (MemoryError under heap_lock): modbus_meter's limits were a constant tuple with
    # ints above 8191, frozen as long ints; the check passes on the unix port from .mpy files.
    import qemu_run

    with qemu("armv7m") as q:
        res = qemu_run.run_checks(q, names=["check_modbus.py", "check_persist_cuts.py",
                                            "check_supervisor.py", "check_limits.py"],
                                  log=lambda m: None, fresh=lambda: qemu("armv7m"))
    assert all(ok is True for ok, _ in res.values()), res


@pytest.mark.slow
def test_the_crc_twin_allocates_nothing_in_the_frozen_image():
    # Its nibble table was a constant tuple frozen as long ints: every CRC step allocated.
    with qemu("armv7m") as q:
        out = q.exec("import micropython\nfrom drivers import kernels_twin as k\n"
                     "b = bytearray(b'123456789')\nk.py_crc16_modbus(b)\n"
                     "micropython.heap_lock()\ntry:\n r = k.py_crc16_modbus(b)\n"
                     "except MemoryError:\n r = 'MemoryError'\nmicropython.heap_unlock()\n"
                     "print('CRC', r)")
    assert "CRC 19255" in out, out  # 0x4B37


@pytest.mark.slow
def test_bench_counts_instructions_on_the_emulated_cortex_m3():
    import bench_qemu

    qemu("armv7m").close()
    r = bench_qemu.measure("armv7m", _mpy_dir())
    lines = []
    bench_qemu.report("armv7m", r, out=lines.append)
    assert r["status_charging"] == "Charging" and r["status_idle"] == "Available", r
    # the natmod is the fastest pilot analysis, then viper, then bytecode, as on the host
    assert 0 < r["pilot_natmod"] < r["pilot_viper"] < r["pilot_bytecode"], r
    for key in ("step_idle", "step_charging", "reflex_tick", "modbus_decode",
                "ocpp_parse_check", "rsa_verify"):
        assert r[key] > 0, (key, r)
    # frozen: the code stays in flash; every module imported takes well under a third of
    # the ESP32-WROOM-sized heap (a .mpy deploy puts ~210 KB of code there, docs/deploy.md)
    assert r["heap_boot"] < r["heap_size"] // 3, r
    assert any("ESP32 240 MHz" in ln for ln in lines), lines


def _served(arch, link):
    """An emulated board as `tools/qemu_run.py serve` gives it: UART on a pty (link), a RAM
    filesystem mounted, the raw REPL left."""
    import qemu_run

    q = qemu_run.Qemu(arch, link=link).connect()
    q.mount_ramfs()
    q.t.exit_raw_repl()
    q.t.close()
    q.t = None
    return q


def _tool(*args):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py")] + list(args),
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.slow
def test_deploy_warns_and_diag_reads_the_firmware_on_the_emulated_uart(tmp_path):
    from mpremote.transport_serial import SerialTransport

    qemu("armv7m").close()
    link = str(tmp_path / "ttyQ0")
    q = _served("armv7m", link)
    try:
        # 112 KiB of heap cannot hold the copied .mpy code: make deploy says so, up front
        rc, out = _tool("deploy", "--board", "qemu", "--port", link)
        assert "native arch armv7em; native kernels: dist/armv7m_6.3/wbkernels.mpy" in out, out
        assert "warning: the .mpy files to copy hold" in out and "frozen image" in out, out
    finally:
        q.close()
    q = _served("armv7m", link)
    try:
        rc, out = _tool("diag", "--port", link)
        assert "the firmware is not running" in out, out
        # the frozen firmware started from the REPL, as main.py would on a board
        t = SerialTransport(link, baudrate=115200)
        t.enter_raw_repl(soft_reset=False)
        t.exec("f = open('config.json', 'w'); f.write('{\"rating_a\": 16}'); f.close()")
        t.exec_raw_no_follow("import boards.qemu.main")
        t.serial.write(b"\x04")
        t.close()
        rc, out = _tool("diag", "--port", link)
        assert rc == 0, out
        assert "board      qemu" in out and "status     Available" in out, out
        assert "16.0 A  EVSE rating (config rating_a)" in out, out
    finally:
        q.close()


# Frozen into an image, a constant tuple keeps ints within -8192..8191 as small ints; larger
# ones become long-int objects in flash (MicroPython's tools/mpy-tool.py, mp_small_int_fits),
# and arithmetic on them allocates: the CRC twin and the Modbus value checks raised
# MemoryError under heap_lock on the frozen image (never with .mpy files, where the tuple is
# built at load). Hot paths keep such tables in arrays.
HOT_PATHS = ["drivers/kernels_twin.py", "drivers/kernels_pilot.py", "drivers/modbus.py",
             "drivers/modbus_frame.py", "drivers/reflex.py", "drivers/pilot.py",
             "firmware/meters/modbus_meter.py", "firmware/charge/session.py",
             "firmware/charge/controller.py", "firmware/charge/pilot.py",
             "firmware/charge/watch.py", "firmware/charge/offer.py"]


def _big_constant_tuples(path):
    import ast

    def const(n):
        if isinstance(n, ast.Tuple):
            return all(const(e) for e in n.elts)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            return const(n.operand)
        return isinstance(n, ast.Constant)

    def ints(n):
        for e in ast.walk(n):
            if isinstance(e, ast.Constant) and type(e.value) is int:
                yield e.value

    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    in_array = {id(a) for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", None) == "array" for a in n.args}  # copied at import
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Tuple) and const(n) and id(n) not in in_array:
            big = [v for v in ints(n) if not -0x2000 <= v <= 0x1FFF]
            if big:
                found.append("%s:%d %s" % (path, n.lineno, big[:4]))
    return found


def test_hot_paths_have_no_constant_tuple_that_freezes_to_long_ints():
    found = [f for p in HOT_PATHS if os.path.exists(os.path.join(ROOT, p))
             for f in _big_constant_tuples(p)]
    assert found == [], "\n".join(found)


@pytest.mark.slow
def test_safety_path_allocates_nothing_on_the_emulated_rv32_with_the_viper_twins():
    # It did: the viper pilot passes handed their ptr16 to _filt(), a boxed int beyond the
    # small ints where RAM sits at 0x80000000 (QEMU's RV32 virt; not on Cortex-M at 0x0).
    import qemu_run

    with qemu("rv32imc") as q:
        res = qemu_run.run_checks(q, names=["check_core.py"], log=lambda m: None)
    assert res["check_core.py"][0] is True, res
