"""The simulator survives a download while its web server runs. The unix port's select.poll
moved its pollfd array and left the objects without a file descriptor (the firmware's
ThreadSafeFlags) with a wild pointer: the simulated wallbox died of SIGSEGV as soon as an
UpdateFirmware download started with the web server up (3 runs out of 3).
boards/sim/pollfix.py reserves the array before anything is polled."""
import pytest

import ocpprig as o
import ota_http
from ocpprig import CsmsThread
from test_ota_slots import _release, key  # noqa: F401  (the fixture)
from test_ota_update import _device, _fsn, tool

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_an_update_downloads_while_the_web_server_runs(key, tmp_path):  # noqa: F811
    with CsmsThread() as csms:
        d = _device(tmp_path, key)
        srv = ota_http.Server(tool.make_bundle(key, _release(tmp_path, "0.9.0"), "0.9.0", "sim"))
        try:
            web = {"host": "127.0.0.1", "port": o.simrig.simlib._free_port()}
            sim = o.start_sim(csms, state_dir=d, web=web).start()
            try:
                o.booted(csms)
                assert o.call(csms, "UpdateFirmware", {
                    "location": srv.url + "/b", "retrieveDate": "2020-01-01T00:00:00Z"}) == {}
                end = sim.wait_for({"k": "end"}, 60)  # the orderly restart on trial, no crash
            finally:
                sim.stop()
            assert sim.proc.returncode == 0, sim.output()[-2000:]
            assert end["reset"] is True
            assert _fsn(csms) == ["Downloading", "Downloaded", "Installing"], _fsn(csms)
            o.no_violations(csms)
        finally:
            srv.close()
