"""No flash write while the contactor is closed on a board whose reflex cannot run through a
flash erase (issue 14, section 1 item 2; docs/safety.md "Files on flash"): the real STM32
board on the faithful port fakes (host_tests/portfakes.py: a flash write stalls the CP
timer's interrupt for a sector erase) gives the gate (board.flash_write_ok), the files live
on the power-cut flash (host_tests/flashsim.py), and every step that changes the flash is
recorded with the contactor's state at that moment.

The OCPP side is driven as firmware/ocpp/txn.py and jram.py drive it: the open
transaction's file is saved and a MeterValues record pushed every second; a sender takes the
oldest record (peek), "delivers" it to the CSMS and acknowledges it."""
import sys
import types

import flashgate_scenarios
import pytest
from flashsim import SimFlash, on
from portfakes import Dev
from test_board_ports import _load, charging

from firmware import boardcaps, persist
from firmware.meters import energy
from firmware.ocpp import authlist, cp, journal, keys, remote, smart_store, txn
from firmware.ocpp.report import TxEnergy

MODULES = (persist, journal, txn, keys, authlist, smart_store, cp)
LOCAL = -1


class AuditFlash(SimFlash):
    """SimFlash that records, for every step, whether the contactor was closed, and stalls
    the port fake for a sector erase when it was (what the F405 does)."""

    def __init__(self, board=None, dev=None, **kw):
        SimFlash.__init__(self, **kw)
        self.board = board
        self.dev = dev
        self.closed_steps = 0

    def step(self):
        SimFlash.step(self)
        if self.board is not None and self.board.contactor.closed:
            self.closed_steps += 1
            self.dev.flash_erase(250000)


@pytest.fixture
def stm32(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    dev = Dev()
    mod, machine = _load(monkeypatch, "stm32_wallbox", dev)
    board = mod.build()
    persist.set_gate(board.flash_write_ok)
    yield dev, mod, board
    persist.set_gate(None)
    persist._held.clear()
    del persist._later[:]
    sys.modules.pop("boards.stm32_wallbox.board", None)


class _Cp:
    """What txn.Transactions (its boot's recovery, _save) and TxEnergy use of the charge
    point."""

    def __init__(self, j, meters=None):
        self.journal = j
        self.profiles = types.SimpleNamespace(end_transaction=lambda tx_id: None)
        self.meters = meters
        self.board = boardcaps.probe(types.SimpleNamespace())  # a board with no EV meter
        self.lines = []
        self.t = 1767225600

    def log(self, msg):
        self.lines.append(msg)

    say = log  # ChargePoint.say: the "ocpp: " lines

    def stamp(self):
        return self.t


class _Tx:
    """The part of txn.Transactions that saves the open transaction."""

    _save = txn.Transactions._save

    def __init__(self, c, wh):
        self.cp = c
        self.e = TxEnergy(c)
        self.e.wh = wh
        self.open = {"l": LOCAL, "tag": "CARD1", "start_s": c.t, "data": []}


class _Task:
    def __init__(self, store):
        self.store = store

    @property
    def total_wh(self):
        return self.store.wh


def _mv(i, wh):
    return {"l": LOCAL, "p": {"connectorId": 1, "meterValue": [{
        "timestamp": 1767225600 + i, "sampledValue": [{"value": str(wh)}]}]}}


def _send_all(j, csms):
    """The sender: every pending record delivered and acknowledged (jram.send_next)."""
    while True:
        r = j.peek()
        if r is None:
            return
        csms.append((r[1], r[2]))
        j.ack(r[0])


def _session(dev, mod, board, flash, seconds, online=True, cut=False):
    """A transaction: Start with the contactor open (as txn._start: the file, then the
    journal), the contactor closes, one MeterValues a second (the file, then the journal:
    txn._push_values), the meter's register in the RTC backup words (10 Wh a second), and,
    unless cut, the Stop after the contactor opened. Returns (csms, register, journal)."""
    csms = []
    store = energy.EnergyStore("energy_ev", step_wh=10, fs=board.energy_backend("energy_ev"))
    store.set(1000, 0)
    store.flush()
    with on(flash, MODULES):
        j = journal.Journal("ocpp.jnl")
        c = _Cp(j)
        lid = j.next_local_id()
        assert lid == LOCAL
        tx = _Tx(c, 1000)
        tx._save()
        j.push("StartTransaction", {"l": lid, "p": {"connectorId": 1, "idTag": "CARD1",
                                                    "meterStart": 1000, "timestamp": c.t}})
        if online:
            _send_all(j, csms)
            j.map_tx(lid, 77)
        ctl = charging(dev, mod, board)
        for i in range(seconds):
            dev.advance(1000000)
            ctl.last_step_ms = dev.t // 1000
            store.add(10)
            c.t += 1
            tx.e.raise_to(store.wh)
            tx._save()
            j.push("MeterValues", _mv(i, store.wh), droppable=True)
            if online:
                _send_all(j, csms)
            assert board.contactor.closed, "the contactor opened during the session"
        if cut:
            return csms, store, j
        dev.ev_high_mv = 9000  # the EV ends the session: the reflex opens the contactor
        dev.advance(5000)
        assert not board.contactor.closed
        tx.e.raise_to(store.wh)
        j.push("StopTransaction", {"l": lid, "p": {
            "meterStop": tx.e.now(), "reason": "EVDisconnected", "timestamp": c.t}})
        persist.remove(txn.TX_FILE)
        if online:
            _send_all(j, csms)
    return csms, store, j


def test_session_on_stm32_writes_no_flash_while_closed_and_sends_every_meter_value(stm32):
    """Before the gate the journal appended (and synced) every MeterValues and its ack, and
    ocpp_tx.json was rewritten before each: 4 flash steps and more a second, each a sector
    erase that blinds the reflex on this board."""
    dev, mod, board = stm32
    flash = AuditFlash(board, dev)
    csms, store, j = _session(dev, mod, board, flash, 30)
    assert flash.closed_steps == 0, "%d flash writes while the contactor was closed" % (
        flash.closed_steps)
    sent = [a for a, _ in csms]
    assert sent == ["StartTransaction"] + ["MeterValues"] * 30 + ["StopTransaction"]
    assert [p["p"]["meterValue"][0]["sampledValue"][0]["value"] for a, p in csms
            if a == "MeterValues"] == [str(1010 + 10 * i) for i in range(30)]
    assert j.pending() == 0
    with on(flash.boot("last-sync"), MODULES):  # a power cut after the session
        again = journal.Journal("ocpp.jnl")
        assert again.pending() == 0 and again.open_locals() == []
        assert again.tx_id(LOCAL) is None or again.tx_id(LOCAL) == 77


def test_offline_session_keeps_meter_values_in_ram_and_writes_them_when_it_ends(stm32):
    """Offline: nothing is sent during the session; the MeterValues wait in RAM (bounded),
    reach the file once the contactor opened, and a power cut after the session sends them
    all at the next boot, in order, then the Stop."""
    dev, mod, board = stm32
    flash = AuditFlash(board, dev)
    csms, store, j = _session(dev, mod, board, flash, 20, online=False)
    assert flash.closed_steps == 0
    assert j.stats()["ram_pending"] == 0  # written when the Stop was pushed
    with on(flash.boot("last-sync"), MODULES):
        again = journal.Journal("ocpp.jnl")
        got = []
        _send_all(again, got)
    assert [a for a, _ in got] == ["StartTransaction"] + ["MeterValues"] * 20 + [
        "StopTransaction"]
    assert got[-1][1]["p"]["meterStop"] == 1200


def test_ram_tail_is_bounded_dropping_the_oldest_meter_values_not_start_or_stop(stm32):
    dev, mod, board = stm32
    flash = AuditFlash(board, dev)
    with on(flash, MODULES):
        j = journal.Journal("ocpp.jnl", ram_bytes=2000)
        j.push("StartTransaction", {"l": LOCAL, "p": {"idTag": "A"}})
        charging(dev, mod, board)
        for i in range(100):
            j.push("MeterValues", _mv(i, 1000 + i), droppable=True)
        s = j.stats()
        assert s["ram_bytes"] <= 2000 and s["dropped"] > 0
        first = j.peek()
        assert first[1] == "StartTransaction"
        j.ack(first[0])
        vals = []
        _send_all(j, vals)
        # the newest readings are kept, in order
        assert vals[-1][1]["p"]["meterValue"][0]["sampledValue"][0]["value"] == "1099"
        nums = [int(p["p"]["meterValue"][0]["sampledValue"][0]["value"]) for _, p in vals]
        assert nums == sorted(nums) and len(nums) + s["dropped"] == 100
    assert flash.closed_steps == 0


def test_power_cut_mid_session_gives_one_powerloss_stop_with_the_backup_register(stm32):
    """The Start reached flash before the contactor closed; ocpp_tx.json kept the start's
    register (its saves are skipped while closed) and the queued MeterValues are lost with
    RAM: the next boot ends the transaction once, PowerLoss, meterStop = the register the
    RTC backup words kept."""
    dev, mod, board = stm32
    flash = AuditFlash(board, dev)
    csms, store, j = _session(dev, mod, board, flash, 15, online=False, cut=True)
    assert flash.closed_steps == 0
    booted = flash.boot("last-sync")
    backup = energy.EnergyStore("energy_ev", step_wh=10, fs=board.energy_backend("energy_ev"))
    assert backup.loaded and backup.wh == 1150  # the VBAT registers kept it
    with on(booted, MODULES):
        again = journal.Journal("ocpp.jnl")
        c = _Cp(again, meters={"ev": _Task(backup)})
        txn.Transactions(c)  # the boot ends the transaction the cut left open
        got = []
        _send_all(again, got)
    assert [a for a, _ in got] == ["StartTransaction", "StopTransaction"]
    stop = got[1][1]["p"]
    assert stop["reason"] == "PowerLoss" and stop["meterStop"] == 1150
    assert got[0][1]["p"]["meterStart"] == 1000


def test_whole_file_saves_wait_in_ram_while_closed_and_reach_flash_when_it_opens(stm32):
    """ChangeConfiguration mid-session (keys), availability: held in RAM, read back, written
    when the contactor opens; a power cut before that keeps the old value."""
    dev, mod, board = stm32
    flash = AuditFlash(board, dev)
    with on(flash, MODULES):
        persist.save_json("ocpp_state.json", {"available": [True, True]})
        k = keys.Keys("ocpp_keys.json")
        charging(dev, mod, board)
        assert k.change("MeterValueSampleInterval", "5") == "Accepted"
        persist.save_json("ocpp_state.json", {"available": [True, False]})
        assert persist.load_json("ocpp_state.json") == {"available": [True, False]}
        assert k.get("MeterValueSampleInterval") == 5
        assert flash.closed_steps == 0
        cut = flash.boot("last-sync")
        dev.ev_high_mv = 9000
        dev.advance(5000)
        assert not board.contactor.closed
        assert persist.settle()
    with on(cut, MODULES):
        assert persist.load_json("ocpp_state.json") == {"available": [True, True]}
    with on(flash.boot("last-sync"), MODULES):
        assert persist.load_json("ocpp_state.json") == {"available": [True, False]}
        assert keys.Keys("ocpp_keys.json").get("MeterValueSampleInterval") == 5
    assert flash.closed_steps == 0


def test_local_list_is_refused_while_closed(stm32):
    """SendLocalList mid-session: Failed (the list can be larger than RAM may hold), with
    the reason; nothing written."""
    dev, mod, board = stm32
    flash = AuditFlash(board, dev)
    with on(flash, MODULES):
        ll = authlist.LocalList("ocpp_list.bin")
        charging(dev, mod, board)
        with pytest.raises(OSError, match="contactor closed"):  # remote answers Failed
            ll.update(1, [("A", ("Accepted", None, None))], True)
        assert ll.version == 0  # the list as it was
    assert flash.closed_steps == 0
    dev.ev_high_mv = 9000
    dev.advance(5000)
    with on(flash, MODULES):  # the session is over: the same update is taken
        assert ll.update(1, [("A", ("Accepted", None, None))], True) == "Accepted"


def test_cache_entries_wait_for_the_gate_and_clear_cache_is_refused_while_closed(stm32):
    """A StartTransaction.conf's idTagInfo arrives once the contactor closed: the cache entry
    waits in RAM and is written when the session ends; ClearCache meanwhile is refused (its
    answer Rejected) and the cache is as it was."""
    dev, mod, board = stm32
    flash = AuditFlash(board, dev)
    with on(flash, MODULES):
        cache = authlist.AuthCache("ocpp_cache.bin")
        cache.put("OLD", "Accepted", None, None, 100)
        charging(dev, mod, board)
        cache.put("CARD1", "Accepted", None, "GROUP", 200)
        c = _Cp(None)
        c.cache = cache
        assert remote.ClearCache(c, {}) == "Rejected"
        assert "contactor closed" in c.lines[-1]
        assert cache.lookup("OLD") is not None
        assert flash.closed_steps == 0
        dev.ev_high_mv = 9000
        dev.advance(5000)
        assert not board.contactor.closed
        assert persist.settle()
    with on(flash.boot("last-sync"), MODULES):
        again = authlist.AuthCache("ocpp_cache.bin")
        assert again.lookup("CARD1") is not None and again.lookup("OLD") is not None
    assert flash.closed_steps == 0


# -- the same scenarios run on the MicroPython unix port (host_tests/mpy/check_flashgate.py)


def test_journal_ram_tail_reaches_flash_in_order_when_the_gate_opens():
    assert flashgate_scenarios.ram_tail() == []


def test_a_cut_at_every_step_of_the_settle_boots_the_old_or_the_new_journal():
    n, problems = flashgate_scenarios.settle_cuts()
    assert n > 6 and problems == [], problems


def test_held_whole_file_saves():
    assert flashgate_scenarios.held_files() == []


def test_esp32_journal_waits_for_the_contactor_to_open(monkeypatch, tmp_path):
    """The ESP32 has no reflex at all: its board refuses flash writes while the contactor is
    closed (flash_write_ok is blocking_ok) and the journal keeps its records in RAM too."""
    monkeypatch.chdir(tmp_path)
    dev = Dev()
    mod, _ = _load(monkeypatch, "esp32_wallbox", dev)
    board = mod.build()
    persist.set_gate(board.flash_write_ok)
    try:
        flash = AuditFlash(board, dev)
        with on(flash, MODULES):
            j = journal.Journal("ocpp.jnl")
            j.push("StartTransaction", {"l": LOCAL, "p": {"idTag": "A"}})
            board.contactor.set(True)
            for i in range(5):
                j.push("MeterValues", _mv(i, 1000 + i), droppable=True)
            assert flash.closed_steps == 0 and j.stats()["ram_pending"] == 5
            board.contactor.set(False)
            assert persist.settle() and j.stats()["ram_pending"] == 0
        with on(flash.boot("last-sync"), MODULES):
            assert journal.Journal("ocpp.jnl").pending() == 6
    finally:
        persist.set_gate(None)
        persist._held.clear()
        del persist._later[:]
        sys.modules.pop("boards.esp32_wallbox.board", None)
