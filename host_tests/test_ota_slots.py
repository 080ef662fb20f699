"""A/B slots with a trial boot and rollback (firmware/ota/slots.py, firmware/ota/trial.py,
boards/sim/boot.py): the bootloader's choice, power cuts at every step of an install and of
the pointer writes, and the simulator booting a new slot on trial that confirms itself, or
that crashes or fails its health check and is rolled back, reported by the old firmware."""
import io
import json
import os
import subprocess
import sys
import time

import pytest

import ota_cases
import ota_cuts
import simrig
from firmware.ota import bundle, rsa, slots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bundle as tool  # noqa: E402
import simlib  # noqa: E402


@pytest.fixture(scope="module")
def key():
    return tool.new_key(2048)


def _ok(*good):
    return lambda s: s in good or s == "base"


def test_the_bootloader_boots_a_trial_once_then_rolls_back():
    st = {"active": "a", "trial": {"slot": "b", "version": "0.9.0", "boots": 0},
          "report": None}
    slot, st2 = slots.decide(st, _ok("a", "b"))
    assert slot == "b" and st2["trial"]["boots"] == 1  # counted before it runs
    slot, st3 = slots.decide(st2, _ok("a", "b"))  # it never confirmed
    assert slot == "a" and st3["trial"] is None
    assert st3["report"]["event"] == "rolled-back" and "did not confirm" in st3["report"]["why"]
    slot, st4 = slots.decide(st2, _ok("a", "b"), marker="crash")
    assert "crashed" in st4["report"]["why"]
    failed = dict(st2, trial=dict(st2["trial"], failed="health check: x"))
    assert slots.decide(failed, _ok("a", "b"))[1]["report"]["why"] == "health check: x"
    slot, st5 = slots.decide(st, _ok("a"))  # slot b incomplete: never booted
    assert slot == "a" and "incomplete" in st5["report"]["why"]
    assert slots.decide({"active": "a", "trial": None}, _ok("a")) == ("a", None)
    assert slots.decide({"active": "b", "trial": None}, _ok("a"))[0] == "a"


def test_an_install_refused_before_the_slot_is_touched(key, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keys = [rsa.key_from_json(tool.public_json(key))]
    os.makedirs("slot_b/firmware")
    (tmp_path / "slot_b" / "firmware" / "keep.mpy").write_bytes(b"old")
    slots.save({"active": "b", "trial": None, "report": None})
    other = tool.make_bundle(key, ota_cases.FILES, "0.9.0", "esp32_wallbox")
    with pytest.raises(bundle.BundleError, match="for board"):
        slots.install(io.BytesIO(other), keys, ota_cases.RUNNING)
    assert not (tmp_path / "slot_a").exists() and slots.load()["trial"] is None
    bad = bytearray(tool.make_bundle(key, ota_cases.FILES, "0.9.0", "sim"))
    bad[-5] ^= 1
    with pytest.raises(bundle.BundleError, match="SHA-256"):
        slots.install(io.BytesIO(bytes(bad)), keys, ota_cases.RUNNING)
    assert not (tmp_path / "slot_a").exists()  # the partial slot is gone
    assert slots.load() == {"active": "b", "trial": None, "report": None}
    m = slots.install(io.BytesIO(tool.make_bundle(key, ota_cases.FILES, "0.9.0", "sim")),
                      keys, ota_cases.RUNNING)
    assert m["version"] == "0.9.0" and slots.load()["trial"]["slot"] == "a"
    assert (tmp_path / "slot_b" / "firmware" / "keep.mpy").read_bytes() == b"old"
    with pytest.raises(bundle.BundleError, match="already waiting"):
        slots.install(io.BytesIO(b""), keys, ota_cases.RUNNING)


@pytest.mark.parametrize("which", ["install", "trial boot pointer", "confirm", "rollback"])
def test_a_power_cut_at_every_step_boots_a_whole_slot(key, which):
    keys = [rsa.key_from_json(tool.public_json(key))]
    old = [(p, b + b"old") for p, b in ota_cases.FILES]
    data = tool.make_bundle(key, ota_cases.FILES, "0.9.0", "sim")
    releases, scs = ota_cuts.scenarios(keys, ota_cases.RUNNING, old, ota_cases.FILES, data)
    name, setup, action, allowed, done_is = [s for s in scs if s[0] == which][0]
    tried, problems = ota_cuts.cut_everywhere(name, setup, action, releases, allowed, done_is)
    assert tried > 6
    assert not problems, "\n".join(problems[:12])
    print("\n%s: %d cuts" % (which, tried))


def test_the_same_power_cuts_on_micropython(key, tmp_path):
    old = [(p, b + b"old") for p, b in ota_cases.FILES]
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [tool.public_json(key)]}))
    (tmp_path / "bundle.wbota").write_bytes(tool.make_bundle(key, ota_cases.FILES, "0.9.0",
                                                             "sim"))
    (tmp_path / "releases.json").write_text(json.dumps({
        "running": ota_cases.RUNNING, "old": [[p, b.hex()] for p, b in old],
        "new": [[p, b.hex()] for p, b in ota_cases.FILES]}))
    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = tool.build.compile_all(mpy_dir)
    assert not errors
    env = dict(os.environ, MICROPYPATH=mpy_dir + os.pathsep + ".frozen")
    r = subprocess.run([simlib.micropython_exe(), os.path.join(ROOT, "host_tests", "mpy",
                                                               "ota_cut_rig.py"),
                        str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "DONE 0 failed" in out and "FAIL" not in out, out
    assert out.count("PASS ") == 4, out


# ---- end to end on the simulator: boards/sim/boot.py plays the bootloader

def _compiled(tmp_path, name, source):
    src = tmp_path / "src.py"
    src.write_text(source)
    out = tmp_path / "out.mpy"
    subprocess.run([tool.build.mpy_cross(), "-s", name, "-o", str(out), str(src)], check=True)
    return out.read_bytes()


# A new firmware whose scheduler hangs 1.5 s after boot (a task that never yields)
HANG = """import asyncio
def attach(app):
    async def hang():
        await asyncio.sleep_ms(1500)
        app.log("new firmware: hanging")
        while True:
            pass
    app.sup.add("hang", hang)
"""


def _release(tmp_path, version, crash=False, hang=False):
    """The real sim firmware, compiled, with its version (and a crash at boot or a hang
    if asked)."""
    files = dict(tool.firmware_files("sim", "x64"))
    files["firmware/version.mpy"] = _compiled(tmp_path, "firmware/version.py",
                                              'VERSION = "%s"\n' % version)
    if crash:
        files["boards/sim/main.mpy"] = _compiled(
            tmp_path, "boards/sim/main.py", 'raise RuntimeError("the new firmware crashes")\n')
    if hang:
        files["firmware/ota/trial.mpy"] = _compiled(tmp_path, "firmware/ota/trial.py", HANG)
    return sorted(files.items())


def _install(sim_dir, key, files, version, monkeypatch, limit_s=20):
    keys = [rsa.key_from_json(tool.public_json(key))]
    running = dict(ota_cases.RUNNING, hw=1)
    data = tool.make_bundle(key, files, version, "sim")
    monkeypatch.chdir(sim_dir)  # the device's filesystem root
    m = slots.install(io.BytesIO(data), keys, running, min_s=1, limit_s=limit_s)
    monkeypatch.undo()
    return m


def _version(sim):
    return [x for x in sim.diag("status") if x.startswith("firmware")][0].split()[-1]


def _logs(sim, since=0):
    return [o["msg"] for o in sim.obs[since:] if o.get("k") == "log"]


def _pointer(d):
    with open(os.path.join(d, slots.BOOT_FILE)) as f:
        return json.load(f)


def test_sim_a_good_update_boots_on_trial_and_confirms_itself(key, tmp_path, monkeypatch):
    d = str(tmp_path / "dev")
    os.mkdir(d)
    cfg = dict(simrig.BASE_CONFIG)
    with simlib.Sim(cfg, state_dir=d) as sim:
        assert _version(sim) == "0.8.0"
    _install(d, key, _release(tmp_path, "0.9.0"), "0.9.0", monkeypatch)
    assert _pointer(d)["trial"]["slot"] == "a"
    with simlib.Sim(cfg, state_dir=d) as sim:
        sim.wait_for(lambda o: o.get("k") == "log" and "0.9.0 confirmed" in o["msg"], 20)
        assert _version(sim) == "0.9.0"  # the code of slot a runs
    assert _pointer(d)["active"] == "a" and _pointer(d)["trial"] is None
    with simlib.Sim(cfg, state_dir=d) as sim:  # and keeps running it
        assert _version(sim) == "0.9.0"
        assert not [m for m in _logs(sim) if m.startswith("ota:")]


def test_sim_a_new_firmware_that_crashes_at_boot_is_rolled_back(key, tmp_path, monkeypatch):
    d = str(tmp_path / "dev")
    os.mkdir(d)
    cfg = dict(simrig.BASE_CONFIG)
    with open(os.path.join(d, "lockout"), "w") as f:  # a store: it must survive
        f.write("0")
    _install(d, key, _release(tmp_path, "0.9.1", crash=True), "0.9.1", monkeypatch)
    with pytest.raises(RuntimeError, match="the new firmware crashes"):
        simlib.Sim(cfg, state_dir=d).start(timeout=10)
    with simlib.Sim(cfg, state_dir=d) as sim:  # the bootloader falls back
        assert _version(sim) == "0.8.0"
        rolled = [m for m in _logs(sim) if "rolled back" in m]
        assert rolled == ["ota: update to 0.9.1 rolled back: it did not confirm itself "
                          "(a hang, a crash or a power cut)"], _logs(sim)
    assert _pointer(d)["active"] == "base" and _pointer(d)["report"] is None  # said once
    assert open(os.path.join(d, "lockout")).read() == "0"


def test_sim_a_trial_that_fails_its_health_check_is_rolled_back(key, tmp_path, monkeypatch):
    """OCPP configured, the CSMS never answers: no BootNotification accepted within the
    trial's limit, so the new firmware marks itself failed and restarts; the old one boots
    and says why."""
    d = str(tmp_path / "dev")
    os.mkdir(d)
    cfg = dict(simrig.BASE_CONFIG, ocpp={"url": "ws://127.0.0.1:9/ocpp", "cp_id": "CP1"})
    _install(d, key, _release(tmp_path, "0.9.0"), "0.9.0", monkeypatch, limit_s=3)
    sim = simlib.Sim(cfg, state_dir=d).start()
    try:
        assert _version(sim) == "0.9.0"
        sim.wait_for({"k": "end"}, 20)  # the orderly restart (restart.OTA) resets the board
        assert any("ota: trial failed: health check: BootNotification not accepted" in m
                   for m in _logs(sim)), _logs(sim)
    finally:
        sim.stop()
    with simlib.Sim(cfg, state_dir=d) as sim:
        assert _version(sim) == "0.8.0"
        rolled = [m for m in _logs(sim) if "rolled back" in m]
        assert len(rolled) == 1 and "BootNotification not accepted" in rolled[0], rolled
        assert any("orderly restart (ota)" in m for m in _logs(sim)), _logs(sim)


def test_sim_a_new_firmware_that_hangs_is_reset_by_the_watchdog_and_rolled_back(
        key, tmp_path, monkeypatch):
    d = str(tmp_path / "dev")
    os.mkdir(d)
    cfg = dict(simrig.BASE_CONFIG)
    _install(d, key, _release(tmp_path, "0.9.2", hang=True), "0.9.2", monkeypatch)
    sim = simlib.Sim(cfg, state_dir=d).start()
    try:
        assert _version(sim) == "0.9.2"
        wdt = os.path.join(d, "sim_wdt_reset")  # the simulated watchdog fired (its thread)
        deadline = time.time() + 20
        while not os.path.exists(wdt) and time.time() < deadline:
            time.sleep(0.1)
        assert os.path.exists(wdt), _logs(sim)
    finally:
        sim.proc.kill()  # what the watchdog's reset does to a hung MCU
        sim.proc.communicate()
        sim.sock.close()
    with simlib.Sim(cfg, state_dir=d) as sim:
        assert _version(sim) == "0.8.0"
        logs = _logs(sim)
        assert "boot: after a watchdog reset" in logs, logs
        assert [m for m in logs if "rolled back" in m] == [
            "ota: update to 0.9.2 rolled back: it did not confirm itself "
            "(a hang, a crash or a power cut)"], logs
