"""tools/fleet.py: the rules it judges a fleet by (missed heartbeats from arrival times,
safety-loop overruns from a box's observations), its command line, and a short run of two
simulated wallboxes against the dev CSMS."""
import os
import re

import pytest

from simrig import ROOT_TOOLS

import fleet

ROOT = os.path.dirname(ROOT_TOOLS)


def beats(first, step, n):
    return [first + k * step for k in range(n)]


# -- missed heartbeats: the gap rule -----------------------------------------------------------
def test_regular_heartbeats_miss_none():
    assert fleet.missed_heartbeats(0.0, beats(10, 10, 6), 60.0, 10) == 0
    # the firmware polls once a second: every gap up to ~1 s long is still on time
    assert fleet.missed_heartbeats(0.0, beats(10.9, 10.9, 5), 60.0, 10) == 0


def test_one_heartbeat_lost_in_the_middle():
    hb = [10.0, 20.0, 40.0, 50.0]  # the one at 30 never came: a 20 s gap
    assert fleet.missed_heartbeats(0.0, hb, 55.0, 10) == 1


def test_gap_limit_is_one_and_a_half_intervals_plus_slack():
    limit = fleet.heartbeat_limit(10)
    assert limit == 1.5 * 10 + fleet.SLACK_S
    assert fleet.missed_heartbeats(0.0, [limit], limit + 5, 10) == 0
    assert fleet.missed_heartbeats(0.0, [limit + 0.01], limit + 5, 10) == 1


def test_each_further_interval_of_a_gap_is_one_more_miss():
    limit = fleet.heartbeat_limit(10)
    assert fleet.missed_heartbeats(0.0, [limit + 9.9], 40.0, 10) == 1
    assert fleet.missed_heartbeats(0.0, [limit + 10], 40.0, 10) == 2
    assert fleet.missed_heartbeats(0.0, [limit + 25], 50.0, 10) == 3


def test_a_box_silent_at_the_end_misses_heartbeats():
    # beats until 20 s, then nothing until the end at 60 s: 30, 40, 50 missed
    assert fleet.missed_heartbeats(0.0, [10.0, 20.0], 60.0, 10) == 3
    assert fleet.missed_heartbeats(0.0, [], 60.0, 10) == 5


def test_beats_outside_the_window_and_order_do_not_matter():
    hb = [30.0, -5.0, 10.0, 20.0, 70.0]  # one before the boot, one after the end
    assert fleet.missed_heartbeats(0.0, hb, 35.0, 10) == 0
    assert fleet.longest_gap(0.0, hb, 35.0) == 10.0
    assert fleet.missed_heartbeats(0.0, [70.0], 35.0, 10) == 2


def test_expected_heartbeats_and_a_bad_interval():
    assert fleet.expected_heartbeats(0.0, 60.0, 10) == 5  # at most 11 s apart
    assert fleet.expected_heartbeats(0.0, 65.9, 10) == 5
    assert fleet.expected_heartbeats(0.0, 66.0, 10) == 6
    assert fleet.expected_heartbeats(5.0, 3.0, 10) == 0
    with pytest.raises(fleet.FleetError, match="interval"):
        fleet.missed_heartbeats(0.0, [], 10.0, 0)


# -- overruns ----------------------------------------------------------------------------------
def _trip(val):
    return {"k": "event", "code": "trip", "val": val}


def test_overruns_count_silent_controller_trips_resets_and_restarts():
    quiet = {"lag_max": 12, "restarts": {"charge": 0, "ocpp": 3}}
    assert fleet.overruns([_trip(1), _trip(2), {"k": "state"}], quiet) == 0  # pilot, rcm
    assert fleet.overruns([_trip(fleet.TRIP_BEAT)], quiet) == 1
    assert fleet.overruns([_trip(fleet.TRIP_FAIL_SAFE), {"k": "watchdog"}], quiet) == 2
    assert fleet.overruns([], {"lag_max": 0, "restarts": {"charge": 2}}) == 2


def test_a_loop_lag_at_the_reflex_limit_is_one_overrun():
    assert fleet.overruns([], {"lag_max": fleet.BEAT_MS - 1}) == 0
    assert fleet.overruns([], {"lag_max": fleet.BEAT_MS}) == 1
    assert fleet.overruns([_trip(fleet.TRIP_BEAT)], {"lag_max": 4000}) == 1  # told once
    assert fleet.overruns([], None) == 0  # a box without stats fails as an error instead


def test_limits_match_the_firmware():
    with open(os.path.join(ROOT, "drivers", "reflex.py")) as f:
        beat = re.search(r"^BEAT_MS = const\((\d+)\)", f.read(), re.M)
    with open(os.path.join(ROOT, "firmware", "charge", "session.py")) as f:
        text = f.read()
    assert int(beat.group(1)) == fleet.BEAT_MS
    assert re.search(r"^TRIP_BEAT = const\(%d\)" % fleet.TRIP_BEAT, text, re.M)
    assert re.search(r"^TRIP_FAIL_SAFE = const\(%d\)" % fleet.TRIP_FAIL_SAFE, text, re.M)


# -- command line ------------------------------------------------------------------------------
def test_find_sizes():
    assert fleet.find_sizes(32) == [1, 2, 4, 8, 12, 16, 24, 32]
    assert fleet.find_sizes(10) == [1, 2, 4, 8, 10]
    assert fleet.find_sizes(1) == [1]


def _fake_run(limit, tried):
    def run(n, seconds, heartbeat, heapsize):
        tried.append(n)
        ok = n <= limit
        return {"n": n, "rows": [], "missed": 0 if ok else 2, "overruns": 0, "violations": 0,
                "c2b_max": 1.5, "c2b_n": 0, "errors": [], "passed": ok}
    return run


def test_find_grows_n_then_narrows_the_last_step(monkeypatch, capsys):
    tried = []
    monkeypatch.setattr(fleet, "run", _fake_run(21, tried))
    assert fleet.main(["--find", "--max", "32"]) == 0
    assert tried == [1, 2, 4, 8, 12, 16, 24, 20, 22]
    out = capsys.readouterr().out
    assert "fleet N=24: FAIL (missed heartbeats 2, overruns 0, C->B max 1.5 ms, violations 0)" \
        in out
    assert out.rstrip().endswith("fleet: largest N with no missed heartbeat and no overrun: 20")


def test_find_stops_at_max_and_says_so(monkeypatch, capsys):
    tried = []
    monkeypatch.setattr(fleet, "run", _fake_run(100, tried))
    fleet.main(["--find", "--max", "12"])
    assert tried == [1, 2, 4, 8, 12]
    assert capsys.readouterr().out.rstrip().endswith(": 12 (the --max tried)")


def test_find_when_even_one_box_fails(monkeypatch, capsys):
    monkeypatch.setattr(fleet, "run", _fake_run(0, []))
    assert fleet.main(["--find"]) == 1
    assert capsys.readouterr().out.rstrip().endswith("no overrun: 0")


@pytest.mark.parametrize("argv, says", [
    ([], "give N or --find"),
    (["3", "--find"], "give N or --find"),
    (["0"], "N must be 1..200"),
    (["2", "--heartbeat", "0"], "--heartbeat must be >= 1"),
    (["2", "--seconds", "20", "--heartbeat", "10"], "too short"),
    (["--find", "--max", "0"], "--max must be"),
])
def test_bad_arguments_are_named(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        fleet.main(argv)
    assert e.value.code == 2
    assert says in capsys.readouterr().err


# -- a short run -------------------------------------------------------------------------------
@pytest.mark.sim
@pytest.mark.slow
def test_two_wallboxes_for_fifteen_seconds_pass():
    res = fleet.run(2, seconds=15, heartbeat=5)
    lines = "\n".join(fleet.box_lines(res))
    assert res["errors"] == [], lines
    assert res["missed"] == 0 and res["violations"] == 0, lines
    assert res["overruns"] == 0, lines
    assert res["passed"] and fleet.verdict(res).startswith("fleet N=2: pass ("), lines
    assert fleet.lag_line(res).startswith("  loop lag of the 2 boxes: p99 worst ")
    for r in res["rows"]:
        assert r["heartbeats"] >= 2, lines  # boot + ~16 s at 5 s: the CSMS heard them
        assert r["cycles"] >= 1 and r["c2b"], lines  # the EV charged and left C
