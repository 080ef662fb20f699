# Installer configuration: a JSON object in /config.json. Every value is checked against its
# allowed range at boot. A bad value is refused with a message naming the key and the range;
# the firmware then runs with the default where falling back can only lower the current or
# make the station stricter, and refuses to charge everywhere else. It never runs with the
# bad value, and an unknown key refuses too: it may be a misspelt limit.
import json

from firmware import persist

# key: (default, kind, low, high, safe_to_default). kind: "int", "bool" or a tuple of choices.
# safe_to_default says whether a bad value may fall back to the default: True only where the
# default is the low-current or strict side, so the fallback can never offer more than the
# installer asked for.
SCHEMA = {
    # what the hardware is built for: no default at all
    "rating_a": (None, "int", 6, 80, False),
    # the installer's limit: the default 80 A would lift it to the rating
    "max_current_a": (80, "int", 6, 80, False),
    # a type 1 plug's 150 ohm reads as a 32 A type 2 coding: a wrong guess can raise the
    # offer above the cable's cable_a
    "connector": (
        "type2_socket", ("type2_socket", "type2_tethered", "type1_tethered"), 0, 0, False,
    ),
    "cable_a": (13, "int", 6, 80, True),  # tethered cable ampacity; 13 A is the lowest coding
    "phases": (3, (1, 3), 0, 0, True),  # 3 reads PP 100 ohm as 63 A, lower than 1-phase 70 A
    "ventilation": (False, "bool", 0, 0, True),  # state D allowed; False refuses state D
    "contactor_feedback": (True, "bool", 0, 0, True),  # True checks the mirror: stricter
    "lock_feedback": (True, "bool", 0, 0, True),  # True checks the lock's sensor: stricter
    # True charges without authorisation: a bad value may have meant "authorise first"
    "free_vend": (True, "bool", 0, 0, False),
    "console": (True, "bool", 0, 0, True),  # service console (diag); cannot raise the offer
    # Timing, not current: every value in the range is allowed, the default among them.
    "watchdog_ms": (5000, "int", 1000, 30000, True),
    "reclose_ms": (5000, "int", 1000, 60000, True),  # contactor rest after leaving C
    "reclose_error_ms": (30000, "int", 1000, 600000, True),  # ... and after an error
    # Sections: a JSON object each, checked by the component that owns it when it starts
    # (firmware/ocpp, firmware/net, firmware/meters, firmware/rfid); a component with a bad
    # section stays off and says why. None of them can raise the offer.
    "ocpp": (None, "section", 0, 0, True),  # CSMS url, charge point id, password, CA file
    "network": (None, "section", 0, 0, True),  # Wi-Fi / Ethernet credentials and backoff
    "meters": (None, "section", 0, 0, True),  # the EV meter and the optional grid meter
    "rfid": (None, "section", 0, 0, True),  # the card reader (firmware/rfid.py); off if absent
    "limits": (None, "section", 0, 0, True),  # the limit loop (firmware/limits/conf.py)
    "web": (None, "section", 0, 0, True),  # the web page and JSON API (docs/api.md)
    "mqtt": (None, "section", 0, 0, True),  # the MQTT broker and topics (firmware/mqtt/conf.py)
}

_SUGGEST_MAX_LEN = 40  # longer unknown keys get no suggestion (edit distance is O(n*m))


class ConfigError(Exception):
    pass


class Config:
    def __init__(self):
        self.errors = []  # one readable message per refused value
        self.refuse = False  # True when charging must stay off
        self._given = []  # keys the file set with a valid value
        for key, spec in SCHEMA.items():
            setattr(self, key, spec[0])

    def set(self, key, value):
        """Check and store one value; on error keep the default and record why."""
        spec = SCHEMA.get(key)
        if spec is None:
            near = closest_key(key)
            hint = " (did you mean %r?)" % near if near else ""
            self.errors.append("config: unknown key %r%s; charging disabled" % (key, hint))
            self.refuse = True
            return False
        default, kind, lo, hi, safe = spec
        msg = check_value(value, kind, lo, hi)
        if msg is None:
            setattr(self, key, value)
            self._given.append(key)
            return True
        action = "using %r" % (default,) if safe else "charging disabled"
        self.errors.append("config: %s=%r refused: %s; %s" % (key, value, msg, action))
        if not safe:
            self.refuse = True
        return False

    def finish(self):
        """Cross-key rules and required keys, after every value is in."""
        for key, spec in SCHEMA.items():
            if getattr(self, key) is None and spec[1] != "section" and not self.refuse:
                self.errors.append("config: %s missing (%d..%d); charging disabled" % (
                    key, spec[2], spec[3]))
                self.refuse = True
        r = self.rating_a
        m = self.max_current_a
        if "max_current_a" in self._given and r is not None and m > r:
            self.errors.append("config: max_current_a=%d is above rating_a=%d; the rating "
                               "(%d A) applies" % (m, r, r))
        return self

    @property
    def limit_da(self):
        """Installer limit in deci-amps (never above the rating); 0 while refused."""
        if self.refuse:
            return 0
        r = self.rating_a or 0
        return min(r, self.max_current_a) * 10


def check_value(value, kind, lo, hi):
    """What is wrong with value for kind ("int" lo..hi, "bool", "str" a non-empty name,
    "section" a JSON object, or a tuple of choices), or None. Also used by config sections
    (firmware/meters/roles.py)."""
    if kind == "int":
        if type(value) is not int:
            return "not an integer, allowed %d..%d" % (lo, hi)
        if not lo <= value <= hi:
            return "out of range, allowed %d..%d" % (lo, hi)
    elif kind == "bool":
        if type(value) is not bool:
            return "allowed true or false"
    elif kind == "section":
        if type(value) is not dict:
            return "must be a JSON object"
    elif kind == "str":
        if type(value) is not str or not value:
            return "must be a name (text)"
    elif value not in kind or type(value) is not type(kind[0]):
        return "allowed " + ", ".join([str(k) for k in kind])
    return None


def distance(a, b):
    """Edit distance: the fewest one-character inserts, deletes and changes from a to b."""
    prev = list(range(len(b) + 1))
    for i in range(len(a)):
        cur = [i + 1]
        for j in range(len(b)):
            cost = 0 if a[i] == b[j] else 1
            cur.append(min(prev[j + 1] + 1, cur[j] + 1, prev[j] + cost))
        prev = cur
    return prev[-1]


def closest_key(key):
    """The known key a misspelt `key` most likely meant, or None if none is close."""
    if type(key) is not str or len(key) > _SUGGEST_MAX_LEN:
        return None
    key = key.lower()
    best = None
    best_d = 0
    for name in SCHEMA:
        d = distance(key, name)
        if d <= max(2, len(name) // 3) and (best is None or d < best_d):
            best = name
            best_d = d
    return best


def from_dict(d):
    c = Config()
    if type(d) is not dict:
        c.errors.append("config: top level must be a JSON object; charging disabled")
        c.refuse = True
        return c
    for k in d:
        c.set(k, d[k])
    return c.finish()


def load(path="config.json"):
    """Read and check the config file. Never raises: errors are in Config.errors."""
    try:
        persist.recover(path)  # a copy (tools/deploy.py) cut short by a power cut
        with open(path) as f:
            d = json.load(f)
    except OSError:
        c = Config()
        c.errors.append("config: %s not found; charging disabled" % path)
        c.refuse = True
        return c
    except ValueError as e:
        c = Config()
        c.errors.append("config: %s is not valid JSON (%s); charging disabled" % (path, e))
        c.refuse = True
        return c
    return from_dict(d)
