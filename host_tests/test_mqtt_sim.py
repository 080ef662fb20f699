"""MQTT end to end (docs/mqtt.md): the simulated wallbox (the real firmware on the unix port)
against a real broker (mosquitto, started here), watched by aiomqtt: Home Assistant
discovery, state while the EV charges, commands through the owner model, a bad command
refused, a broker restart and a link loss with the device's state kept and republished."""
import json
import os

import pytest

import mqttrig
import simrig
from test_mqtt import check_discovery

pytestmark = [pytest.mark.sim, pytest.mark.slow]  # 1-8 s each
P = "sim/wb"
NODE = "simwb"


@pytest.fixture
def rig(tmp_path):
    mqttrig.need_broker()
    broker = mqttrig.Broker(tmp_path).start()
    obs = mqttrig.Observer(broker.port, (P + "/#", "homeassistant/#"))
    # the EV meter an SDM630 on Modbus (emulated): power and current per phase
    # no minimum pause: an offer stopped by one command comes back with the next at once
    cfg = {"free_vend": True, "limits": {"min_pause_s": 0},
           "meters": {"ev": {"type": "modbus", "profile": "sdm630", "addr": 1},
                      "bus": {"uart": 1, "baud": 9600}},
           "mqtt": {"host": "127.0.0.1", "port": broker.port, "prefix": P,
                                       "node_id": NODE, "period_s": 1, "keepalive_s": 10}}
    sim = simrig.start(cfg)
    try:
        obs.wait_for(mqttrig.topic_is(P + "/availability", "online"), 10)
        yield broker, obs, sim
    finally:
        sim.stop()
        obs.close()
        broker.stop()


def _value(obs, name, pred, since=0, timeout=5):
    return obs.wait_for(lambda m: m[0] == P + "/" + name and pred(m[1]), timeout, since)[1]


def _num(pred):
    def check(text):
        try:
            return pred(float(text))
        except ValueError:
            return False
    return check


def test_discovery_and_state_while_charging(rig):
    broker, obs, sim = rig
    # every entity announced, each valid for Home Assistant, and retained
    configs = {}
    for _ in range(12):
        m = obs.wait_for(lambda m: m[0].startswith("homeassistant/") and m[0] not in configs, 5)
        configs[m[0]] = check_discovery(m[0], m[1], "homeassistant", NODE)
    # retained: a Home Assistant that subscribes later gets them all from the broker
    late = mqttrig.Observer(broker.port, ("homeassistant/#", P + "/status"))
    try:
        for t in configs:
            late.wait_for(lambda m, t=t: m[0] == t and m[2], 5)
        late.wait_for(lambda m: m[0] == P + "/status" and m[2], 5)
    finally:
        late.close()
    objects = {t.split("/")[3]: c for t, c in configs.items()}
    assert {"status", "power", "current_l1", "session_energy", "energy", "mode", "current",
            "charge"} <= set(objects)
    assert objects["energy"][1]["state_topic"] == P + "/energy_kwh"
    assert objects["current"][1]["command_topic"] == P + "/current_a/set"
    # idle, then charging: the state topics follow
    _value(obs, "status", lambda v: v == "Available")
    k = len(obs.msgs)
    simrig.charge(sim)
    _value(obs, "status", lambda v: v == "Charging", k)
    _value(obs, "pilot", lambda v: v == "C", k)
    _value(obs, "offer_a", lambda v: v == "16.0", k)
    _value(obs, "power_w", _num(lambda w: w > 5000), k)
    _value(obs, "current_l1_a", _num(lambda a: 15 <= a <= 16), k)
    _value(obs, "session_energy_kwh", _num(lambda e: e > 0), k)
    _value(obs, "energy_kwh", _num(lambda e: e > 0), k)
    sim.do("unplug")
    _value(obs, "status", lambda v: v == "Available", k)
    # Home Assistant restarted (its birth message): it is told everything again
    k = len(obs.msgs)
    obs.publish("homeassistant/status", "online", qos=0)
    for t in configs:
        obs.wait_for(lambda m, t=t: m[0] == t, 5, k)
    _value(obs, "energy_kwh", _num(lambda e: e > 0), k)


def test_commands_change_the_offer_and_bad_ones_are_refused(rig):
    broker, obs, sim = rig
    simrig.charge(sim)
    _value(obs, "offer_a", lambda v: v == "16.0")
    k = len(obs.msgs)
    obs.publish(P + "/current_a/set", "10")
    _value(obs, "current_a", lambda v: v == "10", k)
    _value(obs, "offer_a", lambda v: v == "10.0", k)
    sim.wait_for(lambda o: o.get("k") == "state" and o.get("offer_da") == 100, 5)
    # PV mode without a grid meter: no surplus known, so the offer stops
    k = len(obs.msgs)
    obs.publish(P + "/mode/set", "pv")
    _value(obs, "mode", lambda v: v == "pv", k)
    _value(obs, "offer_a", lambda v: v == "0.0", k)
    # refused, naming what is wrong; nothing changes, nothing saved
    with open(os.path.join(sim.dir, "config.json")) as f:
        saved = f.read()
    for topic, payload, words in (
            ("current_a/set", "40", ("current_a", "installer")),
            ("mode/set", "turbo", ("mode", "turbo")),
            ("enable/set", "perhaps", ("enable", "ON or OFF")),
            ("set", '{"rating_a": 80}', ("rating_a", "installer")),
            ("set", '{"mode": "fast", "current_a": 3}', ("current_a",)),
            ("set", '{"mode": "%s"}' % ("x" * 600), ("over 512 bytes",))):
        k = len(obs.msgs)
        obs.publish(P + "/" + topic, payload)
        err = json.loads(_value(obs, "error", lambda v: True, k))
        assert err["topic"] == P + "/" + topic
        assert all(w in err["error"] for w in words), err
    assert any("6 commands refused" in x for x in sim.diag()), sim.diag()
    simrig.device_sleep(sim, 1500)
    assert obs.last(P + "/mode") == "pv" and obs.last(P + "/current_a") == "10"
    assert obs.last(P + "/offer_a") == "0.0"
    with open(os.path.join(sim.dir, "config.json")) as f:
        assert f.read() == saved
    # the charge switch pauses, a JSON object sets several at once
    k = len(obs.msgs)
    obs.publish(P + "/set", '{"mode": "fast", "current_a": 8, "delay_override": true}')
    _value(obs, "offer_a", lambda v: v == "8.0", k)
    s = json.loads(_value(obs, "settings", lambda v: '"current_a": 8' in v, k))
    assert s["mode"] == "fast" and s["delay_override"] is True and s["enable"] is True, s
    k = len(obs.msgs)
    obs.publish(P + "/enable/set", "OFF")
    _value(obs, "enable", lambda v: v == "OFF", k)
    _value(obs, "offer_a", lambda v: v == "0.0", k)


def test_broker_restart_and_link_loss_keep_the_state(rig):
    broker, obs, sim = rig
    i0 = simrig.charge(sim)
    k = len(obs.msgs)
    obs.publish(P + "/current_a/set", "12")
    _value(obs, "offer_a", lambda v: v == "12.0", k)
    # the broker restarts and forgets every retained message: the device republishes them
    broker.stop()
    broker.start()
    k = len(obs.msgs)
    _value(obs, "availability", lambda v: v == "online", k, timeout=10)
    for name, v in (("status", "Charging"), ("current_a", "12"), ("offer_a", "12.0")):
        _value(obs, name, lambda x, v=v: x == v, k)
    obs.wait_for(lambda m: m[0] == "homeassistant/select/%s/mode/config" % NODE, 5, k)
    # the link is lost: the broker tells the last will; back, the device's state is as before
    k = len(obs.msgs)
    sim.do("net", state="down")
    _value(obs, "availability", lambda v: v == "offline", k)
    sim.do("net", state="up")
    _value(obs, "availability", lambda v: v == "online", k, timeout=10)
    for name, v in (("status", "Charging"), ("current_a", "12"), ("offer_a", "12.0")):
        _value(obs, name, lambda x, v=v: x == v, k)
    # the session went on throughout: the contactor never opened
    assert not [o for o in sim.obs[i0:] if o.get("k") == "contacts" and not o.get("closed")]
    # the service console tells the story: connected again, the third connection
    lines = [x for x in sim.diag() if x.startswith("mqtt")]
    assert "connected  connects 3" in lines[0], lines


def test_a_bad_section_leaves_mqtt_off_and_charging_on():
    sim = simrig.start({"free_vend": True, "mqtt": {"host": "broker", "port": 0, "qos": 2}})
    try:
        log = [o["msg"] for o in sim.obs if o.get("k") == "log"]
        assert any("mqtt: port=0 refused" in m and m.endswith("MQTT off") for m in log), log
        assert any("mqtt: unknown key 'qos'" in m for m in log), log
        simrig.charge(sim)  # the charger works as before
    finally:
        sim.stop()


def test_a_retained_command_is_not_applied_again_at_every_connection(rig):
    # A command published with retain stays on the broker, which hands it out again with
    # RETAIN set whenever the device subscribes anew: applied then, it would undo every
    # later change (the web page's, another command's) after each reconnect.
    broker, obs, sim = rig
    k = len(obs.msgs)
    obs.publish(P + "/current_a/set", "8", retain=True)
    _value(obs, "current_a", lambda v: v == "8", k)  # live (not from the store): applied
    k = len(obs.msgs)
    obs.publish(P + "/current_a/set", "12")
    _value(obs, "current_a", lambda v: v == "12", k)
    k = len(obs.msgs)
    sim.do("net", state="down")
    sim.do("net", state="up")
    _value(obs, "availability", lambda v: v == "online", k, timeout=10)
    err = json.loads(_value(obs, "error", lambda v: True, k))
    assert err["topic"] == P + "/current_a/set" and "retained" in err["error"], err
    simrig.device_sleep(sim, 1000)
    assert obs.last(P + "/current_a") == "12"


def test_sim_py_mqtt_flag(tmp_path):
    mqttrig.need_broker()
    import subprocess
    import sys

    sc = {"description": "plug, charge, unplug", "config": dict(simrig.BASE_CONFIG,
                                                                  free_vend=True),
          "steps": [{"at_ms": 300, "do": "plug"}, {"wait": {"status": "Charging"},
                                                    "timeout_ms": 5000},
                    {"after_ms": 1500, "do": "unplug"},
                    {"wait": {"status": "Available"}, "timeout_ms": 3000}],
          "end_after_ms": 300}
    path = tmp_path / "sc.json"
    path.write_text(json.dumps(sc))
    tool = os.path.join(simrig.simlib.ROOT, "tools", "sim.py")
    r = subprocess.run([sys.executable, tool, "--scenario", str(path), "--no-csms", "--mqtt",
                        "127.0.0.1:70000"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "HOST:PORT" in r.stderr, r.stderr
    broker = mqttrig.Broker(tmp_path).start()
    obs = mqttrig.Observer(broker.port, ("wallbox/#",))
    try:
        r = subprocess.run([sys.executable, tool, "--scenario", str(path), "--no-csms",
                            "--mqtt", "127.0.0.1:%d" % broker.port], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "MQTT: 127.0.0.1:%d" % broker.port in r.stdout
        m = obs.wait_for(mqttrig.topic_is("wallbox/status", "Charging"), 5)
        obs.wait_for(mqttrig.topic_is("wallbox/status", "Available"), 5,
                     since=obs.msgs.index(m) + 1)
    finally:
        obs.close()
        broker.stop()
