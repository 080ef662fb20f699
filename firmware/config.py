# Installer configuration: a JSON object in /config.json. Every value is checked against its
# allowed range at boot. A bad value is refused with a message naming the key and the range;
# the firmware then runs with the safe default, or - where no default is safe (the EVSE
# rating) - refuses to charge. It never runs with the bad value.
import json

# key: (default, kind, low, high, safe_to_default). kind: "int", "bool" or a tuple of choices.
SCHEMA = {
    "rating_a": (None, "int", 6, 80, False),  # what the hardware is built for; no safe guess
    "max_current_a": (80, "int", 6, 80, True),  # installer limit below the rating
    "connector": (
        "type2_socket", ("type2_socket", "type2_tethered", "type1_tethered"), 0, 0, True,
    ),
    "cable_a": (13, "int", 6, 80, True),  # tethered cable ampacity
    "phases": (3, (1, 3), 0, 0, True),
    "ventilation": (False, "bool", 0, 0, True),  # state D allowed
    "contactor_feedback": (True, "bool", 0, 0, True),
    "lock_feedback": (True, "bool", 0, 0, True),  # the socket lock's sensor is wired
    "free_vend": (True, "bool", 0, 0, True),
    "console": (True, "bool", 0, 0, True),  # service console on the serial port (diag)
    "watchdog_ms": (5000, "int", 1000, 30000, True),
    "reclose_ms": (5000, "int", 1000, 60000, True),  # contactor rest after leaving C
    "reclose_error_ms": (30000, "int", 1000, 600000, True),  # ... and after an error
}


class ConfigError(Exception):
    pass


class Config:
    def __init__(self):
        self.errors = []  # one readable message per refused value
        self.refuse = False  # True when charging must stay off
        for key, spec in SCHEMA.items():
            setattr(self, key, spec[0])

    def set(self, key, value):
        """Check and store one value; on error keep the default and record why."""
        spec = SCHEMA.get(key)
        if spec is None:
            self.errors.append("config: unknown key %r ignored" % key)
            return False
        default, kind, lo, hi, safe = spec
        msg = _check(value, kind, lo, hi)
        if msg is None:
            setattr(self, key, value)
            return True
        action = "using %r" % (default,) if safe else "charging disabled"
        self.errors.append("config: %s=%r refused: %s; %s" % (key, value, msg, action))
        if not safe:
            self.refuse = True
        return False

    def finish(self):
        """Cross-key rules and required keys, after every value is in."""
        for key, spec in SCHEMA.items():
            if getattr(self, key) is None and not self.refuse:
                self.errors.append("config: %s missing (%d..%d); charging disabled" % (
                    key, spec[2], spec[3]))
                self.refuse = True
        return self

    @property
    def limit_da(self):
        """Installer limit in deci-amps (never above the rating)."""
        r = self.rating_a or 0
        return min(r, self.max_current_a) * 10


def _check(value, kind, lo, hi):
    if kind == "int":
        if type(value) is not int:
            return "not an integer, allowed %d..%d" % (lo, hi)
        if not lo <= value <= hi:
            return "out of range, allowed %d..%d" % (lo, hi)
    elif kind == "bool":
        if type(value) is not bool:
            return "allowed true or false"
    elif value not in kind or type(value) is not type(kind[0]):
        return "allowed " + ", ".join([str(k) for k in kind])
    return None


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
