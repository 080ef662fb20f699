# Energy meters (docs/meters.md). Submodules load on first use, so a board without a
# Modbus meter never pays for the driver: `from firmware.meters import ModbusMeter`.
_attrs = {
    "ModbusMeter": "modbus_meter",
    "MeterError": "modbus_meter",
    "PROFILES": "profiles",
}


def __getattr__(attr):
    mod = _attrs.get(attr, None)
    try:
        if mod is None:  # a submodule: `from firmware.meters import profiles`
            return __import__(attr, globals(), None, [attr], 1)
        value = getattr(__import__(mod, globals(), None, [attr], 1), attr)
    except ImportError:
        raise AttributeError(attr)
    globals()[attr] = value
    return value
