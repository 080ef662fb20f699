"""Turn an observation log of the simulated wallbox into a PNG (docs/sim.md "Plots").
    .venv/bin/python tools/plot.py EVENTS.jsonl -o OUT.png [--title TEXT]
EVENTS.jsonl is what `tools/sim.py --events` writes. Four panels over device time: the
currents (offered, the limit loop's decision, each input's limit, the EV's current per
phase), the grid (per-phase current the grid meter read, the house's load, the main fuse's
headroom for the EV), power (PV, grid import/export, EV) with the frequency, and the state
(contactor, phases, DSO order, grid meter silent) under bands colouring the reason of each
decision. Exit status: 0 written, 2 bad input (the message names the file and line).
"""
import argparse
import json
import os
import sys


class PlotError(Exception):
    pass


# The reason of a `limit` observation -> (band, colour); the first match wins.
BANDS = (
    ("randomised delay", "randomised delay", "#c7b8e6"),
    ("stale", "input stale: fallback", "#f4a6a6"),
    ("pause", "pause", "#d9d9d9"),
    ("waiting for surplus", "pv: waiting for surplus", "#eeeeee"),
    ("pv", "pv surplus", "#ffe08a"),
    ("main fuse", "main fuse", "#f7c59f"),
    ("total", "total capacity", "#f7c59f"),
    ("dso", "dso dimming", "#a6d8f4"),
    ("frequency", "frequency", "#b5e6b5"),
    ("off-peak", "off-peak schedule", "#c9e4de"),
    ("ocpp", "ocpp profile", "#e6d3b8"),
    ("thermal", "thermal", "#f4c2e0"),
)
OTHER = ("station maximum", "#ffffff")
PHASE_COLOURS = ("#8c564b", "#222222", "#7f7f7f")  # L1 brown, L2 black, L3 grey (IEC 60446)


def load(path):
    """The observations of a JSON-lines file, in device-time order. PlotError names the
    file and line of anything that is not an observation."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise PlotError("%s: cannot read: %s" % (path, e.strerror))
    except UnicodeDecodeError:
        raise PlotError("%s: not a text file (want JSON lines from tools/sim.py --events)"
                        % path)
    obs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            o = json.loads(line)
        except ValueError as e:
            raise PlotError("%s:%d: not JSON (%s): %.60r" % (path, n, e, line))
        if not isinstance(o, dict) or not isinstance(o.get("k"), str):
            raise PlotError("%s:%d: not an observation (a JSON object with \"k\"): %.60r"
                            % (path, n, line))
        t = o.get("t")
        if o["k"] != "closed" and (type(t) not in (int, float) or t != t):
            raise PlotError("%s:%d: observation %r has no device time \"t\"" % (path, n, o["k"]))
        if t is not None:
            obs.append(o)
    if not any(o["k"] in ("state", "limit") for o in obs):
        raise PlotError("%s: no state or limit observations: nothing to plot (is it a log of "
                        "tools/sim.py --events?)" % path)
    last_ready = max((i for i, o in enumerate(obs) if o["k"] == "ready"), default=0)
    obs = obs[last_ready:]  # a log of a restarted simulator: its last run (t starts again)
    for o in obs:  # a decision is drawn from when it was made (`at`), not when seen (`t`)
        if o["k"] == "limit" and type(o.get("at")) in (int, float) and o["at"] == o["at"]:
            o["t"] = o["at"]
    obs.sort(key=lambda o: o["t"])
    return obs


def steps(obs, kind, value, end, start=0.0):
    """(xs, ys) of a step line: the value of each `kind` observation until the next, held to
    `end`; starts at `start` with None (no value yet)."""
    xs, ys = [start], [None]
    for o in obs:
        if o["k"] == kind:
            v = value(o)
            xs.append(o["t"] / 1000)
            ys.append(v)
    xs.append(end)
    ys.append(ys[-1])
    return xs, ys


def _nan(v):
    return float("nan") if v is None else v


def series(obs):
    """Everything the panels draw, from the observations."""
    end = obs[-1]["t"] / 1000
    s = {"end": end}
    s["offer"] = steps(obs, "state", lambda o: o["offer_da"] / 10, end)
    s["limit"] = steps(obs, "limit", lambda o: o["a"], end)
    names = []
    for o in obs:
        if o["k"] == "inputs":
            names += [n for n in o["limits"] if n not in names]
    s["inputs"] = {n: steps(obs, "inputs", lambda o, n=n: o["limits"].get(n), end)
                   for n in names}
    meters = [o for o in obs if o["k"] == "meter"]
    for p in range(3):
        s["ev%d" % p] = steps(meters, "meter", lambda o, p=p: o["i_da"] / 10
                              if p < o.get("phases", 3) else 0.0, end)
    s["ev_w"] = steps(meters, "meter", lambda o: o["i_da"] / 10 * o.get("v", 230)
                      * o.get("phases", 3), end)
    grid = [o for o in obs if o["k"] == "reading" and o.get("role") == "grid"]
    for p in range(3):
        s["grid%d" % p] = steps(grid, "reading", lambda o, p=p: _nan(
            (o.get("i3") or [None] * 3)[p]) / 10, end)
    s["grid_w"] = steps(grid, "reading", lambda o: o["p_w"] if o.get("fresh") else None, end)
    s["hz"] = steps(grid, "reading", lambda o: o.get("hz"), end)
    gm = [o for o in obs if o["k"] == "grid"]
    for p in range(3):
        s["house%d" % p] = steps(gm, "grid", lambda o, p=p: o["load_a"][p], end)
    s["pv_w"] = steps(gm, "grid", lambda o: o["pv_w"], end)
    s["dso"] = steps(gm, "grid", lambda o: 1 if o["dso"] else 0, end)
    s["silent"] = steps(gm, "grid", lambda o: 1 if o["meter"] == "silent" else 0, end)
    s["contacts"] = steps(obs, "contacts", lambda o: 1 if o["closed"] else 0, end)
    if any(o["k"] == "phases" for o in obs):  # a board with a phase switch: its contacts
        s["phases"] = steps(obs, "phases", lambda o: 3 if o["closed"] else 1, end)
    else:  # the limit loop's phases (the config's without a switch)
        s["phases"] = steps(obs, "limit", lambda o: o["phases"], end)
    s["bands"] = bands(obs, end)
    rating = [o["limits"].get("config max_current_a") for o in obs if o["k"] == "inputs"]
    offers = [y for y in s["offer"][1] if y is not None]
    s["rating"] = max([r for r in rating if r] + offers + [6])
    s["grid_meter"] = bool(grid)
    return s


def band_of(reason):
    r = reason.lower()
    for key, name, colour in BANDS:
        if key in r:
            return name, colour
    return OTHER


def bands(obs, end):
    """[(t0, t1, band name, colour)] of the limit loop's reasons over time."""
    out = []
    lim = [o for o in obs if o["k"] == "limit"]
    for o, nxt in zip(lim, lim[1:] + [None]):
        t1 = nxt["t"] / 1000 if nxt else end
        name, colour = band_of(o["reason"])
        if out and out[-1][2] == name and out[-1][1] == o["t"] / 1000:
            out[-1] = (out[-1][0], t1, name, colour)
        else:
            out.append((o["t"] / 1000, t1, name, colour))
    return out


def draw(s, out, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(4, 1, sharex=True, figsize=(10, 9.5),
                           gridspec_kw={"height_ratios": [3, 2.2, 2, 1.3]})
    a_cur, a_grid, a_pow, a_st = ax
    used = {}
    for t0, t1, name, colour in s["bands"]:
        for a in ax:
            a.axvspan(t0, t1, color=colour, alpha=0.45, lw=0)
        used[name] = colour
    stp = {"where": "post"}
    # currents
    top = s["rating"]
    for n, (xs, ys) in s["inputs"].items():
        # the station's own maximum is the panel's top; an input above it limits nothing
        if n.startswith("config") or n == "cable" or all(y is None or y > top for y in ys):
            continue
        a_cur.step(xs, [float("nan") if y is None or y > top else y for y in ys], lw=1,
                   ls=":", label="limit: " + n, **stp)
    for p in range(3):
        xs, ys = s["ev%d" % p]
        a_cur.step(xs, [_nan(y) for y in ys], lw=1, color=PHASE_COLOURS[p],
                   label="EV L%d" % (p + 1), alpha=0.8, **stp)
    xs, ys = s["limit"]
    a_cur.step(xs, [_nan(y) for y in ys], lw=1.2, ls="--", color="#1f77b4",
               label="loop decision", **stp)
    xs, ys = s["offer"]
    a_cur.step(xs, [_nan(y) for y in ys], lw=2, color="#d62728", label="offered", **stp)
    a_cur.set_ylabel("A")
    a_cur.set_ylim(0, top * 1.25)
    a_cur.legend(loc="upper right", fontsize=7, ncol=3)
    # grid
    if s["grid_meter"]:
        for p in range(3):
            xs, ys = s["grid%d" % p]
            a_grid.step(xs, [_nan(y) for y in ys], lw=1.2, color=PHASE_COLOURS[p],
                        label="grid L%d" % (p + 1), **stp)
    for p in range(3):
        xs, ys = s["house%d" % p]
        if any(y is not None for y in ys):
            a_grid.step(xs, [_nan(y) for y in ys], lw=0.8, ls=":", color=PHASE_COLOURS[p],
                        label="house L%d" % (p + 1), **stp)
    if "main fuse" in s["inputs"]:
        xs, ys = s["inputs"]["main fuse"]
        a_grid.step(xs, [_nan(y) for y in ys], lw=1.2, color="#ff7f0e",
                    label="headroom (main fuse)", **stp)
    a_grid.axhline(0, color="#999999", lw=0.5)
    a_grid.set_ylabel("A (- export)")
    a_grid.legend(loc="upper right", fontsize=7, ncol=4)
    # power
    for key, label, colour in (("pv_w", "PV", "#e6ab02"), ("grid_w", "grid (+ import)",
                                                           "#444444"),
                               ("ev_w", "EV", "#d62728")):
        xs, ys = s[key]
        if any(y is not None for y in ys):
            a_pow.step(xs, [_nan(y) / 1000 for y in ys], lw=1.2, color=colour, label=label,
                       **stp)
    a_pow.axhline(0, color="#999999", lw=0.5)
    a_pow.set_ylabel("kW")
    a_pow.legend(loc="upper left", fontsize=7, ncol=3)
    xs, ys = s["hz"]
    hz = [y for y in ys if y is not None]
    if hz and max(hz) - min(hz) >= 0.05:  # drawn when it moves
        a_hz = a_pow.twinx()
        a_hz.step(xs, [_nan(y) for y in ys], lw=0.8, color="#2ca02c", **stp)
        a_hz.set_ylabel("Hz", color="#2ca02c")
        a_hz.tick_params(axis="y", labelcolor="#2ca02c", labelsize=7)
    # state
    rows = (("contacts", "contactor closed", 3), ("phases", "3 phases", 2),
            ("dso", "DSO dimming", 1), ("silent", "grid meter silent", 0))
    for key, label, row in rows:
        xs, ys = s[key]
        on = [bool(y == 3 if key == "phases" else y) for y in ys]
        x2 = [x for a, b in zip(xs, xs[1:]) for x in (a, b)]  # each segment's two ends
        on2 = [v for v in on[:-1] for _ in (0, 1)]
        a_st.fill_between(x2, row + 0.1, row + 0.8, where=on2, color="#555555", lw=0)
        a_st.axhline(row + 0.1, color="#bbbbbb", lw=0.5)
    a_st.set_yticks([r + 0.45 for _, _, r in rows])
    a_st.set_yticklabels([label for _, label, _ in rows], fontsize=7)
    a_st.set_ylim(-0.2, 4)
    a_st.set_xlabel("device time (s)")
    a_st.set_xlim(0, s["end"])
    if used:
        fig.legend([Patch(color=c, alpha=0.6) for c in used.values()], list(used),
                   loc="lower center", ncol=min(len(used), 6), fontsize=7, title="reason",
                   title_fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97 if title else 1))
    fig.savefig(out, dpi=72)
    plt.close(fig)


def plot(events, out, title=None):
    """Read events, write the PNG to out; PlotError for bad input."""
    obs = load(events)
    d = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(d):
        raise PlotError("%s: folder %s does not exist" % (out, d))
    try:
        draw(series(obs), out, title)
    except OSError as e:
        raise PlotError("%s: cannot write: %s" % (out, e.strerror or e))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("events", help="observation log (JSON lines) from tools/sim.py --events")
    ap.add_argument("-o", "--out", required=True, help="PNG file to write")
    ap.add_argument("--title", help="a title over the plot")
    a = ap.parse_args(argv)
    try:
        plot(a.events, a.out, a.title)
    except PlotError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("wrote %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
