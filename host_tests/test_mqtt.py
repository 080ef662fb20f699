"""MQTT (docs/mqtt.md): the config section's checks, the packets, the Home Assistant discovery
payloads (CPython), and the client on the real MicroPython unix port against a real broker
(mosquitto): last will, QoS 1 commands, reconnect after a broker restart, the bounded queue."""
import json
import os
import signal
import subprocess
import sys

import pytest

from firmware.mqtt import bridge, conf, ha, proto

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build  # noqa: E402
import mqttrig  # noqa: E402
import simlib  # noqa: E402


# -- the config section ------------------------------------------------------------------------
def test_a_good_section_gets_its_defaults():
    s, errors = conf.check({"host": "broker.lan"})
    assert errors == []
    assert s["port"] == 1883 and s["prefix"] == "wallbox" and s["discovery"] is True
    assert s["node_id"] == "wallbox" and s["keepalive_s"] == 60
    s, errors = conf.check({"host": "b", "tls": True, "ca": "ca.pem", "prefix": "garage/wb"})
    assert errors == [] and s["port"] == 8883 and s["node_id"] == "garage_wb"


@pytest.mark.parametrize("section, key", [
    ({}, "host"),
    ({"host": ""}, "host"),
    ({"host": "b", "port": 70000}, "port"),
    ({"host": "b", "port": "1883"}, "port"),
    ({"host": "b", "prefix": "a/+/b"}, "prefix"),
    ({"host": "b", "prefix": "wb/"}, "prefix"),
    ({"host": "b", "discovery": "yes"}, "discovery"),
    ({"host": "b", "node_id": "my box"}, "node_id"),
    ({"host": "b", "keepalive_s": 5}, "keepalive_s"),
    ({"host": "b", "password": "x"}, "password"),
    ({"host": "b", "tls": True}, "ca"),
    ({"host": "b", "hots": 1}, "hots"),
])
def test_a_bad_section_is_refused_naming_the_key(section, key):
    _, errors = conf.check(section)
    assert errors and any(key in e for e in errors), errors


def test_the_password_is_never_shown():
    _, errors = conf.check({"host": "b", "user": "u", "password": 12345678})
    assert errors and "12345678" not in " ".join(errors)


# -- packets -----------------------------------------------------------------------------------
def test_remaining_length_encoding():
    # MQTT 3.1.1 section 2.2.3's table of boundaries
    for n, b in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                 (16384, b"\x80\x80\x01"), (2097152, b"\x80\x80\x80\x01"),
                 (268435455, b"\xff\xff\xff\x7f")):
        assert proto.varlen(n) == b
    with pytest.raises(proto.MqttError):
        proto.varlen(268435456)


def test_connect_packet_carries_will_and_credentials():
    p = proto.connect("wb", 60, "u", "pw", ("wb/availability", "offline", True))
    assert p[0] == 0x10
    body = p[2:]
    assert body[:7] == b"\x00\x04MQTT\x04"
    flags = body[7]
    # user, password, will retain, will QoS 1, will flag, clean session
    assert flags == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    assert body[8:10] == b"\x00\x3c"
    assert b"wb/availability" in body and b"offline" in body and body.endswith(b"\x00\x02pw")


def test_publish_round_trip():
    p = proto.publish("a/b", "42", retain=True, qos=1, pid=7)
    assert p[0] == 0x33
    topic, payload, qos, pid = proto.parse_publish(p[0], p[2:])
    assert (topic, bytes(payload), qos, pid) == ("a/b", b"42", 1, 7)
    with pytest.raises(proto.MqttError):
        proto.parse_publish(0x30, b"\x00\x09ab")  # topic longer than the packet


# -- Home Assistant discovery ------------------------------------------------------------------
# Home Assistant's abbreviations for the keys used (its MQTT discovery documentation)
ABBR = {"uniq_id": "unique_id", "stat_t": "state_topic", "cmd_t": "command_topic",
        "avty_t": "availability_topic", "dev": "device", "dev_cla": "device_class",
        "unit_of_meas": "unit_of_measurement", "stat_cla": "state_class", "ic": "icon",
        "pl_on": "payload_on", "pl_off": "payload_off", "ops": "options"}
DEV_ABBR = {"ids": "identifiers", "mdl": "model", "sw": "sw_version", "mf": "manufacturer"}
# the keys each component requires (Home Assistant's MQTT sensor, select, number, switch)
REQUIRED = {"sensor": ("state_topic",), "select": ("command_topic", "options"),
            "number": ("command_topic",), "switch": ("command_topic",)}
ENERGY_UNITS = ("Wh", "kWh", "MWh")


def expand(d, base):
    out = {}
    for k, v in d.items():
        k = ABBR.get(k, k)
        if k == "device":
            v = {DEV_ABBR.get(a, a): b for a, b in v.items()}
        elif isinstance(v, str) and k.endswith("_topic") and v.startswith("~"):
            v = base + v[1:]
        out[k] = v
    return out


def check_discovery(topic, payload, disc_prefix, node_id):
    """What Home Assistant checks in one discovery message; returns the expanded config."""
    parts = topic.split("/")
    assert len(parts) == 5 and parts[0] == disc_prefix and parts[4] == "config", topic
    comp = parts[1]
    assert comp in REQUIRED, topic
    assert parts[2] == node_id
    ok = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    assert set(parts[2]) <= ok and set(parts[3]) <= ok, topic
    raw = json.loads(payload)
    c = expand(raw, raw.get("~", ""))
    for key in REQUIRED[comp]:
        assert key in c, (topic, key)
    assert c["unique_id"] and c["device"]["identifiers"]
    for k, v in c.items():
        if k.endswith("_topic"):
            assert "+" not in v and "#" not in v and "~" not in v, (k, v)
    if comp == "select":
        assert c["options"] and all(isinstance(o, str) for o in c["options"])
    if comp == "number":
        assert c["min"] < c["max"] and c["step"] > 0
    if c.get("device_class") == "energy":  # what the Energy dashboard takes
        assert c["state_class"] in ("total", "total_increasing")
        assert c["unit_of_measurement"] in ENERGY_UNITS
    if c.get("device_class") == "power":
        assert c["unit_of_measurement"] in ("W", "kW") and c["state_class"] == "measurement"
    if c.get("device_class") == "current" and comp == "sensor":
        assert c["unit_of_measurement"] == "A" and c["state_class"] == "measurement"
    return comp, c


def test_discovery_payloads_are_valid_for_home_assistant():
    dev = {"name": "Wallbox garage", "model": "sim", "sw_version": "0.8.0"}
    seen = {}
    for i in range(len(ha.ENTITIES)):
        t = ha.topic("homeassistant", "garage", i)
        comp, c = check_discovery(t, ha.config(i, "garage/wb", "garage", 16, dev),
                                  "homeassistant", "garage")
        seen[t.split("/")[3]] = (comp, c)
    # the entities a user expects, with what the Energy dashboard needs
    assert seen["session_energy"][1]["device_class"] == "energy"
    assert seen["energy"][1]["state_class"] == "total_increasing"
    assert seen["power"][1]["device_class"] == "power"
    assert seen["mode"][0] == "select" and seen["mode"][1]["options"] == ["fast", "pv", "minpv"]
    assert seen["current"][0] == "number" and seen["current"][1]["max"] == 16
    assert seen["charge"][0] == "switch"
    assert seen["status"][1]["state_topic"] == "garage/wb/status"
    assert len({c["unique_id"] for _, c in seen.values()}) == len(seen)


# -- commands ----------------------------------------------------------------------------------
def test_commands_become_settings_or_name_what_is_wrong():
    assert bridge.command("mode", "pv") == {"mode": "pv"}
    assert bridge.command("current_a", "10") == {"current_a": 10}
    assert bridge.command("current_a", "10.0") == {"current_a": 10}
    assert bridge.command("enable", "OFF") == {"enable": False}
    assert bridge.command("", '{"mode": "fast", "current_a": 8}') == {"mode": "fast",
                                                                       "current_a": 8}
    for name, text, word in (("current_a", "ten", "current_a"), ("current_a", "9.5", "whole"),
                             ("enable", "maybe", "enable"), ("", "[1]", "JSON object"),
                             ("", "{", "JSON object"), ("phase", "1", "unknown command")):
        with pytest.raises(ValueError) as e:
            bridge.command(name, text)
        assert word in str(e.value)


# -- the client on MicroPython against mosquitto -------------------------------------------
@pytest.fixture
def broker(tmp_path):
    mqttrig.need_broker()
    b = mqttrig.Broker(tmp_path).start()
    yield b
    b.stop()


def _rig(port, seconds, *more, keepalive=10):
    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy_dir)
    assert not errors
    env = dict(os.environ, MICROPYPATH=mpy_dir + os.pathsep + ".frozen",
               RIG_KEEPALIVE=str(keepalive))
    return subprocess.Popen(
        [simlib.micropython_exe(), os.path.join(ROOT, "host_tests", "mpy",
                                                "mqtt_client_rig.py"), str(port), str(seconds)]
        + [str(m) for m in more], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env)


def test_client_will_commands_and_broker_restart(broker):
    obs = mqttrig.Observer(broker.port, ("rig/#",))
    p = _rig(broker.port, 30)
    try:
        obs.wait_for(mqttrig.topic_is("rig/availability", "online"), 5)
        obs.wait_for(mqttrig.topic_is("rig/count"), 5)
        k = len(obs.msgs)
        obs.publish("rig/mode/set", "pv", qos=1)  # QoS 1: the client must PUBACK it
        obs.wait_for(mqttrig.topic_is("rig/echo", "mode:pv"), 5, since=k)
        # the broker restarts with an empty store: the client comes back by itself and
        # publishes its retained state again
        broker.stop()
        broker.start()
        k = len(obs.msgs)
        obs.wait_for(lambda m: m[0] == "rig/availability" and m[1] == "online", 10, since=k)
        obs.wait_for(mqttrig.topic_is("rig/count"), 5, since=k)
        obs.publish("rig/current_a/set", "12", qos=1)
        obs.wait_for(mqttrig.topic_is("rig/echo", "current_a:12"), 5, since=k)
        # killed without a DISCONNECT: the broker publishes the last will
        k = len(obs.msgs)
        p.send_signal(signal.SIGKILL)
        obs.wait_for(mqttrig.topic_is("rig/availability", "offline"), 5, since=k)
    finally:
        p.kill()
        out = p.communicate()[0]
        obs.close()
    assert "mqtt: connected" in out, out


def test_client_queue_stays_bounded_while_the_broker_is_away(broker):
    broker.stop()  # never there: every message waits in the queue
    p = _rig(broker.port, 3, 8)
    out = p.communicate(timeout=30)[0]
    info = json.loads(out.strip().splitlines()[-1])
    # 30 counts and 30 messages on 30 different topics were queued; at most 8 are held
    assert info["queued"] <= 8 and info["dropped"] >= 20, info
    assert not info["connected"] and "REFUSED" in str(info["last_error"]).upper(), info


@pytest.mark.parametrize("case", ["good", "other CA", "wrong name"])
def test_client_tls_checks_the_broker_as_the_csms_link(tmp_path, case):
    mqttrig.need_broker()
    import certs

    c = certs.make_certs(str(tmp_path / "certs"))
    server = (c["wrong_cert"], c["wrong_key"]) if case == "wrong name" else (c["cert"], c["key"])
    b = mqttrig.Broker(tmp_path, tls=server).start()
    ca = c["other_ca_pem"] if case == "other CA" else c["ca_pem"]
    p = _rig(b.port, 2, 24, ca)
    try:
        out = p.communicate(timeout=30)[0]
    finally:
        p.kill()
        b.stop()
    info = json.loads(out.strip().splitlines()[-1])
    if case == "good":
        assert info["connects"] == 1 and info["sent"] >= 5, out
    else:  # never connected, never sent a byte of state to an unverified broker
        assert info["connects"] == 0 and info["sent"] == 0, out
        assert "certificate" in info["last_error"].lower(), out  # says why


def test_client_credentials(tmp_path):
    mqttrig.need_broker()
    b = mqttrig.Broker(tmp_path, user="wallbox", password="s3cret-pw").start()
    try:
        good = _rig(b.port, 1, 24, "-", "wallbox", "s3cret-pw")
        bad = _rig(b.port, 1, 24, "-", "wallbox", "guess")
        good_out = good.communicate(timeout=30)[0]
        bad_out = bad.communicate(timeout=30)[0]
    finally:
        b.stop()
    info = json.loads(good_out.strip().splitlines()[-1])
    assert info["connects"] == 1 and info["sent"] >= 5, good_out
    info = json.loads(bad_out.strip().splitlines()[-1])
    assert info["connects"] == 0 and info["sent"] == 0, bad_out
    assert "not authorised" in info["last_error"] or "password" in info["last_error"], bad_out


@pytest.mark.slow  # ~6 s
def test_client_finds_a_half_open_link_by_its_keepalive(broker):
    # a black hole between the client and the broker: neither side hears the other. With a
    # keepalive of 2 s the client pings after 1 s of silence and gives the link up after 3 s
    # without a byte; the broker gives it up after 1.5 x 2 s too and publishes the will.
    from netproxy import ProxyThread

    obs = mqttrig.Observer(broker.port, ("rig/#",))
    px = ProxyThread("127.0.0.1", broker.port).start()
    p = _rig(px.port, 10, keepalive=2)
    try:
        obs.wait_for(mqttrig.topic_is("rig/availability", "online"), 5)
        k = len(obs.msgs)
        px.set_mode("stall")
        obs.wait_for(mqttrig.topic_is("rig/availability", "offline"), 6, since=k)
        px.set_mode("pass")
        obs.wait_for(mqttrig.topic_is("rig/availability", "online"), 6, since=k)
        k = len(obs.msgs)
        obs.publish("rig/mode/set", "fast", qos=1)
        obs.wait_for(mqttrig.topic_is("rig/echo", "mode:fast"), 5, since=k)
    finally:
        p.kill()
        out = p.communicate(timeout=10)[0]
        px.stop()
        obs.close()
    assert "no answer from the broker for 3 s" in out, out


class HostileBroker:
    """A broker that accepts CONNECT, answers CONNACK, then sends `evil` (bytes) on every
    connection and afterwards a good PUBLISH rig/mode/set "after"; counts connections."""

    def __init__(self, evil):
        import socket
        import threading

        self.evil = evil
        self.connections = 0
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import threading

        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        try:
            c.recv(1024)  # CONNECT
            c.sendall(b"\x20\x02\x00\x00")
            c.sendall(self.evil)
            c.sendall(proto.publish("rig/mode/set", "after"))
            c.settimeout(2)
            while c.recv(4096):  # its publishes, until it closes
                pass
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.srv.close()


@pytest.mark.parametrize("evil, why", [
    (b"\x30\xff\xff\xff\xff\x7f", "bad remaining length"),  # five length bytes
    (b"\x30\x05\x00\x09abc", "topic longer"),  # a topic longer than its packet
    (b"\x34\x06\x00\x01a\x00\x01x", "QoS 2"),  # QoS 2 on a QoS 1 subscription
    (b"\x30\x05\x00\x02\xff\xfex", "not UTF-8"),  # a topic that is not UTF-8
    (proto.publish("rig/big/set", "x" * 100000), None),  # too big: skipped, link kept
    (b"\x90\x03\x00\x01\x80", None),  # SUBACK refusing the subscription: logged
    (b"\x50\x02\x00\x01", None),  # a packet the client never expects (PUBREC): ignored
], ids=["length", "topic", "qos2", "utf8", "big", "suback", "pubrec"])
def test_client_survives_a_hostile_broker(evil, why):
    hb = HostileBroker(evil)
    p = _rig(hb.port, 1)
    try:
        out = p.communicate(timeout=30)[0]
    finally:
        p.kill()
        hb.close()
    assert "Traceback" not in out, out
    info = json.loads(out.strip().splitlines()[-1])  # the rig ran its 1 s to the end
    if why is None:  # the link goes on: the good message after it arrives, once connected
        assert hb.connections == 1 and info["received"] == 1, (info, out)
    else:  # the connection is dropped, saying why, and made again (backoff), each time
        assert hb.connections >= 2 and why in info["last_error"], (info, out)


def test_deploy_refuses_a_bad_mqtt_section(tmp_path):
    import deploy_plan

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"rating_a": 16, "mqtt": {"host": "b", "prefix": "a/#"}}))
    with pytest.raises(deploy_plan.DeployError, match=r"mqtt: prefix='a/#' refused"):
        deploy_plan.config_text(str(path))
    path.write_text(json.dumps({"rating_a": 16, "mqtt": {"host": "b", "prefix": "a/b"}}))
    assert b'"prefix": "a/b"' in deploy_plan.config_text(str(path))
