"""The MicroPython image update on ESP32 (firmware/ota/image.py through slots.install), on the
fake esp32.Partition and ESP-IDF bootloader of host_tests/fake_esp32.py: the image streamed
into the next partition and read back before set_boot, a trial that the health check marks
(kept across resets) or not (the bootloader rolls the image back and the slots roll back with
it), an image that never reached Python, each refusal before anything is written, and a
power cut at every flash operation of the image write."""
import hashlib
import io
import json
import os
import subprocess
import sys

import pytest

import fake_esp32
import ota_cases
from firmware import persist
from firmware.ota import bundle, image, rsa, slots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bundle as tool  # noqa: E402
import simlib  # noqa: E402

OLD_IMG = b"MicroPython v1.27 " * 300
NEW_IMG = b"MicroPython v1.28 " * 700  # 12.6 KB: four blocks, the last one partial


@pytest.fixture(scope="module")
def key():
    return tool.new_key(2048)


@pytest.fixture
def dev(tmp_path, monkeypatch):
    """A board running ota_0 (flashed with esptool: otadata blank) from the base install."""
    monkeypatch.chdir(tmp_path)
    flash = fake_esp32.Flash()
    flash.flash_image("ota_0", OLD_IMG)
    assert flash.reset() == "ota_0"
    monkeypatch.setitem(sys.modules, "esp32", flash.module())
    return flash


def _keys(key):
    return [rsa.key_from_json(tool.public_json(key))]


def _bundle(key, img=NEW_IMG, **kw):
    return tool.make_bundle(key, ota_cases.FILES, "0.9.0", "sim",
                            image=fake_esp32.image(img), **kw)


def _boot(flash):
    """A reset: the ESP-IDF bootloader picks the image, then the firmware's main.py runs
    slots.boot() (check_image, pick; enter() is left out: it would unload the test's
    modules). Returns (image payload, slot)."""
    flash.reset()
    slots.check_image()
    return flash.payload(flash.running), slots.pick()


def test_an_image_update_is_kept_once_the_health_check_marks_it(key, dev):
    m = slots.install(io.BytesIO(_bundle(key)), _keys(key), ota_cases.RUNNING)
    assert m["image"]["size"] == len(fake_esp32.image(NEW_IMG))
    assert dev.payload("ota_1") == NEW_IMG and dev.boot == "ota_1"  # written, set_boot
    assert slots.load()["trial"]["image"] == "ota_1"
    assert _boot(dev) == (NEW_IMG, "a")  # the new image and the new slot, on trial
    assert slots.running_trial() is not None
    image.mark_valid()  # what trial.py does once healthy, then slots.confirm()
    slots.confirm()
    for _ in range(3):
        assert _boot(dev) == (NEW_IMG, "a")
    assert slots.take_report() is None


def test_an_unmarked_image_is_rolled_back_with_its_slot(key, dev):
    slots.install(io.BytesIO(_bundle(key)), _keys(key), ota_cases.RUNNING)
    assert _boot(dev) == (NEW_IMG, "a")
    slots.fail("health check: fault 4 latched after 300 s")  # restarts, nothing marked
    assert _boot(dev) == (OLD_IMG, "base")
    assert dev.state["ota_1"] == fake_esp32.ABORTED
    assert slots.take_report()["why"] == "health check: fault 4 latched after 300 s"
    assert _boot(dev) == (OLD_IMG, "base")  # and it stays there


def test_an_image_that_crashes_before_python_runs_rolls_the_slot_back(key, dev):
    slots.install(io.BytesIO(_bundle(key)), _keys(key), ota_cases.RUNNING)
    dev.reset()  # the new image starts and crashes (or hangs) before main.py: a reset
    payload, slot = _boot(dev)
    assert (payload, slot) == (OLD_IMG, "base")  # not the new slot on the old image
    why = slots.take_report()["why"]
    assert "image (ota_1) did not boot, ota_0 runs" in why


@pytest.mark.parametrize("case", ["no esp32", "no ota table", "too big", "bad byte",
                                  "short", "not esp", "contactor closed"])
def test_refused_before_the_image_is_booted(key, dev, monkeypatch, case):
    keys = _keys(key)
    data = _bundle(key)
    words = {"no esp32": "no esp32.Partition", "no ota table": "no OTA partition",
             "too big": "does not fit partition ota_1", "bad byte": "image: SHA-256",
             "short": "truncated in the image", "not esp": "not an ESP app image",
             "contactor closed": "the flash gate is closed"}[case]
    if case == "no esp32":
        monkeypatch.setitem(sys.modules, "esp32", None)
    elif case == "no ota table":
        dev.otadata = False
    elif case == "too big":
        data = _bundle(key, img=b"x" * (dev.size + 1))
    elif case == "bad byte":
        b = bytearray(data)
        b[-100] ^= 1
        data = bytes(b)
    elif case == "short":
        data = data[:-5000]
    elif case == "contactor closed":  # the board's flash_write_ok() says no
        monkeypatch.setattr(persist, "_gate", lambda: False)
    elif case == "not esp":
        img = b"\x00" + fake_esp32.image(NEW_IMG)[1:]  # the tool refuses it: signed by hand
        m = tool.manifest_for(ota_cases.FILES, "0.9.0", "sim")
        m["image"] = {"size": len(img), "sha256": hashlib.sha256(img).hexdigest()}
        mbytes = json.dumps(m, separators=(",", ":")).encode()
        data = tool.pack(mbytes, ota_cases.FILES, tool.sign(key, mbytes), img)
    with pytest.raises(bundle.BundleError, match=words):
        slots.install(io.BytesIO(data), keys, ota_cases.RUNNING)
    assert dev.boot is None and dev.state == {}  # never set_boot
    assert slots.load()["trial"] is None and not os.path.exists("slot_a")
    assert _boot(dev) == (OLD_IMG, "base")


def test_the_tool_refuses_a_bin_that_is_not_an_app_image(key):
    with pytest.raises(ValueError, match="not an ESP app image"):
        tool.make_bundle(key, ota_cases.FILES, "0.9.0", "sim", image=b"\x00" * 5000)


def test_a_power_cut_at_every_flash_operation_of_the_image_write(key, tmp_path, monkeypatch):
    """Cut at each sector erase, block write (torn: half of it lands) and the otadata write,
    and at the pointer write after set_boot: the board always boots a whole image with a slot
    it can run, and one more reset without a healthy trial returns to the old pair."""
    data = _bundle(key)
    keys = _keys(key)
    real_remove = slots.remove_tree
    real_save = slots.save

    def run(k, cut_pointer=False):
        d = tmp_path / ("cut%s%s" % (k, "p" if cut_pointer else ""))
        d.mkdir()
        monkeypatch.chdir(d)
        flash = fake_esp32.Flash()
        flash.flash_image("ota_0", OLD_IMG)
        flash.reset()
        monkeypatch.setitem(sys.modules, "esp32", flash.module())
        flash.cut_at = None if cut_pointer else k
        dead = []

        def remove_tree(p):  # after a cut nothing more runs (no clean-up)
            if dead or (flash.cut_at is not None and flash.ops >= flash.cut_at):
                dead.append(1)
                raise fake_esp32.Cut()
            real_remove(p)

        def save(state):
            if cut_pointer and state.get("trial"):
                dead.append(1)
                raise fake_esp32.Cut()
            real_save(state)
        monkeypatch.setattr(slots, "remove_tree", remove_tree)
        monkeypatch.setattr(slots, "save", save)
        done = True
        try:
            slots.install(io.BytesIO(data), keys, ota_cases.RUNNING)
        except fake_esp32.Cut:
            done = False
        monkeypatch.setattr(slots, "remove_tree", real_remove)
        monkeypatch.setattr(slots, "save", real_save)
        return flash, done

    flash, done = run(None)
    n = flash.ops
    assert done and n >= 9  # 4 erases, 4 writes, set_boot
    seen = set()
    for k in list(range(n + 1)) + ["pointer"]:
        flash, done = run(0 if k == "pointer" else k, cut_pointer=(k == "pointer"))
        got = _boot(flash)  # raises if no whole image is left to boot
        where = "cut at %s of %d ops" % (k, n)
        if done:
            assert got == (NEW_IMG, "a"), where
        else:
            assert got in ((OLD_IMG, "base"), (NEW_IMG, "base")), where
        seen.add(got)
        if got != (OLD_IMG, "base"):
            assert _boot(flash) == (OLD_IMG, "base"), where  # nothing marked it
    assert seen == {(OLD_IMG, "base"), (NEW_IMG, "a"), (NEW_IMG, "base")}


def test_the_trial_marks_the_image_on_micropython(key, tmp_path):
    """On the unix port: the install with MicroPython's hashlib and memoryview, and
    firmware/ota/trial.py's health check marking the image once healthy, or failing the
    trial (restart unmarked, both roll back) when mark_app_valid_cancel_rollback raises."""
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [tool.public_json(key)]}))
    (tmp_path / "running.json").write_text(json.dumps(ota_cases.RUNNING))
    (tmp_path / "image.wbota").write_bytes(_bundle(key))
    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = tool.build.compile_all(mpy_dir)
    assert not errors
    env = dict(os.environ, MICROPYPATH=mpy_dir + os.pathsep + ".frozen")
    r = subprocess.run([simlib.micropython_exe(), os.path.join(ROOT, "host_tests", "mpy",
                                                               "ota_image_rig.py"),
                        str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "DONE 0 failed" in out and out.count("PASS ") == 2, out
    print("\n" + out)
