"""Run a charging scenario on the simulated wallbox (the real firmware on the MicroPython
unix port) and print a session summary.

    python tools/sim.py --scenario scenarios/default.json [--events out.jsonl]
                        [--heapsize 64k] [--source]

The scenario format and the control channel are described in docs/sim.md.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simlib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", required=True, help="scenario JSON file")
    ap.add_argument("--events", help="write every observation here as JSON lines")
    ap.add_argument("--heapsize", help="MicroPython heap size (-X heapsize=N), e.g. 48k")
    ap.add_argument("--source", action="store_true", help="run the .py files, not .mpy")
    a = ap.parse_args()
    try:
        sc = simlib.load_scenario(a.scenario)
    except simlib.ScenarioError as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(2)
    print("scenario %s: %s" % (a.scenario, sc.get("description", "")))
    sim = simlib.Sim(sc.get("config", {}), heapsize=a.heapsize, use_mpy=not a.source)
    try:
        sim.start()
        ready = sim.ready()
        print("firmware up on the unix port (board %s, kernels %s)" % (
            ready.get("board"), ready.get("kernels")))
        for o in sim.obs:
            if o.get("k") == "log":
                print("  firmware: %s" % o["msg"])
        simlib.run_scenario(sim, sc)
    except (simlib.ScenarioError, TimeoutError, RuntimeError) as e:
        print("error: %s" % e, file=sys.stderr)
        sim.stop()
        _write(a.events, sim.obs)
        sys.exit(1)
    sim.stop()
    _write(a.events, sim.obs)
    print(simlib.summary(sim.obs))


def _write(path, obs):
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        for o in obs:
            if o.get("k") != "closed":
                f.write(json.dumps(o) + "\n")
    print("observations: %s (%d lines)" % (path, len(obs)))


if __name__ == "__main__":
    main()
