"""tools/bench_limits.py (`make bench`) keeps running: every law on a short piece of each
simulated day (a quarter of an hour where something happens), the target lines, the command
line, and the decision's time and heap on the MicroPython unix port."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import bench_limits  # noqa: E402
import limits_days  # noqa: E402
import limits_laws  # noqa: E402

LAWS = (limits_laws.Ours,) + limits_laws.ANCHORS + (limits_laws.OursAtSmartEvseThresholds,
                                                     limits_laws.OursPhaseSwitch)


def run_all(make, hour, n=900):
    day = make(int(hour * 3600), n)
    return day, {law.name: limits_days.run(day, law(day)) for law in LAWS}


def test_a_winter_evening_quarter_hour_overloads_the_fuse_only_where_a_law_is_slow():
    day, rows = run_all(limits_days.winter_evening, 21)  # heat pump, kettles
    assert rows["ours"]["overload_s"] == 0 and rows["ours"]["ev_kwh"] > 1, rows["ours"]
    assert rows["evcc"]["overload_s"] > 0  # a 30 s control interval rides through spikes
    assert rows["ours 1p/3p"]["overload_s"] == 0
    line = bench_limits.fmt_row("ours", rows["ours"], day.mode)
    assert line.startswith("  ours        fuse overload     0 s beyond the reaction time, EV")


def test_the_pv_days_and_the_dip_give_every_figure_and_the_target_lines():
    out = {}
    for make, hour in ((limits_days.sunny, 12), (limits_days.clouds, 12),
                       (limits_days.frequency_dip, 11.95)):
        day, rows = run_all(make, hour)
        out[day.name] = rows
        for name, r in rows.items():
            assert 0 <= r["pv_share"] <= 1 and r["import_kwh"] >= 0 and r["starts"] >= 0, r
    assert out["sunny day"]["ours"]["pv_share"] > 0.9  # at noon the surplus is all used
    dip = out["frequency dip"]
    assert dip["ours"]["dip_a"] < dip["evcc"]["dip_a"]  # ours lowers the current in the dip
    lines = bench_limits.targets(out)
    assert lines[0].startswith("target fuse overload beyond the reaction time = 0 s: met")
    assert len(lines) == 8 and all(" starts" in x for x in lines[1:7]), lines


def test_the_command_line_runs_a_short_day():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_limits.py"),
                        "--from", "12", "--hours", "0.05", "--no-device"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("sunny day", "fast clouds", "winter evening", "frequency dip"):
        assert name + " (" in r.stdout, r.stdout
    assert r.stdout.count("  evcc ") == 4 and "target fuse overload" in r.stdout, r.stdout
    assert r.stdout.count("  ours 1p/3p ") == 4, r.stdout


def test_a_decision_on_the_unix_port_allocates_nothing(capsys):
    import simlib

    exe = simlib.micropython_exe()
    if not os.path.exists(exe):
        pytest.skip("no micropython unix port (make setup)")
    us, alloc, failed = bench_limits.device(exe, "64-bit unix port")
    assert alloc == 0 and failed == 0 and us > 0
    assert "heap 0 bytes per decision" in capsys.readouterr().out
