"""The emulated meters' own register maps and personalities (tools/meter_emu.py), written from
the makers' documents in the makers' own notation, NOT from firmware/meters/profiles.py: a
test that runs the firmware's profile against the emulator compares two tables written
independently (issue 15 1.3). docs/meters.md names each source.

A model:
  fc         the function code its measurements answer to (the other one: exception 01)
  max_regs   the most registers one read may ask for; beyond it: exception `over_code`
  has        the register ranges [lo, hi) it answers; a read touching any other: exception 02
  values     name -> (wire register, type, SI units per raw unit): v1..v3 (V to N), i1..i3 (A),
             p1..p3 and p (W), imp and exp (Wh), hz (Hz)
  step_wh    the step of its energy registers (the register counts whole steps)
  absent     what a phase that is not wired reads: "nan" or 0
  ratios     (CT ratio register, PT ratio register, PT scale) where the meter keeps them, int16
  serial     factory line (baud, parity, stop bits, address), None where not settled
Types: f32 (IEEE 754 high word first), i32 / u32 (high word first), i32sw (int32 low word
first), u64 / i64, i16 / u16.
"""


def eastron(reg):
    """Eastron's input register numbers (30001 = wire 0)."""
    return reg - 30001


def schneider(reg):
    """Schneider's register numbers are 1-based (register 3000 = wire 2999)."""
    return reg - 1


_EASTRON_3P = {
    "fc": 4, "max_regs": 80, "over_code": 3, "has": [(0x0000, 0x0050), (0x0156, 0x015A)],
    "values": {
        "v1": (eastron(30001), "f32", 1), "v2": (eastron(30003), "f32", 1),
        "v3": (eastron(30005), "f32", 1), "i1": (eastron(30007), "f32", 1),
        "i2": (eastron(30009), "f32", 1), "i3": (eastron(30011), "f32", 1),
        "p1": (eastron(30013), "f32", 1), "p2": (eastron(30015), "f32", 1),
        "p3": (eastron(30017), "f32", 1), "p": (eastron(30053), "f32", 1),
        "hz": (eastron(30071), "f32", 1), "imp": (eastron(30073), "f32", 1000),
        "exp": (eastron(30075), "f32", 1000)},
    "step_wh": 1, "absent": 0, "serial": (9600, "N", 1, 1),
}
_EASTRON_1P = {
    "fc": 4, "max_regs": 80, "over_code": 3, "has": [(0x0000, 0x0050), (0x0156, 0x015A)],
    "values": {
        "v1": (eastron(30001), "f32", 1), "i1": (eastron(30007), "f32", 1),
        "p1": (eastron(30013), "f32", 1), "p": (eastron(30013), "f32", 1),
        "hz": (eastron(30071), "f32", 1), "imp": (eastron(30073), "f32", 1000),
        "exp": (eastron(30075), "f32", 1000)},
    "step_wh": 1, "absent": 0, "serial": (2400, "N", 1, 1),
}
MODELS = {
    "sdm630": _EASTRON_3P,
    "sdm72dm_v2": _EASTRON_3P,
    # SDM72D-M (first version): only total power, import, export and total energy
    "sdm72dm_v1": {
        "fc": 4, "max_regs": 80, "over_code": 3,
        "has": [(0x0034, 0x0036), (0x0048, 0x004C), (0x0156, 0x0158)],
        "values": {"p": (eastron(30053), "f32", 1), "imp": (eastron(30073), "f32", 1000),
                   "exp": (eastron(30075), "f32", 1000)},
        "step_wh": 10, "absent": 0, "serial": None},
    "sdm120": _EASTRON_1P,
    "sdm230": dict(_EASTRON_1P, serial=None),
    # ABB B23/B24 (hex addresses in ABB's map; energies u64 in 0.01 kWh)
    "abb_b23": {
        "fc": 3, "max_regs": 125, "over_code": 3, "has": [(0x5000, 0x5018), (0x5B00, 0x5B3E)],
        "values": {
            "v1": (0x5B00, "u32", 0.1), "v2": (0x5B02, "u32", 0.1), "v3": (0x5B04, "u32", 0.1),
            "i1": (0x5B0C, "u32", 0.01), "i2": (0x5B0E, "u32", 0.01),
            "i3": (0x5B10, "u32", 0.01), "p": (0x5B14, "i32", 0.01),
            "p1": (0x5B16, "i32", 0.01), "p2": (0x5B18, "i32", 0.01),
            "p3": (0x5B1A, "i32", 0.01), "hz": (0x5B2C, "u16", 0.01),
            "imp": (0x5000, "u64", 10), "exp": (0x5004, "u64", 10)},
        "step_wh": 10, "absent": 0, "serial": None},
    # Carlo Gavazzi EM340 (EM300/ET300 protocol: INT32 least significant word first)
    "em340": {
        "fc": 4, "max_regs": 50, "over_code": 3, "has": [(0x0000, 0x0052)],
        "values": {
            "v1": (0x0000, "i32sw", 0.1), "v2": (0x0002, "i32sw", 0.1),
            "v3": (0x0004, "i32sw", 0.1), "i1": (0x000C, "i32sw", 0.001),
            "i2": (0x000E, "i32sw", 0.001), "i3": (0x0010, "i32sw", 0.001),
            "p1": (0x0012, "i32sw", 0.1), "p2": (0x0014, "i32sw", 0.1),
            "p3": (0x0016, "i32sw", 0.1), "p": (0x0028, "i32sw", 0.1),
            "hz": (0x0033, "i16", 0.1), "imp": (0x0034, "i32sw", 100),
            "exp": (0x004E, "i32sw", 100)},
        "step_wh": 100, "absent": 0, "serial": (9600, "N", 1, 1)},
    # Chint DTSU666 (holding registers; floats in 0.1 V, 0.001 A, 0.1 W, kWh, 0.01 Hz)
    "dtsu666": {
        "fc": 3, "max_regs": 125, "over_code": 3,
        "has": [(0x0000, 0x0030), (0x101E, 0x1030), (0x2000, 0x2022), (0x202A, 0x2032),
                (0x2044, 0x2046)],
        "values": {
            "v1": (0x2006, "f32", 0.1), "v2": (0x2008, "f32", 0.1), "v3": (0x200A, "f32", 0.1),
            "i1": (0x200C, "f32", 0.001), "i2": (0x200E, "f32", 0.001),
            "i3": (0x2010, "f32", 0.001), "p": (0x2012, "f32", 0.1),
            "p1": (0x2014, "f32", 0.1), "p2": (0x2016, "f32", 0.1),
            "p3": (0x2018, "f32", 0.1), "hz": (0x2044, "f32", 0.01),
            "imp": (0x101E, "f32", 1000), "exp": (0x1028, "f32", 1000)},
        "ratios": (0x0006, 0x0007, 10),  # IrAt, UrAt (x0.1)
        "step_wh": 10, "absent": 0, "serial": (9600, "N", 1, 1)},
    # Schneider iEM3150/3155/3250/3255 (register numbers as Schneider prints them, 1-based)
    "iem3x5x": {
        "fc": 3, "max_regs": 125, "over_code": 3,
        "has": [(schneider(3000), schneider(3012)), (schneider(3020), schneider(3038)),
                (schneider(3054), schneider(3070)), (schneider(3110), schneider(3112)),
                (schneider(3204), schneider(3212))],
        "values": {
            "i1": (schneider(3000), "f32", 1), "i2": (schneider(3002), "f32", 1),
            "i3": (schneider(3004), "f32", 1), "v1": (schneider(3028), "f32", 1),
            "v2": (schneider(3030), "f32", 1), "v3": (schneider(3032), "f32", 1),
            "p1": (schneider(3054), "f32", 1000), "p2": (schneider(3056), "f32", 1000),
            "p3": (schneider(3058), "f32", 1000), "p": (schneider(3060), "f32", 1000),
            "hz": (schneider(3110), "f32", 1), "imp": (schneider(3204), "i64", 1),
            "exp": (schneider(3208), "i64", 1)},
        "step_wh": 1, "absent": "nan", "serial": (19200, "E", 1, 1)},
    # Orno WE-516/517 (floats in V, A, kW, kWh, Hz)
    "orno_we516": {
        "fc": 3, "max_regs": 125, "over_code": 3, "has": [(0x000E, 0x003C), (0x0100, 0x014E)],
        "values": {
            "v1": (0x000E, "f32", 1), "v2": (0x0010, "f32", 1), "v3": (0x0012, "f32", 1),
            "hz": (0x0014, "f32", 1), "i1": (0x0016, "f32", 1), "i2": (0x0018, "f32", 1),
            "i3": (0x001A, "f32", 1), "p": (0x001C, "f32", 1000), "p1": (0x001E, "f32", 1000),
            "p2": (0x0020, "f32", 1000), "p3": (0x0022, "f32", 1000),
            "imp": (0x0108, "f32", 1000), "exp": (0x0110, "f32", 1000)},
        "step_wh": 10, "absent": 0, "serial": (9600, "E", 1, 1)},
    # Finder 7E.78.8.400.0212 (floats in V, A, W, Wh), as SmartEVSE's table reads it
    "finder_7e": {
        "fc": 4, "max_regs": 127, "over_code": 3, "has": [(0x1000, 0x1030), (0x1100, 0x1120)],
        "values": {
            "v1": (0x1000, "f32", 1), "v2": (0x1002, "f32", 1), "v3": (0x1004, "f32", 1),
            "i1": (0x100E, "f32", 1), "i2": (0x1010, "f32", 1), "i3": (0x1012, "f32", 1),
            "p": (0x1026, "f32", 1), "imp": (0x1106, "f32", 1), "exp": (0x110E, "f32", 1)},
        "step_wh": 1, "absent": 0, "serial": None},
}
MODELS["abb_b24"] = MODELS["abb_b23"]
