"""firmware/timekeep.py: the clock's sources and their precedence, boot-relative stamps and
the wall time they are sent with (exact, or the documented lower bound)."""
import pytest

from firmware import timekeep
from firmware.ocpp import clock
from firmware.timekeep import FLOOR_S, TimeKeeper

T = 1800000000  # 2027-01-15T08:00:00Z
Y2000 = 946684800


class Rtc:
    def __init__(self, t=None):
        self.t = t
        self.writes = []

    def read_s(self):
        return self.t

    def write_s(self, t):
        self.writes.append(t)
        self.t = t


class Ntp:
    def __init__(self, t=None):
        self.t = t
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.t is None:
            raise OSError("no answer")
        return self.t


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _tk(ms=0, **kw):
    logs = []
    return TimeKeeper(log=logs.append, now_ms=ms, **kw), logs


def test_an_unset_rtc_leaves_the_time_unknown_and_records_boot_relative():
    tk, logs = _tk(rtc=Rtc(Y2000 + 5))
    assert not tk.known and tk.now_s(1000) is None
    assert tk.stamp(7000) == [1, 7]
    assert any("RTC not set" in m for m in logs)


def test_a_set_rtc_is_believed_and_csms_beats_ntp_beats_rtc():
    rtc = Rtc(T)
    tk, _ = _tk(rtc=rtc, ntp=Ntp(T + 5))
    assert tk.source == "rtc" and tk.now_s(0) == T
    assert tk.sync_ntp(0) and tk.source == "ntp" and tk.now_s(0) == T + 5
    assert rtc.writes == [T + 5]  # NTP's time kept in the RTC
    assert tk.set(T + 9, "csms", 0) and tk.now_s(0) == T + 9 and rtc.writes[-1] == T + 9
    assert not tk.set(T + 100, "ntp", 0)  # once the CSMS's time is known, NTP does not move it
    assert not tk.ntp_due(10 ** 6)
    assert tk.now_s(0) == T + 9


def test_ntp_and_rtc_times_before_the_floor_are_refused_the_csms_is_the_reference():
    tk, _ = _tk(ntp=Ntp(Y2000))
    assert not tk.sync_ntp(0) and not tk.known
    assert tk.set(FLOOR_S - 86400, "csms", 0) and tk.known


def test_ntp_is_not_asked_while_blocking_is_forbidden_and_retried_after_a_minute():
    ntp = Ntp(None)
    allowed = [False]
    tk, logs = _tk(ntp=ntp, gate=lambda: allowed[0])
    assert not tk.sync_ntp(0) and ntp.calls == 0  # ESP32 while charging: no blocking call
    allowed[0] = True
    assert not tk.sync_ntp(0) and ntp.calls == 1
    assert not tk.sync_ntp(30000) and ntp.calls == 1
    ntp.t = T
    assert tk.sync_ntp(60000) and ntp.calls == 2 and tk.now_s(60000) == T
    assert sum("NTP failed" in m for m in logs) == 1


def test_records_made_before_the_time_get_it_when_it_arrives_in_the_same_boot():
    tk, _ = _tk()
    start = tk.stamp(10000)  # 10 s after boot
    mv = {"timestamp": tk.stamp(70000), "sampledValue": []}
    p = {"meterStart": 5, "timestamp": start}
    tk.set(T, "csms", 100000)  # the CSMS answers at 100 s
    q = tk.resolve(p, 100000)
    assert q["timestamp"] == clock.iso(T - 90)
    assert p["timestamp"] == start  # the journal's copy is not changed
    s = tk.resolve({"meterStop": 6, "timestamp": tk.stamp(120000),
                    "transactionData": [mv]}, 120000)
    assert s["timestamp"] == clock.iso(T + 20)
    assert s["transactionData"][0]["timestamp"] == clock.iso(T - 30)
    m = tk.resolve({"connectorId": 1, "meterValue": [mv]}, 120000)
    assert m["meterValue"][0]["timestamp"] == clock.iso(T - 30)


def test_a_boot_whose_time_became_known_later_is_exact_after_a_reboot():
    tk, _ = _tk()
    early = tk.stamp(5000)
    tk.set(T, "csms", 65000)
    tk2, _ = _tk()  # the next boot, before its own time is known
    assert tk2.boot == 2 and not tk2.known
    assert tk2.iso(early, 0) == clock.iso(T - 60)


def test_a_boot_whose_time_never_became_known_gets_the_lower_bound_not_1970():
    tk, _ = _tk()
    tk.set(T, "csms", 0)  # boot 1 knew T (saved as the latest known time)
    tk2, _ = _tk()  # boot 2: never learns the time (offline, RTC lost)
    rec = tk2.stamp(300000)  # 300 s after its start
    tk3, _ = _tk(ms=0)
    tk3.set(T + 86400, "csms", 0)
    # boot 2 started after T (boot 1 knew T): T + 300 is the best lower bound
    assert tk3.wall_of(rec, 0) == T + 300
    # and never later than the time of sending
    tk4, _ = _tk()
    tk4.set(T + 100, "csms", 0)
    assert tk4.wall_of(rec, 0) == T + 100


def test_a_boot_older_than_the_history_falls_back_to_the_firmware_floor():
    tk, _ = _tk()
    assert tk.wall_of([-5, 60], 0) == FLOOR_S + 60


def test_minimum_status_duration_ages_work_before_and_after_the_time_is_known():
    tk, _ = _tk()
    at = tk.stamp(1000)
    assert tk.age_s(at, 31000) == 30
    tk.set(T, "csms", 31000)
    assert tk.age_s(at, 41000) == 40
    assert tk.age_s(tk.stamp(41000), 51000) == 10


def test_an_unreadable_history_is_said_and_replaced():
    with open(timekeep.STATE_FILE, "w") as f:
        f.write('{"last": "x", "boots": 3}')
    tk, logs = _tk()
    assert tk.boot == 1 and any("unreadable" in m for m in logs)


def test_the_history_keeps_sixteen_boots():
    for _ in range(20):
        tk, _ = _tk()
    assert tk.boot == 20 and len(tk.history()) == 16 and tk.history()[0][0] == 5


def test_diag_says_where_the_time_comes_from_or_that_it_is_unknown():
    tk, _ = _tk()
    assert tk.describe(0).startswith("unknown (boot 1")
    tk.set(T, "csms", 0)
    assert tk.describe(0) == "%s from csms (boot 1)" % clock.iso(T)


def test_clock_json_waits_while_the_board_forbids_flash_writes(monkeypatch):
    from firmware import persist

    allowed = [True]
    monkeypatch.setattr(persist, "_gate", lambda: allowed[0])
    tk, _ = _tk()
    allowed[0] = False  # the contactor closed on a board whose reflex a flash erase blinds
    early = tk.stamp(1000)
    tk.set(T, "csms", 61000)
    assert TimeKeeper(log=lambda m: None, now_ms=0).history()[-2][1] is None  # not written yet
    allowed[0] = True
    tk.now_s(62000)  # the next tick writes it
    later, _ = _tk()
    assert later.iso(early, 0) == clock.iso(T - 60)


def test_a_wrong_time_the_csms_corrected_is_not_the_next_boots_floor():
    tk, _ = _tk(rtc=Rtc())
    tk.set(clock.parse("9999-12-31T23:59:59Z"), "csms", 0)  # legal, and wrong
    tk.set(T, "csms", 1000)  # corrected at the next Heartbeat
    nxt, _ = _tk(rtc=Rtc(T + 60))
    assert nxt.floor == T and nxt.source == "rtc"  # the RTC is believed again
