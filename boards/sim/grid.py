# The simulated grid connection behind the wallbox (docs/sim.md "Grid model"): the house's
# own load per phase, a PV inverter, the grid frequency, the DSO's control signal (a relay
# contact of the grid operator's control box, §14a EnWG) and whether the grid meter answers.
# The control channel's `grid` command changes it; each change is a `grid` observation with
# the whole state, which the host's emulated grid meter follows (tools/simlib.py MeterBus:
# per phase the EV's current plus the house load minus the PV's share, over Modbus).

HOUSE_W = 1500  # the house's load at power-up, W spread over three phases
FIELDS = ("load_a", "pv_w", "hz", "dso", "meter")
METER_STATES = ("ok", "silent")
MAX_LOAD_A = 400  # a house current per phase above this is a typing error
MAX_PV_W = 100000
HZ_RANGE = (40, 70)  # what a test may set (the arbiter itself refuses outside 45..55 Hz)


def _number(v):
    return type(v) in (int, float) and v == v


class Grid:
    def __init__(self, volts=230):
        house = HOUSE_W / 3 / volts
        self.load_a = [house, house, house]  # the house's current per phase, A
        self.pv_w = 0  # PV production, W (spread over three phases)
        self.hz = 50.0
        self.dso = False  # the control box's relay: True = dimming ordered
        self.meter = "ok"  # "silent": the grid meter stops answering

    def house_w(self, volts):
        return int(sum(self.load_a) * volts)

    def state(self):
        return {"load_a": list(self.load_a), "pv_w": self.pv_w, "hz": self.hz,
                "dso": self.dso, "meter": self.meter}

    def set(self, c):
        """Apply the fields of a `grid` command (others: "do", "id"); everything is checked
        before anything changes. ValueError names the bad field."""
        for k in c:
            if k not in FIELDS and k not in ("do", "id"):
                raise ValueError("grid has no field %r (fields: %s)" % (k, ", ".join(FIELDS)))
        load = c.get("load_a", self.load_a)
        if type(load) is not list or len(load) != 3 or not all(
                _number(x) and 0 <= x <= MAX_LOAD_A for x in load):
            raise ValueError("grid load_a must be a list of 3 house currents per phase, "
                             "0..%d A each, got %r" % (MAX_LOAD_A, load))
        pv = c.get("pv_w", self.pv_w)
        if not _number(pv) or not 0 <= pv <= MAX_PV_W:
            raise ValueError("grid pv_w must be 0..%d W, got %r" % (MAX_PV_W, pv))
        hz = c.get("hz", self.hz)
        if not _number(hz) or not HZ_RANGE[0] <= hz <= HZ_RANGE[1]:
            raise ValueError("grid hz must be %d..%d Hz, got %r" % (HZ_RANGE[0], HZ_RANGE[1],
                                                                   hz))
        dso = c.get("dso", self.dso)
        if type(dso) is not bool:
            raise ValueError("grid dso must be true or false, got %r" % (dso,))
        meter = c.get("meter", self.meter)
        if meter not in METER_STATES:
            raise ValueError("grid meter must be ok or silent, got %r" % (meter,))
        self.load_a = [float(x) for x in load]
        self.pv_w = pv
        self.hz = float(hz)
        self.dso = dso
        self.meter = meter
