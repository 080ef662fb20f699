# The "mqtt" config section (docs/mqtt.md): the broker, the credentials, the topics. Checked
# when MQTT starts; a bad section leaves MQTT off with one message per refused key (MQTT
# never raises the offer, so nothing else is refused).
from firmware.config import check_value

# key: (default, kind, low, high); kind as firmware.config.check_value, or "topic" (a topic
# level path: no wildcards, no empty level) or "id" (letters, digits, '_' and '-': Home
# Assistant's node_id).
KEYS = {
    "host": (None, "str", 0, 0),  # required
    "port": (None, "int", 1, 65535),  # default 1883, 8883 with tls
    "user": (None, "str", 0, 0),
    "password": (None, "str", 0, 0),  # only with a user (MQTT 3.1.1, 3.1.2.9)
    "prefix": ("wallbox", "topic", 1, 64),
    "discovery": (True, "bool", 0, 0),  # Home Assistant MQTT discovery
    "discovery_prefix": ("homeassistant", "topic", 1, 64),
    "node_id": (None, "id", 1, 32),  # default: the prefix with '/' as '_'
    "keepalive_s": (60, "int", 10, 3600),
    "period_s": (5, "int", 1, 3600),  # measurements at most this often
    "tls": (False, "bool", 0, 0),
    "ca": (None, "str", 0, 0),  # the broker's CA (PEM or DER file): required with tls
}

_ID = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def _topic(v, lo, hi):
    if type(v) is not str:
        return "must be text"
    if not lo <= len(v) <= hi:
        return "%d..%d characters" % (lo, hi)
    if "+" in v or "#" in v or "\0" in v:
        return "no wildcards (+, #) in a topic"
    if v[0] == "/" or v[-1] == "/" or "//" in v:
        return "no empty topic level (leading, trailing or double '/')"
    return None


def _id(v, lo, hi):
    if type(v) is not str or not lo <= len(v) <= hi or not all(c in _ID for c in v):
        return "%d..%d letters, digits, '_' or '-'" % (lo, hi)
    return None


def check(section):
    """(settings with every key filled in, [errors]); each error names the key."""
    if type(section) is not dict:
        return None, ["mqtt: must be a JSON object, got %r" % (section,)]
    out = {}
    errors = []
    for key in section:
        if key not in KEYS:
            errors.append("mqtt: unknown key %r" % (key,))
    for key, (default, kind, lo, hi) in KEYS.items():
        v = section.get(key)
        if v is None:
            out[key] = default
            continue
        if kind == "topic":
            msg = _topic(v, lo, hi)
        elif kind == "id":
            msg = _id(v, lo, hi)
        else:
            msg = check_value(v, kind, lo, hi)
        if msg is not None:
            shown = "(secret)" if key == "password" else repr(v)
            errors.append("mqtt: %s=%s refused: %s" % (key, shown, msg))
        out[key] = v
    if out["host"] is None:
        errors.append("mqtt: host missing (the broker's name or address)")
    if out["password"] is not None and out["user"] is None:
        errors.append("mqtt: password given without user (MQTT sends a password only "
                      "with a user name)")
    if out["tls"] and not out["ca"]:
        errors.append("mqtt: tls needs ca (the broker's CA certificate file): the broker is "
                      "never used unverified")
    if out["port"] is None:
        out["port"] = 8883 if out["tls"] else 1883
    if out["node_id"] is None and not errors:
        out["node_id"] = "".join("_" if c not in _ID else c for c in out["prefix"])
    return out, errors
