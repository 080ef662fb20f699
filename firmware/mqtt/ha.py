# Home Assistant MQTT discovery (docs/mqtt.md): one retained config message per entity on
# <discovery_prefix>/<component>/<node_id>/<object_id>/config. Home Assistant requires
# state_topic for a sensor, command_topic for a number and a switch, command_topic and
# options for a select; the Energy dashboard takes a sensor with device_class energy, a
# unit of Wh or kWh and state_class total or total_increasing. "~" in a topic stands for the
# base topic given as "~" (Home Assistant expands it). Pure: dicts and text, no I/O.
import json

MODES = ("fast", "pv", "minpv")

# object_id: (component, name, state topic, extra keys)
_W = {"dev_cla": "power", "unit_of_meas": "W", "stat_cla": "measurement"}
_A = {"dev_cla": "current", "unit_of_meas": "A", "stat_cla": "measurement"}
_KWH = {"dev_cla": "energy", "unit_of_meas": "kWh", "stat_cla": "total_increasing"}
ENTITIES = (
    ("status", "sensor", "Status", "status", {"ic": "mdi:ev-station"}),
    ("power", "sensor", "Power", "power_w", _W),
    ("current_l1", "sensor", "Current L1", "current_l1_a", _A),
    ("current_l2", "sensor", "Current L2", "current_l2_a", _A),
    ("current_l3", "sensor", "Current L3", "current_l3_a", _A),
    ("offer", "sensor", "Offered current", "offer_a", _A),
    ("offer_reason", "sensor", "Offer reason", "offer_reason", {"ic": "mdi:information"}),
    # a session's energy starts again at 0: total_increasing takes a drop as a new cycle
    ("session_energy", "sensor", "Session energy", "session_energy_kwh", _KWH),
    ("energy", "sensor", "Total energy", "energy_kwh", _KWH),
    ("mode", "select", "Charge mode", "mode", None),
    ("current", "number", "Charge current", "current_a", None),
    ("charge", "switch", "Charging enabled", "enable", None),
)


def topic(disc_prefix, node_id, i):
    e = ENTITIES[i]
    return "%s/%s/%s/%s/config" % (disc_prefix, e[1], node_id, e[0])


def config(i, prefix, node_id, max_a, device):
    """The discovery payload (JSON text) of entity i. device: name, model, sw_version."""
    obj, comp, name, state, extra = ENTITIES[i]
    d = {"~": prefix, "name": name, "uniq_id": node_id + "_" + obj, "stat_t": "~/" + state,
         "avty_t": "~/availability",
         "dev": {"ids": [node_id], "name": device.get("name", node_id),
                 "mdl": device.get("model", ""), "sw": device.get("sw_version", ""),
                 "mf": "wallbox firmware"}}
    if comp == "select":
        d["cmd_t"] = "~/" + state + "/set"
        d["options"] = list(MODES)
    elif comp == "number":
        d["cmd_t"] = "~/" + state + "/set"
        d["min"] = 6
        d["max"] = max_a
        d["step"] = 1
        d["unit_of_meas"] = "A"
        d["dev_cla"] = "current"
    elif comp == "switch":
        d["cmd_t"] = "~/" + state + "/set"
        d["pl_on"] = "ON"
        d["pl_off"] = "OFF"
    elif extra:
        d.update(extra)
    return json.dumps(d)
