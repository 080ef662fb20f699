"""firmware/ocpp/smart.py: OCPP 1.6 charging profiles (3.13, 5.16): what SetChargingProfile
accepts, the limit in force at a given second, ClearChargingProfile, the transaction's
profiles, persistence, and the composite schedule, which must agree with the limit."""
import json
import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from firmware.ocpp import clock, schema, smart
from firmware.ocpp import smart_store as store
from firmware.ocpp.smart import Profiles

T0 = clock.parse("2026-03-02T00:00:00Z")  # a Monday, midnight
H = 3600
DAY = 86400


def listed(ps):
    """One short dict per installed profile (read from the store's records)."""
    return [{"id": r[smart._R_ID], "connectorId": r[smart._R_CONN],
             "purpose": store.PURPOSES[r[smart._R_PURPOSE]], "stackLevel": r[smart._R_STACK],
             "transactionId": r[smart._R_TX]} for r in ps._r]


def profile(ps, pid):
    """The csChargingProfiles dict of installed profile pid, or None."""
    for r in ps._r:
        if r[smart._R_ID] == pid:
            return store.to_dict(r)
    return None


def prof(pid, purpose="TxDefaultProfile", kind="Absolute", stack=0, periods=((0, 16),),
         unit="A", start=T0, duration=None, **extra):
    s = {"chargingRateUnit": unit,
         "chargingSchedulePeriod": [dict({"startPeriod": a, "limit": b}, **(
             {"numberPhases": c[0]} if c else {})) for a, b, *c in periods]}
    if start is not None:
        s["startSchedule"] = clock.iso(start)
    if duration is not None:
        s["duration"] = duration
    p = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": s}
    for k in ("validFrom", "validTo"):
        if k in extra:
            v = extra.pop(k)
            p[k] = clock.iso(v) if isinstance(v, int) else v
    p.update(extra)
    return p


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "ocpp_profiles.json")


@pytest.fixture
def ps(path):
    return Profiles(path)


def amps(ps, t, **kw):
    return ps.limit(t, **kw)[0]


# -- the OCPP 1.6 examples ------------------------------------------------------------------

def test_stacking_a_holiday_profile_over_a_daily_default(ps):
    # 3.13.2: stackLevel 0 holds the every-day policy (11 kW, 6 kW from 08:00 to 20:00);
    # a stackLevel 1 profile valid for one day only overrules it on that day.
    daily = prof(1, kind="Recurring", recurrencyKind="Daily", unit="W",
                 periods=((0, 11000), (8 * H, 6000), (20 * H, 11000)))
    holiday = prof(2, stack=1, unit="W", periods=((0, 22000),),
                   validFrom=T0 + 5 * DAY, validTo=T0 + 6 * DAY)
    assert ps.set(0, daily) == "Accepted"
    assert ps.set(0, holiday) == "Accepted"
    # 11000 W / (230 V x 3) = 15.94 A, rounded down to 15.9; 6000 W -> 8.6 A
    assert ps.limit(T0 + 7 * H) == (15.9, "TxDefaultProfile 1", T0 + 8 * H)
    assert ps.limit(T0 + 12 * H) == (8.6, "TxDefaultProfile 1", T0 + 20 * H)
    assert amps(ps, T0 + 5 * DAY + 12 * H) == 31.8  # the holiday: 22 kW all day
    assert ps.limit(T0 + 5 * DAY + 12 * H)[1] == "TxDefaultProfile 2"
    assert amps(ps, T0 + 6 * DAY + 12 * H) == 8.6  # the day after: back to the policy


def test_a_higher_stack_level_ends_with_its_schedule(ps):
    ps.set(1, prof(1, periods=((0, 20),)))
    ps.set(1, prof(2, stack=3, periods=((0, 10),), start=T0 + H, duration=1800))
    assert ps.limit(T0 + H - 1) == (20, "TxDefaultProfile 1", T0 + H)
    assert ps.limit(T0 + H) == (10, "TxDefaultProfile 2", T0 + H + 1800)
    assert amps(ps, T0 + H + 1800) == 20


def test_recurring_daily_profile_across_midnight(ps):
    # cheap night rate: 32 A from 22:00 to 06:00, 10 A by day, every day from T0
    night = prof(7, kind="Recurring", recurrencyKind="Daily",
                 periods=((0, 32), (6 * H, 10), (22 * H, 32)))
    assert ps.set(0, night) == "Accepted"
    assert ps.limit(T0 - 1) == (None, "no charging profile in force", T0)  # not yet
    assert ps.limit(T0) == (32, "TxDefaultProfile 7", T0 + 6 * H)
    assert amps(ps, T0 + 6 * H) == 10
    assert ps.limit(T0 + 23 * H) == (32, "TxDefaultProfile 7", T0 + DAY)
    assert ps.limit(T0 + DAY - 1)[0] == 32
    assert ps.limit(T0 + DAY) == (32, "TxDefaultProfile 7", T0 + DAY + 6 * H)
    assert amps(ps, T0 + 40 * DAY + 6 * H - 1) == 32
    assert amps(ps, T0 + 40 * DAY + 6 * H) == 10


def test_recurring_with_a_duration_leaves_gaps(ps):
    # daily at 18:00 for two hours, 6 A; a weekly one on Mondays 00:00 for 1 hour, 8 A
    ps.set(0, prof(1, kind="Recurring", recurrencyKind="Daily", periods=((0, 6),),
                   start=T0 + 18 * H, duration=2 * H))
    ps.set(0, prof(2, stack=1, kind="Recurring", recurrencyKind="Weekly", periods=((0, 8),),
                   duration=H))
    assert ps.limit(T0 + 3 * DAY + 17 * H) == (None, "no charging profile in force",
                                               T0 + 3 * DAY + 18 * H)
    assert amps(ps, T0 + 3 * DAY + 19 * H) == 6
    assert ps.limit(T0 + 3 * DAY + 20 * H)[0] is None
    assert amps(ps, T0 + 7 * DAY + 1800) == 8  # the next Monday
    assert amps(ps, T0 + 8 * DAY + 1800) is None  # a Tuesday


def test_relative_profile_runs_from_the_transaction_start(ps):
    ps.set(0, prof(3, kind="Relative", start=None, periods=((0, 6), (1800, 16))))
    ts = T0 + 5000
    assert ps.limit(ts + 100) == (None, "no charging profile in force", None)  # no session
    assert ps.limit(ts + 1799, tx_start=ts) == (6, "TxDefaultProfile 3", ts + 1800)
    assert ps.limit(ts + 1800, tx_start=ts) == (16, "TxDefaultProfile 3", None)


def test_absolute_without_start_schedule_is_relative_to_the_start_of_charging(ps):
    # 1.6 ChargingSchedule.startSchedule: "If absent the schedule will be relative to start
    # of charging"
    ps.set(1, prof(3, start=None, periods=((0, 8), (600, 12))))
    assert amps(ps, T0) is None
    assert amps(ps, T0 + 599, tx_start=T0) == 8
    assert amps(ps, T0 + 600, tx_start=T0) == 12


def test_tx_profile_overrides_the_default_during_its_transaction_then_falls_back(ps):
    assert ps.set(1, prof(1, periods=((0, 16),))) == "Accepted"
    assert ps.set(1, prof(2, purpose="TxProfile", periods=((0, 10),), duration=H),
                  tx_id=55) == "Accepted"
    assert ps.limit(T0 + 10, tx_id=55) == (10, "TxProfile 2", T0 + H)
    assert amps(ps, T0 + 10, tx_id=56) == 16  # another transaction: the default
    assert amps(ps, T0 + 10) == 16  # no transaction
    assert amps(ps, T0 + H, tx_id=55) == 16  # its schedule ended
    assert ps.end_transaction(55) == 1
    assert len(ps) == 1
    assert amps(ps, T0 + 10, tx_id=55) == 16


def test_a_tx_profile_with_a_lower_stack_level_still_overrides_the_default(ps):
    ps.set(1, prof(1, stack=5, periods=((0, 10),)))
    ps.set(1, prof(2, purpose="TxProfile", stack=0, periods=((0, 20),)), tx_id=1)
    assert ps.limit(T0, tx_id=1)[:2] == (20, "TxProfile 2")


def test_charge_point_max_caps_everything(ps):
    ps.set(0, prof(1, purpose="ChargePointMaxProfile", periods=((0, 13), (H, 40))))
    ps.set(1, prof(2, periods=((0, 32),)))
    ps.set(1, prof(3, purpose="TxProfile", periods=((0, 25),)), tx_id=9)
    assert ps.limit(T0, tx_id=9) == (13, "ChargePointMaxProfile 1", T0 + H)
    assert ps.limit(T0 + H, tx_id=9)[:2] == (25, "TxProfile 3")
    assert ps.limit(T0 + H)[:2] == (32, "TxDefaultProfile 2")


def test_default_on_the_connector_beats_connector_0_at_the_same_stack_level(ps):
    ps.set(0, prof(1, stack=2, periods=((0, 10),)))
    ps.set(1, prof(2, stack=2, periods=((0, 20),)))
    assert ps.limit(T0)[:2] == (20, "TxDefaultProfile 2")
    ps.set(0, prof(3, stack=3, periods=((0, 12),)))
    assert ps.limit(T0)[:2] == (12, "TxDefaultProfile 3")


def test_watts_to_amps(ps):
    ps.set(1, prof(1, unit="W", periods=((0, 7400, 1), (H, 11000), (2 * H, 4140.5, 3))))
    assert amps(ps, T0) == 32.1  # 7400 / 230 = 32.17 on one phase
    assert amps(ps, T0, volts=240) == 30.8
    assert amps(ps, T0 + H) == 15.9  # no numberPhases: the phases given (3)
    assert amps(ps, T0 + H, phases=1) == 47.8
    assert amps(ps, T0 + 2 * H) == 6  # 4140.5 / 690 = 6.0007
    assert amps(ps, T0 + H, volts=0) == 0  # no voltage known: a power limit gives 0 A
    assert amps(ps, T0 + H, phases=0) == 0


def test_valid_from_and_to(ps):
    ps.set(1, prof(1, periods=((0, 10),), validFrom=T0 + H, validTo=T0 + 2 * H))
    assert ps.limit(T0) == (None, "no charging profile in force", T0 + H)
    assert ps.limit(T0 + H) == (10, "TxDefaultProfile 1", T0 + 2 * H)
    assert ps.limit(T0 + 2 * H) == (None, "no charging profile in force", None)


# -- SetChargingProfile: what is refused ---------------------------------------------------

@pytest.mark.parametrize("conn, p, tx, why", [
    (1, prof(1, purpose="ChargePointMaxProfile"), None, "only on connector 0"),
    (1, prof(1, purpose="TxProfile"), None, "without a transaction"),
    (0, prof(1, purpose="TxProfile"), 5, "connector > 0"),
    (1, prof(1, purpose="TxProfile", transactionId=4), 5, "for transaction 4"),
    (2, prof(1), None, "connectorId must be an integer 0..1"),
    (1, prof(1, transactionId=4), None, "only belongs in a TxProfile"),
    (1, prof(1, stack=9), None, "stackLevel must be an integer 0..8"),
    (1, prof(1, stack=-1), None, "stackLevel"),
    (1, prof(1, periods=((10, 16),)), None, "start at 0"),
    (1, prof(1, periods=((0, 16), (60, 10), (60, 8))), None, "start at 0 and rise"),
    (1, prof(1, periods=tuple((i, 16) for i in range(25))), None, "1..24 periods"),
    (1, prof(1, periods=()), None, "1..24 periods"),
    (1, prof(1, periods=((0, -1),)), None, "limit must be a number"),
    (1, prof(1, periods=((0, float("nan")),)), None, "limit must be a number"),
    (1, prof(1, periods=((0, "16"),)), None, "limit must be a number"),
    (1, prof(1, periods=((0, 16, 4),)), None, "numberPhases must be an integer 1..3"),
    (1, prof(1, periods=((0, 16, 0),)), None, "numberPhases"),
    (1, prof(1, unit="kW"), None, "chargingRateUnit"),
    (1, prof(1, kind="Recurring"), None, "recurrencyKind must be Daily or Weekly"),
    (1, prof(1, kind="Recurring", recurrencyKind="Monthly"), None, "recurrencyKind"),
    (1, prof(1, kind="Recurring", recurrencyKind="Daily", start=None), None,
     "needs startSchedule"),
    (1, prof(1, kind="Relative"), None, "must not have startSchedule"),
    (1, prof(1, kind="Once"), None, "chargingProfileKind must be Absolute or Recurring"),
    (1, prof(1, purpose="MaxProfile"), None, "chargingProfilePurpose must be"),
    (1, prof(1, validFrom=T0, validTo=T0), None, "validTo is not after validFrom"),
    (1, prof(1, validTo="tomorrow"), None, "validTo: bad date-time 'tomorrow'"),
    (1, dict(prof(1), chargingSchedule=dict(prof(1)["chargingSchedule"],
                                            startSchedule="2026-03-02T00:00:00")), None,
     "startSchedule: bad date-time '2026-03-02T00:00:00': no time zone"),
    (1, prof(1, duration=-5), None, "duration must be an integer"),
    (1, dict(prof(1), chargingProfileId="7"), None, "chargingProfileId must be an integer"),
    (1, dict(prof(1), chargingSchedule=None), None, "chargingSchedule must be an object"),
    (1, [], None, "csChargingProfiles must be an object"),
])
def test_set_refuses_and_says_why(ps, path, conn, p, tx, why):
    assert ps.set(conn, p, tx_id=tx) == "Rejected"
    assert why in ps.why
    assert len(ps) == 0
    assert not os.path.exists(path)


def test_set_accepts_the_edges(ps):
    assert ps.set(0, prof(1, stack=8, periods=tuple((i, 16) for i in range(24)))) == \
        "Accepted"
    assert ps.set(1, prof(2, purpose="TxProfile", transactionId=5), tx_id=5) == "Accepted"
    assert ps.set(1, prof(3, kind="Absolute", recurrencyKind="Daily")) == "Accepted"
    assert ps.set(1, prof(4, stack=8, periods=((0, 0),))) == "Accepted"  # 0 A: pause
    assert ps.limit(T0)[0] == 0


def test_same_id_or_same_stack_purpose_and_connector_replaces(ps):
    ps.set(1, prof(1, stack=0, periods=((0, 10),)))
    ps.set(1, prof(1, stack=1, periods=((0, 11),)))  # same id
    assert len(ps) == 1 and ps.limit(T0)[0] == 11
    ps.set(1, prof(2, stack=1, periods=((0, 12),)))  # same stack, purpose, connector
    assert [p["id"] for p in listed(ps)] == [2]
    ps.set(0, prof(3, stack=1, periods=((0, 13),)))  # other connector: added
    ps.set(0, prof(4, stack=1, purpose="ChargePointMaxProfile", periods=((0, 14),)))
    assert sorted(p["id"] for p in listed(ps)) == [2, 3, 4]


def test_no_more_than_max_installed(ps):
    for i in range(8):  # MaxChargingProfilesInstalled
        assert ps.set(1, prof(i, stack=i)) == "Accepted"
    assert ps.set(1, prof(9, stack=8)) == "Rejected"
    assert "more than 8" in ps.why
    assert ps.set(1, prof(2, stack=8)) == "Accepted"  # a replacement still fits


# -- ClearChargingProfile ------------------------------------------------------------------

def _four(ps):
    ps.set(0, prof(1, purpose="ChargePointMaxProfile", stack=0))
    ps.set(0, prof(2, stack=1))
    ps.set(1, prof(3, stack=1))
    ps.set(1, prof(4, purpose="TxProfile", stack=2), tx_id=8)
    return ps


@pytest.mark.parametrize("kw, left", [
    ({"id": 3}, [1, 2, 4]),
    ({"id": 3, "connector_id": 0}, [1, 2, 4]),  # the id wins over the other criteria
    ({"connector_id": 0}, [3, 4]),
    ({"connector_id": 1}, [1, 2]),
    ({"purpose": "TxDefaultProfile"}, [1, 4]),
    ({"stack_level": 1}, [1, 4]),
    ({"connector_id": 1, "stack_level": 1}, [1, 2, 4]),
    ({"connector_id": 0, "purpose": "TxDefaultProfile", "stack_level": 1}, [1, 3, 4]),
    ({}, []),
])
def test_clear_by_each_criterion(ps, path, kw, left):
    _four(ps)
    assert ps.clear(**kw) == "Accepted"
    assert sorted(p["id"] for p in listed(ps)) == left
    assert sorted(p["id"] for p in listed(Profiles(path))) == left


@pytest.mark.parametrize("kw", [{"id": 99}, {"connector_id": 1, "stack_level": 0},
                                {"purpose": "NoSuchProfile"}, {"stack_level": 7}])
def test_clear_unknown(ps, kw):
    _four(ps)
    assert ps.clear(**kw) == "Unknown"
    assert len(ps) == 4


def test_end_transaction_and_retag(ps):
    _four(ps)
    assert ps.end_transaction(7) == 0
    # RemoteStartTransaction's profile installed under the local id, then the CSMS's id
    ps.set(1, prof(5, purpose="TxProfile", stack=3, periods=((0, 9),)), tx_id="L1")
    assert ps.retag("L1", 1234) == 1
    assert ps.limit(T0, tx_id=1234)[:2] == (9, "TxProfile 5")
    assert ps.end_transaction(None) == 2  # every TxProfile
    assert sorted(p["id"] for p in listed(ps)) == [1, 2, 3]


# -- persistence ---------------------------------------------------------------------------

def test_profiles_survive_a_restart(ps, path):
    _four(ps)
    weekly = prof(5, kind="Recurring", recurrencyKind="Weekly", stack=4, unit="W",
                  periods=((0, 4140.5, 1), (H, 11000)), duration=2 * H,
                  validFrom=T0 - DAY, validTo=T0 + 30 * DAY)
    weekly["chargingSchedule"]["minChargingRate"] = 6.1
    assert ps.set(0, weekly) == "Accepted"
    assert len(ps) == 5
    assert not os.path.exists(path + ".new")
    again = Profiles(path)
    assert again.errors == []
    assert listed(again) == listed(ps)
    for i in (1, 2, 3, 4, 5):
        assert profile(again, i) == profile(ps, i)
    assert profile(again, 5)["chargingSchedule"]["minChargingRate"] == 6.1
    for t in range(T0 - DAY, T0 + 9 * DAY, 1800):
        for tx in (None, 8):
            assert again.limit(t, tx_id=tx) == ps.limit(t, tx_id=tx)


def test_a_corrupt_file_restores_nothing_and_says_so(path):
    with open(path, "w") as f:
        f.write('{"v": 1, "profiles": [{"c": 0, ')
    ps = Profiles(path)
    assert len(ps) == 0
    assert len(ps.errors) == 1 and "unreadable" in ps.errors[0]
    with open(path, "wb") as f:
        f.write(b"\xff\xfe\x00garbage")
    assert "unreadable" in Profiles(path).errors[0]
    with open(path, "w") as f:
        json.dump([1, 2], f)
    assert "not a profile file" in Profiles(path).errors[0]


def test_a_bad_entry_is_dropped_and_the_others_kept(ps, path):
    _four(ps)
    with open(path) as f:
        d = json.load(f)
    d["profiles"][1]["p"]["stackLevel"] = 99
    d["profiles"].append("junk")
    with open(path, "w") as f:
        json.dump(d, f)
    again = Profiles(path)
    assert sorted(p["id"] for p in listed(again)) == [1, 3, 4]
    assert len(again.errors) == 2
    assert "stackLevel must be an integer 0..8" in " ".join(again.errors)


def test_a_failed_write_is_not_accepted(tmp_path):
    ps = Profiles(str(tmp_path / "no" / "such" / "dir.json"))
    assert ps.set(1, prof(1)) == "Rejected"
    assert "cannot write" in ps.why
    assert len(ps) == 0


# -- GetCompositeSchedule ------------------------------------------------------------------

def test_composite_merges_and_reports_only_changes(ps):
    ps.set(0, prof(1, purpose="ChargePointMaxProfile", periods=((0, 20), (2 * H, 40))))
    ps.set(1, prof(2, periods=((0, 32), (H, 32), (3 * H, 10))))
    c = ps.composite(1, T0 + 1800, 4 * H)
    assert c == {"status": "Accepted", "connectorId": 1,
                 "scheduleStart": "2026-03-02T00:30:00Z",
                 "chargingSchedule": {
                     "duration": 4 * H, "startSchedule": "2026-03-02T00:30:00Z",
                     "chargingRateUnit": "A",
                     "chargingSchedulePeriod": [
                         {"startPeriod": 0, "limit": 20.0},
                         {"startPeriod": 5400, "limit": 32.0},
                         {"startPeriod": 9000, "limit": 10.0}]}}
    grid = ps.composite(0, T0 + 1800, 4 * H)["chargingSchedule"]["chargingSchedulePeriod"]
    assert grid == [{"startPeriod": 0, "limit": 20.0}, {"startPeriod": 5400, "limit": 40.0}]


def test_composite_in_watts_and_where_nothing_limits(ps):
    ps.set(1, prof(1, unit="W", periods=((0, 7400, 1), (H, 4140.5))))
    ps.set(1, prof(2, stack=1, periods=((0, 10),), start=T0 + 2 * H, duration=H))
    c = ps.composite(1, T0, 3 * H, unit="W")["chargingSchedule"]
    assert c["chargingRateUnit"] == "W"
    assert c["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 7400, "numberPhases": 1},
        {"startPeriod": H, "limit": 4140.5},
        {"startPeriod": 2 * H, "limit": 6900}]  # 10 A x 230 V x 3
    a = ps.composite(1, T0, 3 * H)["chargingSchedule"]["chargingSchedulePeriod"]
    assert a == [{"startPeriod": 0, "limit": 32.1, "numberPhases": 1},
                 {"startPeriod": H, "limit": 6.0}, {"startPeriod": 2 * H, "limit": 10.0}]
    empty = ps.composite(0, T0, H, max_amps=32)["chargingSchedule"]["chargingSchedulePeriod"]
    assert empty == [{"startPeriod": 0, "limit": 32}]
    gap = ps.composite(0, T0, H)["chargingSchedule"]["chargingSchedulePeriod"]
    assert gap == [{"startPeriod": 0, "limit": smart.NO_LIMIT_A}]


@pytest.mark.parametrize("args", [(2, T0, 60), (-1, T0, 60), (1, T0, 0), (1, None, 60)])
def test_composite_rejected(ps, args):
    assert ps.composite(*args) == {"status": "Rejected"}


@pytest.mark.parametrize("p, code", [
    ({"connectorId": 1, "duration": "60"}, schema.TYPE),
    ({"connectorId": "1", "duration": 60}, schema.TYPE),
    ({"connectorId": 1, "duration": 60, "chargingRateUnit": "kW"}, schema.PROPERTY),
])
def test_composite_gets_the_types_the_schema_checked(p, code):
    assert schema.check_request("GetCompositeSchedule", p)[0] == code


def test_a_long_composite_is_cut_to_its_periods(ps):
    ps.set(1, prof(1, kind="Recurring", recurrencyKind="Daily",
                   periods=tuple((i * H, 6 + i % 2) for i in range(24))))
    c = ps.composite(1, T0, 30 * DAY)["chargingSchedule"]
    assert len(c["chargingSchedulePeriod"]) == 48
    assert c["duration"] == 2 * DAY  # the 49th change would come at the third midnight


# -- the composite agrees with limit() and with the rules, second by second -----------------

def reference(ps, t, conn, tx_start, tx_id, volts=230, phases=3):
    """Deci-amperes in force at second t by the rules of 3.13 as written, one profile at a
    time and with no next-change arithmetic: the oracle for limit() and composite()."""
    best = {}
    for e in listed(ps):
        c, purpose = e["connectorId"], e["purpose"]
        if purpose != "ChargePointMaxProfile" and (conn == 0 or c not in (0, conn)):
            continue
        if purpose == "TxProfile" and (tx_id is None or e["transactionId"] != tx_id):
            continue
        p = profile(ps, e["id"])
        sch = p["chargingSchedule"]
        if "validFrom" in p and t < clock.parse(p["validFrom"]):
            continue
        if "validTo" in p and t >= clock.parse(p["validTo"]):
            continue
        start = clock.parse(sch["startSchedule"]) if "startSchedule" in sch else tx_start
        if start is None or t < start:
            continue
        if p["chargingProfileKind"] == "Recurring":
            every = DAY if p["recurrencyKind"] == "Daily" else 7 * DAY
            start += (t - start) // every * every
        if "duration" in sch and t - start >= sch["duration"]:
            continue
        q = [q for q in sch["chargingSchedulePeriod"] if q["startPeriod"] <= t - start][-1]
        tenths = round(q["limit"] * 10)
        if sch["chargingRateUnit"] == "W":
            tenths = tenths // (volts * q.get("numberPhases", phases))
        key = (e["stackLevel"], c == conn)
        group = "Tx" if purpose == "TxProfile" else purpose
        if group not in best or key > best[group][0]:
            best[group] = (key, tenths)
    ours = best.get("Tx", best.get("TxDefaultProfile"))
    found = [v[1] for v in (best.get("ChargePointMaxProfile"), ours) if v is not None]
    return min(found) if found else None


LIMITS_A = st.sampled_from([0, 6, 8.5, 10, 13, 16, 20, 32]) | st.integers(0, 800).map(
    lambda x: x / 10)
LIMITS_W = st.sampled_from([1380, 4140.5, 7400, 11000, 22000]) | st.integers(0, 300000).map(
    lambda x: x / 10)
QUARTERS = st.integers(1, 100).map(lambda q: q * 900)  # schedules are made of quarter hours
MOMENTS = st.integers(-96, 288).map(lambda q: q * 900) | st.integers(-DAY, 3 * DAY)
SPANS = st.sampled_from([H, 6 * H, DAY, 2 * DAY, 3 * DAY]) | st.integers(1, 3 * DAY)
PURPOSE = st.sampled_from([(1, "TxProfile"), (1, "TxDefaultProfile"),
                           (0, "ChargePointMaxProfile"), (0, "TxDefaultProfile")])


@st.composite
def profiles(draw):
    conn, purpose = draw(PURPOSE)
    kind = draw(st.sampled_from(["Recurring", "Absolute", "Relative"]))
    n = draw(st.sampled_from([2, 3, 4, 1]))
    starts = sorted(draw(st.sets(QUARTERS | st.integers(1, DAY + H), min_size=n - 1,
                                 max_size=n - 1)))
    unit = draw(st.sampled_from(["A", "W"]))
    limits = LIMITS_A if unit == "A" else LIMITS_W
    periods = [(s, draw(limits)) + tuple(draw(st.sampled_from([(), (1,), (3,)])))
               for s in [0] + starts]
    start = None
    extra = {}
    if kind == "Recurring":
        extra["recurrencyKind"] = draw(st.sampled_from(["Daily", "Weekly"]))
    if kind != "Relative" and (kind == "Recurring" or draw(st.booleans())):
        start = T0 + draw(MOMENTS)
    if draw(st.sampled_from([False, False, True])):
        extra["validFrom"] = T0 + draw(MOMENTS)
    if draw(st.sampled_from([False, False, True])):
        extra["validTo"] = extra.get("validFrom", T0) + draw(QUARTERS | SPANS)
    p = prof(draw(st.integers(1, 6)), purpose=purpose, kind=kind,
             stack=draw(st.integers(0, 3)), periods=periods, unit=unit, start=start,
             duration=draw(st.none() | SPANS | QUARTERS | st.just(0)), **extra)
    return conn, p


@given(st.lists(profiles(), min_size=1, max_size=6), MOMENTS, SPANS,
       st.sampled_from([5, None]), st.sampled_from([1, 0]),
       st.lists(st.integers(0, 3 * DAY), max_size=20))
@example([(0, prof(1, kind="Recurring", recurrencyKind="Daily", duration=0))], 0, DAY, None,
         1, [])
def test_composite_and_limit_follow_the_rules_at_every_second(
        tmp_path_factory, installed, now_off, duration, tx, conn, probes):
    ps = Profiles(str(tmp_path_factory.mktemp("p") / "p.json"))
    for c, p in installed:
        ps.set(c, p, tx_id=tx)
    now = T0 + now_off
    kw = {"tx_start": None if tx is None else T0 - 600, "tx_id": tx}
    c = ps.composite(conn, now, duration, **kw)
    sched = c["chargingSchedule"]
    per = sched["chargingSchedulePeriod"]
    end = sched["duration"]
    assert per[0]["startPeriod"] == 0 and 0 < end <= duration
    assert all(a["startPeriod"] < b["startPeriod"] for a, b in zip(per, per[1:]))
    assert all((a["limit"], a.get("numberPhases")) != (b["limit"], b.get("numberPhases"))
               for a, b in zip(per, per[1:]))  # a period only where the limit changes

    def shown(off):
        return [q for q in per if q["startPeriod"] <= off][-1]["limit"]

    def check(off):
        t = now + off
        want = reference(ps, t, conn, kw["tx_start"], tx)
        a, _, nxt = ps.limit(t, connector_id=conn, **kw)
        assert a == (None if want is None else want / 10), off
        assert shown(off) == (smart.NO_LIMIT_A if a is None else a), off
        if nxt is not None:  # the limit holds until its next change
            assert nxt > t
            assert reference(ps, nxt - 1, conn, kw["tx_start"], tx) == want

    for q in per:
        check(q["startPeriod"])
        if q["startPeriod"]:
            check(q["startPeriod"] - 1)
    for off in range(0, end, 900):  # every quarter hour, and the second before it
        check(off)
        if off:
            check(off - 1)
    check(end - 1)
    for off in probes:
        check(off % end)
