"""A local authorization list or cache file found bad at boot (a cut write, a flash fault) is
taken as empty, and the log says so: before, the reason was collected and never shown."""
import os

import pytest

import ocpprig as o
from ocpprig import CsmsThread

pytestmark = [pytest.mark.sim, pytest.mark.slow]


def test_a_bad_list_and_cache_file_are_named_in_the_log_at_boot(tmp_path):
    d = o.state_dir(tmp_path)
    with open(os.path.join(d, "ocpp_list.bin"), "wb") as f:
        f.write(b"not a list file at all")
    with open(os.path.join(d, "ocpp_cache.bin"), "wb") as f:
        f.write(b"WBAL")  # the header cut short
    with CsmsThread() as csms:
        with o.start_sim(csms, state_dir=d) as sim, o.report(sim, csms):
            o.booted(csms)
            lines = [m for m in o.logs(sim) if "treated as empty" in m]
            r = o.call(csms, "GetLocalListVersion", {})
        o.no_violations(csms)
    assert any(m.startswith("ocpp: ocpp_list.bin: bad header") for m in lines), lines
    assert any(m.startswith("ocpp: ocpp_cache.bin: bad header") for m in lines), lines
    assert r == {"listVersion": 0}
