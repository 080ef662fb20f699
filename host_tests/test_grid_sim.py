"""The grid model on the simulated wallbox (the real firmware on the unix port; docs/sim.md
"Grid model"): the house's load, PV, frequency and a silent grid meter reach the limit loop
through the emulated grid meter over Modbus, and the loop reacts as docs/limits.md says. Every
time asserted here is a difference of the device clock ("t") in the observation log."""
import contextlib

import pytest
import simrig

simlib = simrig.simlib

GRID = {"grid": {"type": "modbus", "profile": "sdm630", "addr": 2, "period_ms": 500},
        "bus": {"uart": 1, "baud": 9600}}
REACTION_MS = 2000  # docs/limits.md: a fuse overload is gone 2 s after the meter reading
LOOP_MS = 500  # the limit loop's period and the grid meter's poll period here
SLACK_MS = 1000  # a loaded machine's scheduling: only on the "not later than" side


@contextlib.contextmanager
def start(limits, grid=None):
    cfg = dict(simrig.BASE_CONFIG, meters=GRID, limits=limits)
    with simlib.Sim(cfg) as sim:
        if grid:
            sim.do("grid", **grid)
        sim.do("ev", max_current_a=32, reaction_ms=300)
        yield sim


def kind(k, **match):
    return lambda o: o.get("k") == k and all(o.get(f) == v for f, v in match.items())


def grid_reading(pred=lambda o: True):
    return lambda o: o.get("k") == "reading" and o.get("role") == "grid" and pred(o)


def after(sim, pred, since, timeout=10):
    """The first observation matching pred from index since, and the index after it."""
    o = sim.wait_for(pred, timeout, since=since)
    return o, sim.obs.index(o, since) + 1


def until_read(sim, since, timeout=5):
    """Index after the first grid meter reading that has seen everything before `since`."""
    return after(sim, grid_reading(), since, timeout)[1]


def offer_duty(sim, since, pred):
    """The first duty change (the PWM the EV sees) from since whose offer matches pred(A)."""
    return sim.wait_for(lambda o: o.get("k") == "duty" and pred(duty_a(o["v"])), 10,
                        since=since)


def duty_a(v):
    return v * 0.06 if 100 <= v <= 850 else 0  # IEC 61851-1: 10 % .. 85 % = 6 .. 51 A


def charging_steady(sim, amps):
    """Plug in once the grid meter was read, then wait until the offer is `amps`."""
    sim.wait_for(kind("inputs", stale=[]), 10)
    sim.do("plug", cable_a=32)
    sim.wait_for(lambda o: o.get("k") == "state" and o.get("status") == "Charging"
                 and o.get("offer_da") == amps * 10, 15)
    return sim.wait_for(lambda o: o.get("k") == "meter" and o["i_da"] >= amps * 10 - 1, 5)


def test_a_house_load_spike_is_answered_within_the_reaction_time():
    """A 25 A main fuse, 16 A to the EV: the house's load on L2 jumps to 15 A (31 A through
    the fuse). The offer is at most the 10 A left 2 s after the first meter reading that saw
    the overload, and once the EV followed (its reaction, 300 ms here) the grid meter reads
    no overload any more. The charge is not paused: 10 A are left (a grid reading that still
    held the EV's old 16 A beside the EV meter's new 10 A paused it on 4 A of apparent
    headroom; docs/limits.md "Grid and EV readings out of step")."""
    # safe_a 16: the offer before the first reading is already 16 A (with 6 A the loop's
    # first rise would wait the 5 s rule; the fallback is another test's)
    with start({"main_fuse_a": 25, "safe_a": 16}) as sim:
        charging_steady(sim, 16)
        n = len(sim.obs)
        sim.do("grid", load_a=[2, 15, 3])
        over, k = after(sim, grid_reading(lambda o: max(o["i3"]) > 250), n)
        fine, _ = after(sim, grid_reading(lambda o: max(o["i3"]) <= 250), k)
        duty = duty_at(sim, over["t"] + REACTION_MS)
        duty_at(sim, over["t"] + REACTION_MS + 3000)  # readings that agree again
        lim = [o for o in sim.obs[n:] if o.get("k") == "limit"]
        opens = [o for o in sim.obs[n:] if o.get("k") == "contactor" and not o["cmd"]]
    assert duty_a(duty["v"]) <= 10.1, (over, duty)
    assert not opens and all(o["a"] >= 6 for o in lim), (lim, opens)  # no pause
    assert fine["t"] - over["t"] <= REACTION_MS + 300 + LOOP_MS + SLACK_MS, (over, fine)
    assert lim[0]["a"] <= 10.1 and lim[0]["phases"] == 3 and lim[0]["bound"] == "main fuse", lim
    assert lim[0]["at"] - over["t"] <= REACTION_MS, lim


def duty_at(sim, t):
    """The duty in force at device time t (waits until the device clock passed it)."""
    sim.wait_for(lambda o: o.get("t", 0) > t, 10, since=len(sim.obs) - 1)
    return [o for o in sim.obs if o.get("k") == "duty" and o["t"] <= t][-1]


def test_a_pv_ramp_starts_and_stops_at_the_thresholds_without_flapping():
    """PV mode, start at 4.5 kW held 1 s, stop below 3 kW held 2 s, no house load: the PV
    rises through a plateau between the thresholds (no start), starts, rides fast clouds
    that dip below the stop threshold for less than the stop delay (no stop), then sets."""
    limits = {"mode": "pv", "pv_start_w": 4500, "pv_stop_w": 3000, "pv_start_s": 1,
              "pv_stop_s": 2, "min_charge_s": 1, "min_pause_s": 0}
    with start(limits, grid={"load_a": [0, 0, 0]}) as sim:
        sim.wait_for(kind("inputs", stale=[]), 10)
        sim.do("plug", cable_a=32)
        n0 = len(sim.obs)
        curve = [1000, 2500, 3500, 3500, 3500, 3500, 3500, 5000, 6000, 6000, 6000, 6000,
                 6000, 6000, 2000, 6000, 1500, 6000, 2500, 6000, 3500, 3500, 3500, 2000,
                 1000, 0]
        for w in curve:  # one value per 300 ms of device time
            sim.do("grid", pv_w=w)
            simrig.device_sleep(sim, 300)
        simrig.device_sleep(sim, 2000 + 1000 + 500)  # the stop delay, a reading, the loop
        obs = sim.obs[n0:]
    closes = [o for o in obs if o.get("k") == "contactor" and o["cmd"]]
    opens = [o for o in obs if o.get("k") == "contactor" and not o["cmd"]]
    assert len(closes) == 1 and len(opens) == 1, (closes, opens)  # one start, one stop
    reads = [o for o in obs if grid_reading()(o)]
    # No house load: the surplus the firmware reads is the PV's power, -p_w while the EV
    # draws nothing. The start: 4.5 kW held 1 s from the first reading that saw it.
    first = next(o for o in reads if -o["p_w"] >= 4500)
    pv_on = next(o for o in obs if o.get("k") == "limit" and o["a"] >= 6)
    assert 1000 <= pv_on["at"] - first["t"] <= 1000 + 2 * LOOP_MS + SLACK_MS, (first, pv_on)
    assert pv_on["reason"] == "pv surplus", pv_on
    assert closes[0]["t"] > pv_on["at"]
    # The stop: 2 s after the first reading of the PV's final fall below 3 kW (the dips
    # before it were shorter than the stop delay).
    fall = [o for o in obs if o.get("k") == "grid" and o["pv_w"] < 3000][-3]
    assert fall["pv_w"] == 2000
    low = next(o for o in reads if o["t"] > fall["t"])
    stop = next(o for o in obs if o.get("k") == "limit" and o["t"] > pv_on["t"]
                and o["a"] == 0)
    assert stop["reason"] == "pv: waiting for surplus", stop
    assert 2000 <= stop["at"] - low["t"] <= 2000 + 2 * LOOP_MS + SLACK_MS, (low, stop)
    assert opens[0]["t"] > stop["at"]


def test_a_frequency_dip_pauses_and_the_restore_waits_for_the_randomised_delay():
    """Frequency response on (49.80 Hz full, 49.50 Hz and below: 0) with a randomised delay
    of up to 5 s, drawn at its maximum here: the dip to 49.4 Hz pauses the charge within 2 s
    of the reading; the restore to 50 Hz resumes only after the delay (4.86 s), not before."""
    limits = {"freq_response": True, "random_delay_s": 5, "min_pause_s": 0,
              "resume_hyst_a": 0, "safe_a": 16}
    with start(limits) as sim:
        sim.do("random", v=0)  # no delay at the plug-in
        charging_steady(sim, 16)
        sim.do("random", v=0xFFFF)  # the longest delay: (5000 >> 8) * 65535 >> 8 ms
        delay_ms = (5000 >> 8) * 0xFFFF >> 8
        n = len(sim.obs)
        sim.do("grid", hz=49.4)
        dip, k = after(sim, grid_reading(lambda o: o["hz"] < 49.5), n)
        pause = offer_duty(sim, k, lambda a: a == 0)
        assert pause["t"] - dip["t"] <= REACTION_MS, (dip, pause)
        simrig.device_sleep(sim, 1000)
        n = len(sim.obs)
        sim.do("grid", hz=50.0)
        back, k = after(sim, grid_reading(lambda o: o["hz"] >= 49.8), n)
        resume = sim.wait_for(lambda o: o.get("k") == "limit" and o["a"] >= 6, 15, since=k)
        held = [o for o in sim.obs[k:sim.obs.index(resume)] if o.get("k") == "limit"]
        duty = offer_duty(sim, k, lambda a: a >= 6)
    assert resume["at"] - back["t"] >= delay_ms, (back, resume)
    assert resume["at"] - back["t"] <= delay_ms + 2 * LOOP_MS + SLACK_MS, (back, resume)
    assert duty["t"] >= resume["at"]
    assert held and held[0]["reason"].startswith("randomised delay, then "), held
    assert held[0]["a"] == 0


def test_a_silent_grid_meter_falls_back_to_the_safe_current():
    """A 25 A fuse, the grid meter answers (16 A offered), then goes silent: once its last
    reading is older than meter_timeout_s (2 s) the offer falls to safe_a (6 A), with the
    reason saying so; it never rises meanwhile."""
    with start({"main_fuse_a": 25, "safe_a": 6, "meter_timeout_s": 2}) as sim:
        charging_steady(sim, 16)
        n = len(sim.obs)
        sim.do("grid", meter="silent")
        lim = sim.wait_for(kind("limit", a=6), 10, since=n)
        duty = offer_duty(sim, n, lambda a: a < 16)
        reads = [o for o in sim.obs if grid_reading()(o)]
    # the last good poll: the last reading before the error count rose
    k = next(j for j in range(1, len(reads)) if reads[j]["errors"] > reads[j - 1]["errors"])
    last = reads[k - 1]
    assert lim["reason"] == "main fuse (grid meter stale or bad: safe current)", lim
    # (a reading's observation follows its stamp by a few ms: the lower bound allows 50)
    assert 1950 <= lim["at"] - last["t"] <= 2000 + LOOP_MS + SLACK_MS, (last, lim)
    assert duty_a(duty["v"]) == 6 and duty["t"] >= lim["at"], duty
    assert all(b["errors"] > a["errors"] for a, b in zip(reads[k - 1:], reads[k:])), reads
    assert not [o for o in sim.obs[n:sim.obs.index(duty)] if o.get("k") == "duty"]


def test_the_dso_signal_reaches_the_loop_as_the_control_box_contact():
    """The grid operator orders dimming (§14a EnWG: the control box's relay, the board's
    dso_relay input): the offer falls to the 4.2 kW floor (6.1 A on three phases) within a
    loop period, and the floor stops binding once the order is lifted."""
    with start({}) as sim:
        charging_steady(sim, 16)
        n = len(sim.obs)
        sim.do("grid", dso=True)
        order = sim.wait_for(kind("grid", dso=True), 5, since=n)
        lim = sim.wait_for(kind("limit", bound="dso dimming"), 5, since=n)
        duty = offer_duty(sim, n, lambda a: a < 16)
        n = len(sim.obs)
        sim.do("grid", dso=False)
        back = sim.wait_for(kind("limit"), 10, since=n)
        # the firmware's own check: a bad field is named, nothing changes, it keeps running
        n = len(sim.obs)
        sim.send({"do": "grid", "dso": True, "load_a": [1, 2]})
        err = sim.wait_for(lambda o: o.get("k") in ("error", "ack"), 5, since=n)
        assert err["k"] == "error" and "grid load_a must be a list of 3" in err["msg"], err
        sim.do("grid")  # no field: the state as it is, observed
        now = sim.wait_for(kind("grid"), 5, since=n)
        assert now["dso"] is False and len(now["load_a"]) == 3, now  # nothing was applied
    assert lim["a"] == 6.1 and lim["reason"] == "dso dimming", lim
    assert lim["at"] - order["t"] <= LOOP_MS + SLACK_MS, (order, lim)
    assert 6.0 <= duty_a(duty["v"]) <= 6.2, duty
    # released: the rise toward 16 A starts (5 s after the last change, the IEC rule)
    assert back["bound"] == "config max_current_a", back
    assert back["reason"] in ("ramp to config max_current_a", "config max_current_a"), back


@pytest.mark.parametrize("fields, msg", [
    ({"load_a": [1, 2]}, "grid load_a must be a list of 3 house currents per phase"),
    ({"load_a": [1, 2, -3]}, "grid load_a must be a list of 3"),
    ({"load_a": "3"}, "grid load_a must be list"),
    ({"pv_w": -100}, "grid pv_w must be 0..100000"),
    ({"hz": 80}, "grid hz must be 40..70"),
    ({"dso": 1}, "grid dso must be bool"),
    ({"meter": "dead"}, "grid meter 'dead' unknown (known: ok, silent)"),
    ({"load": [1, 2, 3]}, "grid has no field 'load' (fields: dso, hz, load_a, meter, pv_w)"),
])
def test_a_bad_grid_command_is_refused_by_name(fields, msg):
    """The scenario check names the bad field before anything starts."""
    with pytest.raises(simlib.ScenarioError) as e:
        simlib.check_command(dict(fields, do="grid"), "steps[2]")
    assert str(e.value).startswith("steps[2]: " + msg), str(e.value)
