"""The web server's guard (firmware/web/server.py) on the firmware alone (boards/sim/heapcheck.py
--web, the unix port): a slowloris client is cut off after the header time, connections over
the limit are closed at once, header floods get no answer, and the API keeps answering while
the firmware completes a charging session."""
import pytest
import simrig  # noqa: F401 - puts tools/ on sys.path
import bench_web  # noqa: E402


@pytest.mark.slow
def test_slow_and_surplus_clients_are_cut_off_and_the_session_completes():
    fw = bench_web.Firmware(hold_s=7)
    try:
        cookie, _ = bench_web.login(fw.port)
        h = bench_web.hostile(fw.port)
        st, _, body = bench_web.call(fw.port, "GET", "/api/status", cookie=cookie)
    finally:
        res = fw.result()
    assert h["refused_at_once"] == 2 and h["refused_s"] < 3, h
    assert h["slow_cut"] == 4 and h["slow_cut_s"] < 9, h  # HEAD_MS 5 s, nothing sent
    assert h["flood"] == h["long_line"] == h["not_http"] == b"", h
    assert st == 200 and b'"offer_a"' in body
    assert res["completed"] and res["statuses"] == ["Charging", "SuspendedEV", "Available"], res
