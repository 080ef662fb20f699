"""OCPP UpdateFirmware end to end on the simulator (firmware/ota/updater.py): the dev CSMS asks
for an update, the wallbox downloads the signed bundle from a local HTTP server, installs it,
restarts on trial, and the new firmware, once healthy, says Installed; a refused bundle says
InstallationFailed and nothing changes."""
import json
import os
import sys

import pytest

import ocpprig as o
import ota_http
from ocpprig import CsmsThread
from test_ota_slots import _release, _version, key  # noqa: F401  (the fixture)

from firmware.ota import slots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bundle as tool  # noqa: E402


@pytest.fixture
def csms():
    with CsmsThread() as c:
        yield c
        o.no_violations(c)


def _fsn(csms):
    return [p["status"] for _, a, p in list(csms.notifications)
            if a == "FirmwareStatusNotification"]


def _device(tmp_path, key):  # noqa: F811
    d = str(tmp_path / "dev")
    os.mkdir(d)
    with open(os.path.join(d, "ota_keys.json"), "w") as f:
        json.dump({"keys": [tool.public_json(key)]}, f)
    return d


def test_update_firmware_from_the_csms(csms, key, tmp_path):  # noqa: F811
    d = _device(tmp_path, key)
    srv = ota_http.Server(tool.make_bundle(key, _release(tmp_path, "0.9.0"), "0.9.0", "sim"))
    try:
        sim = o.start_sim(csms, state_dir=d).start()
        try:
            o.booted(csms)
            assert o.call(csms, "UpdateFirmware", {
                "location": srv.url + "/b", "retrieveDate": "2020-01-01T00:00:00Z"}) == {}
            sim.wait_for({"k": "end"}, 60)  # the restart on trial
        finally:
            sim.stop()
        assert _fsn(csms) == ["Downloading", "Downloaded", "Installing"], _fsn(csms)
        with o.start_sim(csms, state_dir=d) as sim:
            csms.wait_for(lambda: "Installed" in _fsn(csms), 40)
            assert _version(sim) == "0.9.0"
            assert csms.boots[-1][1]["firmwareVersion"] == "0.9.0"
        assert _fsn(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
        # the security event of the whitepaper's list that says so (firmware/secext)
        assert [p["techInfo"] for _, a, p in list(csms.notifications)
                if a == "SecurityEventNotification" and p["type"] == "FirmwareUpdated"] == [
            "version 0.9.0"]
        assert not os.path.exists(os.path.join(d, "ota_download.wbota"))
        with open(os.path.join(d, slots.BOOT_FILE)) as f:
            assert json.load(f)["active"] == "a"
    finally:
        srv.close()


def test_a_refused_bundle_says_installation_failed(csms, key, tmp_path):  # noqa: F811
    d = _device(tmp_path, key)
    srv = ota_http.Server(tool.make_bundle(key, _release(tmp_path, "0.7.0"), "0.7.0", "sim"))
    try:
        with o.start_sim(csms, state_dir=d) as sim:
            o.booted(csms)
            assert o.call(csms, "UpdateFirmware", {
                "location": srv.url + "/b", "retrieveDate": "2020-01-01T00:00:00Z"}) == {}
            csms.wait_for(lambda: "InstallationFailed" in _fsn(csms), 30)
            assert _fsn(csms) == ["Downloading", "Downloaded", "Installing",
                                  "InstallationFailed"]
            o.wait_log(sim, "ota: bundle refused: version 0.7.0 is older than the running 0.8.0")
            assert _version(sim) == "0.8.0"
            assert o.call(csms, "UpdateFirmware", {
                "location": "ftp://x/f", "retrieveDate": "2020-01-01T00:00:00Z"}) == {}
            csms.wait_for(lambda: "DownloadFailed" in _fsn(csms), 10)
        assert not os.path.exists(os.path.join(d, slots.BOOT_FILE))
    finally:
        srv.close()


def test_a_rolled_back_update_is_reported_by_the_old_firmware(csms, key, tmp_path):  # noqa
    """The new firmware crashes at boot: the next boot is the old one, which tells the CSMS
    InstallationFailed once its BootNotification is accepted (and only once)."""
    d = _device(tmp_path, key)
    srv = ota_http.Server(tool.make_bundle(key, _release(tmp_path, "0.9.1", crash=True),
                                           "0.9.1", "sim"))
    try:
        sim = o.start_sim(csms, state_dir=d).start()
        try:
            o.booted(csms)
            assert o.call(csms, "UpdateFirmware", {
                "location": srv.url + "/b", "retrieveDate": "2020-01-01T00:00:00Z"}) == {}
            sim.wait_for({"k": "end"}, 60)
        finally:
            sim.stop()
        with pytest.raises(RuntimeError, match="the new firmware crashes"):
            o.start_sim(csms, state_dir=d).start(timeout=10)
        with o.start_sim(csms, state_dir=d) as sim:
            csms.wait_for(lambda: "InstallationFailed" in _fsn(csms), 30)
            assert _version(sim) == "0.8.0"
            o.wait_log(sim, "ota: update to 0.9.1 rolled back")
        with o.start_sim(csms, state_dir=d) as sim:  # said once
            o.booted(csms)
            o.wait_log(sim, "ocpp: boot accepted")
            o.simrig.device_sleep(sim, 2000)  # the status task polls every 500 ms
        assert _fsn(csms) == ["Downloading", "Downloaded", "Installing",
                              "InstallationFailed"], _fsn(csms)
        assert csms.boots[-1][1]["firmwareVersion"] == "0.8.0"
    finally:
        srv.close()


def test_an_update_during_a_transaction_installs_after_it_ends(csms, key, tmp_path):  # noqa
    """Downloaded while charging; nothing installed until the transaction ended."""
    d = _device(tmp_path, key)
    srv = ota_http.Server(tool.make_bundle(key, _release(tmp_path, "0.9.0"), "0.9.0", "sim"))
    try:
        sim = o.start_sim(csms, state_dir=d).start()
        try:
            o.booted(csms)
            o.charging(sim, csms)
            assert o.call(csms, "UpdateFirmware", {
                "location": srv.url + "/b", "retrieveDate": "2020-01-01T00:00:00Z"}) == {}
            csms.wait_for(lambda: "Downloaded" in _fsn(csms), 30)
            o.simrig.device_sleep(sim, 3000)  # on the device's clock: still charging
            assert _fsn(csms) == ["Downloading", "Downloaded"]
            assert o.statuses(csms)[-1] == "Charging" and sim.state()["status"] == "Charging"
            sim.do("card", uid="CARD1")  # the driver stops: then the update installs
            tx = o.wait_tx(csms, lambda t: t["stop"] is not None)
            sim.wait_for({"k": "end"}, 60)
        finally:
            sim.stop()
        assert tx["stop"]["reason"] == "Local"
        ins = [i for i, f in enumerate(csms.frames) if f["dir"] == "in"
               and o.frame_action(f) == "FirmwareStatusNotification"
               and json.loads(f["text"])[3]["status"] == "Installing"]
        stop = [i for i, f in enumerate(csms.frames) if f["dir"] == "in"
                and o.frame_action(f) == "StopTransaction"]
        assert ins and stop and stop[0] < ins[0]
        with open(os.path.join(d, slots.BOOT_FILE)) as f:
            assert json.load(f)["trial"]["version"] == "0.9.0"
    finally:
        srv.close()
