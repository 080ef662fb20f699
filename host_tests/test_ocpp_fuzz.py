"""OCPP fuzz test (tools/ocpp_fuzz.py): a hostile CSMS sends the simulated wallbox (the real
firmware on the MicroPython unix port) 10,000 malformed and hostile frames while an EV charges
and stops in cycles. Every frame gets the CALLERROR or close code OCPP-J / RFC 6455 name, no
task restarts, and the C->B reaction stays within its target throughout.

The generator's own test (fast) checks that each family produces what it says, against the
OCPP 1.6 JSON schemas (jsonschema) and an independent frame parser here."""
import json
import os
import struct
import sys
from decimal import Decimal

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import csms_check  # noqa: E402
import gen_ocpp_schema  # noqa: E402
import ocpp_fuzz  # noqa: E402
import ocpp_fuzz_gen as gen  # noqa: E402

SEED = 20240607
# Valid OCPP that would end or disturb the charging the fuzz watches: never sent as such.
_DANGEROUS = ("Reset", "UnlockConnector", "RemoteStopTransaction", "ChangeAvailability",
              "RemoteStartTransaction", "SendLocalList", "ReserveNow", "SetChargingProfile")


def _frames(data):
    """(fin, rsv, op, masked, declared length, payload) of each server frame in `data`; the
    last one may be cut short."""
    out, i = [], 0
    while i + 2 <= len(data):
        b0, b1 = data[i], data[i + 1]
        n, i = b1 & 0x7F, i + 2
        if n == 126:
            (n,), i = struct.unpack("!H", data[i:i + 2]), i + 2
        elif n == 127:
            (n,), i = struct.unpack("!Q", data[i:i + 8]), i + 8
        key = data[i:i + 4] if b1 & 0x80 else None
        i += 4 if key else 0
        out.append((b0 & 0x80, b0 >> 4 & 7, b0 & 15, key is not None, n, data[i:i + n]))
        i += n
    return out


def _wire(case):
    """The bytes a case sends (without the probe behind a frame that gets no answer)."""
    wire = case.wire[:-1] if case.expect[0] == "none" else case.wire
    return b"".join(s for s in wire if isinstance(s, bytes))


def _message(case):
    """The text message a case's data frames add up to (None if not text)."""
    data = [f for f in _frames(_wire(case)) if f[2] < 8]
    if not data or data[0][2] != 1:
        return None
    return b"".join(f[5] for f in data).decode()


def _no_constant(name):
    raise ValueError("%s is not JSON" % name)


@pytest.fixture(scope="module")
def cases():
    return gen.generate(3000, SEED)


def test_plan_gives_every_family_at_least_one_case_and_exactly_n():
    with pytest.raises(ValueError):
        gen.plan(len(gen.FAMILIES) - 1)
    for n in (15, 16, 100, 10000, 50000):
        p = gen.plan(n)
        assert sum(p.values()) == n and min(p.values()) >= 1 and set(p) == set(gen.FAMILIES)


def test_generator_is_deterministic_and_leaves_out_known_bugs(cases):
    again = gen.generate(3000, SEED)
    assert [c.wire for c in cases] == [c.wire for c in again]
    assert [c.wire for c in gen.generate(200, SEED + 1)] != [c.wire for c in cases[:200]]
    assert not {c.kind for c in cases} & set(gen.KNOWN_BUGS)
    assert {c.kind for c in gen.known_bug_cases()} == set(gen.KNOWN_BUGS + gen.FIXED_BUGS)


def test_message_families_break_the_rule_they_name(cases):
    known = set(gen_ocpp_schema.CSMS_TO_CP) | set(gen_ocpp_schema.CP_TO_CSMS)
    seen = set()
    for c in cases:
        if c.family in ("fragmented", "stall", "oversized", "binary", "bad-utf8",
                        "ws-protocol", "server-close"):
            continue
        seen.add(c.family)
        text = _message(c)
        assert text == c.text
        if c.expect[0] == "none":  # the frame, then the probe CALL that must be answered first
            assert json.loads(_frames(c.wire[-1])[0][5]) == [
                2, c.expect[1], gen.PROBE_ACTION, {}]
        if c.family == "bad-json" and c.kind in ("truncated", "not-json"):
            with pytest.raises(ValueError):  # RFC 8259: NaN, Infinity are no JSON either
                json.loads(text, parse_constant=_no_constant)
            continue
        if c.family == "hostile-json" and c.kind == "deep-nesting":
            continue
        f = json.loads(text)
        exact = json.loads(text, parse_float=Decimal)  # as csms_check's schemas read numbers
        if c.family == "bad-json":
            if c.expect[1] == gen.NO_ID:
                assert type(f) is not list or len(f) < 3 or type(f[0]) is not int
            elif c.expect[0] == "none":
                assert f[0] not in (2, 3, 4) or (f[0], len(f)) not in ((3, 3), (4, 5), (4, 4))
            else:
                assert f[0] == 2 and (len(f) != 4 or type(f[2]) is not str
                                      or type(f[3]) is not dict)
        elif c.family == "unknown-action":
            assert f[2] not in known and c.expect == ("error", f[1], (gen.NOT_IMPLEMENTED,))
        elif c.family == "unsupported-action":
            assert f[2] in gen_ocpp_schema.CSMS_TO_CP
            assert c.expect == ("error", f[1], (gen.NOT_SUPPORTED,))
        elif c.family == "bad-payload":
            if c.kind != "many-items":  # over the charge point's own bounds, not the schema's
                bad = csms_check.check_payload(f[2], exact[3])
                if bad is None:  # jsonschema's date-time lets a trailing newline through;
                    assert c.kind == "date" and ':00Z\\n"' in text, c  # schema.py does not
                    continue
                assert bad is not None, c
                if c.expect[2] != gen.FORMATION:
                    assert bad[0] in c.expect[2] or bad[0] in gen.OCCURRENCE and (
                        c.expect[2] == gen.OCCURRENCE), (c, bad)
            assert c.expect[1] == f[1]
        elif c.family == "bad-id":
            ok = type(f[1]) is str and 0 < len(f[1]) <= 36
            assert ok == (c.kind == "id-36")
            assert c.expect[1] == (f[1] if ok else gen.NO_ID)
        elif c.family == "unknown-result":
            assert f[0] in (3, 4) and c.expect[0] == "none"
        elif c.family == "valid-call":
            assert csms_check.check_payload(f[2], exact[3]) is None, c
            assert c.expect[:3] == ("result", f[1], f[2])
        if type(f) is list and len(f) == 4 and f[0] == 2 and f[2] in _DANGEROUS and (
                type(f[3]) is dict and csms_check.check_payload(f[2], exact[3]) is None):
            p = f[3]  # valid: only forms that cannot stop, unlock, reset or reserve
            assert (f[2] == "RemoteStopTransaction" and p["transactionId"] < 0
                    or f[2] == "ChangeAvailability" and p["type"] == "Operative"
                    or f[2] in ("RemoteStartTransaction", "SetChargingProfile")
                    and p["connectorId"] not in (0, 1)
                    or f[2] == "ReserveNow" and p["connectorId"] == 0), c
    assert seen == set(gen.FAMILIES) - {"fragmented", "stall", "oversized", "binary",
                                        "bad-utf8", "ws-protocol", "server-close"}


def test_wire_families_send_what_they_say(cases):
    seen = set()
    for c in cases:
        fs = _frames(_wire(c))
        seen.add(c.family)
        if c.family == "fragmented":
            data = [f for f in fs if f[2] < 8]
            assert len(data) >= 2 and data[0][2] == 1 and all(f[2] == 0 for f in data[1:])
            assert [bool(f[0]) for f in data] == [False] * (len(data) - 1) + [True]
            assert all(f[2] in (9, 10) and f[4] <= 125 for f in fs if f[2] >= 8)
            json.loads(_message(c))
            assert c.expect[0] in ("error", "result")
        elif c.family == "stall":
            assert any(isinstance(s, float) for s in c.wire) and len(fs) == 1
            assert fs[0][5].decode() == c.text
        elif c.family == "oversized":
            if c.kind == "at-limit":
                assert len(_message(c).encode()) == gen.MAX_FRAME
                assert c.expect[0] == "error"
            else:
                assert fs[0][4] > gen.MAX_FRAME or sum(f[4] for f in fs) > gen.MAX_FRAME
                assert c.expect == ("close", 1009)
        elif c.family == "binary":
            assert fs[0][2] == 2 and c.expect == ("close", 1003)
        elif c.family == "bad-utf8":
            with pytest.raises(UnicodeDecodeError):
                b"".join(f[5] for f in fs).decode()
            assert c.expect == ("close", 1007)
        elif c.family == "ws-protocol":
            f = fs[0]
            close = f[2] == 8 and f[4] <= 125
            bad_code = close and (f[4] == 1 or f[4] >= 2 and not (
                1000 <= struct.unpack("!H", f[5][:2])[0] <= 1003 or 1007 <= struct.unpack(
                    "!H", f[5][:2])[0] <= 1014 or 3000 <= struct.unpack("!H", f[5][:2])[0]
                <= 4999))
            assert (f[1] or f[3] or f[2] in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)
                    or f[2] >= 8 and (f[4] > 125 or not f[0]) or f[2] == 0 or bad_code
                    or f[4] >> 63 or len(fs) > 1 and fs[1][2] == 1), c
            assert c.expect == ("close", 1002)
        elif c.family == "server-close":
            assert c.expect == ("drop",) and None in c.wire or fs[0][2] == 8 and (
                c.expect == ("close", struct.unpack("!H", fs[0][5][:2])[0] if fs[0][5]
                             else None))
    assert seen == set(gen.FAMILIES)


def test_unsupported_actions_are_known_and_have_no_handler():
    from firmware.ocpp import remote, schema
    from firmware.secext import core

    handled = {a for a in schema.REQUESTS[::2] if hasattr(remote, a)} | set(core.ACTIONS)
    assert all(a in schema.REQUESTS and a not in handled for a in gen.UNSUPPORTED)
    assert set(schema.REQUESTS[::2]) - handled == set(gen.UNSUPPORTED)


@pytest.mark.slow
def test_fuzz_10000_frames_right_answers_no_restart_safety_reaction_kept():
    # four simulated wallboxes at once, 2,500 frames each: the fuzz waits on round trips
    res = ocpp_fuzz.run_parallel(10000, SEED, parts=4)
    lines, ok = ocpp_fuzz.summary(res)
    print("\n".join(lines))
    fams = res["families"]
    assert sum(st["sent"] for st in fams.values()) >= 10000
    assert all(st["sent"] >= 1 for st in fams.values()), lines
    assert {f: st["examples"] for f, st in fams.items() if st["wrong"]} == {}
    assert all(st["right"] == st["sent"] for st in fams.values()), lines
    assert res["client_problems"] == []
    assert res["restarts"] == []
    assert res["cycle_errors"] == [] and res["cycles"] >= 12 and res["reactions"]
    assert res["after"] is not None  # a charge cycle after the fuzz: C->B still opens
    # The safety reaction within its target throughout (device clock, which on the unix port
    # is the host's): p99 <= 10 ms, as the issue states the target. Not the max: one host
    # stall of a loaded CI machine (seen: 422 ms at load average 70) would fail it, and the
    # slowest reaction's context is printed above for a reader to judge.
    rx = res["reactions"]
    assert ocpp_fuzz.bench_core.pct(rx, 99) <= ocpp_fuzz.TARGET_P99_MS, lines
    # the protocol violations closed the link and the client came back every time
    assert res["connects"] >= 1 + sum(fams[f]["reconnects"] for f in fams)


# Firmware bugs this fuzz found, fixed: MicroPython's json keeps an escaped surrogate as raw
# CESU-8 bytes; echoed raw, the answer was a text frame that is not valid UTF-8 (a strict CSMS
# closes with 1007). rpc.dumps now writes such halves as \\u escapes again.
_FIXED = {
    "escaped-astral-id": "an id with an escaped character above U+FFFF comes back the same",
    "lone-surrogate-id": "an id with an escaped lone surrogate comes back the same",
    "escaped-astral-key": "an unknown property named with an escaped emoji is named in the "
                          "CALLERROR description as valid UTF-8",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(_FIXED))
def test_found_bugs_stay_fixed(kind):
    case = next(c for c in gen.known_bug_cases(kinds=(kind,)))
    after = [c for c in gen.generate(40, SEED) if c.family in ("unknown-action", "bad-payload")]
    res = ocpp_fuzz.run(cases=[case] + after[:5])
    lines, _ = ocpp_fuzz.summary(res)
    assert all(st["wrong"] == 0 for st in res["families"].values()), (_FIXED[kind], lines)
    assert res["client_problems"] == [] and res["restarts"] == [], lines
