"""The security log on flash (firmware/secext/seclog.py): bounded by rotation, a torn or
garbled line skipped, lines held in RAM while the flash gate is closed."""
import os

from firmware import persist
from firmware.secext.seclog import SecurityLog


def test_rotation_keeps_the_newest_lines_within_two_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = SecurityLog(max_bytes=1024)
    for i in range(200):
        log.record(1700000000 + i, "InvalidMessages", "frame %d" % i)
    assert os.path.getsize("seclog") <= 1024 and os.path.getsize("seclog.1") <= 1024
    lines = list(log.lines())
    assert lines[-1] == (1700000199, "InvalidMessages", "frame 199")
    n = [int(x[2].split()[1]) for x in lines]
    assert n == list(range(n[0], 200)) and 20 < len(n) < 60  # contiguous, newest kept


def test_a_torn_or_garbled_line_is_skipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = SecurityLog()
    log.record(1700000000, "StartupOfTheDevice", "after a power cut")
    log.record([3, 12], "SettingSystemTime", "clock stepped 3600 s by csms")
    with open("seclog", "a") as f:
        f.write("deadbeef 1700000002 ResetOrReboot forged\n")  # wrong CRC
        f.write("0123")  # a write the power cut tore
    assert list(log.lines()) == [
        (1700000000, "StartupOfTheDevice", "after a power cut"),
        ([3, 12], "SettingSystemTime", "clock stepped 3600 s by csms")]


def test_lines_wait_in_ram_while_the_flash_gate_is_closed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gate = [False]
    persist.set_gate(lambda: gate[0])
    try:
        log = SecurityLog()
        for i in range(10):
            log.record(1700000000 + i, "InvalidMessages", str(i))
        assert not os.path.exists("seclog")
        gate[0] = True
        persist.settle()
        assert [x[2] for x in log.lines()] == [str(i) for i in range(8)]
        log.record(1700000100, "StartupOfTheDevice")
        assert [x[1] for x in log.lines()][-2:] == ["LinesLost", "StartupOfTheDevice"]
    finally:
        persist.set_gate(None)


class _Cp:
    """What secext.events needs of a charge point."""

    def __init__(self):
        from firmware.ocpp.journal import Journal

        self.journal = Journal()
        self.outbox = []
        self.lines = []
        self.wake = type("W", (), {"set": lambda self: None})()

    def stamp(self):
        return 1700000000

    def log(self, m):
        self.lines.append(m)


def test_clearing_the_log_leaves_security_log_was_cleared_and_tells_the_csms(
        tmp_path, monkeypatch):
    from firmware.secext import events

    monkeypatch.chdir(tmp_path)
    cp = _Cp()
    events.record(cp, "InvalidFirmwareSignature", "bad signature")  # not critical: not sent
    events.record(cp, "StartupOfTheDevice", "after a power cut")
    events.clear(cp)
    assert [x[1] for x in events.log(cp).lines()] == ["SecurityLogWasCleared"]
    sent = []
    while cp.journal.pending():
        seq, action, body = cp.journal.peek()
        sent.append((action, body["p"]["type"]))
        cp.journal.ack(seq)
    assert sent == [("SecurityEventNotification", "StartupOfTheDevice"),
                    ("SecurityEventNotification", "SecurityLogWasCleared")]


def test_security_events_never_crowd_out_a_transaction(tmp_path, monkeypatch):
    """A long offline period of reboots fills the journal with StartupOfTheDevice: the
    events are droppable (oldest first), so a StartTransaction still finds room."""
    from firmware.ocpp.journal import Journal
    from firmware.secext import events

    monkeypatch.chdir(tmp_path)
    cp = _Cp()
    cp.journal = Journal(max_bytes=16384)
    for i in range(400):
        events.record(cp, "StartupOfTheDevice", "after a power cut or reset")
    cp.journal.push("StartTransaction", {"l": -1, "p": {"connectorId": 1}})
    st = cp.journal.stats()
    assert st["dropped"] > 0 and st["bytes"] <= 16384 and cp.outbox == []
    kinds = []
    while cp.journal.pending():
        seq, action, body = cp.journal.peek()
        kinds.append(action)
        cp.journal.ack(seq)
    assert kinds[-1] == "StartTransaction" and kinds.count("SecurityEventNotification") > 10
