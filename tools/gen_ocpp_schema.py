"""Generate firmware/ocpp/schema16.py: the OCPP 1.6J JSON schemas as compact tables for the
device's payload checks (firmware/ocpp/schema.py).

    python tools/gen_ocpp_schema.py            # (re)write firmware/ocpp/schema16.py
    python tools/gen_ocpp_schema.py --check    # exit 1 if the committed file is out of date

The source is the schema set that the `ocpp` package ships (ocpp/v16/schemas/*.json). Only
facts go into the table: field names, types, required flags, enums, maxLength, minItems/
maxItems, multipleOf and the date-time format. A keyword the table cannot express stops the
generator with its name and path, so a new schema set never loses a rule silently.

Table format (the type codes are the constants of firmware/ocpp/schema.py):
    object spec  = its fields one after the other, three items each: (name, code, arg,
                   name, code, arg, ...): one tuple per object, not one per field, is what
                   keeps the table small in RAM (every object in 1.6 has additionalProperties
                   false, so there is no flag for that)
    code         = type | REQUIRED (8); type: 0 string, 1 integer, 2 number, 3 boolean,
                   4 object, 5 array, 6 date-time string
    arg          = string: maxLength (int), enum (tuple of str) or None
                   number: multipleOf or None
                   object: its object spec
                   array:  (minItems, maxItems or 0, item code, item arg)
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "firmware", "ocpp", "schema16.py")

# What the CSMS sends to a charge point (section 5 of OCPP 1.6 edition 2, the Firmware
# Management profile, and the 2020 security whitepaper's additions).
CSMS_TO_CP = (
    "CancelReservation", "ChangeAvailability", "ChangeConfiguration", "ClearCache",
    "ClearChargingProfile", "DataTransfer", "GetCompositeSchedule", "GetConfiguration",
    "GetLocalListVersion", "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow",
    "Reset", "SendLocalList", "SetChargingProfile", "TriggerMessage", "UnlockConnector",
    # Firmware Management
    "GetDiagnostics", "UpdateFirmware",
    # security extension
    "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage",
    "GetInstalledCertificateIds", "GetLog", "InstallCertificate", "SignedUpdateFirmware",
)
# What a charge point sends: the table holds the CSMS's responses to these.
CP_TO_CSMS = (
    "Authorize", "BootNotification", "DataTransfer", "Heartbeat", "MeterValues",
    "StartTransaction", "StatusNotification", "StopTransaction",
    # Firmware Management
    "DiagnosticsStatusNotification", "FirmwareStatusNotification",
    # security extension
    "LogStatusNotification", "SecurityEventNotification", "SignCertificate",
    "SignedFirmwareStatusNotification",
)

STR, INT, NUM, BOOL, OBJ, ARR, DATE = range(7)
REQUIRED = 8
_TYPES = {"string": STR, "integer": INT, "number": NUM, "boolean": BOOL, "object": OBJ,
          "array": ARR}
# Keywords that carry no rule here: annotations, and additionalProperties on a non-object
# (it only applies to objects) or additionalItems beside a single items schema.
_IGNORED = {"$schema", "$id", "id", "title", "description", "javaType", "definitions"}


def schema_dir():
    import ocpp
    return os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")


def load(name):
    with open(os.path.join(schema_dir(), name + ".json"), encoding="utf-8-sig") as f:
        return json.load(f)


class SchemaError(Exception):
    pass


def _resolve(node, root, path):
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/definitions/"):
            raise SchemaError("%s: unsupported $ref %s" % (path, ref))
        node = root["definitions"][ref[len("#/definitions/"):]]
    return node


def _value(node, root, path):
    """(code, arg) of one schema node."""
    node = _resolve(node, root, path)
    kind = node.get("type")
    if kind not in _TYPES:
        raise SchemaError("%s: unsupported type %r" % (path, kind))
    code = _TYPES[kind]
    used = {"type"}
    arg = None
    if code == STR:
        fmt = node.get("format")
        used.add("format")
        if fmt == "date-time":
            code = DATE
        elif fmt not in (None, "uri"):  # uri: no check (jsonschema has none without rfc3987)
            raise SchemaError("%s: unsupported format %r" % (path, fmt))
        if "enum" in node and "maxLength" in node:
            raise SchemaError("%s: enum and maxLength together" % path)
        if "enum" in node:
            arg = tuple(node["enum"])
            if not all(isinstance(x, str) for x in arg):
                raise SchemaError("%s: non-string enum" % path)
        elif "maxLength" in node:
            arg = int(node["maxLength"])
        used.update(("enum", "maxLength", "additionalProperties"))
    elif code == NUM:
        arg = node.get("multipleOf")
        used.add("multipleOf")
    elif code == OBJ:
        arg = _object(node, root, path)
        used.update(("properties", "required", "additionalProperties"))
    elif code == ARR:
        item = _value(node["items"], root, path + "[]")
        arg = (int(node.get("minItems", 0)), int(node.get("maxItems", 0))) + item
        used.update(("items", "minItems", "maxItems", "additionalItems"))
    left = set(node) - used - _IGNORED
    if left:
        raise SchemaError("%s: unsupported keywords %s" % (path, sorted(left)))
    return code, arg


def _object(node, root, path):
    if node.get("additionalProperties", True) is not False:
        raise SchemaError("%s: objects must have additionalProperties false" % path)
    required = node.get("required", [])
    props = node.get("properties", {})
    missing = set(required) - set(props)
    if missing:
        raise SchemaError("%s: required but not described: %s" % (path, sorted(missing)))
    fields = []
    for name, sub in props.items():
        code, arg = _value(sub, root, path + "." + name)
        fields += (name, code | (REQUIRED if name in required else 0), arg)
    return tuple(fields)


def table(name):
    """The object spec of one schema file (e.g. "BootNotificationResponse")."""
    root = load(name)
    code, arg = _value(root, root, name)
    if code != OBJ:
        raise SchemaError("%s: the payload must be an object" % name)
    return arg


def _is_object(t):
    return bool(t) and len(t) % 3 == 0 and all(
        isinstance(t[i], str) and isinstance(t[i + 1], int) for i in range(0, len(t), 3))


def _is_spec(t):
    """An object spec or an enum (tuple of str): the tuples worth naming."""
    return bool(t) and (all(isinstance(x, str) for x in t) or _is_object(t))


def _shared(tables):
    """Object specs and enums used more than once, worth a module-level name each (the .mpy
    then holds them once). One used only inside another named one as often is left there."""
    count = {}

    def walk(t, parents):
        if isinstance(t, tuple):
            if _is_spec(t) and len(repr(t)) >= 60:
                count.setdefault(t, [0, set()])
                count[t][0] += 1
                count[t][1].update(parents)
                parents = parents + (t,)
            for x in t:
                walk(x, parents)

    for t in tables:
        walk(t, ())
    named = {}
    for t in sorted(count, key=lambda t: -len(repr(t))):
        n, parents = count[t]
        if n >= 2 and not any(p in named and count[p][0] == n for p in parents):
            named[t] = None
    for i, t in enumerate(sorted(named, key=lambda t: len(repr(t)))):
        named[t] = "_S%d" % i
    return named


def _fmt(t, names, indent, used=0, top=False):
    """Python source of a table value, wrapped to 99 columns (`used`: columns taken on the
    first line by what stands before it), shared parts by name. An object spec or an enum is
    written as a call _spec(...), not as a tuple literal (see render())."""
    if not top and t in names:
        return names[t]
    if not isinstance(t, tuple):
        return repr(t)
    call = "_spec" if _is_spec(t) else ""
    one = call + "(" + ", ".join(_fmt(x, names, 0) for x in t) + ("," if len(t) == 1 else "") + ")"
    if indent + used + len(one) <= 97:
        return one
    pad = " " * (indent + 4)
    if _is_object(t):  # one field a line
        rows = []
        for i in range(0, len(t), 3):
            head = "%r, %r, " % t[i:i + 2]
            rows.append(head + _fmt(t[i + 2], names, indent + 4, len(head)))
        return call + "(\n" + "".join(pad + r + ",\n" for r in rows) + " " * indent + ")"
    if _is_spec(t):  # one enum value a line
        rows = [_fmt(x, names, indent + 4) for x in t]
        return call + "(\n" + "".join(pad + r + ",\n" for r in rows) + " " * indent + ")"
    # a field or an array's arg: the scalars on the first line, the nested part below
    head = ", ".join(repr(x) for x in t[:-1])
    return ("(" + head + ",\n" + pad + _fmt(t[-1], names, indent + 4) + ",\n"
            + " " * indent + ")")


def render():
    """The text of firmware/ocpp/schema16.py."""
    groups = (("REQUESTS", [(a, table(a)) for a in sorted(CSMS_TO_CP)]),
              ("RESPONSES", [(a, table(a + "Response")) for a in sorted(CP_TO_CSMS)]))
    names = _shared([t for _, rows in groups for _, t in rows])
    out = [
        "# Generated by tools/gen_ocpp_schema.py from the OCPP 1.6J JSON schemas of the `ocpp`",
        "# package; do not edit (a test checks it is up to date). Format: see the generator.",
        "# REQUESTS: what the CSMS may send to a charge point. RESPONSES: the CSMS's answers",
        "# to what a charge point sends.",
        "# Each object spec and enum is made by a call to _spec, not written as a tuple literal:",
        "# mpy-cross would fold a literal into one constant that repeats every name in full",
        "# (\"connectorId\" 9 times); through the call each name is stored once in the .mpy.",
        "",
        "",
        "def _spec(*items):",
        "    return items",
        "",
        "",
    ]
    for t, name in sorted(names.items(), key=lambda kv: int(kv[1][2:])):
        out.append("%s = %s" % (name, _fmt(t, names, 0, len(name) + 3, top=True)))
    for var, rows in groups:
        out.append("%s = {" % var)
        for action, t in rows:
            out.append("    %r: %s," % (action, _fmt(t, names, 4, len(action) + 4)))
        out.append("}")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only say if the file is stale")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    text = render()
    try:
        with open(args.out, encoding="utf-8") as f:
            old = f.read()
    except OSError:
        old = None
    if args.check:
        if old != text:
            print("%s is out of date: run tools/gen_ocpp_schema.py" % args.out)
            return 1
        print("%s is up to date" % args.out)
        return 0
    if old != text:
        with open(args.out + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(args.out + ".tmp", args.out)
    print("wrote %s (%d bytes)" % (args.out, len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
