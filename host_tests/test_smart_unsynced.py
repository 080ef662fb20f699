"""Charging profiles before the wall time is known (smart.Profiles.limit_unsynced, in_force):
the lowest limit any installed profile could put in force, exact for schedules that start
with the transaction; and the same limits as limit() once the time is known."""
from firmware.ocpp import clock
from firmware.ocpp.smart import Profiles, in_force
from firmware.timekeep import TimeKeeper

T0 = clock.parse("2027-03-02T00:00:00Z")
H = 3600


def prof(pid, purpose="TxDefaultProfile", kind="Absolute", stack=0, periods=((0, 16),),
         start=T0, duration=None, unit="A", **extra):
    s = {"chargingRateUnit": unit,
         "chargingSchedulePeriod": [{"startPeriod": a, "limit": b} for a, b in periods]}
    if start is not None:
        s["startSchedule"] = clock.iso(start)
    if duration is not None:
        s["duration"] = duration
    p = {"chargingProfileId": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind, "chargingSchedule": s}
    p.update(extra)
    return p


def _ps(tmp_path, *profiles):
    ps = Profiles(str(tmp_path / "p.json"))
    for c, p, tx in profiles:
        assert ps.set(c, p, tx_id=tx) == "Accepted", ps.why
    return ps


def test_no_profile_no_limit(tmp_path):
    assert _ps(tmp_path).limit_unsynced(100)[0] is None


def test_a_charge_point_max_profile_at_any_hour_could_be_in_force_its_lowest_applies(tmp_path):
    # 16 A by day, 10 A from 18:00 to 22:00, daily: without the time, 10 A
    ps = _ps(tmp_path, (0, prof(1, "ChargePointMaxProfile", "Recurring",
                                periods=((0, 16), (18 * H, 10), (22 * H, 16)),
                                recurrencyKind="Daily"), None))
    a, why = ps.limit_unsynced(100)
    assert a == 10 and "ChargePointMaxProfile 1" in why and "time unknown" in why


def test_the_lowest_over_every_profile_and_stack_level(tmp_path):
    ps = _ps(tmp_path,
             (1, prof(1, periods=((0, 20), (H, 12))), None),
             (1, prof(2, stack=1, periods=((0, 8),), validTo=clock.iso(T0 + H)), None),
             (0, prof(3, "ChargePointMaxProfile", periods=((0, 14),)), None))
    assert ps.limit_unsynced(100)[0] == 8


def test_a_relative_profile_is_exact_on_the_transactions_own_time(tmp_path):
    ps = _ps(tmp_path, (1, prof(1, kind="Relative", start=None,
                                periods=((0, 6), (600, 16)), duration=3600), None))
    assert ps.limit_unsynced(100)[0] is None  # no transaction: no start point
    assert ps.limit_unsynced(1000, tx_start=900, tx_id=-1)[0] == 6
    assert ps.limit_unsynced(1600, tx_start=900, tx_id=-1)[0] == 16
    assert ps.limit_unsynced(900 + 3600, tx_start=900, tx_id=-1)[0] is None  # its duration


def test_a_tx_profile_counts_only_for_its_transaction(tmp_path):
    ps = _ps(tmp_path, (1, prof(1, "TxProfile", "Relative", start=None, periods=((0, 7),)), -1))
    assert ps.limit_unsynced(50, tx_start=10, tx_id=-1)[0] == 7
    assert ps.limit_unsynced(50, tx_start=10, tx_id=-2)[0] is None


def test_a_power_limit_uses_the_volts_and_phases(tmp_path):
    ps = _ps(tmp_path, (0, prof(1, "ChargePointMaxProfile", unit="W", periods=((0, 6900),)),
                        None))
    assert ps.limit_unsynced(5, volts=230, phases=3)[0] == 10


def test_in_force_follows_the_clock_and_keeps_the_transactions_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ps = _ps(tmp_path, (1, prof(1, kind="Relative", start=None, periods=((0, 6), (600, 16))),
                        None),
             (0, prof(2, "ChargePointMaxProfile", periods=((0, 32), (H, 10)), start=T0),
              None))
    tk = TimeKeeper(log=lambda m: None, now_ms=0)
    start = tk.stamp(100000)  # the transaction starts 100 s after boot, time unknown
    assert in_force(ps, tk, 200000, start, None, 230, 3)[0] == 6
    assert in_force(ps, tk, 800000, start, None, 230, 3)[0] == 10  # CPMax's 10 A could apply
    tk.set(T0 + 60, "csms", 800000)  # known now: CPMax gives 32 A at T0 + 60
    assert in_force(ps, tk, 800000, start, None, 230, 3)[0] == 16  # relative: 700 s in
    assert in_force(ps, tk, 200000 + 600000, start, None, 230, 3)[0] == 16
