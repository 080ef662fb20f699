"""make deploy against a virtual board: the MicroPython unix port behind a socat pty, its cwd a
temp folder standing in for the board's flash (docs/deploy.md). Deploys BOARD=sim, checks
what arrived and that it imports there, redeploys without touching config.json, then runs the
firmware on the virtual board and reads its diagnostics through mpremote, as `make diag`.
Then as a user would: RESET=1 starts the firmware, Ctrl-C at the port stops it, make diag
says it stopped and since when, Ctrl-D at the REPL restarts the board."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build  # noqa: E402
import deploy  # noqa: E402
import vboard as vb  # noqa: E402

pytestmark = pytest.mark.slow  # ~5 s: real mpremote sessions over a pty

_PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\] (\S+)\s+(\d+) B(  unchanged)?$")
_STOPPED = re.compile(r"^firmware STOPPED: state as of its last step (\d+) (ms|s) ago$", re.M)


def _mpremote(port, *args, timeout=30):
    r = subprocess.run([deploy.mpremote_exe(), "connect", port, "resume"] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def vboard(tmp_path_factory):
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (make setup installs it): no virtual board")
    workdir = tmp_path_factory.mktemp("vboard")
    # main.py of the sim board serves its control channel on 127.0.0.1:7700 unless told
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        control_port = s.getsockname()[1]
    proc, port = vb.start_vboard(str(workdir), argv=["--port", str(control_port)])
    try:
        yield port, os.path.join(str(workdir), "flash")
    finally:
        vb.stop_vboard(proc)


def test_unknown_board_and_missing_port_name_the_choices():
    with pytest.raises(deploy.DeployError, match=r"unknown BOARD 'esp8266'.*esp32_wallbox.*sim"):
        deploy.deploy("esp8266", "/dev/ttyUSB0")
    with pytest.raises(deploy.DeployError, match=r"BOARD is missing.*stm32_wallbox"):
        deploy.deploy("", "/dev/ttyUSB0")
    with pytest.raises(deploy.DeployError, match=r"PORT is missing.*PORT=/dev/ttyUSB0"):
        deploy.deploy("sim", "")
    with pytest.raises(deploy.DeployError, match=r"PORT /dev/nonexistent-tty does not exist"):
        deploy.deploy("sim", "/dev/nonexistent-tty")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), "deploy",
                        "--board", "nope", "--port", "/dev/null"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown BOARD 'nope'" in r.stderr


def test_bad_config_file_is_refused_before_touching_the_device(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"rating_a": 200}))
    with pytest.raises(deploy.DeployError, match=r"rating_a=200 refused"):
        deploy.deploy("sim", "/dev/null", config_path=str(bad))


def test_deploy_to_the_virtual_board(vboard):
    port, flash = vboard
    lines = []
    written, skipped = deploy.deploy("sim", port, out=lines.append)
    progress = [m.groups() for m in map(_PROGRESS.match, lines) if m]
    device_files = build.device_files("sim")
    natmods = deploy.native_modules("x64", "6.3")  # the unix port here: .mpy 6.3, x64
    total = len(device_files) + len(natmods) + 1  # + main.py
    total += len(build.dependency_files()) + 2 * len(build.static_files())  # microdot, pages
    assert len(progress) == total, "\n".join(lines)
    assert [int(p[0]) for p in progress] == list(range(1, total + 1))
    assert all(int(p[1]) == total for p in progress)
    assert written == total and skipped == 0
    # every device file arrived compiled, with the size mpy-cross made; no .py but main.py
    out_dir = os.path.join(ROOT, "build", "deploy", "sim")
    for rel in device_files:
        mpy = build.mpy_name(rel)
        got = os.path.join(flash, mpy)
        assert os.path.isfile(got), mpy
        assert os.path.getsize(got) == os.path.getsize(os.path.join(out_dir, mpy))
        assert (mpy, str(os.path.getsize(got))) in [(p[2], p[3]) for p in progress]
    for local, rel in natmods:  # make natmod's output, where drivers/kernels.py looks
        assert os.path.getsize(os.path.join(flash, rel)) == os.path.getsize(local)
    assert any(x.startswith("device: .mpy 6.3, native arch x64") for x in lines), lines
    found = [os.path.relpath(os.path.join(d, f), flash) for d, _, fs in os.walk(flash)
             for f in fs]
    assert [f for f in found if f.endswith(".py")] == ["main.py"]
    assert not [f for f in found if f.endswith((".tmp", ".new", ".ok"))]
    with open(os.path.join(flash, "main.py")) as f, \
            open(os.path.join(ROOT, "boards", "sim", "main.py")) as g:
        assert f.read() == g.read()
    # a default config.json: every key with a safe default; rating_a left to the installer
    with open(os.path.join(flash, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["max_current_a"] == 80 and "rating_a" not in cfg
    assert any("config.json: written with defaults" in x for x in lines)
    # the modules import on the board, from the .mpy files
    out = _mpremote(port, "exec", "import firmware.app, drivers.pilot, boards.sim.board\n"
                    "print(firmware.app.__file__, drivers.pilot.__file__)")
    assert out.split() == ["firmware/app.mpy", "drivers/pilot.mpy"]


def test_second_deploy_keeps_the_installers_config(vboard):
    port, flash = vboard
    if not os.path.exists(os.path.join(flash, "main.py")):
        deploy.deploy("sim", port, out=lambda s: None)
    installer = {"rating_a": 20, "max_current_a": 16, "phases": 1}
    with open(os.path.join(flash, "config.json"), "w") as f:
        json.dump(installer, f)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), "deploy",
                        "--board", "sim", "--port", port], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    progress = [m.groups() for m in map(_PROGRESS.match, lines) if m]
    assert progress, r.stdout
    # unchanged files are not copied again; main.py is always rewritten last
    assert [p[2] for p in progress if not p[4]] == ["main.py"], r.stdout
    assert "config.json: the device has one; left as it is" in lines
    with open(os.path.join(flash, "config.json")) as f:
        assert json.load(f) == installer


def test_firmware_runs_on_the_virtual_board_and_diag_explains_it(vboard):
    port, flash = vboard
    if not os.path.exists(os.path.join(flash, "main.py")):
        deploy.deploy("sim", port, out=lambda s: None)
    # The sim board without the control channel: plug an EV in, run the App for 1 s.
    out = _mpremote(port, "exec", "from boards.sim import selftest; selftest.run(1000)")
    assert "status     Charging  error NoError" in out, out
    assert "offered    16.0 A because: EVSE rating" in out, out
    # the native kernels when make natmod built them for x64, else the Python twins
    impl = "natmod x64" if deploy.native_modules("x64", "6.3") else "(python|viper)"
    assert re.search(r"^kernels    %s$" % impl, out, re.M), out
    # What `make diag PORT=...` runs, from a new mpremote session (the REPL keeps the app).
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), "diag",
                        "--port", port], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    # the firmware is not running: said first, with the age of the state shown
    m = _STOPPED.search(out)
    assert m and out.startswith(m.group(0)), out
    assert re.search(r"^board      sim$", out, re.M), out
    assert re.search(r"^status     Charging ", out, re.M), out
    assert re.search(r"^offer      16\.0 A  \(EVSE rating\)$", out, re.M), out
    assert re.search(r"^contactor  cmd True  mirror True", out, re.M), out
    assert re.search(r"^   16\.0 A  EVSE rating \(config rating_a\)$", out, re.M), out
    assert re.search(r"^   32\.0 A  cable \(proximity\)$", out, re.M), out
    assert re.search(r"ms ago  plugged 320$", out, re.M), out
    assert re.search(r"ms ago  close 160$", out, re.M), out
    # A deploy now finds the (stopped) firmware and feeds its watchdog while copying.
    lines = []
    deploy.deploy("sim", port, out=lines.append)
    assert any("feeding its watchdog" in x for x in lines), lines


def _diag(port):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), "diag",
                        "--port", port], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _console(ser, data, marks=(deploy.CONSOLE_PROMPT, b">>> "), timeout=5.0):
    ser.write(data)
    return deploy._read_until(ser, marks, timeout)


def test_reset_starts_the_firmware_on_the_virtual_board(vboard):
    port, flash = vboard
    with open(os.path.join(flash, "config.json"), "w") as f:
        json.dump({"rating_a": 20, "max_current_a": 16}, f)
    lines = []
    deploy.deploy("sim", port, reset=True, out=lines.append)
    assert "main.py runs, its service console answers on %s" % port in lines[-1], lines
    # make diag talks to the running firmware's console, not to a REPL
    out = _diag(port)
    assert out.startswith("-- status\nboard      sim\n"), out
    assert not _STOPPED.search(out), out
    assert re.search(r"^   16\.0 A  config max_current_a$", out, re.M), out
    # a deploy now stops the running firmware with Ctrl-C (mpremote's) and says how to restart
    lines = []
    deploy.deploy("sim", port, out=lines.append)
    assert any("firmware found on the device, stopped by Ctrl-C" in x for x in lines), lines
    assert "RESET=1, or Ctrl-D at its REPL, starts the new firmware" in lines[-1], lines


def test_ctrl_c_stops_the_firmware_and_diag_says_since_when(vboard):
    import serial

    port, flash = vboard
    deploy.deploy("sim", port, reset=True, out=lambda s: None)
    with serial.Serial(port, 115200, timeout=0.05) as ser:
        assert _console(ser, b"\r").endswith(deploy.CONSOLE_PROMPT)
        got = _console(ser, b"\x03")  # Ctrl-C alone, as a terminal sends it
        assert got.endswith(b">>> ") and b"KeyboardInterrupt" in got, got
        assert b"unknown command" not in got
    time.sleep(1.2)
    out = _diag(port)
    m = _STOPPED.search(out)
    assert m and out.startswith(m.group(0)), out
    age_ms = int(m.group(1)) * (1000 if m.group(2) == "s" else 1)
    assert 1200 <= age_ms < 30000, out
    assert re.search(r"^board      sim$", out, re.M), out


def test_ctrl_d_at_the_repl_restarts_the_virtual_board(vboard):
    import serial

    port, flash = vboard
    if not os.path.exists(os.path.join(flash, "main.py")):
        deploy.deploy("sim", port, out=lambda s: None)
    ser = serial.Serial(port, 115200, timeout=0.05)
    if not _console(ser, b"\r").endswith(b">>> "):
        _console(ser, b"\x03")
    ser.write(b"\x04")  # a board's soft reset; the unix port exits and the vboard restarts it
    assert vb.wait_vboard_restart(ser, port)[0] == "console"


def test_a_virtual_board_that_exits_at_once_is_not_restarted_forever(tmp_path):
    if shutil.which("socat") is None or shutil.which("false") is None:
        pytest.skip("socat is not installed (make setup installs it): no virtual board")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), "vboard",
                        "--dir", str(tmp_path), "--micropython", shutil.which("false")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "the virtual board exits as soon as it starts (5 times)" in r.stderr


def test_ctrl_c_while_the_virtual_board_starts_does_not_end_it(tmp_path):
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (make setup installs it): no virtual board")
    port = str(tmp_path / "ttyV0")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), "vboard",
                             "--dir", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 10
        while not os.path.exists(port) and time.time() < deadline:
            time.sleep(0.002)
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        for _ in range(20):  # what mpremote sends first, while micropython still starts
            os.write(fd, b"\x03")
            time.sleep(0.01)
        os.close(fd)
        assert vb.probe_vboard(port, time.time() + 5)[0] == "repl"
    finally:
        vb.stop_vboard(proc)
    log = proc.stdout.read().decode()
    assert "started again" not in log, log


def _keys_file(tmp_path, name="ota_keys.json"):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import bundle as tool

    key = tool.new_key(2048)
    p = tmp_path / name
    p.write_text(json.dumps({"keys": [tool.public_json(key, "site")]}))
    return p


def test_bad_keys_are_refused_before_touching_the_device(tmp_path):
    bad = tmp_path / "k.json"
    bad.write_text(json.dumps({"keys": []}))
    with pytest.raises(deploy.DeployError, match=r"--keys .*k.json: no \{\"keys\""):
        deploy.deploy("sim", "/dev/null", keys=str(bad))
    priv = tmp_path / "p.json"
    priv.write_text(json.dumps({"keys": [{"kid": "x", "n": "c5", "e": 65537, "d": "11"}]}))
    with pytest.raises(deploy.DeployError, match=r"holds a private key"):
        deploy.deploy("sim", "/dev/null", keys=str(priv))
    with pytest.raises(deploy.DeployError, match=r"--keys .*nothere.json"):
        deploy.deploy("sim", "/dev/null", keys=str(tmp_path / "nothere.json"))


def test_deploy_copies_the_update_keys_the_device_then_trusts(vboard, tmp_path, monkeypatch):
    port, flash = vboard
    monkeypatch.setattr(sys.modules["deploy_plan"], "DEFAULT_KEYS", str(tmp_path / "none.json"))
    lines = []
    deploy.deploy("sim", port, out=lines.append)  # no keys here: the device keeps its own
    assert any(x.startswith("ota_keys.json: none here (make keys") for x in lines), lines
    keys = _keys_file(tmp_path)
    lines = []
    deploy.deploy("sim", port, out=lines.append, keys=str(keys))
    assert any(x.startswith("ota_keys.json: written from") for x in lines), lines
    with open(os.path.join(flash, "ota_keys.json")) as f:
        assert f.read() == keys.read_text()
    # the firmware's own update path reads them (firmware/ota/updater.py)
    out = _mpremote(port, "exec", "from firmware.ota import updater\n"
                    "print([k.kid for k in updater._keys()])")
    assert out.split() == ["['site']"], out
    lines = []
    deploy.deploy("sim", port, out=lines.append, keys=str(keys))
    assert any(x.startswith("ota_keys.json: unchanged") for x in lines), lines


def test_a_frozen_image_gets_main_py_and_the_pages_in_web(vboard):
    """A board whose firmware is frozen into its image (docs/deploy.md, route 2): make deploy
    copies main.py and the web pages, each with the gzip copy the build makes, into web/
    (where the frozen firmware looks for them: mpy/check_web_static.py), no .mpy; again:
    the pages are unchanged."""
    port, flash = vboard
    lines = []
    written, skipped = deploy.deploy("sim", port, out=lines.append, frozen=True)
    assert any("frozen into its image" in x for x in lines), lines
    progress = [m.groups() for m in map(_PROGRESS.match, lines) if m]
    pages = [os.path.basename(p) for _, ps in build.static_files() for p in ps]
    assert pages == ["index.html", "index.html.gz"]
    assert [p[2] for p in progress] == ["web/" + f for f in pages] + ["main.py"], lines
    out_dir = os.path.join(ROOT, "build", "deploy", "sim", build.STATIC)
    for f in pages:
        with open(os.path.join(flash, "web", f), "rb") as a, \
                open(os.path.join(out_dir, f), "rb") as b:
            assert a.read() == b.read(), f
    import gzip

    with open(os.path.join(flash, "web", "index.html.gz"), "rb") as a, \
            open(os.path.join(ROOT, build.STATIC, "index.html"), "rb") as b:
        assert gzip.decompress(a.read()) == b.read()
    lines = []
    deploy.deploy("sim", port, out=lines.append, frozen=True)
    progress = [m.groups() for m in map(_PROGRESS.match, lines) if m]
    assert [p[2] for p in progress if not p[4]] == ["main.py"], lines  # pages unchanged


@pytest.mark.parametrize("where,want", [("image", "frozen"), ("fs", "fs"), (None, "none")])
def test_make_deploy_tells_a_frozen_image_from_copied_modules(tmp_path, where, want):
    """The device-side probe, on the unix port: the firmware importable but not in the
    filesystem (the image: here MICROPYPATH) is a frozen image; a firmware/ folder in the
    filesystem is found first; neither is a new board."""
    import simlib

    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy_dir)
    assert not errors
    if where == "fs":
        os.mkdir(tmp_path / "firmware")
    env = dict(os.environ, MICROPYPATH=(mpy_dir + os.pathsep if where == "image" else "")
               + ".frozen")
    r = subprocess.run([simlib.micropython_exe(), "-c", deploy.FROZEN_PROBE],
                       capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=30)
    assert r.stdout.strip() == want, r.stdout + r.stderr
