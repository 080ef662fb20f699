# Config section "meters" -> meter sources, Readings and tasks (docs/meters.md):
#   {"ev":   {"type": "modbus", "profile": "sdm630", "addr": 1, "inverted": false,
#             "period_ms": 1000},
#    "grid": {"type": "s0", "imp_per_kwh": 1000} | {"type": "ct"} | ... (optional),
#    "bus":  {"uart": 1, "baud": 9600, "parity": "N", "timeout_ms": 300, "retries": 2}}
# ev feeds board.meter_reading (what the charge controller reads), grid board.grid_reading
# (the limit loop's input). Every Modbus meter shares one bus (one ModbusMaster). Each bad
# value is reported with its key and range; that meter is then off, the others still run.
# The board supplies the hardware: meter_bus(uart, baud, parity) -> (uart, de_pin),
# s0_pin(role, imp_per_kwh) -> Pin, ct_input(role) -> dict (burst, phases, offset_code,
# ua_per_code, rate_hz, samples, cal).
from firmware import boardcaps
from firmware.config import check_value
from firmware.meter import Reading
from firmware.meters.energy import EnergyStore
from firmware.meters.task import MeterTask

ROLES = ("ev", "grid")
TYPES = ("modbus", "s0", "ct")
BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITY = {"N": None, "E": 0, "O": 1}  # machine.UART's parity argument
READING_ATTR = {"ev": "meter_reading", "grid": "grid_reading"}
MAX_KW = {"ev": 60, "grid": 250}  # energy guard's power ceiling by default

# key: (default, kind, low, high); kind "int", "bool", "str" or a tuple of choices.
# REQUIRED as the default: the key must be given.
REQUIRED = "required"
_COMMON = {"type": (REQUIRED, TYPES, 0, 0), "period_ms": (1000, "int", 200, 60000),
           "max_kw": (None, "int", 1, 1000)}
_SPEC = {
    "modbus": {"profile": (REQUIRED, "str", 0, 0), "addr": (1, "int", 1, 247),
               "baud": (None, BAUDS, 0, 0), "inverted": (False, "bool", 0, 0)},
    "s0": {"imp_per_kwh": (1000, "int", 1, 100000), "save_wh": (10, "int", 1, 1000),
           "debounce_ms": (15, "int", 10, 25)},
    "ct": {"volts": (230, "int", 100, 300), "save_wh": (10, "int", 1, 1000)},
}
_BUS = {"uart": (1, "int", 0, 9), "baud": (None, BAUDS, 0, 0),
        "parity": ("N", ("N", "E", "O"), 0, 0), "timeout_ms": (300, "int", 50, 5000),
        "retries": (2, "int", 0, 5)}


def check_section(where, d, spec, errors):
    """Values of one object against spec; None (and a message per bad key) if any is bad."""
    if type(d) is not dict:
        errors.append("meters: %s must be a JSON object, got %r" % (where, d))
        return None
    out = {}
    ok = True
    for key in d:
        if key not in spec:
            errors.append("meters: %s.%s unknown (known: %s)" % (
                where, key, ", ".join(sorted(spec))))
            ok = False
    for key, (default, kind, lo, hi) in spec.items():
        if key not in d:
            if default == REQUIRED:
                errors.append("meters: %s.%s missing" % (where, key))
                ok = False
            out[key] = default
            continue
        msg = check_value(d[key], kind, lo, hi)
        if msg is not None:
            errors.append("meters: %s.%s=%r refused: %s" % (where, key, d[key], msg))
            ok = False
        out[key] = d[key]
    return out if ok else None


def check(section, profiles=None):
    """(meters {role: checked dict}, bus dict or None, errors). A meter with any bad value is
    left out; `profiles`: the known Modbus profile names (None: not checked here)."""
    errors = []
    meters = {}
    if section is None:
        return meters, None, errors
    if type(section) is not dict:
        return meters, None, ["meters: must be a JSON object; no meter runs"]
    for key in section:
        if key not in ROLES and key != "bus":
            errors.append("meters: %s unknown (known: bus, ev, grid); ignored" % key)
    for role in ROLES:
        d = section.get(role)
        if d is None:
            continue
        kind = d.get("type") if type(d) is dict else None
        if kind not in TYPES:
            errors.append("meters: %s.type=%r refused: allowed %s; the %s meter is off" % (
                role, kind, ", ".join(TYPES), role))
            continue
        spec = dict(_COMMON)
        spec.update(_SPEC[kind])
        n = len(errors)
        m = check_section(role, d, spec, errors)
        if m is not None and kind == "modbus" and profiles is not None and (
                m["profile"] not in profiles):
            errors.append("meters: %s.profile=%r unknown (known: %s)" % (
                role, m["profile"], ", ".join(sorted(profiles))))
            m = None
        if m is not None:
            m = _physics(role, kind, m, errors)
        if m is None:
            errors[n:] = [e + "; the %s meter is off" % role for e in errors[n:]]
            continue
        meters[role] = m
    bus = None
    modbus = [r for r in ROLES if r in meters and meters[r]["type"] == "modbus"]
    if modbus or "bus" in section:
        n = len(errors)
        bus = check_section("bus", section.get("bus", {}), _BUS, errors)
        for role in modbus:
            b = meters[role]["baud"]
            if bus is not None and b is not None:
                if bus["baud"] is None:
                    bus["baud"] = b
                elif bus["baud"] != b:
                    errors.append("meters: %s.baud=%d differs from the bus's %d (one bus, one "
                                  "speed)" % (role, b, bus["baud"]))
                    bus = None
        if bus is not None and bus["baud"] is None:
            bus["baud"] = 9600
        if bus is None:
            errors[n:] = [e + "; the Modbus meters are off" for e in errors[n:]]
            for role in modbus:
                del meters[role]
    return meters, bus, errors


def _physics(role, kind, m, errors):
    """What the values allow physically: a CT knows no direction (so no grid role), an S0
    input counts impulses of at least debounce_ms on and off (so a ceiling on their rate)."""
    if kind == "ct" and role == "grid":
        errors.append("meters: grid.type='ct' refused: a current transformer measures no "
                      "direction, so feed-in would count as import; use a Modbus meter for "
                      "the grid role")
        return None
    if kind == "s0":
        kw = m["max_kw"] or MAX_KW[role]
        per_h = m["imp_per_kwh"] * kw  # impulses per hour at the ceiling
        if per_h * 2 * m["debounce_ms"] > 3600000:
            errors.append("meters: %s.imp_per_kwh=%d refused: at max_kw=%d that is %d "
                          "impulses/s, and an input with debounce_ms=%d counts at most %d/s "
                          "(impulses of >= %d ms on and off): set max_kw to the most the "
                          "circuit can draw" % (role, m["imp_per_kwh"], kw, (per_h + 3599) // 3600,
                                                m["debounce_ms"], 500 // m["debounce_ms"],
                                                m["debounce_ms"]))
            return None
    return m


def _profiles():
    try:
        from firmware.meters.profiles import PROFILES

        return PROFILES
    except ImportError:
        return None


class Meters:
    """The configured meters: tasks (role order), by role, the shared Modbus master."""

    def __init__(self):
        self.tasks = []
        self.by_role = {}
        self.bus = None  # ModbusMaster shared by every Modbus meter
        self.errors = []

    def get(self, role):
        return self.by_role.get(role)


def build(board, section, log=print, clock=None):
    """Check the section and make each meter's source, Reading (on the board) and task.
    Never raises: what cannot be built is in .errors (and logged) and stays off."""
    boardcaps.probe(board)
    ms = Meters()
    modbus = type(section) is dict and any(
        type(m) is dict and m.get("type") == "modbus" for m in section.values())
    meters, bus, errors = check(section, _profiles() if modbus else None)
    ms.errors = errors
    for role in ROLES:
        m = meters.get(role)
        if m is None:
            continue
        try:
            task = _make(board, role, m, bus, ms, log, clock)
        except Exception as e:  # noqa: BLE001 - a board without the input, a bad pin
            ms.errors.append("meters: %s %s meter cannot start: %s; the %s meter is off" % (
                role, m["type"], e, role))
            continue
        ms.tasks.append(task)
        ms.by_role[role] = task
    for msg in ms.errors:
        log(msg)
    if bus is not None and modbus:
        for msg in serial_hints(meters, bus, _profiles() or {}):
            log(msg)
    return ms


def serial_hints(meters, bus, profiles):
    """A line per Modbus meter whose model leaves the factory on another line than the
    bus's (a meter still on its factory line would never answer): a hint, not an error."""
    out = []
    for role in ROLES:
        m = meters.get(role)
        if m is None or m["type"] != "modbus":
            continue
        ser = profiles.get(m["profile"], {}).get("serial")
        if ser and (ser[0], ser[1]) != (bus["baud"], bus["parity"]):
            out.append("meters: %s meter %s leaves the factory at %d 8%s%d; the bus runs "
                       "%d 8%s1: set the meter to the bus's line" % (
                           role, m["profile"], ser[0], ser[1], ser[2], bus["baud"],
                           bus["parity"]))
    return out


def _make(board, role, m, bus, ms, log, clock):
    kind = m["type"]
    save = m.get("save_wh", 10)
    if kind == "modbus":
        if ms.bus is None:
            ms.bus = _master(board, bus)
        from firmware.meters.modbus_meter import ModbusMeter

        source = ModbusMeter(ms.bus, m["addr"], m["profile"], m["inverted"])
        store = EnergyStore("energy_" + role, step_wh=save, fs=_backend(board, role))
        res_wh = source.res_wh
    elif kind == "s0":
        from firmware.meters.s0 import S0Meter

        if board.s0_pin is None:
            raise ValueError("this board has no S0 input")
        store = EnergyStore("energy_" + role, step_wh=save, fs=_backend(board, role))
        pin = board.s0_pin(role, m["imp_per_kwh"])
        counter = None
        if board.s0_counter is not None:  # impulses counted in hardware (ESP32: PCNT)
            counter, why = board.s0_counter(pin, 0)
            if why:
                log("meters: %s %s" % (role, why))
        source = S0Meter(pin, m["imp_per_kwh"], store, debounce_ms=m["debounce_ms"],
                         clock=clock, counter=counter)
        store = None  # the register is the source's own: no swap offset
        res_wh = (1000 + m["imp_per_kwh"] - 1) // m["imp_per_kwh"]  # Wh per impulse, up
    else:
        from firmware.meters.ct import CtMeter

        if board.ct_input is None:
            raise ValueError("this board has no CT inputs")
        c = board.ct_input(role)
        store = EnergyStore("energy_" + role, step_wh=save, fs=_backend(board, role))
        source = CtMeter(c["burst"], c["phases"], c["offset_code"], c["ua_per_code"],
                         c["rate_hz"], c["samples"], store, cal=c.get("cal"),
                         volts=m["volts"], clock=clock)
        store = None
        res_wh = 0  # integrated: moves by whole Wh
    reading = getattr(board, READING_ATTR[role])  # probed: None or a Reading
    if reading is None:
        reading = Reading()
        setattr(board, READING_ATTR[role], reading)
    max_kw = m["max_kw"] or MAX_KW[role]
    task = MeterTask(role, source, reading, period_ms=m["period_ms"], log=log, store=store,
                     max_w=max_kw * 1000, clock=clock, res_wh=res_wh)
    task.kind = kind
    task.addr = m.get("addr")
    task.energy = source.store if store is None else store
    hook = board.meter_polled
    if hook is not None:
        task.on_poll = hook
    return task


def _backend(board, role):
    """The board's store for an energy register (where writing costs no flash erase), or
    None: files (docs/boards.md, per board)."""
    make = board.energy_backend
    return make("energy_" + role) if make is not None else None


def _master(board, bus):
    if board.meter_bus is None:
        raise ValueError("this board has no RS485 bus for Modbus meters")
    from drivers.modbus import ModbusMaster

    uart, de = board.meter_bus(bus["uart"], bus["baud"], PARITY[bus["parity"]])
    return ModbusMaster(uart, de=de, baud=bus["baud"], timeout_ms=bus["timeout_ms"],
                        retries=bus["retries"], parity=PARITY[bus["parity"]])
