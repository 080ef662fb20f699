"""Building blocks of the OCPP fuzz generator (tools/ocpp_fuzz_gen.py): the error codes a
case expects, the Case record, RFC 6455 server frames, random ids/texts/JSON values, and the
schema-valid payloads it breaks one field at a time (bad_payload).

ocpp_fuzz_gen.py builds the frame families from these and re-exports them, so
`ocpp_fuzz_gen.frame`, `ocpp_fuzz_gen.NO_ID` etc. keep working.
"""
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_ocpp_schema  # noqa: E402

MAX_FRAME = 16384  # firmware/ocpp/cp.py MAX_FRAME: the largest message the client takes
NO_ID = "-1"  # the id of a CALLERROR to a frame whose id cannot be read (rpc.py)
PROTOCOL = "ProtocolError"
FORMATION = "FormationViolation"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"
OCCURRENCE = ("OccurrenceConstraintViolation", "OccurenceConstraintViolation")  # 1.6 spells both
NOT_IMPLEMENTED = "NotImplemented"
NOT_SUPPORTED = "NotSupported"
PROBE_ACTION = "FuzzProbe"  # an unknown action: its NotImplemented marks "nothing before"

class Case:
    __slots__ = ("family", "kind", "wire", "expect", "text")

    def __init__(self, family, kind, wire, expect, text):
        self.family, self.kind, self.wire, self.expect, self.text = (
            family, kind, wire, expect, text)

    def __repr__(self):
        return "<%s/%s %r>" % (self.family, self.kind, self.text[:80])


# -- RFC 6455 server frames ----------------------------------------------------------------
def frame(op, payload=b"", fin=True, rsv=0, mask=None, length=None):
    """One server frame; `length` overrides the declared payload length."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv << 4 | op
    m = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, m | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, m | 127, n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        hdr += mask
    return hdr + payload


def text_frame(text):
    return frame(1, text.encode() if isinstance(text, str) else text)


def dumps(obj):
    """Compact JSON with raw UTF-8 (no \\u escapes of characters above U+FFFF)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# -- random values ---------------------------------------------------------------------------
_ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
_WIDE = "\u00e9\u00fc\u00df\u20ac\u4e2d\u6587\u0416\u03a9\U0001f600\U0001f50c\u00a0\u200b"


def rand_ascii(rng, n):
    return "".join(rng.choices(_ASCII, k=n))


_POOL = _ASCII + _WIDE * 2  # about a quarter beyond ASCII


def rand_text(rng, n):
    """n characters, some beyond ASCII (no surrogates: raw UTF-8 on the wire)."""
    return "".join(rng.choices(_POOL, k=n))


def rand_id(rng, i):
    """A fresh id; "q" is no hex digit, so it never equals one of the client's own ids."""
    return "q%x-%s" % (i, rand_ascii(rng, rng.randrange(1, 12)))


def rand_json(rng, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.4:
        return rng.choice((0, -1, 7, 2 ** 31, 1.5, -0.25, True, False, None, "",
                           rand_text(rng, rng.randrange(0, 30))))
    if r < 0.7:
        return [rand_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rand_ascii(rng, rng.randrange(1, 8)): rand_json(rng, depth + 1)
            for _ in range(rng.randrange(0, 4))}


def unknown_action(rng):
    known = set(gen_ocpp_schema.CSMS_TO_CP) | set(gen_ocpp_schema.CP_TO_CSMS)
    while True:
        r = rng.random()
        if r < 0.3:
            a = rng.choice(gen_ocpp_schema.CSMS_TO_CP)
            a = rng.choice((a.lower(), a.upper(), a + " ", " " + a, a + "Request", a[:-1]))
        elif r < 0.4:
            a = rand_text(rng, rng.randrange(41, 3000))  # a long name: clipped in the answer
        elif r < 0.45:
            a = ""
        else:
            a = rand_text(rng, rng.randrange(1, 30))
        if a not in known and a != PROBE_ACTION:
            return a


def now_iso(rng):
    return "20%02d-%02d-%02dT%02d:%02d:%02d%s" % (
        rng.randrange(24, 40), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24),
        rng.randrange(60), rng.randrange(60), rng.choice(("Z", ".5Z", "+02:00", "-05:30")))


# -- valid payloads to break (never sent as they are) -----------------------------------------
def _profile(rng):
    return {"chargingProfileId": rng.randrange(1, 1000), "stackLevel": rng.randrange(0, 8),
            "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
            "validFrom": now_iso(rng),
            "chargingSchedule": {"duration": 3600, "startSchedule": now_iso(rng),
                                 "chargingRateUnit": "A", "minChargingRate": 6.0,
                                 "chargingSchedulePeriod": [
                                     {"startPeriod": 0, "limit": 16.0, "numberPhases": 3},
                                     {"startPeriod": 600, "limit": 10.5}]}}


BASES = {
    "CancelReservation": lambda r: {"reservationId": r.randrange(1, 1000)},
    "ChangeAvailability": lambda r: {"connectorId": 1, "type": "Operative"},
    "ChangeConfiguration": lambda r: {"key": "TransactionMessageRetryInterval", "value": "60"},
    "ClearChargingProfile": lambda r: {"id": 7, "connectorId": 1, "stackLevel": 1,
                                       "chargingProfilePurpose": "TxProfile"},
    "DataTransfer": lambda r: {"vendorId": rand_ascii(r, 8), "messageId": "m", "data": "x"},
    "GetCompositeSchedule": lambda r: {"connectorId": 1, "duration": 600,
                                       "chargingRateUnit": "A"},
    "GetConfiguration": lambda r: {"key": ["HeartbeatInterval", "ResetRetries"]},
    "RemoteStartTransaction": lambda r: {"connectorId": 1, "idTag": rand_ascii(r, 20),
                                         "chargingProfile": dict(
                                             _profile(r), chargingProfilePurpose="TxProfile")},
    "RemoteStopTransaction": lambda r: {"transactionId": r.randrange(1, 10 ** 6)},
    "ReserveNow": lambda r: {"connectorId": 1, "expiryDate": now_iso(r), "idTag": "TAG1",
                             "parentIdTag": "PARENT", "reservationId": 5},
    "Reset": lambda r: {"type": r.choice(("Hard", "Soft"))},
    "SendLocalList": lambda r: {"listVersion": 3, "updateType": "Differential",
                                "localAuthorizationList": [
                                    {"idTag": "A1", "idTagInfo": {
                                        "status": "Accepted", "expiryDate": now_iso(r),
                                        "parentIdTag": "P1"}}, {"idTag": "A2"}]},
    "SetChargingProfile": lambda r: {"connectorId": 1, "csChargingProfiles": _profile(r)},
    "TriggerMessage": lambda r: {"requestedMessage": "Heartbeat", "connectorId": 1},
    "UnlockConnector": lambda r: {"connectorId": 1},
}
_SCHEMAS = {}


def schema(action):
    s = _SCHEMAS.get(action)
    if s is None:
        path = os.path.join(gen_ocpp_schema.schema_dir(), action + ".json")
        with open(path, encoding="utf-8-sig") as f:
            s = _SCHEMAS[action] = json.load(f)
    return s


def _nodes(sch, value, path, out):
    out.append((path, sch, value))
    t = sch.get("type")
    if t == "object" and isinstance(value, dict):
        for k, sub in sch.get("properties", {}).items():
            if k in value:
                _nodes(sub, value[k], path + [k], out)
    elif t == "array" and isinstance(value, list):
        for i, v in enumerate(value):
            _nodes(sch["items"], v, path + [i], out)


_WRONG = {"string": (12, None, True, [], {}, 1.5), "integer": ("1", 1.5, True, None, [], {}),
          "number": ("1.5", True, None, [], {}), "boolean": ("true", 1, 0, None, []),
          "object": ([], "x", 1, None), "array": ({}, "x", 1, None)}
_BAD_DATES = ("2024-01-01T00:00:00", "2024-13-01T00:00:00Z", "2023-02-29T12:00:00Z",
              "2024-01-01T24:00:00Z", "2024-01-01 00:00:00Z", "tomorrow", "",
              "2024-01-01T00:00:00.Z", "99999-01-01T00:00:00Z", "2024-01-01T00:00:60Z",
              "2024-01-01T00:00:00+2:00", "2024-01-01T00:00:00Z\n")


def _mutations(path, sch, value):
    t = sch.get("type")
    out = [("type", TYPE if path else FORMATION)]
    if t == "object":
        if sch.get("additionalProperties") is False:
            out.append(("extra", PROPERTY))
        out += [("missing:" + k, OCCURRENCE) for k in sch.get("required", ()) if k in value]
    elif t == "string":
        if "enum" in sch:
            out.append(("enum", PROPERTY))
        if "maxLength" in sch:
            out.append(("length", PROPERTY))
        if sch.get("format") == "date-time":
            out.append(("date", TYPE))
    elif t == "number" and "multipleOf" in sch:
        out.append(("multiple", PROPERTY))
    return out


def _put(root, path, v):
    if not path:
        return v
    node = root
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = v
    return root


def _mutate(rng, what, sch, value):
    t = sch.get("type")
    if what == "type":
        return rng.choice(_WRONG[t])
    if what == "extra":
        v = dict(value)
        key = rng.choice(("extra", "Reset", "idtag", rand_text(rng, rng.randrange(1, 50))))
        while key in sch.get("properties", {}):
            key += "_"
        v[key] = rand_json(rng)
        return v
    if what.startswith("missing:"):
        v = dict(value)
        del v[what[8:]]
        return v
    if what == "enum":
        e = rng.choice(sch["enum"])
        return rng.choice((e.lower(), e + " ", "", rand_text(rng, 6), e.upper() + "X"))
    if what == "length":
        return rand_text(rng, sch["maxLength"] + rng.choice((1, 1, 2, 30)))
    if what == "date":
        return rng.choice(_BAD_DATES)
    return round(rng.uniform(0, 32), 1) + 0.05  # multipleOf 0.1 broken


def bad_payload(rng, i):
    mid = rand_id(rng, i)
    r = rng.random()
    if r < 0.04:  # more keys than GetConfigurationMaxKeys (50), or than the 100-item bound
        keys = [rand_ascii(rng, 10) for _ in range(rng.choice((51, 80, 101, 400)))]
        return "many-items", [2, mid, "GetConfiguration", {"key": keys}], (
            "error", mid, OCCURRENCE)
    action = rng.choice(sorted(BASES))
    base = BASES[action](rng)
    nodes = []
    _nodes(schema(action), base, [], nodes)
    path, sch, value = rng.choice(nodes)
    what, code = rng.choice(_mutations(path, sch, value))
    payload = _put(base, path, _mutate(rng, what, sch, value))
    return what.split(":")[0], [2, mid, action, payload], ("error", mid, code)
