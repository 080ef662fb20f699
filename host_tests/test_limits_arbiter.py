"""The limit arbiter (firmware/limits/arbiter.py, dynamics.py), pure logic on CPython: the offer
is never above any limit in force, a decrease acts in the same decision, an increase comes at
most once per 5 s, pause/resume cycles stay bounded under noisy input, a stale or bad input
makes its fallback bind, the §14a floor never lifts the offer over a lower safety limit; and
the `limits` section's bad values are refused by name and never raise the offer."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.limits import conf, rules
from firmware.limits.arbiter import (DSO, FUSE, NONE, OCPP, PV, THERMAL, Arbiter,
                                     LimitsError)
from firmware.limits.dynamics import MIN_DA

HOUSE = st.integers(0, 400)  # the house's own load per phase, dA


def arbiter(phases=3, rating=32, **sec):
    s = conf.check(sec)
    assert "errors" not in s, s.get("errors")
    return Arbiter(s, rating, rating, phases)


def hard_limit(a):
    """The lowest effective non-PV limit of the last decision (dA), or None."""
    vals = [v for k, v in enumerate(a.eff) if k != PV and v != NONE]
    return min(vals) if vals else None


def grid(a, at, house, ev_da, grid_w=None, ev_w=None, hz=5000):
    g = [h + ev_da for h in house]
    if ev_w is None:
        ev_w = 3 * ev_da * 23
    if grid_w is None:
        grid_w = sum(g) * 23
    a.grid(at, g[0], g[1], g[2], ev_da, ev_da, ev_da, grid_w, ev_w, hz, 230)


# -- properties ---------------------------------------------------------------------------------
STEP = st.tuples(st.integers(100, 7000),  # ms to the next decision
                 st.lists(HOUSE, min_size=3, max_size=3),
                 st.one_of(st.none(), st.integers(0, 400)),  # an OCPP limit, dA
                 st.one_of(st.none(), st.integers(0, 400)),  # thermal, dA
                 st.booleans())  # the grid meter answered


@given(st.lists(STEP, min_size=1, max_size=80), st.sampled_from(["fast", "minpv"]))
def test_never_above_any_input_decreases_at_once_increases_once_per_5s(steps, mode):
    a = arbiter(main_fuse_a=63, total_a=150, mode=mode)
    now = 1000
    prev = 0
    rises = []
    for dt, house, ocpp, thermal, answered in steps:
        now += dt
        a.put(OCPP, ocpp, now)
        a.put(THERMAL, thermal, now)
        if answered:
            grid(a, now, house, prev)
        da = a.decide(now)
        lim = hard_limit(a)
        assert da <= lim, (da, list(a.eff))
        if mode == "minpv":
            assert da <= max(MIN_DA, a.eff[PV])
        assert da == 0 or da >= MIN_DA  # below 6 A: paused, never a PWM under 6 A
        if lim < prev:  # a decrease: in this very decision
            assert da <= lim
        if da > prev:
            rises.append(now)
        prev = da
    for t0, t1 in zip(rises, rises[1:]):
        assert t1 - t0 >= 5000, rises


def test_a_rise_waits_5_s_after_the_last_change_and_a_fall_is_at_once():
    a = arbiter()
    a.put(OCPP, 200, 0)
    assert a.decide(0) == 200
    a.put(OCPP, 100, 1000)
    assert a.decide(1000) == 100  # at once
    a.put(OCPP, 300, 2000)
    assert a.decide(2000) == 100 and a.decide(5999) == 100  # held: 5 s after the fall
    assert a.decide(6000) == 300
    a.put(OCPP, 80, 6100)
    assert a.decide(6100) == 80


def test_the_fuse_headroom_adds_the_evs_own_current_back_and_ramps_toward_it():
    """25 A fuse, house 2 A per phase, the EV drawing 16 A: the grid meter reads 18 A, the
    headroom is 23 A (not 7 A); the offer ramps toward it, half the gap per 5 s."""
    a = arbiter(main_fuse_a=25)
    grid(a, 0, [20, 20, 20], 160)
    assert a.decide(0) == 230  # the first offer after boot: straight to it
    grid(a, 1000, [200, 200, 200], 160)  # the house jumps to 20 A: 5 A left
    assert a.decide(1000) == 0  # below 6 A: paused at once
    grid(a, 2000, [20, 20, 20], 0)
    assert a.decide(2000) == 0 and a.eff[FUSE] == 230  # the minimum pause (60 s)
    grid(a, 61000, [20, 20, 20], 0)
    assert a.decide(61000) == 145  # resume: 6 A + half of the gap to 23 A
    grid(a, 66000, [20, 20, 20], 145)
    assert a.decide(66000) == 187


@given(st.lists(st.integers(-60, 60), min_size=50, max_size=400), st.integers(1000, 3000))
def test_pause_resume_cycles_stay_bounded_under_noisy_headroom(noise, dt):
    """House load wobbling so the fuse headroom crosses 6 A again and again: each resume waits
    the minimum pause (60 s), so there are at most duration / 60 s + 1 cycles."""
    a = arbiter(main_fuse_a=25)
    now = 0
    da = 0
    for n in noise:
        now += dt
        grid(a, now, [250 - 60 + n] * 3, da)  # headroom 6 A +- 6 A
        da = a.decide(now)
    assert a.dyn.pauses <= now // 60000 + 1, (a.dyn.pauses, now)


@given(st.lists(st.integers(0, 9000), min_size=50, max_size=400), st.integers(1000, 5000))
def test_pv_mode_does_not_flap_under_fast_clouds(pv_w, dt):
    """A surplus jumping anywhere between 0 and 9 kW each few seconds: a start needs 60 s of
    surplus and a stop 180 s without (after the 120 s minimum charge), so a cycle lasts at
    least 240 s."""
    a = arbiter(mode="pv")
    now = 0
    da = 0
    for w in pv_w:
        now += dt
        ev_w = 3 * da * 23
        grid(a, now, [0, 0, 0], da, grid_w=ev_w - w, ev_w=ev_w)
        da = a.decide(now)
    assert a.dyn.pauses <= now // 240000 + 1, (a.dyn.pauses, now)


def test_pv_starts_after_the_enable_delay_and_stops_after_the_disable_delay():
    a = arbiter(mode="pv")
    now = 0
    da = 0
    seen = []
    for t in range(0, 900):  # 1 s steps: 300 s of 6 kW surplus, then none
        now = t * 1000
        w = 6000 if t < 300 else 0
        ev_w = 3 * da * 23
        grid(a, now, [0, 0, 0], da, grid_w=ev_w - w, ev_w=ev_w)
        da = a.decide(now)
        seen.append(da)
    start = next(t for t, x in enumerate(seen) if x)
    stop = next(t for t, x in enumerate(seen) if t > start and not x)
    assert 60 <= start <= 62  # evcc: 1 min of surplus
    assert 300 + 180 <= stop <= 300 + 182  # evcc: 3 min without
    assert max(seen) <= rules.w_to_da(6000, 3)


def test_pv_restarts_on_a_surplus_between_the_start_threshold_and_6_a_plus_the_hysteresis():
    """The PV start rule (pv_start_w held pv_start_s) is the PV mode's hysteresis: after a
    PV stop, a surplus of 4.7 kW (above the 4.14 kW start threshold, below 7 A x 3 phases)
    starts the charge again. It stayed paused while the resume also waited for 6 A + the
    pause hysteresis (resume_hyst_a), found by tools/bench_limits.py's sunny day."""
    a = arbiter(mode="pv")
    da = 0
    seen = []
    for t in range(0, 1200):  # 300 s of 6 kW, 300 s of none, then 4.7 kW
        now = t * 1000
        w = 6000 if t < 300 else 0 if t < 600 else 4700
        ev_w = 3 * da * 23
        grid(a, now, [0, 0, 0], da, grid_w=ev_w - w, ev_w=ev_w)
        da = a.decide(now)
        seen.append(da)
    assert seen[550] == 0  # stopped after the disable delay
    restart = next((t for t, x in enumerate(seen) if t > 600 and x), None)
    assert restart is not None and 660 <= restart <= 662, restart  # 60 s of surplus
    assert seen[-1] == 4700 * 10 // (3 * 230)  # the surplus, 6.8 A


def test_a_switch_to_pv_while_charging_follows_the_surplus_without_a_pause():
    """The owner switches fast -> pv while the EV charges at 32 A on a 9.2 kW surplus: the
    offer goes down to the surplus (13.3 A) in the same decision and the charge goes on (it
    paused until the start delay, 60 s, had passed: the contactor opened and closed again
    in full sun); when the sun sets it stops after pv's stop delay, as a pv charge does."""
    sec = {"mode": "fast"}
    a = arbiter(**sec)
    da = 0
    seen = []
    for t in range(0, 420):  # 1 s steps: fast for 20 s, then pv; the sun sets at 200 s
        now = t * 1000
        if t == 20:
            a.configure(conf.check(dict(sec, mode="pv")), now)
        w = 9200 if t < 200 else 0
        ev_w = 3 * da * 23
        grid(a, now, [0, 0, 0], da, grid_w=ev_w - w, ev_w=ev_w)
        da = a.decide(now)
        seen.append(da)
    assert seen[19] == 320
    assert seen[20] == 9200 * 10 // (3 * 230)  # 13.3 A at once, no pause
    assert min(seen[20:200]) >= MIN_DA
    stop = next(t for t, x in enumerate(seen) if t > 200 and not x)
    assert 200 + 180 <= stop <= 200 + 182, stop


def test_a_switch_to_pv_while_charging_without_surplus_stops_at_once():
    sec = {"mode": "fast"}
    a = arbiter(**sec)
    da = 0
    for t in range(0, 30):
        now = t * 1000
        if t == 20:
            a.configure(conf.check(dict(sec, mode="pv")), now)
        ev_w = 3 * da * 23
        grid(a, now, [0, 0, 0], da, grid_w=ev_w - 2000, ev_w=ev_w)  # 2 kW: under 6 A
        da = a.decide(now)
        assert da == (320 if t < 20 else 0), (t, da)


def test_a_switch_to_pv_while_paused_waits_for_the_start_delay():
    sec = {"mode": "fast", "enable": False}
    a = arbiter(**sec)
    da = 0
    seen = []
    for t in range(0, 120):
        now = t * 1000
        if t == 10:
            a.configure(conf.check(dict(sec, mode="pv", enable=True)), now)
        ev_w = 3 * da * 23
        grid(a, now, [0, 0, 0], da, grid_w=ev_w - 9200, ev_w=ev_w)
        da = a.decide(now)
        seen.append(da)
    start = next(t for t, x in enumerate(seen) if x)
    assert 10 + 60 <= start <= 10 + 62, start


@given(st.integers(0, 400), st.integers(0, 60000))
def test_a_stale_grid_meter_counts_as_overload_and_the_safe_current_binds(house, silent_ms):
    a = arbiter(main_fuse_a=63, safe_a=6)
    grid(a, 0, [house] * 3, 0)
    a.decide(0)
    now = silent_ms
    da = a.decide(now)
    if silent_ms > 5000:
        assert a.stale(FUSE, now) and a.eff[FUSE] == 60 and da <= 60
    else:
        assert a.eff[FUSE] == max(0, 630 - house)


def test_a_grid_meter_never_heard_is_not_zero_but_the_fallback():
    a = arbiter(main_fuse_a=40, safe_a=10)
    assert a.decide(0) == 100 and a.bound == FUSE  # not 0 A, not the rating
    b = arbiter()  # no fuse configured: the grid meter is not needed
    assert b.decide(0) == 320


@given(st.one_of(st.none(), st.integers(0, 30000)), st.integers(0, 400), st.sampled_from([1, 3]))
def test_the_dso_floor_never_breaks_a_lower_safety_limit(limit_w, house, phases):
    a = arbiter(phases=phases, main_fuse_a=20, dso_timeout_s=60)
    a.dso(True, limit_w, 0)
    grid(a, 0, [house] * 3, 0)
    da = a.decide(0)
    floor = rules.dso_floor_da(phases)
    assert a.eff[DSO] >= floor  # 4.2 kW stays available under dimming
    assert da <= a.eff[FUSE]  # ... but never past the fuse
    assert phases * 230 * floor // 10 >= 4200


def test_a_lost_dso_signal_falls_back_to_the_floor():
    a = arbiter(dso_timeout_s=60)
    a.dso(False, None, 0)
    assert a.decide(1000) == 320
    assert a.decide(61001) == rules.dso_floor_da(3) and a.bound == DSO


def test_frequency_dip_lowers_and_the_restore_waits_for_the_randomised_delay():
    a = arbiter(freq_response=True, preset="uk", random_delay_s=600)
    grid(a, 0, [0] * 3, 0)
    assert a.decide(0) == 320
    grid(a, 1000, [0] * 3, 320, hz=4940)
    assert a.decide(1000) == 0
    for t in (7000, 60000):
        grid(a, t, [0] * 3, 0)
        assert a.decide(t, rnd=32768) == 0  # half of 600 s
    grid(a, 308000, [0] * 3, 0)
    assert a.decide(308000, rnd=32768) == 320


def test_uk_off_peak_schedule_and_random_delay_at_plug_in():
    a = arbiter(preset="uk")
    wed_9 = 2 * 86400 + 9 * 3600
    assert a.decide(0, week_s=wed_9) == 0 and a.state == 2
    sat_9 = 5 * 86400 + 9 * 3600
    a.dyn.session(1000, 65535)  # an EV plugged in: up to 600 s
    assert a.decide(2000, week_s=sat_9) == 0
    assert a.decide(601000, week_s=sat_9) == 320
    b = arbiter(preset="uk", delay_override=True)
    b.dyn.session(0, 65535)
    assert b.decide(10, week_s=sat_9) == 320
    c = arbiter()  # not the UK: neither rule
    c.dyn.session(0, 65535)
    assert c.decide(10, week_s=wed_9) == 320
    assert rules.week_seconds(0, 0) == 3 * 86400  # 1970-01-01 was a Thursday


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), -1, "10", 1e9, math.inf])
def test_a_bad_limit_is_refused_by_name_and_its_fallback_binds(bad):
    a = arbiter()
    with pytest.raises(LimitsError, match="ocpp"):
        a.put(OCPP, bad, 0)
    assert a.decide(0) == 0 and a.bound == OCPP


@pytest.mark.parametrize("reading", [
    dict(g=(250, 99999, 0)),  # a current out of physical range
    dict(ev_w=-500),  # negative EV (PV) power
    dict(volts=20),
])
def test_a_reading_out_of_range_is_refused_and_the_safe_current_binds(reading):
    a = arbiter(main_fuse_a=63, safe_a=8)
    g = reading.get("g", (0, 0, 0))
    with pytest.raises(LimitsError, match="out of range"):
        a.grid(0, g[0], g[1], g[2], 0, 0, 0, 0, reading.get("ev_w", 0), 5000,
               reading.get("volts", 230))
    assert a.decide(0) == 80


@pytest.mark.parametrize("sec,word", [
    ({"pv_start_w": 1000, "pv_stop_w": 2000}, "pv_stop_w=2000 is above pv_start_w=1000"),
    ({"main_fuse_a": "63"}, "main_fuse_a='63'"),
    ({"main_fuse_a": 2}, "main_fuse_a=2"),
    ({"mode": "eco"}, "mode='eco'"),
    ({"random_delay_s": 1801}, "random_delay_s=1801"),
    ({"mian_fuse_a": 40}, "mian_fuse_a"),
    ({"freq_start_chz": 4950, "freq_stop_chz": 4980}, "freq_stop_chz=4980"),
    ({"main_fuse_a": 80, "total_a": 63}, "main_fuse_a=80 is above total_a=63"),
])
def test_a_bad_section_names_the_key_and_caps_the_offer_at_the_safe_current(sec, word):
    s = conf.check(sec)
    assert any(word in m for m in s["errors"]), s["errors"]
    a = Arbiter(s, 32, 32, 3)
    assert a.decide(0) == 60 and a.eff[11] == 60  # CONFIG binds: never the rating


def test_no_section_is_no_change():
    s = conf.check(None)
    assert "errors" not in s and s["mode"] == "fast" and s["random_delay_s"] == 0
    a = Arbiter(s, 32, 16, 3)
    assert a.decide(0) == 160


def test_make_deploy_refuses_a_bad_limits_section(tmp_path):
    import json
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
    import deploy_plan

    p = tmp_path / "c.json"
    p.write_text(json.dumps({"rating_a": 32, "limits": {"mode": "eco"}}))
    with pytest.raises(deploy_plan.DeployError, match="limits: mode='eco' refused"):
        deploy_plan.config_text(str(p))
    p.write_text(json.dumps({"rating_a": 32, "limits": {"main_fuse_a": 25, "mode": "pv"}}))
    assert b'"main_fuse_a": 25' in deploy_plan.config_text(str(p))
