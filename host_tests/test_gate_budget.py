"""The flash gate's RAM budget (docs/safety.md, "The flash gate"): while the contactor is closed
on a board whose safety path a flash erase blinds, the held whole-file saves and the OCPP
journal's RAM tail together keep at most persist.HELD_MAX bytes, so that the firmware's heap
peak of a session plus what the gate keeps fits 32 KB on a 32-bit board (measured with
tools/bench_ocpp.py heap_run on the 32-bit build: docs/ocpp.md, "Measured")."""
import pytest

from firmware import persist
from firmware.ocpp import journal

BUDGET_32K = 32768 - 27360  # 32 KB less the gated session's 32-bit heap peak (measured)


@pytest.fixture
def gate_closed(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    persist.set_gate(lambda: False)
    yield
    persist.set_gate(None)
    persist._held.clear()
    del persist._later[:]


def _mv(j, local, k):
    j.push("MeterValues", {"l": local, "p": {"connectorId": 1, "meterValue": [{
        "timestamp": 1767225600 + k, "sampledValue": [
            {"value": str(k * 100), "context": "Sample.Periodic", "unit": "Wh",
             "measurand": "Energy.Active.Import.Register"},
            {"value": "7360", "context": "Sample.Periodic", "unit": "W",
             "measurand": "Power.Active.Import"}]}]}}, droppable=True)


def _journal():
    persist.set_gate(None)  # the Start goes to flash before the contactor closes
    j = journal.Journal("ocpp.jnl")
    local = j.next_local_id()
    j.push("StartTransaction", {"l": local, "p": {"connectorId": 1, "idTag": "A",
                                                  "meterStart": 0, "timestamp": 1767225600}})
    persist.set_gate(lambda: False)
    return j, local


def test_the_budget_fits_a_32k_heap():
    # the RAM tail's records cost ~10 % more heap than their bytes (objects, the dict)
    assert persist.HELD_MAX * 11 // 10 <= BUDGET_32K


def test_an_offline_session_tail_and_held_saves_share_the_budget(gate_closed):
    j, local = _journal()
    persist.hold("ocpp_profiles.json", b"p" * 1500)
    for k in range(200):  # offline for 200 readings: the oldest are dropped
        _mv(j, local, k)
    tail = j.stats()["ram_bytes"]
    assert tail > 1000 and tail + persist.held_bytes() <= persist.HELD_MAX
    assert j.pending() < 200 and persist.ram_bytes() <= persist.HELD_MAX


def test_a_save_that_would_pass_the_budget_is_refused_while_the_tail_is_full(gate_closed):
    j, local = _journal()
    for k in range(200):
        _mv(j, local, k)
    room = persist.HELD_MAX - persist.ram_bytes()
    with pytest.raises(persist.FlashBusy):
        persist.hold("ocpp_keys.json", b"k" * (room + 1))
    persist.hold("ocpp_keys.json", b"k" * room)  # what fits is held
    assert persist.ram_bytes() <= persist.HELD_MAX
