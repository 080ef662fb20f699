"""kill -9 of the simulated wallbox at random moments of an UpdateFirmware's download and
install (firmware/ota/updater.py, slots.py): the next start always boots a working firmware
(the old one, or the new one on trial once the install's commit point was passed), and the
update's outcome reaches the CSMS once: DownloadFailed or InstallationFailed from the old
firmware, Installed from the new one; nothing of the download stays on flash.

A seeded handful of points runs in CI; more, from a new seed: WB_OTA_KILL_RUNS=20
WB_OTA_KILL_SEED=7 (make fuzz runs 12 from a new seed)."""
import os
import random
import time

import pytest

import ocpprig as o
import ota_http
from ocpprig import CsmsThread
from test_ota_slots import _release, _version, key  # noqa: F401  (the fixture)
from test_ota_update import _device, _fsn, tool

RUNS = int(os.environ.get("WB_OTA_KILL_RUNS", "0"))
SEED = int(os.environ.get("WB_OTA_KILL_SEED", "18"))
PACE = (8192, 0.05)  # the 259 KB bundle comes in ~1.6 s: a kill can land anywhere in it
FINAL = ("DownloadFailed", "InstallationFailed", "Installed")


@pytest.fixture(scope="module")
def served(key, tmp_path_factory):  # noqa: F811
    data = tool.make_bundle(key, _release(tmp_path_factory.mktemp("rel"), "0.9.0"), "0.9.0",
                            "sim")
    srv = ota_http.Server(data, pace=PACE)
    yield srv
    srv.close()


def _kill(sim):
    sim.proc.kill()  # SIGKILL: what a power cut does to the process
    sim.proc.communicate()
    sim.sock.close()


def _one(key, served, tmp_path, phase, frac):  # noqa: F811
    """Kill once in phase ("download": frac of its length after Downloading reached the
    CSMS; "install": frac * 150 ms after Installing did), restart, check; a description."""
    d = _device(tmp_path, key)
    with CsmsThread() as csms:
        sim = o.start_sim(csms, state_dir=d).start()
        try:
            o.booted(csms)
            assert o.call(csms, "UpdateFirmware", {
                "location": served.url + "/b", "retrieveDate": "2020-01-01T00:00:00Z"}) == {}
            want = "Downloading" if phase == "download" else "Installing"
            csms.wait_for(lambda: want in _fsn(csms), 30)
            time.sleep(frac * (1.6 if phase == "download" else 0.15))
        finally:
            _kill(sim)
        before = _fsn(csms)
        n0 = len(before)
        with o.start_sim(csms, state_dir=d) as sim:  # the reset after the cut
            csms.wait_for(lambda: any(s in FINAL for s in _fsn(csms)[n0:]), 40)
            told = _fsn(csms)[n0:]
            version = _version(sim)
            o.simrig.device_sleep(sim, 1000)
        final = [s for s in told if s in FINAL]
        assert len(final) == 1, (phase, frac, before, told)
        assert (version == "0.9.0") == (final[0] == "Installed"), (version, told)
        assert version in ("0.8.0", "0.9.0")
        if final[0] == "DownloadFailed":
            assert "Downloaded" not in before, before
        left = [n for n in os.listdir(d) if n.startswith("ota_download") or n == "ota_status.json"]
        assert not left, left
        n1 = len(_fsn(csms))
        with o.start_sim(csms, state_dir=d) as sim:  # told once
            o.wait_log(sim, "ocpp: boot accepted")
            o.simrig.device_sleep(sim, 1500)  # the status task polls every 500 ms
            assert _version(sim) == version
        assert _fsn(csms)[n1:] == [], _fsn(csms)
    return "%s at %.2f: %s before the cut, then %s, running %s" % (
        phase, frac, before, told, version)


@pytest.mark.parametrize("phase,frac", [("download", 0.5), ("install", 0.3)])
def test_a_kill_during_an_update_boots_a_working_firmware_and_tells_once(
        key, served, tmp_path, phase, frac):  # noqa: F811
    print("\n" + _one(key, served, tmp_path, phase, frac))


@pytest.mark.skipif(RUNS == 0, reason="make fuzz (WB_OTA_KILL_RUNS=N)")
def test_kills_at_random_moments(key, served, tmp_path):  # noqa: F811
    rnd = random.Random(SEED)
    print("\nWB_OTA_KILL_SEED=%d" % SEED)
    for k in range(RUNS):
        phase = rnd.choice(("download", "install"))
        frac = rnd.random()
        os.mkdir(tmp_path / ("run%d" % k))
        print(_one(key, served, tmp_path / ("run%d" % k), phase, frac), flush=True)
