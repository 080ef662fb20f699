"""An update asked for while charging on a board with a flash gate (STM32, ESP32: a flash
write blinds the safety path while the contactor is closed; sim_clock.json "flash_gate"): the
download writes nothing while the contactor is closed and goes on once the session ended."""
import json
import os

import pytest

import ocpprig as o
import ota_http
from ocpprig import CsmsThread
from test_ota_slots import _release, key  # noqa: F401  (the fixture)
from test_ota_update import _device, _fsn, tool

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_no_download_byte_is_written_while_the_contactor_is_closed(key, tmp_path):  # noqa: F811
    d = _device(tmp_path, key)
    with open(os.path.join(d, "sim_clock.json"), "w") as f:
        json.dump({"flash_gate": True}, f)
    srv = ota_http.Server(tool.make_bundle(key, _release(tmp_path, "0.9.0"), "0.9.0", "sim"))
    with CsmsThread() as csms:
        try:
            sim = o.start_sim(csms, state_dir=d).start()
            try:
                o.booted(csms)
                o.charging(sim, csms)
                assert o.call(csms, "UpdateFirmware", {
                    "location": srv.url + "/b", "retrieveDate": "2020-01-01T00:00:00Z"}) == {}
                csms.wait_for(lambda: "Downloading" in _fsn(csms), 20)
                o.simrig.device_sleep(sim, 3000)  # on the device's clock: still charging
                written = [n for n in os.listdir(d) if n.startswith("ota_download")]
                assert written == [], written
                paused = o.wait_log(sim, "download paused", 5)
                assert "Downloaded" not in _fsn(csms)
                assert sim.state()["status"] == "Charging"
                n = len(sim.obs)
                sim.do("card", uid="CARD1")  # the driver stops: the contactor opens
                opened = sim.wait_for(lambda x: x.get("k") == "contactor" and not x["cmd"], 10,
                                      since=n)
                resumed = o.wait_log(sim, "download goes on", 20, since=n)
                sim.wait_for({"k": "end"}, 60)  # installed after the session: the trial restart
            finally:
                sim.stop()
            assert paused["t"] < opened["t"] <= resumed["t"]
            assert _fsn(csms) == ["Downloading", "Downloaded", "Installing"], _fsn(csms)
            o.no_violations(csms)
        finally:
            srv.close()
