"""tools/sim.py --http PORT: the simulated wallbox serves the web page and JSON API on
127.0.0.1:PORT and runs on after its scenario until Ctrl-C; a bad port is refused first."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
import simrig  # noqa: F401 - puts tools/ on sys.path
import simlib  # noqa: E402

ROOT = simlib.ROOT
SIM_PY = os.path.join(ROOT, "tools", "sim.py")


def test_a_bad_port_is_refused_before_the_firmware_starts():
    for bad in ("0", "70000", "http", "-1"):
        r = subprocess.run([sys.executable, SIM_PY, "--scenario", os.path.join(
            ROOT, "scenarios", "default.json"), "--http", bad], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2 and "is not a TCP port (1..65535)" in r.stderr, r.stderr
        assert "firmware up" not in r.stdout


@pytest.mark.sim
def test_the_page_is_served_during_and_after_the_scenario_until_ctrl_c():
    port = simlib._free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"config": {"rating_a": 32, "max_current_a": 16},
                   "steps": [{"do": "plug"}, {"wait": {"k": "state", "status": "Charging"},
                                               "timeout_ms": 10000}]}, f)
    p = subprocess.Popen([sys.executable, SIM_PY, "--scenario", f.name, "--no-csms", "--http",
                          str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        out = []
        for line in p.stdout:
            out.append(line)
            if line.startswith("scenario done; the wallbox runs on"):
                break
        assert "web: http://127.0.0.1:%d/\n" % port in out, out
        time.sleep(0.3)
        with urllib.request.urlopen("http://127.0.0.1:%d/api/session" % port, timeout=5) as r:
            assert json.loads(r.read())["setup"] is True
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
            assert b"<title>Wallbox</title>" in r.read()
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 130
    finally:
        if p.poll() is None:
            p.kill()
        os.unlink(f.name)
