"""The web server's guard (firmware/web/server.py) on the firmware alone (boards/sim/heapcheck.py
--web, the unix port): a slowloris client is cut off after the header time, connections over
the limit wait in the stack's backlog for a slot (then get their own header time), header
floods get no answer, and the API keeps answering while the firmware completes a charging
session; a seeded HTTP fuzz finds nothing."""
import pytest
import simrig  # noqa: F401 - puts tools/ on sys.path
import bench_web  # noqa: E402


@pytest.mark.slow
def test_hostile_clients_are_cut_off_a_seeded_fuzz_finds_nothing_and_the_session_completes():
    """Slowloris, the connection limit, floods; then tools/web_fuzz.py with a fixed seed
    (`make fuzz` runs 2000 requests from a new one), on one firmware."""
    import web_fuzz

    fw = bench_web.Firmware(hold_s=14)
    try:
        cookie, _ = bench_web.login(fw.port)
        h = bench_web.hostile(fw.port)
        st, _, body = bench_web.call(fw.port, "GET", "/api/status", cookie=cookie)
        findings, _ = web_fuzz.run(150, seed=19, log=lambda m: None, fw=fw)
    finally:
        res = fw.result()
    assert h["slow_cut"] == 3 and h["slow_cut_s"] < 9, h  # HEAD_MS 5 s, nothing sent
    # the 3 over the limit waited for a slot (not closed at once), then had their 5 s
    assert h["waited"] == 3 and h["waited_cut_s"] < 16, h
    assert h["flood"] == h["long_line"] == h["not_http"] == b"", h
    assert st == 200 and b'"offer_a"' in body
    assert findings == [], findings
    assert res["completed"] and res["statuses"] == ["Charging", "SuspendedEV", "Available"], res
    assert res["runtime"] < 96 * 1024, res  # x64: about twice the 32-bit heap
