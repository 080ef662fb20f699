"""The device's OCPP 1.6 payload checks (firmware/ocpp/schema.py) against jsonschema on the
official schemas: generated valid payloads and single mutations of them must get the same
valid/invalid verdict, and each mutation kind its error code. Also writes the vectors that
host_tests/mpy/check_schema.py replays on the real unix port:

    python host_tests/test_schema.py --dump     # rewrite host_tests/schema_vectors.json
"""
import ast
import copy
import json
import os
import random
import sys
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft4Validator, FormatChecker

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for p in (ROOT, HERE, os.path.join(ROOT, "tools")):
    if p not in sys.path:
        sys.path.insert(0, p)
import conftest  # noqa: E402,F401  (micropython shim when run as a script)
import gen_ocpp_schema as gen  # noqa: E402

from firmware.ocpp import schema  # noqa: E402

VECTORS = os.path.join(HERE, "schema_vectors.json")
KINDS = [("request", a, a) for a in gen.CSMS_TO_CP] + [
    ("response", a, a + "Response") for a in gen.CP_TO_CSMS]
EXPECTED = {"drop": schema.OCCURRENCE, "few": schema.OCCURRENCE, "type": schema.TYPE,
            "date": schema.TYPE, "long": schema.PROPERTY, "enum": schema.PROPERTY,
            "multiple": schema.PROPERTY, "unknown": schema.PROPERTY,
            "formation": schema.FORMATION}
BAD_DATES = [
    "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-04-31T10:00:00Z",
    "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z", "2024-01-01T00:00:60Z",
    "2024-01-01T00:00:00", "2024-01-01 00:00:00Z", "0000-01-01T00:00:00Z",
    "2024-01-01T00:00:00+01", "2024-01-01T00:00:00.Z", "2024-1-01T00:00:00Z",
    "20240101T000000Z", "", "now", "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00Z ",
    "\uff12024-01-01T00:00:00Z", "2024-01-01T00:00:00ZZ", "2024-01-00T00:00:00Z",
    "1900-02-29T00:00:00Z", "2024-01-01T00:00:00-05:60", "2024-01-01T00:00",
]
WRONG = {"string": [12, 1.5, True, None, [], {}], "integer": ["12", 1.5, True, None, [], {}],
         "number": ["1", True, None, [], {}], "boolean": [1, 0, "true", None],
         "object": [[], "x", 1, None], "array": [{}, "x", 1, None]}
CHARS = "abcXYZ019 -_.:/\u00e9\u20ac\U0001f600\""


def _load(name):
    with open(os.path.join(gen.schema_dir(), name + ".json"), encoding="utf-8-sig") as f:
        return json.loads(f.read(), parse_float=Decimal)


SCHEMAS = {name: _load(name) for _, _, name in KINDS}
VALIDATORS = {name: Draft4Validator(s, format_checker=FormatChecker())
              for name, s in SCHEMAS.items()}


def oracle_valid(name, payload):
    """jsonschema's verdict; floats parsed as Decimal as the `ocpp` package does, so that
    multipleOf 0.1 holds for 21.4."""
    return VALIDATORS[name].is_valid(json.loads(json.dumps(payload), parse_float=Decimal))


def firmware_check(kind, action, payload):
    fn = schema.check_request if kind == "request" else schema.check_response
    return fn(action, payload)


def _res(node, root):
    while "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def random_date(rng):
    y, mo = rng.randint(1, 9999), rng.randint(1, 12)
    days = [31, 29 if y % 4 == 0 and (y % 100 or y % 400 == 0) else 28, 31, 30, 31, 30, 31,
            31, 30, 31, 30, 31][mo - 1]
    s = "%04d-%02d-%02d%s%02d:%02d:%02d" % (y, mo, rng.randint(1, days), rng.choice("TTt"),
                                            rng.randint(0, 23), rng.randint(0, 59),
                                            rng.randint(0, 59))
    if rng.random() < 0.4:
        s += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9)))
    r = rng.random()
    if r < 0.5:
        return s + rng.choice("Zz")
    return s + "%s%02d:%02d" % (rng.choice("+-"), rng.randint(0, 23), rng.randint(0, 59))


def valid_value(node, root, rng):
    node = _res(node, root)
    t = node["type"]
    if t == "object":
        out = {}
        req = node.get("required", [])
        for k, sub in node.get("properties", {}).items():
            if k in req or rng.random() < 0.6:
                out[k] = valid_value(sub, root, rng)
        return out
    if t == "array":
        n = rng.randint(node.get("minItems", 0), node.get("minItems", 0) + 3)
        return [valid_value(node["items"], root, rng) for _ in range(n)]
    if t == "string":
        if "enum" in node:
            return rng.choice(node["enum"])
        if node.get("format") == "date-time":
            return random_date(rng)
        n = rng.randint(0, int(node.get("maxLength", 30)))
        if rng.random() < 0.3:
            n = int(node.get("maxLength", n))  # right at the limit
        return "".join(rng.choice(CHARS) for _ in range(min(n, 600)))
    if t == "integer":
        return rng.choice([0, 1, -1, rng.randint(-2**40, 2**40), 2**70])
    if t == "number":
        return rng.choice([rng.randint(-1000, 1000), rng.randint(-100000, 100000) / 10, 21.4,
                           0.1, 1e3])
    return rng.random() < 0.5


def sites(node, root, value, path=()):
    """(mutation kind, path, schema node) for every mutation that makes `value` invalid with
    exactly one problem."""
    node = _res(node, root)
    t = node["type"]
    if t == "object":
        yield "unknown", path, node
        for k in node.get("required", []):
            if k in value:
                yield "drop", path + (k,), node
        for k, sub in node.get("properties", {}).items():
            if k in value:
                yield "type", path + (k,), _res(sub, root)
                yield from sites(sub, root, value[k], path + (k,))
    elif t == "array":
        if node.get("minItems", 0) > 0:
            yield "few", path, node
        for i, item in enumerate(value):
            yield "type", path + (i,), _res(node["items"], root)
            yield from sites(node["items"], root, item, path + (i,))
    elif t == "string":
        if "enum" in node:
            yield "enum", path, node
        elif node.get("format") == "date-time":
            yield "date", path, node
        elif "maxLength" in node:
            yield "long", path, node
    elif t == "number" and "multipleOf" in node:
        yield "multiple", path, node


def _set(payload, path, fn):
    if not path:
        return fn(payload)
    out = copy.deepcopy(payload)
    parent = out
    for p in path[:-1]:
        parent = parent[p]
    r = fn(parent[path[-1]])
    if r is _DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = r
    return out


_DROP = object()


def mutate(kind, path, node, payload, rng):
    if kind == "unknown":
        def add(obj):
            obj = dict(obj)
            obj["vendorExtension"] = rng.choice([1, "x", None])
            return obj
        return _set(payload, path, add)
    if kind == "drop":
        return _set(payload, path, lambda v: _DROP)
    if kind == "type":
        return _set(payload, path, lambda v: rng.choice(WRONG[node["type"]]))
    if kind == "few":
        return _set(payload, path, lambda v: [])
    if kind == "enum":
        return _set(payload, path, lambda v: rng.choice(["Bogus", v.lower() + "x", ""]))
    if kind == "date":
        return _set(payload, path, lambda v: rng.choice(BAD_DATES))
    if kind == "long":
        n = int(node["maxLength"])
        return _set(payload, path, lambda v: "".join(
            rng.choice(CHARS) for _ in range(n + rng.choice([1, 1, 2, 50]))))
    if kind == "multiple":
        return _set(payload, path, lambda v: rng.choice([1, -1]) * (
            rng.randint(0, 10000) * 10 + rng.randint(1, 9)) / 100)
    raise AssertionError(kind)


def cases(seed=1, valid_per_schema=25, mutated_per_schema=6):
    """(kind, action, name, mutation or "valid", payload): valid payloads from every schema
    and every single-problem mutation of some of them, plus non-object payloads."""
    rng = random.Random(seed)
    for kind, action, name in KINDS:
        root = SCHEMAS[name]
        for i in range(valid_per_schema):
            p = valid_value(root, root, rng)
            yield kind, action, name, "valid", p
            if i < mutated_per_schema:
                for m, path, node in sites(root, root, p):
                    yield kind, action, name, m, mutate(m, path, node, p, rng)
        for bad in ([], "x", 1, None, [{}]):
            yield kind, action, name, "formation", bad


def test_the_generated_table_is_up_to_date():
    with open(gen.OUT, encoding="utf-8") as f:
        text = f.read()
    assert text == gen.merge(text), "run tools/gen_ocpp_schema.py"
    assert set(schema.REQUESTS[::2]) == set(gen.CSMS_TO_CP)
    assert set(schema.RESPONSES[::2]) == set(gen.CP_TO_CSMS)
    # each table a literal (a frozen board keeps it in flash), no name or call in it
    tree = ast.parse(text[text.index(gen.MARK):])
    tables = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body}
    assert tables == {"SHARED": schema.SHARED, "REQUESTS": schema.REQUESTS,
                      "RESPONSES": schema.RESPONSES}


def test_the_date_time_format_is_really_checked_by_the_oracle():
    # jsonschema skips date-time silently without rfc3339-validator (requirements.txt)
    assert "date-time" in FormatChecker().checkers
    assert not oracle_valid("HeartbeatResponse", {"currentTime": "2024-13-01T00:00:00Z"})


def test_firmware_agrees_with_jsonschema_on_generated_payloads():
    counts = {}
    for kind, action, name, m, payload in cases():
        counts[m] = counts.get(m, 0) + 1
        want = oracle_valid(name, payload)
        got = firmware_check(kind, action, payload)
        where = "%s %s %s %r -> %r" % (name, m, want, payload, got)
        assert (got is None) == want, where
        if m == "valid":
            assert want, where
        else:
            assert got[0] == EXPECTED[m], where
    assert sum(counts.values()) >= 2000, counts
    # no minItems in what the device checks (only in MeterValues.req and a CP's response)
    assert all(counts.get(m, 0) >= 10 for m in EXPECTED if m != "few"), counts


def test_descriptions_name_the_field_path():
    assert schema.check_request("RemoteStartTransaction", {"idTag": "x" * 21}) == (
        schema.PROPERTY, "idTag: longer than 20")
    p = {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0},
                                       {"startPeriod": 60, "limit": "8"}]}}}
    assert schema.check_request("SetChargingProfile", p) == (
        schema.TYPE,
        "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[1].limit: expected number")
    assert schema.check_response("StartTransaction", {"transactionId": 1}) == (
        schema.OCCURRENCE, "idTagInfo: required")
    assert schema.check_request("Reset", {"type": "Hard", "now": True}) == (
        schema.PROPERTY, "now: not a property of this message")
    assert schema.check_request("Reset", {"type": "Warm"}) == (
        schema.PROPERTY, "type: not Hard|Soft")


def test_unknown_actions_and_the_request_set():
    assert "Reset" in schema.REQUESTS and "UpdateFirmware" in schema.REQUESTS
    assert "SignedUpdateFirmware" in schema.REQUESTS and "Authorize" not in schema.REQUESTS
    assert schema.check_request("Authorize", {"idTag": "x"})[0] == schema.NOT_IMPLEMENTED
    assert schema.check_response("Reset", {"status": "Accepted"})[0] == schema.NOT_IMPLEMENTED


def test_min_items_and_max_items_of_the_table_format():
    arr = (1, 3, 1, None)  # 1..3 integers
    assert schema._value(5, arr, [], False) == (schema.OCCURRENCE, ": fewer than 1 items")
    assert schema._value(5, arr, [1, 2, 3, 4], False) == (schema.OCCURRENCE, ": more than 3 items")
    assert schema._value(5, arr, [1, "2"], False) == (schema.TYPE, "[1]: expected integer")
    assert schema._value(5, arr, [1, 2, 3], False) is None


def test_a_hostile_array_is_refused_by_its_length_before_its_items():
    # 10,000 items that are each wrong: the answer is about the length, so none was read
    keys = [{"deep": [1] * 100}] * 10000
    assert schema.check_request("GetConfiguration", {"key": keys}) == (
        schema.OCCURRENCE, "key: more than %d items" % schema.MAX_ITEMS)
    ok = {"key": ["k%d" % i for i in range(schema.MAX_ITEMS)]}
    assert schema.check_request("GetConfiguration", ok) is None
    ok["key"].append("one more")
    assert schema.check_request("GetConfiguration", ok)[0] == schema.OCCURRENCE
    many = {"vendorId": "x", "extra%d" % 0: 1}
    many.update(("k%d" % i, i) for i in range(10000))
    assert schema.check_request("DataTransfer", many)[0] == schema.PROPERTY


@pytest.mark.parametrize("s", ["2024-02-29T23:59:59Z", "2000-02-29T00:00:00.123456789z",
                               "0001-01-01t00:00:00-23:59", "9999-12-31T23:59:59+00:00"])
def test_good_dates(s):
    assert schema.is_datetime(s) and oracle_valid("HeartbeatResponse", {"currentTime": s})


@pytest.mark.parametrize("s", ["2024-01-01T00:00:00+0100", "2024-01-01T00:00:00.5-0000"])
def test_basic_offsets_pass_as_clock_parse_reads_them(s):
    # jsonschema's RFC 3339 refuses them; a CSMS that sends them means a definite instant
    from firmware.ocpp import clock

    assert schema.is_datetime(s) and clock.parse(s) > 0
    assert schema.check_request("ReserveNow", {"connectorId": 1, "expiryDate": s,
                                               "idTag": "A", "reservationId": 1}) is None


def test_lax_response_check_passes_extra_fields_and_formats_not_needed_fields():
    conf = {"transactionId": 5, "x": 1, "idTagInfo": {"status": "Accepted", "y": [],
                                                      "expiryDate": "2030-01-01 00:00",
                                                      "parentIdTag": "p" * 40}}
    assert schema.check_response("StartTransaction", conf)[0] == schema.PROPERTY
    assert schema.check_response("StartTransaction", conf, lax=True) is None
    for bad in ({"transactionId": "5", "idTagInfo": {"status": "Accepted"}},
                {"transactionId": 5, "idTagInfo": {"status": "OK"}},
                {"transactionId": 5}, {"transactionId": 5, "idTagInfo": {"status": 1}}):
        assert schema.check_response("StartTransaction", bad, lax=True) is not None, bad


@pytest.mark.parametrize("s", BAD_DATES + ["2024-01-01T00:00:00Z\n"])
def test_bad_dates(s):
    assert not schema.is_datetime(s)
    if not s.endswith("\n"):  # jsonschema's `$` lets a trailing newline through
        assert not oracle_valid("HeartbeatResponse", {"currentTime": s})


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    # decimals of up to 10 digits: what a JSON number in an OCPP message looks like (a float
    # of 17 digits next to a multiple of 0.1 is a multiple to the device, see schema.py)
    | st.builds(lambda k, d: k / 10 ** d, st.integers(-10**7, 10**7), st.integers(0, 3))
    | st.text(max_size=30)
    | st.sampled_from(["Accepted", "2024-01-01T00:00:00Z", "A", "Hard", "L1"]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids,
                                                                max_size=3),
    max_leaves=6)


@given(which=st.integers(0, len(KINDS) - 1), seed=st.integers(0, 2**32), value=_json,
       pick=st.integers(0, 10**6))
def test_any_json_value_in_any_field_gets_the_same_verdict(which, seed, value, pick):
    kind, action, name = KINDS[which]
    root = SCHEMAS[name]
    payload = valid_value(root, root, random.Random(seed))
    paths = [path for m, path, _ in sites(root, root, payload) if m == "type"]
    if paths:
        payload = _set(payload, paths[pick % len(paths)], lambda v: value)
    assert (firmware_check(kind, action, payload) is None) == oracle_valid(name, payload)


def vectors():
    """A fixed set for the MicroPython check: some of every mutation kind, every schema."""
    out = []
    for kind, action, name, m, payload in cases(seed=7, valid_per_schema=2,
                                                mutated_per_schema=1):
        if len(json.dumps(payload)) <= 1500:
            out.append([kind, action, payload, firmware_check(kind, action, payload)])
    return out


def test_the_micropython_vectors_are_current():
    with open(VECTORS, encoding="utf-8") as f:
        saved = json.load(f)
    assert saved == json.loads(json.dumps(vectors())), "run host_tests/test_schema.py --dump"
    for kind, action, payload, want in saved:
        name = action + ("Response" if kind == "response" else "")
        assert (want is None) == oracle_valid(name, payload)


if __name__ == "__main__" and sys.argv[1:] == ["--dump"]:
    with open(VECTORS, "w", encoding="utf-8") as f:
        json.dump(vectors(), f, separators=(",", ":"))
    print("wrote", VECTORS)
