"""Benchmark: MQTT's heap and the safety reaction while MQTT is busy (docs/mqtt.md).

Heap (boards/sim/heapcheck.py: the firmware without the simulator's control channel, every
module imported before "code" is taken, as a board has them frozen in flash): the default
session (plug, charge, EV full, unplug) without MQTT and with MQTT to a local mosquitto
(discovery on, measurements every second), on the 64-bit unix port and, when
build/mp32/micropython exists (make mp32), on a 32-bit build (an ESP32's word size). The
differences are what MQTT and the owner model cost: code, the runtime peak, and the live
data once connected and idle with discovery sent; and the web server with MQTT together.

Reaction: the EV's C->B (S2 opens) to the contactor-open command on the device clock, as
tools/bench_core.py measures it, while the simulated wallbox publishes its state every second
and a client sends it a command every 100 ms (current_a 10 and 16 in turn).

    python tools/bench_mqtt.py [--n 40]
"""
import argparse
import os
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_core  # noqa: E402
import simlib  # noqa: E402
from mqtt_broker import MOSQUITTO, Broker  # noqa: E402

MP32 = os.path.join(ROOT, "build", "mp32", "micropython")




def heap_lines(port):
    for name, exe in (("64-bit unix port", None), ("32-bit build", MP32)):
        if exe is not None and not os.path.exists(exe):
            print("heap, %s: skipped (no build/mp32/micropython: make mp32 MPY_DIR=...)" % name)
            continue
        ok0, base = bench_core.heapcheck(exe=exe)
        ok1, res = bench_core.heapcheck(args=["--mqtt", "127.0.0.1:%d" % port], exe=exe)
        if not (ok0 and ok1) or "mqtt connected" not in res.get("statuses", ()):
            print("heap, %s: FAILED %r %r" % (name, base, res), flush=True)
            continue
        idle = res["marks"].get("mqtt connected, idle")
        print("heap with MQTT, %s: code %d bytes (+%d for MQTT and the owner model), runtime "
              "peak %d bytes (+%d; without MQTT %d), the firmware's live data while MQTT is "
              "connected and idle %d bytes"
              % (name, res["code"], res["code"] - base["code"], res["runtime"],
                 res["runtime"] - base["runtime"], base["runtime"], idle), flush=True)
        # both owner interfaces (the web server idle: tools/bench_web.py loads it)
        ok2, web = bench_core.heapcheck(args=["--web", str(simlib._free_port())], exe=exe)
        ok3, both = bench_core.heapcheck(args=["--web", str(simlib._free_port()), "--mqtt",
                                               "127.0.0.1:%d" % port], exe=exe)
        if ok2 and ok3:
            print("heap with the web server and MQTT, %s: runtime peak %d bytes (web alone "
                  "%d; the issue's budget 49152), code %d bytes" % (
                      name, both["runtime"], web["runtime"], both["code"]), flush=True)


def _commands(port, stop, sent):
    import paho.mqtt.client as mqtt  # aiomqtt's MQTT stack (requirements.txt)

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench")
    c.connect("127.0.0.1", port)
    c.loop_start()
    k = 0
    while not stop.is_set():
        c.publish("bench/current_a/set", "10" if k % 2 else "16", qos=1)
        k += 1
        sent[0] = k
        time.sleep(0.1)
    c.loop_stop()
    c.disconnect()


def reaction(port, n):
    cfg = dict(bench_core.CFG, free_vend=True, mqtt={"host": "127.0.0.1", "port": port,
                                                     "prefix": "bench", "period_s": 1})
    stop = threading.Event()
    sent = [0]
    t0 = time.time()
    with simlib.Sim(cfg).start() as sim:
        sim.wait_for(lambda o: o.get("k") == "log" and "mqtt: connected" in o.get("msg", ""),
                     10)
        th = threading.Thread(target=_commands, args=(port, stop, sent), daemon=True)
        th.start()
        try:
            sim.do("ev", auto=False)
            sim.do("plug")
            for k in range(n):
                bench_core._charge(sim)
                i = len(sim.obs)
                sim.do("s2", closed=False)
                sim.wait_for(simlib.is_open_cmd, 10, since=i)
                time.sleep(1.0)
                bench_core._progress("c_to_b_mqtt", k + 1, n, t0)
        finally:
            stop.set()
            th.join(5)
        refused = sum(1 for o in sim.obs if o.get("k") == "log"
                      and "command refused" in o.get("msg", ""))
    return simlib.reactions_while_closed(sim.obs, simlib.is_s2_open), sent[0], refused


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    a, _ = ap.parse_known_args()  # make bench passes every bench the same options
    if MOSQUITTO is None:
        print("MQTT: skipped (no mosquitto: tools/setup.sh installs it)")
        return
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as d:
        broker = Broker(d).start()
        try:
            heap_lines(broker.port)
            times, sent, refused = reaction(broker.port, a.n)
        finally:
            broker.stop()
    if not times:
        print("C->B with MQTT: no data (the run failed)")
        sys.exit(1)
    bench_core.report("C->B, MQTT busy", times)
    print("MQTT load during it: %d commands at 10/s (%d refused), state every 1 s"
          % (sent, refused))


if __name__ == "__main__":
    main()
