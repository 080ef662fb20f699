"""Simulated days for tools/bench_limits.py: a house, PV, a grid frequency and an EV, one
second per step, and the control laws compared on them: ours (the real firmware.limits
arbiter and dynamics) and the anchors' laws, written here from their published parameters
and documented behaviour (the facts are cited beside each; the code is ours).

The model is shared by every law: the grid meter measures, per phase, the house's load plus
the EV's current minus the PV (a three-phase inverter, split evenly), once a second; the EV
follows a new offer EV_LAG_S seconds later (IEC 61851-1 gives it up to 5 s), draws what it is
offered within 6..32 A on three phases (on L1 alone where a law switched to one phase), and
nothing below 6 A. A law sees only what a wallbox
sees: the grid meter's phase currents, its own EV current and the frequency.
"""
import math
import random

V = 230.0
PHASES = 3
EV_LAG_S = 3
DAY_S = 86400
REACTION_S = 2  # the fuse reaction time the issue asks for (from the meter reading)
OVER_A = 0.1  # a phase more than this above the fuse is overloaded (the meter's resolution)


class Day:
    """One day of inputs, one value per second: pv_w, house (3 phase currents, A), hz."""

    def __init__(self, name, mode, fuse_a, plug, t0, pv_w, house, hz):
        self.name, self.mode, self.fuse_a, self.plug = name, mode, fuse_a, plug
        self.t0, self.pv_w, self.house, self.hz = t0, pv_w, house, hz


def _bell(t, start_h, end_h, peak_w):
    a, b = start_h * 3600, end_h * 3600
    if not a < t < b:
        return 0.0
    return peak_w * math.sin(math.pi * (t - a) / (b - a)) ** 1.5


def _house(rng, t0, n, events, base_a=0.7):
    """Per-phase base load plus appliance events (start_s, dur_s, phase or 3 for all, W)."""
    house = [[base_a + 0.3 * math.sin((t0 + k) / 1700.0 + p) ** 2 for p in range(3)]
             for k in range(n)]
    for t in range(0, DAY_S, 1800 + rng.randrange(600)):  # the fridge: 80 W for ~12 min
        for k in range(max(0, t - t0), min(n, t + 720 - t0)):
            house[k][1] += 80 / V
    for start, dur, phase, w in events:
        for k in range(max(0, start - t0), min(n, start + dur - t0)):
            if phase == 3:
                for p in range(3):
                    house[k][p] += w / 3 / V
            else:
                house[k][phase] += w / V
    return house


def _day_events(rng, k, h0, h1, w_lo, w_hi, d_lo, d_hi):
    return [(rng.randrange(h0 * 3600, h1 * 3600), rng.randrange(d_lo, d_hi),
             rng.randrange(3), rng.uniform(w_lo, w_hi)) for _ in range(k)]


def sunny(t0=0, n=DAY_S, seed=1):
    rng = random.Random(seed)
    pv = [_bell(t, 6, 20, 9000) for t in range(t0, t0 + n)]
    ev = _day_events(rng, 10, 7, 22, 800, 2500, 60, 1800)
    return Day("sunny day", "pv", 25, (0, DAY_S), t0, pv, _house(rng, t0, n, ev), [50.0] * n)


def clouds(t0=0, n=DAY_S, seed=2):
    """Fast clouds: the sun comes and goes every 5..90 s (cumulus on a windy day)."""
    rng = random.Random(seed)
    pv = []
    sun = True
    left = 0
    level = 1.0
    for t in range(t0 + n):
        if left <= 0:
            sun = not sun
            left = rng.randrange(5, 90)
            level = 1.0 if sun else rng.uniform(0.15, 0.35)
        left -= 1
        if t >= t0:
            pv.append(_bell(t, 6, 20, 9000) * level)
    ev = _day_events(rng, 10, 7, 22, 800, 2500, 60, 1800)
    return Day("fast clouds", "pv", 25, (0, DAY_S), t0, pv, _house(rng, t0, n, ev),
               [50.0] * n)


def winter_evening(t0=0, n=DAY_S, seed=3):
    """A 25 A fuse, the EV plugged in from 16:00: a heat pump cycling on all three phases,
    cooking, kettles, a tumble dryer; the house alone stays under the fuse."""
    rng = random.Random(seed)
    pv = [_bell(t, 8.5, 16, 1500) for t in range(t0, t0 + n)]
    ev = []
    for t in range(16 * 3600, 24 * 3600, 2400):  # heat pump: 20 min on, 20 min off
        ev.append((t, 1200, 3, 4500))
    ev += [(17 * 3600 + 1800, 5400, 0, 3000), (17 * 3600 + 2400, 2700, 1, 2500)]  # hob, oven
    ev += _day_events(rng, 14, 16, 23, 1800, 2800, 90, 400)  # kettles, toaster, hair dryer
    ev.append((20 * 3600, 3600, 2, 2600))  # tumble dryer
    house = _house(rng, t0, n, ev, base_a=1.5)
    return Day("winter evening", "fast", 25, (16 * 3600, DAY_S), t0, pv, house,
               [50.0] * n)


def frequency_dip(t0=0, n=DAY_S, seed=4):
    """A generation loss at 12:00: 50 Hz falls to 49.6 Hz in 8 s, holds 90 s, recovers in
    120 s. The EV charges at full current from 10:00 (fast mode)."""
    rng = random.Random(seed)
    hz = []
    d = 12 * 3600
    for t in range(t0 + n):
        f = 50.0 + rng.uniform(-0.02, 0.02)
        if d <= t < d + 8:
            f = 50.0 - 0.4 * (t - d) / 8
        elif d + 8 <= t < d + 98:
            f = 49.6
        elif d + 98 <= t < d + 218:
            f = 49.6 + 0.4 * (t - d - 98) / 120
        if t >= t0:
            hz.append(f)
    ev = _day_events(rng, 6, 7, 22, 800, 2000, 60, 900)
    return Day("frequency dip", "fast", 25, (10 * 3600, 16 * 3600), t0, [0.0] * n,
               _house(rng, t0, n, ev), hz)


DAYS = (sunny, clouds, winter_evening, frequency_dip)


def run(day, law):
    """Run one law over one day; the figures as a dict."""
    lag = [(0.0, 3)] * EV_LAG_S  # (offer, phases) the EV follows EV_LAG_S s later
    ev_a = 0.0
    ev_n = 3
    plug0, plug1 = day.plug
    fuse = day.fuse_a
    over_run = over_s = 0
    share_num = share_den = import_j = ev_j = 0.0
    starts = 0
    prev_offer = 0.0
    dip_s = 0
    dip_a = 0.0
    for k in range(len(day.pv_w)):
        t = day.t0 + k
        plugged = plug0 <= t < plug1
        h = day.house[k]
        pv_w = day.pv_w[k]
        pv_a = pv_w / (PHASES * V)
        e1 = ev_a if ev_n == 3 else 0.0  # one phase: L1
        g = [h[0] + ev_a - pv_a, h[1] + e1 - pv_a, h[2] + e1 - pv_a]
        hz = day.hz[k]
        offer = law.step(t, g, ev_a, hz) if plugged else 0.0
        if offer and offer < 6:
            raise AssertionError("%s offered %.1f A" % (law.name, offer))
        if offer >= 6 and prev_offer < 6:
            starts += 1
        prev_offer = offer
        lag.append((min(offer, 32.0) if offer >= 6 else 0.0, getattr(law, "phases", 3)))
        ev_a, ev_n = lag.pop(0)
        # figures, on what flows this second
        surplus = max(0.0, pv_w - sum(h) * V)
        ev_w = ev_a * ev_n * V
        ev_j += ev_w
        if plugged and day.mode == "pv":
            share_den += surplus
            share_num += min(ev_w, surplus)
            import_j += max(0.0, ev_w - surplus)
        if fuse is not None and ev_a > 0 and max(g[:ev_n]) > fuse + OVER_A:
            over_run += 1
            if over_run > REACTION_S + EV_LAG_S:
                over_s += 1
        else:
            over_run = 0
        if hz < 49.8 and plugged:
            dip_s += 1
            dip_a += ev_a
    return {"overload_s": over_s, "pv_share": share_num / share_den if share_den else 0.0,
            "import_kwh": import_j / 3.6e6, "ev_kwh": ev_j / 3.6e6, "starts": starts,
            "switches": getattr(law, "switches", 0),
            "dip_a": dip_a / dip_s if dip_s else None}
