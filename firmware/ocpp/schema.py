# OCPP 1.6J payload checks on the device, from the generated tables at the end of this file (by
# tools/gen_ocpp_schema.py from the official JSON schemas). Pure logic: no I/O, no clock.
#
# check_request(action, payload) checks a CALL the CSMS sent; check_response(action,
# payload) checks the CALLRESULT to a CALL the charge point sent. Each returns None when the
# payload conforms, else (error_code, description) for the CALLERROR, the description naming
# the field path ("idTag: longer than 20", "chargingSchedule.chargingSchedulePeriod[2].limit:
# expected number").
#
# Error codes (OCPP-J 1.6 section 4.2.3), decided as follows:
#   FormationViolation            the payload is not a JSON object
#   TypeConstraintViolation       a field has the wrong JSON type ("somestring": 12; an
#                                 integer field holding 1.5 or true), or a date-time field is
#                                 not an RFC 3339 date-time with a time zone
#   PropertyConstraintViolation   a field's value is not allowed: not in its enum, longer than
#                                 its maxLength, not a multiple of its multipleOf, or a
#                                 property the schema does not name (additionalProperties false)
#   OccurrenceConstraintViolation a required field is missing, or an array has fewer items than
#                                 minItems or more than maxItems (or than MAX_ITEMS, below)
#   NotImplemented                no schema for the action (not an OCPP 1.6 action)
# The first problem found is reported: in an object, first a property it must not have, then
# its fields in schema order, each one's missing-or-value check; an array's length before its
# items.
#
# Bounded work: the walk follows the schema, never the payload, so it goes no deeper than the
# schema (at most 5 levels) and never looks inside a value the schema does not describe. An
# array is measured before its items are read: longer than its maxItems or, where the schema
# sets none, than MAX_ITEMS is refused at once with OccurrenceConstraintViolation. A
# date-time is read as bytes (one pass, no regex).
#
# Differences from jsonschema's Draft 4 reading, on purpose: multipleOf on a float is checked
# to within the float's precision (relative 1e-9 with 64-bit floats, 1e-5 with the 32-bit
# floats of most boards), so 21.4 passes where a float division would say
# 213.99999999999997 (jsonschema gets it right only on Decimals, as the ocpp package parses
# them); a date-time with a trailing newline is refused, one with the basic offset +hhmm
# (which clock.parse reads) passes; the "uri" format is not checked
# (jsonschema does not either, without rfc3987). An escaped surrogate pair counts as one
# character in maxLength, as in JSON Schema, though MicroPython's json keeps it as two.

from . import clock

FORMATION = "FormationViolation"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"
OCCURRENCE = "OccurrenceConstraintViolation"
NOT_IMPLEMENTED = "NotImplemented"

MAX_ITEMS = const(100)  # items in an array whose schema sets no maxItems

# Type codes of the tables (tools/gen_ocpp_schema.py)
_STR = const(0)
_INT = const(1)
_NUM = const(2)
_BOOL = const(3)
_OBJ = const(4)
_ARR = const(5)
_DATE = const(6)
_REQUIRED = const(8)

_TYPE_NAMES = ("string", "integer", "number", "boolean", "object", "array", "date-time")
# The Python type of each code's value (a number may be an int as well; a bool is no int)
_PY_TYPES = (str, int, float, bool, dict, list, str)
# multipleOf tolerance, relative: far above the rounding error of v / arg (a few units in
# the last place) and far below a wrong digit. 32-bit floats (most boards) or 64-bit.
_EPS = 1e-9 if 1.0 + 1e-12 != 1.0 else 1e-5


def check_request(action, payload):
    """A CALL from the CSMS: None if `payload` conforms to `action`'s schema, else
    (error_code, description)."""
    return _payload(REQUESTS, "request ", action, payload, False)


def check_response(action, payload, lax=False):
    """The CALLRESULT to the charge point's CALL `action`: None or (error_code, description).
    lax: only what the charge point needs is checked (required fields, types, enums, array
    lengths): a property the schema does not name, a string over its maxLength and a
    date-time in another format pass (their reader copes: clock.parse, authlist)."""
    return _payload(RESPONSES, "response to ", action, payload, lax)


def _clip(s):
    s = str(s)
    return s if len(s) <= 40 else s[:40] + "..."


def _payload(table, what, action, payload, lax):
    # table: (action, spec, action, spec, ...); an action (a str) equals no spec (a tuple)
    if action not in table:
        return NOT_IMPLEMENTED, "no OCPP 1.6 " + what + _clip(action)
    if type(payload) is not dict:
        return FORMATION, "payload is not a JSON object"
    bad = _object(table[table.index(action) + 1], payload, lax)
    return None if bad is None else (bad[0], bad[1][1:])  # without the leading "."


# The walk allocates nothing on a good payload: an error's path is put together on the way
# back out, each level adding its ".name" or "[i]" in front of the description below it.
def _object(spec, obj, lax):
    n = len(spec)
    # Keys are distinct, so an unknown one turns up within n / 3 + 1 keys. (while loops:
    # a range() would be allocated for each key)
    for key in () if lax else obj:
        i = 0
        while i < n and spec[i] != key:
            i += 3
        if i == n:
            return PROPERTY, "." + _clip(key) + ": not a property of this message"
    i = 0
    while i < n:
        name = spec[i]
        if name in obj:
            bad = _value(spec[i + 1] & 7, spec[i + 2], obj[name], lax)
            if bad is not None:
                return bad[0], "." + name + bad[1]
        elif spec[i + 1] & _REQUIRED:
            return OCCURRENCE, "." + name + ": required"
        i += 3
    return None


def _value(kind, arg, v, lax):
    t = type(v)
    if t is not _PY_TYPES[kind] and not (kind == _NUM and t is int):
        return TYPE, ": expected " + _TYPE_NAMES[kind]
    if kind == _STR:
        if arg is None:
            return None
        if type(arg) is int:
            if not lax and len(v) > arg and len(v) - _surrogate_pairs(v) > arg:
                return PROPERTY, ": longer than %d" % arg
        elif v not in arg:
            allowed = "|".join(arg)
            return PROPERTY, ": not " + (allowed if len(allowed) <= 60 else "an allowed value")
    elif kind == _DATE:
        if not lax and not is_datetime(v):
            return TYPE, ": not an RFC 3339 date-time with a time zone"
    elif kind == _NUM:
        # multipleOf: an int is a multiple of 0.1 (the only step in 1.6; a big int would
        # not even convert to a float); else v / arg must be within _EPS of a whole number
        if arg is not None and not (t is int and arg == 0.1):
            q = v / arg
            d = q % 1  # NaN for an inf or NaN v, which fails the test below
            if not min(d, 1 - d) <= _EPS * (abs(q) + 1):
                return PROPERTY, ": not a multiple of %s" % arg
    elif kind == _OBJ:
        return _object(SHARED[arg] if type(arg) is int else arg, v, lax)
    elif kind == _ARR:
        lo, hi, item_code, item_arg = arg
        n = len(v)
        hi = hi or MAX_ITEMS
        if n > hi:
            return OCCURRENCE, ": more than %d items" % hi
        if n < lo:
            return OCCURRENCE, ": fewer than %d items" % lo
        i = 0
        while i < n:
            bad = _value(item_code, item_arg, v[i], lax)
            if bad is not None:
                return bad[0], "[%d]%s" % (i, bad[1])
            i += 1
    return None


def _surrogate_pairs(s):
    """MicroPython's json keeps an escaped pair ("\\ud83d\\ude00", as CPython's json.dumps
    writes any character above U+FFFF) as two characters; JSON Schema counts one."""
    try:
        b = s.encode()
    except UnicodeError:  # CPython: a lone surrogate; its json joins pairs itself
        return 0
    n = 0
    i = b.find(b"\xed")
    while i >= 0:  # (a pair's low half, at i + 3, is no high half: the search goes on there)
        if b"\xa0" <= b[i + 1:i + 2] <= b"\xaf" and b[i + 3:i + 4] == b"\xed" and (
                b"\xb0" <= b[i + 4:i + 5] <= b"\xbf"):
            n += 1
        i = b.find(b"\xed", i + 1)
    return n


def is_datetime(s):
    """RFC 3339 date-time with a time zone: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM),
    or the basic offset +HHMM that clock.parse reads as well; T and Z in either case; year
    0001-9999, the day within its month, no leap second (clock.fields checks it)."""
    if type(s) is not str:
        return False
    try:
        clock.fields(s)
    except (ValueError, IndexError):
        return False
    return True


# ---- Generated by tools/gen_ocpp_schema.py from here to the end: do not edit ----
# From the OCPP 1.6J JSON schemas of the `ocpp` package (a test checks it is up to
# date). Format: see the generator.
# REQUESTS: what the CSMS may send to a charge point. RESPONSES: the CSMS's answers
# to what a charge point sends. SHARED: the object specs used more than once.
# Tuple literals with no name in them, on purpose: mpy-cross folds each into one
# constant, which a frozen image keeps in flash (no heap). Built at import instead
# (a call per tuple, or a dict), the .mpy would be smaller (each name stored once)
# but the tables would take ~2 KB of a frozen board's heap.
SHARED = (
    (
        'expiryDate', 6, None,
        'parentIdTag', 0, 20,
        'status', 8, ('Accepted', 'Blocked', 'Expired', 'Invalid', 'ConcurrentTx'),
    ),
    (
        'chargingProfileId', 9, None,
        'transactionId', 1, None,
        'stackLevel', 9, None,
        'chargingProfilePurpose', 8, ('ChargePointMaxProfile', 'TxDefaultProfile', 'TxProfile'),
        'chargingProfileKind', 8, ('Absolute', 'Recurring', 'Relative'),
        'recurrencyKind', 0, ('Daily', 'Weekly'),
        'validFrom', 6, None,
        'validTo', 6, None,
        'chargingSchedule', 12, (
            'duration', 1, None,
            'startSchedule', 6, None,
            'chargingRateUnit', 8, ('A', 'W'),
            'chargingSchedulePeriod', 13, (0, 0, 4,
                ('startPeriod', 9, None, 'limit', 10, 0.1, 'numberPhases', 1, None),
            ),
            'minChargingRate', 2, 0.1,
        ),
    ),
)
REQUESTS = (
    'CancelReservation', ('reservationId', 9, None),
    'CertificateSigned', ('certificateChain', 8, 10000),
    'ChangeAvailability', ('connectorId', 9, None, 'type', 8, ('Inoperative', 'Operative')),
    'ChangeConfiguration', ('key', 8, 50, 'value', 8, 500),
    'ClearCache', (),
    'ClearChargingProfile', (
        'id', 1, None,
        'connectorId', 1, None,
        'chargingProfilePurpose', 0, ('ChargePointMaxProfile', 'TxDefaultProfile', 'TxProfile'),
        'stackLevel', 1, None,
    ),
    'DataTransfer', ('vendorId', 8, 255, 'messageId', 0, 50, 'data', 0, None),
    'DeleteCertificate', (
        'certificateHashData', 12, (
            'hashAlgorithm', 8, ('SHA256', 'SHA384', 'SHA512'),
            'issuerNameHash', 8, 128,
            'issuerKeyHash', 8, 128,
            'serialNumber', 8, 40,
        ),
    ),
    'ExtendedTriggerMessage', (
        'requestedMessage', 8, (
            'BootNotification',
            'LogStatusNotification',
            'FirmwareStatusNotification',
            'Heartbeat',
            'MeterValues',
            'SignChargePointCertificate',
            'StatusNotification',
        ),
        'connectorId', 1, None,
    ),
    'GetCompositeSchedule', (
        'connectorId', 9, None,
        'duration', 9, None,
        'chargingRateUnit', 0, ('A', 'W'),
    ),
    'GetConfiguration', ('key', 5, (0, 0, 0, 50)),
    'GetDiagnostics', (
        'location', 8, None,
        'retries', 1, None,
        'retryInterval', 1, None,
        'startTime', 6, None,
        'stopTime', 6, None,
    ),
    'GetInstalledCertificateIds', (
        'certificateType', 8, ('CentralSystemRootCertificate', 'ManufacturerRootCertificate'),
    ),
    'GetLocalListVersion', (),
    'GetLog', (
        'log', 12, (
            'remoteLocation', 8, 512,
            'oldestTimestamp', 6, None,
            'latestTimestamp', 6, None,
        ),
        'logType', 8, ('DiagnosticsLog', 'SecurityLog'),
        'requestId', 9, None,
        'retries', 1, None,
        'retryInterval', 1, None,
    ),
    'InstallCertificate', (
        'certificateType', 8, ('CentralSystemRootCertificate', 'ManufacturerRootCertificate'),
        'certificate', 8, 5500,
    ),
    'RemoteStartTransaction', ('connectorId', 1, None, 'idTag', 8, 20, 'chargingProfile', 4, 1),
    'RemoteStopTransaction', ('transactionId', 9, None),
    'ReserveNow', (
        'connectorId', 9, None,
        'expiryDate', 14, None,
        'idTag', 8, 20,
        'parentIdTag', 0, 20,
        'reservationId', 9, None,
    ),
    'Reset', ('type', 8, ('Hard', 'Soft')),
    'SendLocalList', (
        'listVersion', 9, None,
        'localAuthorizationList', 5, (0, 0, 4, ('idTag', 8, 20, 'idTagInfo', 4, 0)),
        'updateType', 8, ('Differential', 'Full'),
    ),
    'SetChargingProfile', ('connectorId', 9, None, 'csChargingProfiles', 12, 1),
    'SignedUpdateFirmware', (
        'retries', 1, None,
        'retryInterval', 1, None,
        'requestId', 9, None,
        'firmware', 12, (
            'location', 8, 512,
            'retrieveDateTime', 14, None,
            'installDateTime', 6, None,
            'signingCertificate', 8, 5500,
            'signature', 8, 800,
        ),
    ),
    'TriggerMessage', (
        'requestedMessage', 8, (
            'BootNotification',
            'DiagnosticsStatusNotification',
            'FirmwareStatusNotification',
            'Heartbeat',
            'MeterValues',
            'StatusNotification',
        ),
        'connectorId', 1, None,
    ),
    'UnlockConnector', ('connectorId', 9, None),
    'UpdateFirmware', (
        'location', 8, None,
        'retries', 1, None,
        'retrieveDate', 14, None,
        'retryInterval', 1, None,
    ),
)
RESPONSES = (
    'Authorize', ('idTagInfo', 12, 0),
    'BootNotification', (
        'status', 8, ('Accepted', 'Pending', 'Rejected'),
        'currentTime', 14, None,
        'interval', 9, None,
    ),
    'DataTransfer', (
        'status', 8, ('Accepted', 'Rejected', 'UnknownMessageId', 'UnknownVendorId'),
        'data', 0, None,
    ),
    'DiagnosticsStatusNotification', (),
    'FirmwareStatusNotification', (),
    'Heartbeat', ('currentTime', 14, None),
    'LogStatusNotification', (),
    'MeterValues', (),
    'SecurityEventNotification', (),
    'SignCertificate', ('status', 8, ('Accepted', 'Rejected')),
    'SignedFirmwareStatusNotification', (),
    'StartTransaction', ('idTagInfo', 12, 0, 'transactionId', 9, None),
    'StatusNotification', (),
    'StopTransaction', ('idTagInfo', 4, 0),
)
