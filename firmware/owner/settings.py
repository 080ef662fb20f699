# The settings the owner and the installer may change through the web API and MQTT
# (docs/api.md): one flat name each, stored where the config keeps it (config.json: a top-level
# key or a key of a section). A change goes through the same checks as config.json at boot
# (firmware/config.py, limits/conf.py, the sections' own checks): a refused value names the
# setting and changes nothing. Pure logic: the caller (model.py) saves and applies.
from firmware import config
from firmware.limits import conf

OWNER = "owner"
INSTALLER = "installer"

# name: (section or None for a top-level key, key, role that may change it, readable)
# readable False: a secret, accepted but never shown (GET answers whether it is set).
TABLE = {
    # the owner's: the limit loop's `limits` keys, taken at once
    "mode": ("limits", "mode", OWNER, True),
    "current_a": ("limits", "current_a", OWNER, True),
    "enable": ("limits", "enable", OWNER, True),
    "delay_override": ("limits", "delay_override", OWNER, True),
    "offpeak": ("limits", "offpeak", OWNER, True),
    "peak_hours": ("limits", "peak_hours", OWNER, True),
    "tz_offset_min": ("limits", "tz_offset_min", OWNER, True),
    "phase_lock": ("limits", "phases", OWNER, True),  # 1p/3p switching, where the box has it
    # the installer's: the station's limits at once, the rest at the next restart
    "rating_a": (None, "rating_a", INSTALLER, True),
    "max_current_a": (None, "max_current_a", INSTALLER, True),
    "phases": (None, "phases", INSTALLER, True),
    "connector": (None, "connector", INSTALLER, True),
    "cable_a": (None, "cable_a", INSTALLER, True),
    "free_vend": (None, "free_vend", INSTALLER, True),
    "main_fuse_a": ("limits", "main_fuse_a", INSTALLER, True),
    "total_a": ("limits", "total_a", INSTALLER, True),
    "safe_a": ("limits", "safe_a", INSTALLER, True),
    "preset": ("limits", "preset", INSTALLER, True),
    "random_delay_s": ("limits", "random_delay_s", INSTALLER, True),
    "pv_start_w": ("limits", "pv_start_w", INSTALLER, True),
    "pv_stop_w": ("limits", "pv_stop_w", INSTALLER, True),
    "meters": (None, "meters", INSTALLER, True),
    "ocpp_url": ("ocpp", "url", INSTALLER, True),
    "ocpp_id": ("ocpp", "cp_id", INSTALLER, True),
    "ocpp_password": ("ocpp", "password", INSTALLER, False),
    "wifi_ssid": ("network", "ssid", INSTALLER, True),
    "wifi_password": ("network", "password", INSTALLER, False),
}


class SettingsError(ValueError):
    pass


def allowed(name, role):
    spec = TABLE.get(name)
    return spec is not None and (role == INSTALLER or spec[2] == OWNER)


def get(raw, role):
    """{name: value in force} for the names `role` may change; a secret reads as whether it
    is set (name + "_set")."""
    lim = conf.check(raw.get("limits"))
    out = {}
    for name, (sec, key, who, readable) in TABLE.items():
        if who != OWNER and role != INSTALLER:
            continue
        if sec == "limits":
            v = lim.get(key)
        elif sec is None:
            v = raw.get(key, config.SCHEMA[key][0])
        else:
            v = (raw.get(sec) or {}).get(key)
        if readable:
            out[name] = v
        else:
            out[name + "_set"] = bool(v)
    return out


def change(raw, changes, role):
    """The new config dict with `changes` ({name: value}) made, and the sections it touched;
    SettingsError naming every refused setting (nothing changed). `raw`: the config as
    stored (not modified)."""
    if type(changes) is not dict or not changes:
        raise SettingsError("settings: a JSON object of {name: value}, e.g. {\"mode\": \"pv\"}")
    errors = []
    new = dict(raw)
    touched = []
    for name in changes:
        spec = TABLE.get(name)
        if spec is None:
            errors.append("%s: unknown setting" % (name,))
            continue
        if not allowed(name, role):
            errors.append("%s: only the installer may change it" % name)
            continue
        sec, key = spec[0], spec[1]
        v = changes[name]
        msg = _check(sec, key, v)
        if msg is not None:
            errors.append("%s=%s refused: %s" % (name, _show(v, spec[3]), msg))
            continue
        if sec is None:
            new[key] = v
            touched.append(key)
            continue
        if sec not in touched:
            touched.append(sec)
            new[sec] = dict(raw.get(sec) or {})
        if v is None:
            new[sec].pop(key, None)
        else:
            new[sec][key] = v
    if not errors:
        _cross(raw, new, touched, changes, errors)
    if errors:
        raise SettingsError("; ".join(errors))
    return new, touched


def _show(v, readable):
    return repr(v) if readable else "(secret)"


def _check(sec, key, v):
    """What is wrong with one value on its own, or None."""
    if sec is None:
        kind, lo, hi = config.SCHEMA[key][1:4]
        return config.check_value(v, kind, lo, hi)
    if sec == "limits":
        if v is None:
            return None if conf.KEYS[key][0] is None else "has no 'none' value"
        return conf.check_key(key, v)  # its own kinds too (phases: "auto", 1, 3)
    if v is None:
        return None  # a section's key removed: the section's own check says if it is needed
    return None if type(v) is str else "must be text"


def _cross(raw, new, touched, changes, errors):
    """The checks across keys and whole sections, on the new config. Only what the change
    made worse is refused: a section that was already refused stays the installer's to fix."""
    r = new.get("rating_a")
    m = new.get("max_current_a", config.SCHEMA["max_current_a"][0])
    inst = min(r, m) if type(r) is int and type(m) is int else None
    lim = conf.check(new.get("limits"))
    if inst is not None:
        if ("max_current_a" in changes or "rating_a" in changes) and m > r:
            errors.append("max_current_a=%d refused: above rating_a=%d" % (m, r))
        own = lim["current_a"]
        if own is not None and own > inst and "current_a" in changes:
            errors.append("current_a=%d refused: above the installer's limit of %d A "
                          "(max_current_a, rating_a)" % (own, inst))
        if "safe_a" in changes and lim["safe_a"] > inst:
            errors.append("safe_a=%d refused: above the installer's limit of %d A" % (
                lim["safe_a"], inst))
    if "limits" in touched:
        before = conf.check(raw.get("limits")).get("errors", ())
        for e in lim.get("errors", ()):
            errors.append(e if e not in before else e + " (fix it first)")
    for sec in ("ocpp", "network", "meters"):
        if sec in touched or sec in changes:
            before = section_errors(sec, raw.get(sec))
            names = ", ".join([n for n in changes if TABLE[n][0] == sec or n == sec])
            for e in section_errors(sec, new.get(sec)):
                if e not in before:  # named by the setting as the API knows it
                    errors.append(e if e.startswith(names) else "%s: %s" % (names, e))


def section_errors(sec, value):
    """The section's own check (the one its component runs at boot)."""
    if value is None:
        return []
    if sec == "ocpp":
        from firmware.ocpp.cp import check_section

        return check_section(value)
    if sec == "network":
        from firmware.net import Net

        return Net.validate(value)
    from firmware.meters import roles

    return roles.check(value)[2]


# Settings the running firmware takes at once; the others need a restart.
def live(name):
    return TABLE[name][0] == "limits"
