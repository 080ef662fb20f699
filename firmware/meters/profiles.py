# Modbus meter profiles as data: one table entry per meter model (../shared/spec/meters.md,
# register maps, 0-based wire addresses). Adding a meter is one entry in PROFILES; its
# sources and the decisions taken are in docs/meters.md.
#
# An entry: "fc" (3 holding / 4 input registers), "max_regs" (the most registers the meter
# answers in one read), "gap" (the most registers a read may span that no value needs: 0
# for a sparse map, where a real meter may answer exception 02 for a register it lacks),
# "res_wh" (the step of its import/export registers in Wh: the energy guard allows one step
# at once), "nan_absent" (a NaN phase value means "phase not wired": unknown, not a failed
# poll), "serial" (its factory line: baud, parity, stop bits, for the installer and the
# config check's hint), and the values it has, each (register, encoding, exp) where the
# Reading's unit = raw * 10**exp:
#   "i"  current L1..L3 -> dA       "v" voltage to N L1..L3 -> 0.1 V
#   "p"  active power L1..L3 -> W   "p_total" active power, all phases -> W
#   "energy" import energy -> Wh    "export" export energy -> Wh     "freq" -> 0.01 Hz
# Per-phase entries are 3-tuples (None for a phase the meter lacks); a missing key reads as
# unknown. Floats are IEEE 754 single precision; "scaled" meters send a float in their unit.

F32 = const(0)  # float32, high word first (ABCD)
I32 = const(1)  # int32, high word first
U32 = const(2)  # uint32, high word first
I32_CDAB = const(3)  # int32, low word first
U64 = const(4)  # uint64, high word first
I64 = const(5)  # int64, high word first
I16 = const(6)
U16 = const(7)
WORDS = (2, 2, 2, 2, 4, 4, 1, 1)  # registers per encoding
ENCODINGS = ("float32", "int32", "uint32", "int32 cdab", "uint64", "int64", "int16", "uint16")
DENSE = const(125)  # "gap" of a map without holes: any span up to max_regs


def _3(r1, r2, r3, enc, exp):
    return ((r1, enc, exp), (r2, enc, exp), (r3, enc, exp))


def _1(r, enc, exp):
    return ((r, enc, exp), None, None)


# Eastron SDM630 v2 / SDM72D-M v2: fc 04, float32, V / A / W / kWh / Hz; 40 values (80
# registers) a read; the input registers 0x00..0x4F are all defined (reserved ones read 0).
_SDM630 = {
    "fc": 4, "max_regs": 80, "gap": DENSE, "res_wh": 1, "serial": (9600, "N", 1),
    "v": _3(0x00, 0x02, 0x04, F32, 1), "i": _3(0x06, 0x08, 0x0A, F32, 1),
    "p": _3(0x0C, 0x0E, 0x10, F32, 0), "p_total": (0x34, F32, 0),
    "energy": (0x48, F32, 3), "export": (0x4A, F32, 3), "freq": (0x46, F32, 2),
}
# Eastron SDM72D-M (v1): the reduced map - total power, import and export energy only (no
# voltage, current or frequency): the controller gets no current from it.
_SDM72DM_V1 = {
    "fc": 4, "max_regs": 80, "gap": 0, "res_wh": 10, "serial": None,
    "p_total": (0x34, F32, 0), "energy": (0x48, F32, 3), "export": (0x4A, F32, 3),
}
# Eastron SDM120 / SDM230: single phase, the same encoding (SDM120 ships at 2400 baud)
_SDM120 = {
    "fc": 4, "max_regs": 80, "gap": DENSE, "res_wh": 1, "serial": (2400, "N", 1),
    "v": _1(0x00, F32, 1), "i": _1(0x06, F32, 1), "p": _1(0x0C, F32, 0),
    "p_total": (0x0C, F32, 0), "energy": (0x48, F32, 3), "export": (0x4A, F32, 3),
    "freq": (0x46, F32, 2),
}
_SDM230 = dict(_SDM120)
_SDM230["serial"] = None  # not settled (docs/meters.md)
# ABB B23/B24: fc 03, 0.1 V u32, 0.01 A u32, 0.01 W i32, 0.01 kWh u64, 0.01 Hz u16
_ABB = {
    "fc": 3, "max_regs": 125, "gap": DENSE, "res_wh": 10, "serial": None,
    "v": _3(0x5B00, 0x5B02, 0x5B04, U32, 0), "i": _3(0x5B0C, 0x5B0E, 0x5B10, U32, -1),
    "p": _3(0x5B16, 0x5B18, 0x5B1A, I32, -2), "p_total": (0x5B14, I32, -2),
    "energy": (0x5000, U64, 1), "export": (0x5004, U64, 1), "freq": (0x5B2C, U16, 0),
}
# Carlo Gavazzi EM340: fc 04, int32 low word first, 0.1 V, 0.001 A, 0.1 W, 0.1 kWh, 0.1 Hz;
# the EM300/ET300 protocol answers at most 50 registers a read
_EM340 = {
    "fc": 4, "max_regs": 50, "gap": DENSE, "res_wh": 100, "serial": (9600, "N", 1),
    "v": _3(0x00, 0x02, 0x04, I32_CDAB, 0), "i": _3(0x0C, 0x0E, 0x10, I32_CDAB, -2),
    "p": _3(0x12, 0x14, 0x16, I32_CDAB, -1), "p_total": (0x28, I32_CDAB, -1),
    "energy": (0x34, I32_CDAB, 2), "export": (0x4E, I32_CDAB, 2), "freq": (0x33, I16, 1),
}
# Chint DTSU666: fc 03, scaled float32: 0.1 V, 0.001 A, 0.1 W, kWh, 0.01 Hz; a sparse map.
# "ratios": its CT ratio (IrAt, int16) and PT ratio (UrAt, int16 x 0.1) registers, first of
# two: behind transformers its values are the secondary side (modbus_meter.py scales them).
_DTSU666 = {
    "fc": 3, "max_regs": 125, "gap": 0, "res_wh": 10, "serial": (9600, "N", 1),
    "ratios": (0x0006,),
    "v": _3(0x2006, 0x2008, 0x200A, F32, 0), "i": _3(0x200C, 0x200E, 0x2010, F32, -2),
    "p": _3(0x2014, 0x2016, 0x2018, F32, -1), "p_total": (0x2012, F32, -1),
    "energy": (0x101E, F32, 3), "export": (0x1028, F32, 3), "freq": (0x2044, F32, 0),
}
# Schneider iEM3x5x: fc 03, float32 V / A / kW / Hz, energy int64 Wh; a sparse map; NaN
# for a phase that is not wired (single-phase use)
_IEM3X5X = {
    "fc": 3, "max_regs": 125, "gap": 0, "res_wh": 1, "serial": (19200, "E", 1),
    "nan_absent": True,
    "v": _3(0x0BD3, 0x0BD5, 0x0BD7, F32, 1), "i": _3(0x0BB7, 0x0BB9, 0x0BBB, F32, 1),
    "p": _3(0x0BED, 0x0BEF, 0x0BF1, F32, 3), "p_total": (0x0BF3, F32, 3),
    "energy": (0x0C83, I64, 0), "export": (0x0C87, I64, 0), "freq": (0x0C25, F32, 2),
}
# Orno WE-516/517: fc 03, float32 V / A / kW / kWh / Hz, 9600 8E1
_ORNO = {
    "fc": 3, "max_regs": 125, "gap": DENSE, "res_wh": 10, "serial": (9600, "E", 1),
    "v": _3(0x0E, 0x10, 0x12, F32, 1), "i": _3(0x16, 0x18, 0x1A, F32, 1),
    "p": _3(0x1E, 0x20, 0x22, F32, 3), "p_total": (0x1C, F32, 3),
    "energy": (0x108, F32, 3), "export": (0x110, F32, 3), "freq": (0x14, F32, 2),
}
# Finder 7E.78.8.400.0212: fc 04, float32 ABCD, V / A / W / Wh (its energy register counts
# Wh, not kWh), up to 127 registers a read. Registers as SmartEVSE's meter table lists them;
# not checked against a unit here. No per-phase power: current signs stay as read.
_FINDER_7E = {
    "fc": 4, "max_regs": 125, "gap": 0, "res_wh": 1, "serial": None,
    "v": _3(0x1000, 0x1002, 0x1004, F32, 1), "i": _3(0x100E, 0x1010, 0x1012, F32, 1),
    "p_total": (0x1026, F32, 0), "energy": (0x1106, F32, 0), "export": (0x110E, F32, 0),
}

PROFILES = {
    "sdm630": _SDM630,
    "sdm72dm_v1": _SDM72DM_V1,
    "sdm72dm_v2": _SDM630,
    "sdm120": _SDM120,
    "sdm230": _SDM230,
    "abb_b23": _ABB,
    "abb_b24": _ABB,
    "em340": _EM340,
    "dtsu666": _DTSU666,
    "iem3x5x": _IEM3X5X,
    "orno_we516": _ORNO,
    "finder_7e": _FINDER_7E,
}

# The Reading's slots in the order the meter decodes them, and their names in errors.
SLOTS = ("i", "i", "i", "v", "v", "v", "p", "p", "p", "p_total", "energy", "export", "freq")
SLOT_NAMES = ("current L1", "current L2", "current L3", "voltage L1", "voltage L2",
              "voltage L3", "power L1", "power L2", "power L3", "total power", "energy",
              "export energy", "frequency")  # fmt: skip


def fields(profile):
    """[(slot, register, encoding, exp)] of a profile entry, checked (a bad entry is named)."""
    out = []
    for slot in range(len(SLOTS)):
        key = SLOTS[slot]
        v = profile.get(key)
        if v is not None and key in ("i", "v", "p"):
            v = v[slot % 3]
        if v is None:
            continue
        reg, enc, exp = v
        if not 0 <= reg <= 0xFFFF or not 0 <= enc < len(WORDS) or not -3 <= exp <= 3:
            raise ValueError("profile value %s: bad (register, encoding, exp) %r"
                             % (SLOT_NAMES[slot], v))
        out.append((slot, reg, enc, exp))
    return out


def blocks(flds, max_regs, gap=DENSE):
    """Read blocks [(first register, count)] covering flds, at most max_regs each, fewest
    reads first: sorted registers merged while the span fits and the registers skipped
    between two values are at most `gap`."""
    regs = sorted((f[1], f[1] + WORDS[f[2]]) for f in flds)
    out = []
    for lo, hi in regs:
        if out and hi - out[-1][0] <= max_regs and lo - (out[-1][0] + out[-1][1]) <= gap:
            start = out[-1][0]
            out[-1] = (start, max(out[-1][1], hi - start))
        else:
            out.append((lo, hi - lo))
    return out
