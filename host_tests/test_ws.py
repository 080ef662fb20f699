"""The WebSocket client of the OCPP-J link (firmware/ocpp/ws.py, wsframe.py).

The client runs on the real MicroPython unix port (host_tests/mpy/ws_client.py, every
scenario in one process) against the servers of host_tests/ws_peer.py on 127.0.0.1: the PyPI
`websockets` server (ws and wss with a test CA) and a raw peer that breaks RFC 6455 on purpose.
Each test checks what the client reported and what the server saw on the wire (the close code
the client sent, masked frames). A few tests run the same client on CPython's asyncio.
"""
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import build  # noqa: E402
import certs  # noqa: E402
import simlib  # noqa: E402
import ws_peer  # noqa: E402

from firmware.ocpp import ws  # noqa: E402

# raw peer path -> the close code the client must send (and raise WsClosed with)
PROTOCOL_ERRORS = {
    "/masked": 1002, "/rsv": 1002, "/badop": 1002, "/bigctl": 1002, "/fragctl": 1002,
    "/cont": 1002, "/newmsg": 1002, "/hugeneg": 1002, "/close999": 1002, "/close1byte": 1002,
    "/binary": 1003,
    "/huge64": 1009, "/huge16": 1009, "/toolong": 1009,
    "/utf8ff": 1007, "/utf8surrogate": 1007, "/utf8overlong": 1007, "/utf8toobig": 1007,
    "/closeutf8": 1007,
}
BAD_UPGRADES = {
    "/noproto": "Sec-WebSocket-Protocol '(none)'",
    "/otherproto": "Sec-WebSocket-Protocol 'ocpp2.0.1'",
    "/badaccept": "Sec-WebSocket-Accept",
    "/404": "HTTP 404",
}


def seen(servers, path, key="close_code"):
    """What the server saw on `path`, once it has recorded `key` (its handler runs in the
    servers' thread and may finish just after the client did)."""
    for _ in range(200):
        rec = servers.seen.get(path, {})
        if key in rec:
            return rec
        time.sleep(0.05)
    return servers.seen.get(path, {})


def _valid_utf8(b):
    try:
        b.decode("utf-8")  # CPython's decoder is strict (RFC 3629)
        return True
    except UnicodeDecodeError:
        return False


def utf8_vectors():
    """Every 2-byte sequence that is not plain ASCII, and 3- and 4-byte sequences at the
    edges of each lead byte's ranges (overlongs, surrogates, above U+10FFFF, truncated)."""
    out = [bytes((a, b)) for a in range(256) for b in range(256) if a > 0x7F or b > 0x7F]
    edges = (0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF)
    for lead in range(0xE0, 0x100):
        for b1 in edges:
            for b2 in edges:
                out.append(bytes((lead, b1, b2)))
                out.append(bytes((0x41, lead, b1, b2, 0x80)))
                out.append(bytes((lead, b1, b2, 0x80)))
                out.append(bytes((lead, b1, b2, 0x80, 0x80)))
    return out


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    c = certs.make_certs(d)
    c["ca_der_path"] = os.path.join(d, "ca.der")
    with open(c["ca_der_path"], "wb") as f:
        f.write(c["ca_der"])
    return c


@pytest.fixture(scope="module")
def servers(tls):
    s = ws_peer.Servers(tls).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def mpy_run(servers, tls, tmp_path_factory):
    """Runs host_tests/mpy/ws_client.py once; {scenario: result}, the output."""
    mpy_dir = os.path.join(ROOT, "build", "mpy")
    _, errors = build.compile_all(mpy_dir)
    assert not errors, errors
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed_port = s.getsockname()[1]
    s.close()
    cfg = dict(ports=servers.ports, ca_pem=tls["ca_pem"], ca_der=tls["ca_der_path"],
               other_ca_pem=tls["other_ca_pem"], closed_port=closed_port,
               peer_paths=sorted(set(ws_peer.PEER_PATHS) - {"/stall"}),
               bad_upgrades=sorted(ws_peer.BAD_UPGRADES))
    d = tmp_path_factory.mktemp("wscfg")
    cfg["utf8_vectors"] = str(d / "utf8.txt")
    with open(cfg["utf8_vectors"], "w") as f:
        for v in utf8_vectors():
            f.write("%s %d\n" % (v.hex(), _valid_utf8(v)))
    path = str(d / "cfg.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    env = dict(os.environ, MICROPYPATH=mpy_dir + os.pathsep + ".frozen")
    script = os.path.join(HERE, "mpy", "ws_client.py")
    r = subprocess.run([simlib.micropython_exe(), script, path], capture_output=True,
                       env=env, timeout=300, cwd=ROOT)
    out = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    results = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            _, name, res = line.split(" ", 2)
            results[name] = json.loads(res)
    return results, out, r.returncode


def test_micropython_process_survives_every_scenario(mpy_run):
    results, out, rc = mpy_run
    assert rc == 0, out
    assert out.rstrip().endswith("DONE") or "\nDONE\n" in out, out
    assert "Traceback" not in out, out
    assert len(results) > 40, out


def test_echo_of_short_long_and_utf8_texts(mpy_run, servers):
    res = mpy_run[0]["echo"]
    assert res["echoed"] == [True] * 7, res  # 5, 126, 1000, 65535 bytes, UTF-8, 10000, empty
    assert res["closed"]
    rec = seen(servers, "/echo/CP01")
    assert rec["messages"] == ["hello", 126, 1000, 65535, "Gr\u00fc\u00dfe \u20ac \U0001f600",
                                5000, ""]
    assert rec["subprotocol"] == "ocpp1.6"
    assert rec["close_code"] == 1000  # the client's close handshake


def test_every_client_frame_is_masked(mpy_run, servers):
    assert mpy_run[0]
    assert all(rec["unmasked"] == 0 for rec in list(servers.seen.values()))
    raw = servers.seen["/pong"]["headers"]
    assert raw["sec-websocket-version"] == "13"
    assert raw["host"] == "127.0.0.1:%d" % servers.ports["raw"]


def test_server_ping_is_answered_by_recv(mpy_run):
    assert mpy_run[0]["server_ping"] == {"text": "pong ok"}


def test_pong_updates_last_rx_ms_across_cancelled_recvs(mpy_run, servers):
    assert mpy_run[0]["pong"] == {"fresh": True, "text": "still fine"}


def test_fragmented_server_message_is_assembled(mpy_run):
    assert mpy_run[0]["frag"]["text"] == "fragmented m\u00ebssage"


def test_utf8_split_across_fragments_with_a_ping_between(mpy_run, servers):
    assert mpy_run[0]["peer/utf8split"]["text"] == "price \u20ac ok"
    assert seen(servers, "/utf8split")["pongs"] == [b"mid"]


def test_server_close_raises_wsclosed_with_its_code(mpy_run, servers):
    res = mpy_run[0]["server_close"]
    assert res["exc"] == "WsClosed" and res["code"] == 4001, res
    assert res["reason"] == "bye from server" and res["closed"]
    assert res["send_after"] == 4001  # send() on a closed link raises WsClosed
    assert seen(servers, "/close4001/CP01")["close_code"] == 4001  # the client echoed it


def test_empty_close_frame_gives_1005_and_an_empty_answer(mpy_run, servers):
    res = mpy_run[0]["peer/closeempty"]
    assert res["exc"] == "WsClosed" and res["code"] == 1005, res
    assert seen(servers, "/closeempty")["close_code"] is None  # answered without a code


def test_close_from_another_task_ends_the_readers_recv(mpy_run, servers):
    assert mpy_run[0]["close_with_reader"] == {"reader": 1000, "closed": True}
    rec = seen(servers, "/echo/closing")
    assert rec["close_code"] == 1000 and rec["close_reason"] == "done"


def test_basic_auth(mpy_run, servers):
    ok = mpy_run[0]["auth_ok"]
    assert ok["echoed"] == [True], ok
    assert seen(servers, "/auth/ok")["close_code"] == 1000
    bad = mpy_run[0]["auth_bad"]
    assert bad["exc"] == "WsRefused" and bad["status"] == 401  # a WsError: the server said no
    assert bad["msg"] == "HTTP 401 Unauthorized"  # the status and the server's reason phrase
    assert servers.seen["/auth/bad"]["rejected"]


@pytest.mark.parametrize("name,path", [("wss_pem", "/echo/tls"), ("wss_der", "/echo/tlsder")])
def test_wss_with_the_test_ca(mpy_run, servers, name, path):
    res = mpy_run[0][name]
    assert res.get("echoed") and all(res["echoed"]), res
    assert seen(servers, path)["subprotocol"] == "ocpp1.6"


@pytest.mark.parametrize("name,exc,words", [
    ("wss_other_ca", "WsRefused", ("TLS", "not correctly signed")),
    ("wss_wrong_host", "WsRefused", ("TLS", "CN")),
    ("wss_no_ca", "WsError", ("cadata",)),
])  # fmt: skip
def test_wss_refuses_an_untrusted_server(mpy_run, name, exc, words):
    # WsRefused (a WsError, status 0): the TLS handshake failed, unlike a network down
    res = mpy_run[0][name]
    assert res["exc"] == exc and res["status"] == (0 if exc == "WsRefused" else None), res
    for w in words:
        assert w in res["msg"], res


@pytest.mark.parametrize("path", sorted(PROTOCOL_ERRORS))
def test_protocol_error_closes_with_the_right_code(mpy_run, servers, path):
    code = PROTOCOL_ERRORS[path]
    res = mpy_run[0]["peer" + path]
    assert res["exc"] == "WsClosed" and res["code"] == code, res
    assert res["closed"] and res["send_after"] == code, res
    assert seen(servers, path).get("close_code") == code, servers.seen[path]


def test_every_raw_path_is_checked():
    assert set(ws_peer.PEER_PATHS) - set(PROTOCOL_ERRORS) == {
        "/utf8split", "/closeempty", "/eof", "/stall"}
    assert set(ws_peer.BAD_UPGRADES) == set(BAD_UPGRADES)


def test_eof_mid_frame_gives_1006(mpy_run):
    res = mpy_run[0]["peer/eof"]
    assert res["exc"] == "WsClosed" and res["code"] == 1006 and "mid-frame" in res["reason"]
    assert res["send_after"] == 1006


@pytest.mark.parametrize("path", sorted(BAD_UPGRADES))
def test_bad_upgrade_answer_fails_the_connect(mpy_run, path):
    res = mpy_run[0]["upgrade" + path]
    assert res["exc"] == ("WsRefused" if path == "/404" else "WsError"), res
    assert BAD_UPGRADES[path] in res["msg"], res


def test_recv_cancelled_mid_frame_resumes_intact(mpy_run, servers):
    res = mpy_run[0]["stall"]
    assert res == {"cancels": 2, "text": "stalled message", "text2": "echo after stall"}
    assert seen(servers, "/stall")["close_code"] == 1000


def test_concurrent_senders_never_interleave_frames(mpy_run, servers):
    assert mpy_run[0]["concurrent"] == {"sent": 45, "same": True}
    assert seen(servers, "/echo/concurrent")["close_code"] == 1000


@pytest.mark.parametrize("name,words", [
    ("timeout", "timed out"), ("refused", "refused"), ("bad_url", "ws:// or wss://"),
    ("bad_port", "bad port"),
])  # fmt: skip
def test_connect_failures_name_the_cause(mpy_run, name, words):
    res = mpy_run[0][name]
    assert res["exc"] == "WsError" and words in res["msg"], res


def test_utf8_check_agrees_with_a_strict_decoder(mpy_run):
    res = mpy_run[0]["utf8_vectors"]
    assert res["n"] == len(utf8_vectors()) and res["bad"] == 0, res


def test_the_network_managers_opener_is_used_with_tls_arguments(mpy_run, servers):
    res = mpy_run[0]["custom_opener"]
    assert res["echoed"] == [True], res
    assert res["calls"] == [["127.0.0.1", servers.ports["wss"], True, "127.0.0.1"]]


def test_heap_of_an_open_connection(mpy_run):
    ws_heap = mpy_run[0]["heap_ws"]
    wss_heap = mpy_run[0]["heap_wss"]
    print("heap of an open connection: ws %d bytes, wss %d bytes" % (ws_heap["heap"],
                                                                     wss_heap["heap"]))
    assert ws_heap["ok"] and wss_heap["ok"]
    # small preallocated receive buffers; no send buffer between frames (1,408 B with one)
    assert 0 < ws_heap["heap"] < 1280
    assert ws_heap["heap"] < wss_heap["heap"]


# -- the same client on CPython's asyncio ----------------------------------------------------


def _cpython(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_cpython_echo_over_wss_and_close(servers, tls):
    async def run():
        url = "wss://127.0.0.1:%d/echo/cpython" % servers.ports["wss"]
        c = await ws.connect(url, cadata=tls["ca_pem_bytes"], user=None)
        await c.send("\u00fcber " * 100)
        text = await c.recv()
        await c.close()
        return text, c.closed

    assert _cpython(run()) == ("\u00fcber " * 100, True)
    assert seen(servers, "/echo/cpython")["close_code"] == 1000


def test_cpython_masked_server_frame(servers):
    async def run():
        c = await ws.connect("ws://127.0.0.1:%d/masked" % servers.ports["raw"])
        with pytest.raises(ws.WsClosed) as e:
            await c.recv()
        return e.value.code

    servers.seen.pop("/masked", None)
    assert _cpython(run()) == 1002
    assert seen(servers, "/masked")["close_code"] == 1002


def test_cpython_wrong_host_is_a_tls_error(servers, tls):
    url = "wss://127.0.0.1:%d/x" % servers.ports["wss_wrong"]
    with pytest.raises(ws.WsError, match="TLS"):
        _cpython(ws.connect(url, cadata=tls["ca_der"]))


def test_cpython_dns_failure_is_named():
    async def opener(host, port, ssl=None, server_hostname=None):
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(ws.WsError, match=r"cannot resolve .*csms.invalid.*DNS"):
        _cpython(ws.connect("ws://csms.invalid/ocpp/CP01", open_connection=opener))


def test_cpython_user_with_a_colon_is_refused_before_connecting():
    calls = []

    async def opener(*a, **kw):
        calls.append(a)
        raise AssertionError("must not connect")

    with pytest.raises(ws.WsError, match="must not contain ':'"):
        _cpython(ws.connect("ws://h/x", user="CP:01", password="p", open_connection=opener))
    assert calls == []


def test_close_reason_is_cut_between_characters():
    from firmware.ocpp.wsframe import _close_payload

    p = _close_payload(1001, "\u20ac" * 60)  # 180 bytes of 3-byte characters
    assert len(p) == 2 + 123 and p[:2] == b"\x03\xe9"
    assert p[2:].decode() == "\u20ac" * 41
    p = _close_payload(1000, "a" + "\u00e4" * 70)
    assert len(p) == 2 + 123 and p[2:].decode() == "a" + "\u00e4" * 61


@pytest.mark.parametrize("url,tls_,host,port,auth,path", [
    ("ws://h/", False, "h", 80, "h", "/"),
    ("ws://h", False, "h", 80, "h", "/"),
    ("wss://csms.example:8443/ocpp/CP01", True, "csms.example", 8443, "csms.example:8443",
     "/ocpp/CP01"),
    ("ws://[::1]:9000/a", False, "::1", 9000, "[::1]:9000", "/a"),
])  # fmt: skip
def test_parse_url(url, tls_, host, port, auth, path):
    assert ws.parse_url(url) == (tls_, host, port, auth, path)


@pytest.mark.parametrize("url", ["http://h/", "ws://", "ws://h:0/", "ws://h:x/", "ws://u:p@h/",
                                 "ws://h/a b", "ws://h/\r\nX: y", "ws://h/#f", "ws://[::1/",
                                 None])
def test_parse_url_refuses(url):
    with pytest.raises(ws.WsError, match="bad URL"):
        ws.parse_url(url)


def test_a_url_with_a_password_is_refused_by_the_config_check_without_showing_it():
    from firmware.ocpp import cp

    secret = "Sup3rS3cretPassw0rd"
    for url in ("ws://CP1:%s@csms.example/ocpp" % secret,
                "ws://CP1:%s@csms.example/oc\tpp" % secret):
        errs = cp.check_section({"url": url, "cp_id": "CP1"})
        assert [e for e in errs if e.startswith("ocpp.url: bad URL")], errs
        assert not [e for e in errs if secret in e], errs
        with pytest.raises(ws.WsError) as e:
            ws.parse_url(url)
        assert secret not in str(e.value)
    # legal but unusual: an @ in the path is not a user@
    assert ws.parse_url("ws://h/ocpp/CP@1")[1] == "h"
    assert not [e for e in cp.check_section({"url": "ws://h/ocpp/CP@1", "cp_id": "CP1"})
                if e.startswith("ocpp.url")]
