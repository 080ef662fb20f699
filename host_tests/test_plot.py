"""tools/plot.py: a recorded observation log of the simulated wallbox becomes a PNG; bad input
is refused with a message naming the file and line, and nothing is written."""
import json
import os
import re
import struct
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import plot  # noqa: E402

# The first 60 s of scenarios/fuse_evening.json on the simulator (tools/sim.py --events),
# the kinds plot.py draws: a 25 A main fuse, the house's load rising per phase.
RECORDED = os.path.join(ROOT, "host_tests", "plot_events.jsonl")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", head
    return struct.unpack(">II", head[16:24])


def test_a_recorded_log_becomes_a_png(tmp_path):
    out = tmp_path / "evening.png"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "plot.py"), RECORDED,
                        "-o", str(out), "--title", "fuse evening"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert png_size(out) == (720, 684)  # 10 x 9.5 in at 72 dpi
    assert os.path.getsize(out) < 150000


def test_what_the_panels_show_comes_from_the_log():
    s = plot.series(plot.load(RECORDED))
    names = [b[2] for b in s["bands"]]
    assert "main fuse" in names and "pause" in names, names
    # the offer never went above the station's 16 A, and the fuse's headroom is drawn
    assert max(y for y in s["offer"][1] if y is not None) == 16
    assert "main fuse" in s["inputs"]
    assert max(y for y in s["house0"][1] if y is not None) == 21.0  # the kettle on L1
    assert s["grid_meter"] and any(y for y in s["contacts"][1] if y is not None)
    for t0, t1, _, _ in s["bands"]:
        assert t0 <= t1


def write(tmp_path, lines):
    p = tmp_path / "events.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


STATE = json.dumps({"k": "state", "t": 1.0, "status": "Available", "offer_da": 0})


@pytest.mark.parametrize("lines, msg", [
    ([STATE, "{not json"], r"events.jsonl:2: not JSON"),
    ([STATE, "[1, 2]"], r"events.jsonl:2: not an observation"),
    ([json.dumps({"k": "state", "offer_da": 0})], r"events.jsonl:1: observation 'state' has no "
                                                  r"device time"),
    ([json.dumps({"k": "meter", "t": 1.0, "i_da": 0})], r"no state or limit observations"),
    ([], r"no state or limit observations"),
])
def test_bad_input_is_named_and_nothing_is_written(tmp_path, capsys, lines, msg):
    out = tmp_path / "out.png"
    assert plot.main([write(tmp_path, lines), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, named
    assert re.search(msg, err), err
    assert not out.exists()


def test_a_missing_log_or_output_folder_is_named(tmp_path, capsys):
    assert plot.main([str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "x.png")]) == 2
    assert "none.jsonl: cannot read" in capsys.readouterr().err
    assert plot.main([RECORDED, "-o", str(tmp_path / "no" / "x.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_phase_row_follows_the_phase_switch_when_the_board_has_one():
    obs = plot.load(RECORDED)
    s = plot.series(obs)
    assert {y for y in s["phases"][1] if y is not None} == {3}  # the loop's, no switch
    t = obs[len(obs) // 2]["t"]
    obs.append({"k": "phases", "t": t, "closed": False, "main": False, "i_da": 0})
    obs.sort(key=lambda o: o["t"])
    xs, ys = plot.series(obs)["phases"]
    assert ys[1:] == [1, 1] and xs[1] == t / 1000, (xs, ys)
