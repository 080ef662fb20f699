"""Frame generator of the OCPP fuzz test (tools/ocpp_fuzz.py): deterministic hostile frames
from random.Random(seed), each case with the answer the charge point owes for it.

A case is what the fuzzing CSMS writes (`wire`: bytes to send, a float to pause that many
seconds, None to drop the TCP connection) and what must come back (`expect`):
  ("error", id, codes)            a CALLERROR for that id with one of the codes
  ("result", id, action, states)  a CALLRESULT for that id, schema-valid, status in states
                                  (states None: any status)
  ("none", probe_id)              nothing: the probe CALL sent behind it is answered first
  ("close", code)                 the client closes with that code (None: an empty close
                                  payload), then connects again
  ("drop",)                       the fuzzer dropped the link: the client connects again
The expected codes are those OCPP-J 1.6 and RFC 6455 name, read as firmware/ocpp/rpc.py,
schema.py and wsframe.py document them (e.g. an unreadable frame gets ProtocolError with
the id "-1"; a result, an error or an unknown message type is never answered).
"""
import ast
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ocpp_fuzz_parts import (  # noqa: E402,F401  (the building blocks, re-exported)
    BASES, Case, FORMATION, MAX_FRAME, NOT_IMPLEMENTED, NOT_SUPPORTED, NO_ID, OCCURRENCE,
    PROBE_ACTION, PROPERTY, PROTOCOL, TYPE, _profile, bad_payload, dumps, frame, now_iso,
    rand_ascii, rand_id, rand_json, rand_text, schema, text_frame, unknown_action)

# The OCPP 1.6 actions a CSMS may call that the core client's handlers (firmware/ocpp/remote.py:
# functions named after the action) leave out: Firmware Management and the security extension.
# Those the firmware handles elsewhere (firmware/secext/core.py's ACTIONS, ...) are read from
# its source, so the oracle follows the firmware as actions are added: the rest must be
# answered NotSupported.
OPTIONAL = ("GetDiagnostics", "CertificateSigned", "DeleteCertificate",
            "ExtendedTriggerMessage", "GetInstalledCertificateIds", "GetLog",
            "InstallCertificate", "SignedUpdateFirmware")
# (file, the name of its handler table, or None: its handlers are its functions named
# after the action, CamelCase)
TABLES = (("firmware/ocpp/remote.py", None), ("firmware/secext/core.py", "ACTIONS"))


def handled_actions(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))):
    """The actions the firmware's handler modules and tables (TABLES) name."""
    out = set()
    for rel, name in TABLES:
        path = os.path.join(root, rel)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if name is None:
                if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and node.name[0].isupper()):
                    out.add(node.name)
            elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                    and any(getattr(t, "id", None) == name for t in node.targets)):
                out.update(k.value for k in node.value.keys if isinstance(k, ast.Constant))
    return out


UNSUPPORTED = tuple(a for a in OPTIONAL if a not in handled_actions())

# Family -> cases per 10,000. Families that close the link cost a reconnect (about 1 s of
# the client's backoff) each, so they get few; every family gets at least one case.
WEIGHTS = {
    "bad-json": 1400, "unknown-action": 1300, "unsupported-action": 700,
    "bad-payload": 2600, "bad-id": 900, "unknown-result": 900, "valid-call": 900,
    "hostile-json": 450, "fragmented": 500, "stall": 40, "oversized": 6, "binary": 2,
    "bad-utf8": 3, "ws-protocol": 6, "server-close": 4,
}
if not UNSUPPORTED:  # every optional action handled: nothing left to be NotSupported
    del WEIGHTS["unsupported-action"]
FAMILIES = tuple(WEIGHTS)
# Cases that find an open firmware bug: left out of the CI run (skip=KNOWN_BUGS) and replayed
# by their own xfail test in host_tests/test_ocpp_fuzz.py until the firmware is fixed.
KNOWN_BUGS = ()
# Cases that found a bug since fixed: in every run, and replayed by a regression test each.
FIXED_BUGS = ("escaped-astral-id", "lone-surrogate-id", "escaped-astral-key")


# -- the families ------------------------------------------------------------------------------
def _probe(rng, i):
    pid = "probe-%x" % i
    return pid, text_frame(dumps([2, pid, PROBE_ACTION, {}]))


def _none(family, kind, rng, i, wire_frames, text):
    pid, probe = _probe(rng, i)
    return Case(family, kind, list(wire_frames) + [probe], ("none", pid), text)


def _msg(family, kind, obj_or_text, expect):
    text = obj_or_text if isinstance(obj_or_text, str) else dumps(obj_or_text)
    return Case(family, kind, [text_frame(text)], expect, text)


# Not JSON. MicroPython's json reads some broken texts leniently ({1:2}, [2 "a"], [01],
# a bad escape): these still come out as no OCPP-J message. (It also reads {"k":} and
# {"a" 1} as objects, so a CALL holding them would be answered as a good one: left out.)
_NOT_JSON = ("", " ", "[", "]", "[2,", "{", "nul", "[2,'a','B',{}]", "[NaN]", "[Infinity]",
             "[2,\"a\",\"B\",{}] // c", "{1:2}", "[2 \"a\"]", "\"unterminated", "[2,\"a\\q\"]",
             "[01]", "[.5]", "<xml/>", "[2,\"a\",\"B\",{}]]", "\t\n", "[\"\\u12\"]",
             "true false")


def bad_json(rng, i):
    mid = rand_id(rng, i)
    good = dumps([2, mid, unknown_action(rng), {}])
    r = rng.randrange(9)
    if r == 0:  # cut short
        return _msg("bad-json", "truncated", good[:rng.randrange(0, len(good) - 1)],
                    ("error", NO_ID, (PROTOCOL,)))
    if r == 1:
        return _msg("bad-json", "not-json", rng.choice(_NOT_JSON), ("error", NO_ID, (PROTOCOL,)))
    if r == 2:
        t = rng.choice(("{}", "\"x\"", "42", "null", "true", "{\"a\":[2]}", "-1.5e3"))
        return _msg("bad-json", "not-array", t, ("error", NO_ID, (PROTOCOL,)))
    if r == 3:
        return _msg("bad-json", "short-array", rng.choice(([], [2], [2, mid], [3, mid], [4, mid])),
                    ("error", NO_ID, (PROTOCOL,)))
    if r == 4:  # the message type id is not an integer
        kind = rng.choice(("2", 2.0, 2.5, True, None, [2], {}, -0.0))
        return _msg("bad-json", "type-not-int", [kind, mid, "Heartbeat", {}],
                    ("error", NO_ID, (PROTOCOL,)))
    if r == 5:  # an unknown message type: never answered
        kind = rng.choice((0, 1, 5, 6, 99, -2, 2 ** 40))
        f = [kind, mid, rand_json(rng)] + ([rand_json(rng)] if rng.random() < 0.5 else [])
        return _none("bad-json", "unknown-type", rng, i, [text_frame(dumps(f))], dumps(f))
    if r == 6:  # a CALL of the wrong shape
        f = rng.choice(([2, mid, "Heartbeat"], [2, mid, "X", {}, {}], [2, mid, 5, {}],
                        [2, mid, None, {}], [2, mid, ["Reset"], {"type": "Soft"}]))
        return _msg("bad-json", "call-shape", f, ("error", mid, (FORMATION,)))
    if r == 7:  # a CALL whose payload is no object
        f = [2, mid, rng.choice(("Reset", "UnlockConnector", "Heartbeat", unknown_action(rng))),
             rng.choice(([], "x", 1, None, [{"type": "Hard"}], True))]
        return _msg("bad-json", "payload-not-object", f, ("error", mid, (FORMATION,)))
    # a result or an error of the wrong length: never answered
    f = rng.choice(([3, mid, {}, {}], [3, mid, {}, "x", 1], [4, mid, "GenericError"],
                    [4, mid, "GenericError", "d", {}, 1]))
    return _none("bad-json", "answer-shape", rng, i, [text_frame(dumps(f))], dumps(f))


def unknown_action_case(rng, i):
    mid = rand_id(rng, i)
    f = [2, mid, unknown_action(rng), rand_json(rng, 1) if rng.random() < 0.5 else {}]
    if not isinstance(f[3], dict):
        f[3] = {}
    return _msg("unknown-action", "unknown", f, ("error", mid, (NOT_IMPLEMENTED,)))


def unsupported(rng, i):
    mid = rand_id(rng, i)
    payload = rand_json(rng, 1) if rng.random() < 0.3 else {}
    f = [2, mid, rng.choice(UNSUPPORTED), payload if isinstance(payload, dict) else {}]
    return _msg("unsupported-action", f[2], f, ("error", mid, (NOT_SUPPORTED,)))


def bad_payload_case(rng, i):
    kind, f, expect = bad_payload(rng, i)
    return _msg("bad-payload", kind, f, expect)


def bad_id(rng, i):
    r = rng.random()
    action = unknown_action(rng)
    if r < 0.15:  # at the limit: 36 characters (some beyond ASCII) are a good id
        mid = rng.choice((rand_ascii(rng, 36), rand_text(rng, 36)))
        return _msg("bad-id", "id-36", [2, mid, action, {}], ("error", mid, (NOT_IMPLEMENTED,)))
    if r < 0.6:
        mid = rng.choice((rand_ascii(rng, 37), rand_text(rng, rng.randrange(37, 500)),
                          rand_ascii(rng, 5000)))
    else:
        mid = rng.choice((12, -1, 0, 1.5, None, True, [], ["a"], {"id": "a"}, ""))
    kind = rng.choice((2, 2, 2, 3, 4))
    f = [kind, mid, action, {}] if kind == 2 else (
        [3, mid, {}] if kind == 3 else [4, mid, "GenericError", "x", {}])
    return _msg("bad-id", "id-bad", f, ("error", NO_ID, (PROTOCOL,)))


def unknown_result(rng, i):
    mid = rng.choice((rand_id(rng, i), "-1", rand_text(rng, 36), "1"))
    if rng.random() < 0.5:
        f = [3, mid, rand_json(rng, 1)]
    else:
        f = [4, mid, rng.choice(("GenericError", "NotImplemented", "Bogus", 5)),
             rng.choice(("desc", 3, None)), rng.choice(({}, [], "x"))]
    return _none("unknown-result", f[0] == 3 and "result" or "error", rng, i,
                 [text_frame(dumps(f))], dumps(f))


def valid_call(rng, i):
    """Valid OCPP that changes nothing that matters to the charging watched."""
    mid = rand_id(rng, i)
    ok = ("Accepted",)
    table = (
        ("GetConfiguration", {}, None),
        ("GetConfiguration", {"key": [rng.choice(("HeartbeatInterval", "AuthorizationKey",
                                                  rand_text(rng, 20))) for _ in range(
            rng.randrange(0, 50))]}, None),
        ("GetLocalListVersion", {}, None),
        ("DataTransfer", {"vendorId": rand_text(rng, rng.randrange(1, 255)),
                          "data": rand_text(rng, rng.randrange(0, 2000))}, ("UnknownVendorId",)),
        ("ClearCache", {}, ok),
        ("CancelReservation", {"reservationId": rng.randrange(10 ** 6, 2 ** 31)}, ("Rejected",)),
        ("ClearChargingProfile", {"id": rng.randrange(10 ** 6, 2 ** 31)}, ("Unknown",)),
        ("GetCompositeSchedule", {"connectorId": rng.choice((0, 1)),
                                  "duration": rng.randrange(0, 86400)}, None),
        ("GetCompositeSchedule", {"connectorId": rng.choice((2, 9, -1)), "duration": 60},
         ("Rejected",)),
        # a writable key that changes nothing while no transaction message fails
        ("ChangeConfiguration", {"key": "TransactionMessageRetryInterval",
                                 "value": str(rng.randrange(1, 86401))}, ok),
        ("ChangeConfiguration", {"key": "TransactionMessageRetryInterval", "value": rng.choice(
            ("0", "86401", "-1", "abc", "", "1.5", "99999999999"))}, ("Rejected",)),
        ("ChangeConfiguration", {"key": "ResetRetries", "value": "3"}, ("Rejected",)),
        ("ChangeConfiguration", {"key": "NumberOfConnectors", "value": "2"}, ("Rejected",)),
        ("ChangeConfiguration", {"key": rand_text(rng, rng.randrange(1, 50)), "value": "1"},
         ("NotSupported",)),
        ("TriggerMessage", {"requestedMessage": rng.choice(("Heartbeat", "StatusNotification"))},
         ok),
        ("TriggerMessage", {"requestedMessage": "BootNotification"}, ("Rejected",)),
        ("TriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": 2}, ("Rejected",)),
        ("ReserveNow", {"connectorId": 0, "expiryDate": now_iso(rng), "idTag": "R",
                        "reservationId": 9}, ("Rejected",)),
        ("SetChargingProfile", {"connectorId": rng.choice((2, 5)),
                                "csChargingProfiles": _profile(rng)}, ("Rejected",)),
        ("ChangeAvailability", {"connectorId": rng.choice((2, 7)), "type": "Operative"},
         ("Rejected",)),
        ("ChangeAvailability", {"connectorId": 1, "type": "Operative"}, ok),
        ("RemoteStopTransaction", {"transactionId": -rng.randrange(1, 2 ** 31)}, ("Rejected",)),
        ("RemoteStartTransaction", {"idTag": "X", "connectorId": 3}, ("Rejected",)),
    )
    action, payload, states = rng.choice(table)
    return _msg("valid-call", action, [2, mid, action, payload],
                ("result", mid, action, states))


HOSTILE_KINDS = ("nesting", "deep-nesting", "alloc", "numbers", "controls", "spaces",
                 "escaped-astral-id", "lone-surrogate-id", "escaped-astral-key")


def hostile_json(rng, i, skip=()):
    mid = rand_id(rng, i)
    kinds = [k for k in HOSTILE_KINDS if k not in skip]
    kind = rng.choice(kinds)
    if kind in ("nesting", "deep-nesting"):  # up to what fits in MAX_FRAME
        d = rng.randrange(2, 40) if kind == "nesting" else rng.randrange(2000, 8150)
        deep = "[" * d + "]" * d
        if rng.random() < 0.5:  # the schema check meets a deep value where a string belongs
            t = '[2,"%s","GetConfiguration",{"key":[%s]}]' % (mid, deep)
            return _msg("hostile-json", kind, t, ("error", mid, (TYPE,)))
        t = '[2,"%s","%s",{"a":%s}]' % (mid, rand_ascii(rng, 8), deep)
        return _msg("hostile-json", kind, t, ("error", mid, (NOT_IMPLEMENTED,)))
    if kind == "alloc":  # many small containers: the most heap per frame byte
        n = rng.randrange(500, 3000)
        t = '[2,"%s","%s",{"a":[%s]}]' % (mid, rand_ascii(rng, 8), ",".join(
            [rng.choice(("{}", "[]", "0", '""'))] * n))
        return _msg("hostile-json", kind, t, ("error", mid, (NOT_IMPLEMENTED,)))
    if kind == "numbers":
        v = rng.choice(("1e999", "-1e999", "123456789012345678901234567890", "1e-999",
                        "-0", "4.9e-324", "18446744073709551616"))
        if v in ("1e999", "-1e999", "1e-999", "4.9e-324"):
            t, exp = '[2,"%s","ChangeAvailability",{"connectorId":%s,"type":"Operative"}]' % (
                mid, v), ("error", mid, (TYPE,))
        else:
            t = '[2,"%s","ChangeAvailability",{"connectorId":%s,"type":"Operative"}]' % (mid, v)
            exp = ("result", mid, "ChangeAvailability", ("Rejected",) if v != "-0" else (
                "Rejected", "Accepted"))
        return _msg("hostile-json", kind, t, exp)
    if kind == "controls":  # escaped control characters and NUL in ids and fields
        mid = "\x00%s\x1f" % rand_ascii(rng, 5)
        f = [2, mid, unknown_action(rng), {"idTag": "\x00\n\t\"\\"}]
        return _msg("hostile-json", kind, dumps(f), ("error", mid, (NOT_IMPLEMENTED,)))
    if kind == "spaces":  # legal white space everywhere
        sp = lambda: rng.choice((" ", "\n", "\t", "\r\n", "  "))  # noqa: E731
        t = "%s[%s2%s,%s\"%s\"%s,\"%s\",{%s}%s]%s" % (sp(), sp(), sp(), sp(), mid, sp(),
                                                    unknown_action(rng), sp(), sp(), sp())
        return _msg("hostile-json", kind, t, ("error", mid, (NOT_IMPLEMENTED,)))
    if kind == "escaped-astral-key":  # an unknown property named with an escaped emoji
        f = [2, mid, "ChangeAvailability", {"connectorId": 1, "type": "Operative",
                                            "\U0001f600": 1}]
        return _msg("hostile-json", kind, json.dumps(f), ("error", mid, (PROPERTY,)))
    # ids the CPython json module writes as \\u escapes: a character above U+FFFF (a surrogate
    # pair) or a lone surrogate; the answer must carry the same id, as valid UTF-8
    mid = ("%s\U0001f600" % rand_ascii(rng, 4) if kind == "escaped-astral-id"
           else "%s\ud800" % rand_ascii(rng, 4))
    f = [2, mid, rand_ascii(rng, 9), {}]
    return _msg("hostile-json", kind, json.dumps(f), ("error", mid, (NOT_IMPLEMENTED,)))


def _answerable(rng, i):
    """A message that must be answered (its text and expectation) for the wire families."""
    c = rng.choice((unknown_action_case, bad_payload_case, valid_call, unsupported))(rng, i)
    return c.text, c.expect


def fragmented(rng, i):
    text, expect = _answerable(rng, i)
    if rng.random() < 0.3:  # a multi-byte character cut between two fragments
        mid = rand_id(rng, i)
        text = dumps([2, mid, unknown_action(rng), {"\u20ac\U0001f600": "\u4e2d" * 50}])
        expect = ("error", mid, (NOT_IMPLEMENTED,))
    data = text.encode()
    cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(1, 8)))
    parts = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    wire = b""
    for k, p in enumerate(parts):
        wire += frame(1 if k == 0 else 0, p, fin=k == len(parts) - 1)
        if k < len(parts) - 1 and rng.random() < 0.3:  # control frames may come in between
            wire += frame(rng.choice((9, 10)), rand_ascii(rng, rng.randrange(0, 125)).encode())
    return Case("fragmented", "%d-parts" % len(parts), [wire], expect, text)


def stall(rng, i):
    text, expect = _answerable(rng, i)
    data = text_frame(text)
    cuts = sorted(set(rng.randrange(1, len(data)) for _ in range(rng.randrange(1, 3))))
    wire = []
    for a, b in zip([0] + cuts, cuts + [len(data)]):
        if a:
            wire.append(rng.uniform(0.02, 0.15))
        wire.append(data[a:b])
    return Case("stall", "%d-pauses" % len(cuts), wire, expect, text)


def oversized(rng, i):
    r = rng.random()
    if r < 0.4:  # exactly MAX_FRAME bytes: must be answered
        mid = rand_id(rng, i)
        head = '[2,"%s","%s",{"pad":"' % (mid, rand_ascii(rng, 8))
        tail = rng.choice(('"}]', '"}] ', '"}]\n\n'))  # the last bytes may be white space
        text = head + "x" * (MAX_FRAME - len(head) - len(tail)) + tail
        return Case("oversized", "at-limit", [text_frame(text)],
                    ("error", mid, (NOT_IMPLEMENTED,)), text[:200])
    if r < 0.7:  # a length over the limit (a 16- or 64-bit length); the bytes never come
        n = rng.choice((MAX_FRAME + 1, 65535, 1 << 20, 1 << 32, (1 << 62) + 5))
        return Case("oversized", "declared-%d" % n, [frame(1, b"[2,", length=n)[:14]],
                    ("close", 1009), "length %d" % n)
    first = b"[2," + b" " * (MAX_FRAME - 10)  # the fragments add up to more than the limit
    wire = frame(1, first, fin=False) + frame(0, b" " * 20, fin=False) + frame(0, b"]")
    return Case("oversized", "fragments-over", [wire], ("close", 1009), "fragments > limit")


def binary(rng, i):
    text, _ = _answerable(rng, i)
    data = rng.choice((text.encode(), bytes(rng.randrange(256) for _ in range(30))))
    wire = frame(2, data, fin=rng.random() < 0.7)
    return Case("binary", "binary", [wire], ("close", 1003), repr(data[:60]))


_BAD_UTF8 = (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82",
             b"\x80", b"\xf5\x80\x80\x80", b"\xc3")


def bad_utf8(rng, i):
    bad = rng.choice(_BAD_UTF8)
    data = b'[2,"x","' + bad + b'",{}]'
    if rng.random() < 0.5:
        return Case("bad-utf8", "frame", [frame(1, data)], ("close", 1007), repr(data))
    k = data.index(bad) + 1  # the bad sequence ends the message split over fragments
    wire = frame(1, data[:k], fin=False) + frame(0, data[k:])
    return Case("bad-utf8", "fragments", [wire], ("close", 1007), repr(data))


def ws_protocol(rng, i):
    ok = text_frame(dumps([2, rand_id(rng, i), "X", {}]))
    choices = (
        ("rsv", frame(1, ok[2:], rsv=rng.choice((1, 2, 4, 7)))),
        ("masked", frame(1, ok[2:], mask=bytes(rng.randrange(256) for _ in range(4)))),
        ("opcode", frame(rng.choice((3, 4, 5, 6, 7, 11, 12, 13, 14, 15)), b"x")),
        ("control-126", frame(9, b"p" * 126)),
        ("control-big", frame(rng.choice((9, 10, 8)), b"p" * rng.randrange(127, 400))),
        ("control-fragmented", frame(9, b"ping", fin=False)),
        ("orphan-continuation", frame(0, b"orphan")),
        ("new-message-mid-fragments", frame(1, b"[2,", fin=False) + frame(1, b"x")),
        ("close-1-byte", frame(8, b"\x03")),
        ("close-bad-code", frame(8, struct.pack("!H", rng.choice(
            (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535))))),
        ("length-top-bit", frame(1, length=(1 << 63) | 5)),
    )
    kind, wire = rng.choice(choices)
    return Case("ws-protocol", kind, [wire], ("close", 1002), repr(wire[:40]))


def server_close(rng, i):
    r = rng.randrange(5)
    if r == 0:  # a clean close: the client echoes the code
        code = rng.choice((1000, 1001, 1011, 3000, 4000, 4999))
        reason = rand_text(rng, 10).encode()  # at most 40 bytes: a close frame holds 125
        wire = [frame(8, struct.pack("!H", code) + reason)]
        return Case("server-close", "close-%d" % code, wire, ("close", code), "close %d" % code)
    if r == 1:
        return Case("server-close", "close-empty", [frame(8)], ("close", None), "close, no code")
    data = text_frame(dumps([2, rand_id(rng, i), unknown_action(rng), {}]))
    if r == 2:  # the TCP link drops in mid-frame
        return Case("server-close", "drop-mid-frame", [data[:rng.randrange(1, len(data))], None],
                    ("drop",), "drop mid-frame")
    if r == 3:  # stalls in mid-frame, then drops
        return Case("server-close", "stall-then-drop", [
            data[:rng.randrange(1, len(data))], rng.uniform(0.05, 0.3), None], ("drop",),
            "stall, drop")
    return Case("server-close", "drop", [None], ("drop",), "drop between frames")


MAKERS = {"bad-json": bad_json, "unknown-action": unknown_action_case,
          "unsupported-action": unsupported, "bad-payload": bad_payload_case, "bad-id": bad_id,
          "unknown-result": unknown_result, "valid-call": valid_call,
          "hostile-json": hostile_json, "fragmented": fragmented, "stall": stall,
          "oversized": oversized, "binary": binary, "bad-utf8": bad_utf8,
          "ws-protocol": ws_protocol, "server-close": server_close}


def plan(n, families=FAMILIES):
    """How many cases of each family n cases hold: at least one of each."""
    total = sum(WEIGHTS[f] for f in families)
    if n < len(families):
        raise ValueError("at least %d cases: one per family" % len(families))
    counts = {f: max(1, round(n * WEIGHTS[f] / total)) for f in families}
    while sum(counts.values()) > n:  # exactly n in all
        counts[max(counts, key=counts.get)] -= 1
    counts[max(counts, key=counts.get)] += n - sum(counts.values())
    return counts


def generate(n, seed, families=FAMILIES, skip=KNOWN_BUGS):
    """n cases from random.Random(seed), the families in a random order; `skip` names case
    kinds (hostile-json's) to leave out."""
    rng = random.Random(seed)
    order = [f for f, k in plan(n, families).items() for _ in range(k)]
    rng.shuffle(order)
    out = []
    for i, fam in enumerate(order):
        if fam == "hostile-json":
            out.append(hostile_json(rng, i, skip))
        else:
            out.append(MAKERS[fam](rng, i))
    return out


def known_bug_cases(seed=1, kinds=KNOWN_BUGS + FIXED_BUGS):
    """One case of each kind named (the reproducers of bugs found, open or fixed)."""
    rng = random.Random(seed)
    return [hostile_json(rng, i, skip=[x for x in HOSTILE_KINDS if x != k])
            for i, k in enumerate(kinds)]
