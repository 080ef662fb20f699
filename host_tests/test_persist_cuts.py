"""Power cuts at every step of every persistent write (host_tests/persist_scenarios.py on the
simulated flash of host_tests/flashsim.py): what boots is the old or the new value, never
nothing, never garbage, never an exception; a save that returned survives the cut."""
import pytest

import persist_scenarios as ps


@pytest.mark.parametrize("scenario", ps.SCENARIOS, ids=[s[0] for s in ps.SCENARIOS])
def test_power_cut_at_every_step(scenario):
    tried, problems = ps.run(scenario)
    assert tried > 6
    assert not problems, "\n".join(problems[:12])


def test_an_unreadable_lockout_file_keeps_the_lockout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for text in (b"", b"\xff\x00", b"yes"):
        (tmp_path / "lockout").write_bytes(text)
        assert ps.persist.load_flag("lockout", False, True) is True  # as firmware.app reads
    assert ps.persist.load_flag("missing", False, True) is False


def test_the_restart_marker_is_read_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ps.persist.take_restart() is None
    ps.persist.mark_restart("supervisor")
    assert ps.persist.take_restart() == "supervisor" == ps.persist.restart_reason
    assert ps.persist.take_restart() is None  # the next boot after a power cut: none
    (tmp_path / "restart").write_bytes(b"\xff\xfe")  # unreadable: still a restart
    assert ps.persist.take_restart() == "restart"
    assert not (tmp_path / "restart").exists()
