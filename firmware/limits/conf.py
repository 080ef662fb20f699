# The `limits` config section (docs/deploy.md): checked here when the limit loop starts. A
# refused value is named with its range; the arbiter then caps the offer at the safe current
# (a bad value never raises the current), and the rest of the section still applies.
from firmware.config import check_value

# key: (default, kind, low, high). None as a default: off / derived.
KEYS = {
    "main_fuse_a": (None, "int", 6, 630),  # the main fuse per phase; needs a grid meter
    "total_a": (None, "int", 6, 1890),  # SmartEVSE MaxSumMains: the sum over the phases
    "safe_a": (6, "int", 0, 80),  # the fallback while a needed input is stale or bad
    "meter_timeout_s": (5, "int", 1, 60),  # a grid reading older than this is stale
    "mode": ("fast", ("fast", "pv", "minpv"), 0, 0),
    "current_a": (None, "int", 6, 80),  # the owner's current (web, MQTT); None: no own limit
    "enable": (True, "bool", 0, 0),  # the owner's charge switch: False pauses (0 A)
    "pv_start_w": (None, "int", 0, 100000),  # surplus to start (default: 6 A on the phases)
    "pv_stop_w": (None, "int", 0, 100000),  # surplus below which pv stops (same default)
    "pv_start_s": (60, "int", 0, 3600),  # evcc's enable delay
    "pv_stop_s": (180, "int", 0, 3600),  # evcc's disable delay
    "min_charge_s": (120, "int", 0, 3600),  # pv: shortest charge before a stop
    "min_pause_s": (60, "int", 0, 3600),  # shortest pause before a resume
    "resume_hyst_a": (1, "int", 0, 10),  # resume at 6 A + this
    "ramp_pct": (50, "int", 1, 100),  # an increase closes this share of the gap
    "preset": ("none", ("none", "uk"), 0, 0),
    "random_delay_s": (None, "int", 0, 1800),  # UK default 600, elsewhere 0
    "delay_override": (False, "bool", 0, 0),  # the owner's override of the delay
    "offpeak": (None, "bool", 0, 0),  # UK default schedule: default on with the uk preset
    "peak_hours": ("8-11,16-22", "hours", 0, 0),  # the schedule's weekday peak hours (owner)
    "tz_offset_min": (0, "int", -720, 840),  # local - UTC, minutes (not with uk: GMT/BST)
    "dso_timeout_s": (0, "int", 0, 3600),  # > 0: a DSO signal is expected this often
    "freq_response": (False, "bool", 0, 0),
    "freq_start_chz": (4980, "int", 4700, 5000),  # below: reduce (0.01 Hz)
    "freq_stop_chz": (4950, "int", 4700, 5000),  # at or below: 0 A
    # the board's temperature (board.temperature_c): full current up to start, 0 A at stop
    # (OpenEVSE halves the current at 65 C in the enclosure and cuts it further at 68 C)
    "thermal_start_c": (65, "int", 20, 120),
    "thermal_stop_c": (80, "int", 21, 125),
    "period_ms": (500, "int", 100, 5000),  # the loop's period
    # 1p/3p switching (a board with a phase switch, a 3-phase supply; docs/limits.md)
    "phases": ("auto", "phases", 0, 0),  # the owner's lock: "auto", 1 or 3
    "phase_pause_s": (12, "int", 10, 600),  # main contactor open this long around a switch
    "phase_up_s": (60, "int", 0, 3600),  # 3 phases possible this long before 1p -> 3p
    "phase_down_s": (180, "int", 0, 3600),  # 3 phases too much this long before 3p -> 1p
    "phase_min_s": (300, "int", 0, 3600),  # shortest time between two switches
    "phase_max": (4, "int", 0, 100),  # switches per session (plug-in)
    "phase_ignore_s": (60, "int", 0, 600),  # phase currents ignored after a switch (evcc)
}


def check_key(key, v):
    """What is wrong with one value of a known key on its own, or None (the owner's settings
    check a change with it too: firmware/owner/settings.py)."""
    spec = KEYS[key]
    if spec[1] == "hours":
        return None if peak_mask(v) is not None else (
            "allowed up to 4 ranges of whole hours H1-H2, 0 <= H1 < H2 <= 24, e.g. "
            "\"8-11,16-22\", or \"\" for none")
    if spec[1] == "phases":
        return None if v == "auto" or (type(v) is int and v in (1, 3)) else (
            "allowed \"auto\", 1, 3")
    return check_value(v, spec[1], spec[2], spec[3])


def peak_mask(text):
    """The hours of "8-11,16-22" as a 24-bit mask (bit h: hour h is peak), or None if the
    text is not up to 4 ranges H1-H2 with 0 <= H1 < H2 <= 24 ("": no peak hours)."""
    if type(text) is not str or len(text) > 40:
        return None
    mask = 0
    parts = text.split(",") if text.strip() else []
    if len(parts) > 4:
        return None
    for part in parts:
        ab = part.strip().split("-")
        if len(ab) != 2 or not ab[0].strip().isdigit() or not ab[1].strip().isdigit():
            return None
        a, b = int(ab[0]), int(ab[1])
        if not 0 <= a < b <= 24:
            return None
        for h in range(a, b):
            mask |= 1 << h
    return mask


def check(section):
    """The section as a dict with every key (defaults filled in) and an "errors" list of
    readable messages. section None: all defaults, no errors."""
    s = {}
    errors = []
    for k in KEYS:
        s[k] = KEYS[k][0]
    if section is None:
        section = {}
    if type(section) is not dict:
        errors.append("limits: must be a JSON object")
        section = {}
    for k in section:
        spec = KEYS.get(k)
        if spec is None:
            errors.append("limits: unknown key %r" % (k,))
            continue
        v = section[k]
        if v is None and spec[0] is None:
            continue
        msg = check_key(k, v)
        if msg is None:
            s[k] = v
        else:
            errors.append("limits: %s=%r refused: %s" % (k, v, msg))
    s["peak_mask"] = peak_mask(s["peak_hours"])
    uk = s["preset"] == "uk"
    if s["random_delay_s"] is None:
        s["random_delay_s"] = 600 if uk else 0
    if s["offpeak"] is None:
        s["offpeak"] = uk
    f, t = s["main_fuse_a"], s["total_a"]
    if f is not None and t is not None and f > t:
        errors.append("limits: main_fuse_a=%d is above total_a=%d (the supply's sum over "
                      "the phases)" % (f, t))
    a, b = s["pv_start_w"], s["pv_stop_w"]
    if a is not None and b is not None and b > a:
        errors.append("limits: pv_stop_w=%d is above pv_start_w=%d (it would flap)" % (b, a))
        s["pv_stop_w"] = a
    if s["freq_stop_chz"] >= s["freq_start_chz"]:
        errors.append("limits: freq_stop_chz=%d must be below freq_start_chz=%d" % (
            s["freq_stop_chz"], s["freq_start_chz"]))
        s["freq_stop_chz"] = s["freq_start_chz"] - 1
    if s["thermal_stop_c"] <= s["thermal_start_c"]:
        errors.append("limits: thermal_stop_c=%d must be above thermal_start_c=%d" % (
            s["thermal_stop_c"], s["thermal_start_c"]))
        s["thermal_stop_c"] = s["thermal_start_c"] + 1
    for m in errors:
        if "safe_a" in m:
            s["safe_a"] = 0  # the fallback itself refused: the safest one
    if errors:
        s["errors"] = errors
        s["error_text"] = errors[0] + (" (+%d more)" % (len(errors) - 1)
                                       if len(errors) > 1 else "")
    return s


def phase_pause_ms(section):
    """The pause around a phase switch (ms) from a `limits` section (the charge controller
    reads it; a refused value gives the default)."""
    return check(section)["phase_pause_s"] * 1000
