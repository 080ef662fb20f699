# OCPP 1.6 configuration keys (GetConfiguration / ChangeConfiguration): the Core profile's
# keys (OCPP 1.6 section 9.1), Local Auth List Management (9.2), Reservation (9.3), Smart
# Charging (9.4) and the security whitepaper's AuthorizationKey and SecurityProfile.
# Values changed by the CSMS are kept in a JSON file of {key: string}, written to path + ".new"
# and renamed over (atomic) before ChangeConfiguration answers Accepted. Board facts (e.g. the
# measurands its meter has) come in as overrides and are not persisted.
# AuthorizationKey is write-only: GetConfiguration lists it without a value, and neither
# repr() nor an error message ever contains it.

from .. import persist

# kinds: "b" bool, "i" int (lo..hi), "m" CSL of measurands (max items: <key>MaxLength),
# "r" ConnectorPhaseRotation CSL, "s" string (read-only lists), "k" hex key of 16..20 bytes
# (write-only: AuthorizationKey); upper case: read-only. No key needs a reboot: the link
# reconnects by itself where one must (security.py).
MEASURANDS = ("Energy.Active.Import.Register,Power.Active.Import,Current.Import,"
              "Current.Offered,Voltage,Frequency,Temperature")
_ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
_DAY = const(86400)

# (name, kind, default[, lo, hi])
TABLE = (
    ("AllowOfflineTxForUnknownId", "b", False),
    ("AuthorizationCacheEnabled", "b", True),
    ("AuthorizeRemoteTxRequests", "b", True),
    ("ClockAlignedDataInterval", "i", 0, 0, _DAY),
    ("ConnectionTimeOut", "i", 60, 1, 3600),
    # Read-only: the firmware has no use for it; the board (its installer) says how the
    # connector is wired (overrides), so the CSMS reads what is true.
    ("ConnectorPhaseRotation", "R", "0.Unknown"),
    ("ConnectorPhaseRotationMaxLength", "I", 2),
    ("GetConfigurationMaxKeys", "I", 50),
    ("HeartbeatInterval", "i", 300, 0, _DAY),
    ("LocalAuthorizeOffline", "b", True),
    ("LocalPreAuthorize", "b", False),
    ("MeterValuesAlignedData", "m", "Energy.Active.Import.Register"),
    ("MeterValuesAlignedDataMaxLength", "I", 7),
    ("MeterValuesSampledData", "m", "Energy.Active.Import.Register"),
    ("MeterValuesSampledDataMaxLength", "I", 7),
    ("MeterValueSampleInterval", "i", 60, 0, _DAY),
    ("MinimumStatusDuration", "i", 0, 0, 3600),
    ("NumberOfConnectors", "I", 1),
    ("ResetRetries", "I", 0, 0, 10),  # board.reset() cannot fail and be retried
    ("StopTransactionOnEVSideDisconnect", "b", True),
    ("StopTransactionOnInvalidId", "b", True),
    ("StopTxnAlignedData", "m", ""),
    ("StopTxnAlignedDataMaxLength", "I", 7),
    ("StopTxnSampledData", "m", ""),
    ("StopTxnSampledDataMaxLength", "I", 7),
    ("SupportedFeatureProfiles", "S",
     "Core,FirmwareManagement,LocalAuthListManagement,Reservation,RemoteTrigger,SmartCharging"),
    ("TransactionMessageAttempts", "i", 3, 1, 100),
    ("TransactionMessageRetryInterval", "i", 60, 1, _DAY),
    ("UnlockConnectorOnEVSideDisconnect", "b", True),
    ("WebSocketPingInterval", "i", 60, 0, 3600),
    ("LocalAuthListEnabled", "b", True),
    ("LocalAuthListMaxLength", "I", 1000),
    ("SendLocalListMaxLength", "I", 50),  # fits cp.MAX_FRAME (a test)
    ("ReserveConnectorZeroSupported", "B", False),
    ("ChargeProfileMaxStackLevel", "I", 8),
    ("ChargingScheduleAllowedChargingRateUnit", "S", "Current,Power"),
    ("ChargingScheduleMaxPeriods", "I", 24),
    ("ConnectorSwitch3to1PhaseSupported", "B", False),
    ("MaxChargingProfilesInstalled", "I", 8),
    ("AuthorizationKey", "k", "", 16, 20),
    ("SecurityProfile", "i", 0, 0, 3),  # its rules: firmware/ocpp/security.py
)


# What each meter type of the config's "meters" section measures (docs/meters.md), named by
# the value keys of a Modbus profile (firmware/meters/profiles.py): an S0 meter's pulses give
# power, a CT gives current and power; a Modbus meter's profile says. Current.Offered comes
# from the controller.
_MEASURES = (("i", "Current.Import"), ("v", "Voltage"), ("p", "Power.Active.Import"),
             ("p_total", "Power.Active.Import"), ("freq", "Frequency"))
_FIXED = {"s0": ("p",), "ct": ("i", "p")}


def supported_measurands(meters, temperature=False):
    """The CSL of measurands the EV meter of a "meters" config section (dict or None) gives:
    the board's SupportedMeasurands override. A CT's voltage is configured, not measured:
    it is not offered."""
    out = ["Energy.Active.Import.Register", "Current.Offered"]
    ev = meters.get("ev") if type(meters) is dict else None
    kind = ev.get("type") if type(ev) is dict else None
    has = _FIXED.get(kind, ())
    if kind == "modbus":
        from ..meters.profiles import PROFILES

        has = PROFILES.get(ev.get("profile"), has)
    for field, m in _MEASURES:
        if field in has and m not in out:
            out.append(m)
    if temperature:
        out.append("Temperature")
    return ",".join(out)


def _row(name):
    for r in TABLE:
        if r[0] == name:
            return r
    return None


def _ro(r):
    return r[1] < "a"  # upper case


def _text(v):
    return str(v).lower() if type(v) is bool else str(v)  # true, false as in JSON


def _csl(s):
    return [x.strip() for x in s.split(",")] if s.strip() else []


def key_overrides(board, cfg):
    """The board's overrides of the configuration key table (board.ocpp_keys: {name:
    value}, e.g. ConnectorPhaseRotation as the connector is wired), and the measurands the
    configured EV meter has unless the board names them (SupportedMeasurands). board: as
    boardcaps.probe gives it (cp.py probes it first)."""
    o = dict(board.ocpp_keys or {})
    if "SupportedMeasurands" not in o:
        o["SupportedMeasurands"] = supported_measurands(
            getattr(cfg, "meters", None), board.temperature_c is not None)
    return o


class Keys:
    def __init__(self, path="ocpp_keys.json", overrides=None):
        self.path = path
        self.errors = []
        self._d = {}  # defaults, as the board's overrides set them
        self._v = {}  # values the CSMS set (persisted)
        self._measurands = _csl(MEASURANDS)
        for name, val in (overrides or {}).items():
            if name == "SupportedMeasurands":
                bad = [m for m in _csl(val) if m not in self._measurands]
                if bad:
                    self.errors.append("override SupportedMeasurands: unknown %s" % bad)
                else:
                    self._measurands = _csl(val)
            else:
                self._take(self._d, "override", name, _text(val), True)
        for r in TABLE:  # measurand defaults the board does not have are left out
            if r[1] == "m" and r[0] not in self._d:
                self._d[r[0]] = ",".join(m for m in _csl(r[2]) if m in self._measurands)
        try:
            data = persist.load_json(path) or {}
            if type(data) is not dict:
                raise ValueError("%s: not a JSON object" % path)
        except ValueError as e:
            self.errors.append("%s, defaults used" % e)
            return
        for name, text in data.items():
            self._take(self._v, path + ":", name, text, False)

    def _take(self, into, where, name, text, board):
        """into[name] = the value of text, or an error in .errors. The board's overrides set
        any key but AuthorizationKey, the file only those the CSMS may change."""
        r = _row(name)
        try:
            if r is None or (r[1] == "k" if board else _ro(r) or type(text) is not str):
                raise ValueError("no such key" if r is None else "read-only or not text")
            into[name] = self._parse(r, text)
        except ValueError as e:
            self.errors.append("%s %s ignored: %s" % (where, name, e))

    def _parse(self, r, text):
        """The typed value of text as the value of key row r; ValueError saying why not."""
        name, kind = r[0], r[1].lower()
        lo, hi = (r + (0, 0))[3:5]  # (0, 0): no range
        t = text.strip()
        if kind == "b":
            t = t.lower()
            if t not in ("true", "false"):
                raise ValueError("not true/false")
            return t == "true"
        if kind == "i":
            d = t[1:] if t[:1] == "-" else t
            if not d or len(d) > 10 or d.strip("0123456789"):
                raise ValueError("not an integer")
            v = int(t)
            if hi > lo and not lo <= v <= hi:
                raise ValueError("%d outside %d..%d" % (v, lo, hi))
            return v
        if kind == "k":
            if len(t) % 2 or not lo <= len(bytes.fromhex(t)) <= hi:  # ValueError: not hex
                raise ValueError("not hex of %d..%d bytes" % (lo, hi))
            return t.lower()
        if kind == "s":
            return text
        items = _csl(text)
        limit = self.get(name + "MaxLength")
        if len(items) > limit:
            raise ValueError("%d items, at most %d" % (len(items), limit))
        ok = self._measurands if kind == "m" else [  # "r": connector.rotation
            "%d.%s" % (c, x) for c in range(self.get("NumberOfConnectors") + 1)
            for x in _ROTATIONS]
        for it in items:
            if it not in ok:
                raise ValueError("%s not supported" % it)
        return ",".join(items)

    def get(self, name):
        """The typed value (bool, int, str) of a key; KeyError if there is no such key."""
        r = _row(name)
        if r is None:
            raise KeyError(name)
        v = self._v.get(name)
        return self._d.get(name, r[2]) if v is None else v

    def secret(self):
        """The AuthorizationKey as bytes (HTTP Basic password), or None if not set."""
        h = self._v.get("AuthorizationKey")
        return bytes.fromhex(h) if h else None

    def configuration(self, keys=None):
        """(configurationKey list, unknownKey list) of GetConfiguration.conf."""
        n = self.get("GetConfigurationMaxKeys")
        if keys is None:
            keys = [r[0] for r in TABLE]
        elif len(keys) > n:
            raise ValueError("GetConfiguration: %d keys asked, at most %d" % (len(keys), n))
        out, unknown = [], []
        for name in keys:
            r = _row(name)
            if r is None:
                unknown.append(name)
                continue
            e = {"key": name, "readonly": _ro(r)}
            if r[1] != "k":
                e["value"] = _text(self.get(name))
            out.append(e)
        return out, unknown

    def drop_secret(self):
        """Forget the CSMS's AuthorizationKey (back to the installer's password)."""
        v = dict(self._v)
        if v.pop("AuthorizationKey", None) is not None:
            self._save(v)

    def change(self, name, value):
        """ChangeConfiguration: "Accepted", "Rejected" or "NotSupported". SecurityProfile
        only goes up over OCPP: security.Security.change (the only way there) says so."""
        r = _row(name)
        if r is None:
            return "NotSupported"
        if _ro(r) or not isinstance(value, str):
            return "Rejected"
        try:
            v = self._parse(r, value)
        except ValueError:
            return "Rejected"
        new = dict(self._v)
        new[name] = v
        try:
            self._save(new)
        except OSError:
            return "Rejected"
        return "Accepted"

    def _save(self, v):
        """Write v ({name: value}) to the file, then make them the CSMS's values (OSError:
        nothing changed)."""
        persist.save_json(self.path, {n: _text(x) for n, x in v.items()})
        self._v = v
