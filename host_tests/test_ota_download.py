"""The bundle download (firmware/ota/download.py) against a local HTTP server, on CPython and
on the MicroPython unix port: Content-Length, chunked, redirects, Range resume after a dropped
connection, the SHA-256 computed while it streams, and each failure named."""
import asyncio
import hashlib
import json
import os
import subprocess
import sys

import pytest

import ota_http
from firmware.ota import download

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build  # noqa: E402
import simlib  # noqa: E402

BODY = bytes((i * 7 + i // 256) & 0xFF for i in range(50000))
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    s = ota_http.Server(BODY)
    yield s
    s.close()


def _get(url, path, **kw):
    d = download.Download(url, str(path), log=lambda m: None, **kw)

    async def go():
        await d.run(retries=2, retry_ms=50)
    asyncio.run(go())
    return d


@pytest.mark.parametrize("what", ["/b", "/chunked", "/redir", "/redir-abs"])
def test_a_download_lands_whole_with_its_hash(server, tmp_path, what):
    d = _get(server.url + what, tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == BODY
    assert (d.size, d.sha256) == (len(BODY), SHA)
    assert not (tmp_path / "f.part").exists()


def test_a_dropped_connection_resumes_with_range(server, tmp_path):
    (tmp_path / "f.part").write_bytes(b"x" * 100)  # another download's leftover: not resumed
    d = _get(server.url + "/drop", tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == BODY and d.sha256 == SHA
    assert d.attempts == 2 and d.resumed == len(BODY) // 2
    assert server.requests == [("/drop", None), ("/drop", "bytes=%d-" % (len(BODY) // 2))]


def test_failures_are_named(server, tmp_path):
    with pytest.raises(download.DownloadError, match="HTTP 404"):
        _get(server.url + "/missing", tmp_path / "f")
    assert len(server.requests) == 1  # a 4xx is not retried
    with pytest.raises(download.DownloadError, match="more than 5 redirects"):
        _get(server.url + "/loop", tmp_path / "f")
    with pytest.raises(download.DownloadError, match="more than the 1000 allowed"):
        _get(server.url + "/b", tmp_path / "f", max_bytes=1000)
    with pytest.raises(download.DownloadError, match="connection"):
        _get("http://127.0.0.1:%d/b" % _closed_port(), tmp_path / "f")
    assert not (tmp_path / "f").exists()
    for url, words in (("ftp://h/x", "ftp:// is not supported"),
                       ("h/x", "?:// is not supported"),
                       ("http://h:99999/x", "bad port"),
                       ("http://u:p@h/x", "user:password@")):
        with pytest.raises(download.DownloadError, match=words.replace("?", "\\?")):
            download.parse_url(url)
    assert download.parse_url("https://[::1]:8443/a?b") == (True, "::1", 8443, "/a?b")
    assert download.parse_url("http://csms.example") == (False, "csms.example", 80, "/")
    with pytest.raises(download.DownloadError, match="TLS context"):
        _get("https://127.0.0.1:%d/b" % server.port, tmp_path / "f", )


def _closed_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _rig(*args):
    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy_dir)
    assert not errors
    env = dict(os.environ, MICROPYPATH=mpy_dir + os.pathsep + ".frozen")
    r = subprocess.run([simlib.micropython_exe(), os.path.join(ROOT, "host_tests", "mpy",
                                                               "ota_dl_rig.py")] + list(args),
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return list(map(json.loads, r.stdout.splitlines()))


def test_the_same_on_micropython(server, tmp_path):
    got = dict((x["path"], x) for x in _rig(server.url, str(tmp_path)))
    for p in ("/b", "/chunked", "/redir", "/redir-abs", "/drop"):
        assert got[p]["error"] is None and got[p]["sha256"] == SHA, got[p]
        assert (tmp_path / ("dl" + p.replace("/", "_"))).read_bytes() == BODY
    assert got["/drop"]["resumed"] == len(BODY) // 2 and got["/drop"]["attempts"] == 2
    assert "HTTP 404" in got["/missing"]["error"]
    assert "more than 5 redirects" in got["/loop"]["error"]


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    import certs
    return certs.make_certs(str(tmp_path_factory.mktemp("certs")))


def test_https_verifies_the_server_as_the_csms_link_does(tls, tmp_path):
    """The TLS context made as the CSMS link's (firmware/ocpp/ws.py): the test CA's server
    certificate for 127.0.0.1 is accepted, one of another CA is refused."""
    from firmware.ocpp import ws
    s = ota_http.Server(BODY, tls=(tls["cert"], tls["key"]))
    try:
        d = _get(s.url + "/chunked", tmp_path / "f",
                 tls_context=ws._tls_context(tls["ca_pem_bytes"]))
        assert d.sha256 == SHA and (tmp_path / "f").read_bytes() == BODY
        with pytest.raises(download.DownloadError, match="(?i)certificate|ssl"):
            _get(s.url + "/b", tmp_path / "g",
                 tls_context=ws._tls_context(tls["other_ca_pem_bytes"]))
        assert not (tmp_path / "g").exists()
    finally:
        s.close()


def test_https_on_micropython(tls, tmp_path):
    s = ota_http.Server(BODY, tls=(tls["cert"], tls["key"]))
    try:
        good, bad = _rig(s.url, str(tmp_path), tls["ca_pem"], tls["other_ca_pem"])
    finally:
        s.close()
    assert good["error"] is None and good["sha256"] == SHA, good
    assert bad["error"] and bad["sha256"] is None, bad
    print("\nhttps with another CA on the unix port: %s" % bad["error"])
