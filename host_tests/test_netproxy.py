"""tools/netproxy.py from a client's view: an echo server behind the proxy, each mode doing
what it says (pass, drop, stall, reject, cut), the command line and its control port.
Blocking client sockets with generous timeouts; "nothing arrives" is checked both by the
client (a short wait that must time out) and by the server (it never got the bytes)."""
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from netproxy import MODES, ProxyThread, control_line  # noqa: E402

TIMEOUT = 10  # a loaded CI machine: generous, never the thing measured
QUIET_S = 0.3  # how long a stalled connection is watched for bytes that must not come


class Echo(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.received = bytearray()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), EchoHandler)


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            while data := self.request.recv(4096):
                with self.server.lock:
                    self.server.received += data
                self.request.sendall(data)
        except OSError:  # the proxy reset it (cut rst=True)
            pass


@pytest.fixture
def echo():
    srv = Echo()
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def proxy(echo):
    with ProxyThread("127.0.0.1", echo.server_address[1]) as px:
        yield px


def connect(px):
    return socket.create_connection(("127.0.0.1", px.port), timeout=TIMEOUT)


def roundtrip(s, data):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(len(data) - len(got))
        assert chunk, "connection closed after %r" % got
        got += chunk
    return got


def closed(s):
    """True when the peer closed (EOF) or reset the connection."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def silent(s):
    s.settimeout(QUIET_S)
    try:
        data = s.recv(100)
    except socket.timeout:
        return True
    finally:
        s.settimeout(TIMEOUT)
    raise AssertionError("a stalled connection delivered %r" % data)


def refused(px):
    with pytest.raises(ConnectionRefusedError):
        connect(px).close()
    return True


def test_pass_forwards_both_ways_and_counts(proxy, echo):
    with connect(proxy) as s:
        assert roundtrip(s, b"hello") == b"hello"
        assert roundtrip(s, b"x" * 100000) == b"x" * 100000
    st = proxy.stats
    assert (st["connections"], st["to_target"], st["to_client"]) == (1, 100005, 100005)
    assert bytes(echo.received) == b"hello" + b"x" * 100000


def test_drop_closes_every_connection_and_refuses_until_pass(proxy):
    a, b = connect(proxy), connect(proxy)
    assert roundtrip(a, b"1") == b"1" and roundtrip(b, b"2") == b"2"
    proxy.set_mode("drop")
    assert closed(a) and closed(b)
    assert refused(proxy)
    proxy.set_mode("pass")
    with connect(proxy) as c:
        assert roundtrip(c, b"back") == b"back"
    a.close()
    b.close()


def test_stall_forwards_nothing_either_way_then_closes_what_it_held(proxy, echo):
    a = connect(proxy)
    assert roundtrip(a, b"before") == b"before"
    proxy.set_mode("stall")
    a.sendall(b"held")
    assert silent(a)
    b = connect(proxy)  # accepted (a black hole answers nothing, it does not refuse)
    b.sendall(b"new")
    assert silent(b)
    assert bytes(echo.received) == b"before"  # the server never saw the stalled bytes
    proxy.set_mode("pass")
    assert closed(a) and closed(b)
    with connect(proxy) as c:
        assert roundtrip(c, b"after") == b"after"
    assert bytes(echo.received) == b"beforeafter"
    a.close()
    b.close()


def test_reject_refuses_new_connections_and_keeps_the_open_ones(proxy):
    a = connect(proxy)
    assert roundtrip(a, b"1") == b"1"
    proxy.set_mode("reject")
    assert refused(proxy)
    assert roundtrip(a, b"still") == b"still"
    proxy.set_mode("pass")
    with connect(proxy) as c:
        assert roundtrip(c, b"new") == b"new"
    assert roundtrip(a, b"and old") == b"and old"
    a.close()


def test_cut_closes_the_current_connections_once(proxy):
    a = connect(proxy)
    assert roundtrip(a, b"1") == b"1"
    proxy.cut()
    assert closed(a)
    with connect(proxy) as b:  # the "server" is back at once
        assert roundtrip(b, b"2") == b"2"
        proxy.cut(rst=True)
        b.settimeout(TIMEOUT)
        with pytest.raises(ConnectionResetError):
            b.recv(100)
    assert proxy.stats["cuts"] == 2 and proxy.mode == "pass"
    a.close()


def test_a_target_that_is_down_closes_the_client_connection():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()  # nothing listens there
    with ProxyThread("127.0.0.1", dead_port) as px:
        with connect(px) as c:
            assert closed(c)
        assert px.stats["target_errors"] == 1


def test_bad_mode_is_named(proxy):
    with pytest.raises(ValueError, match=r"pass, drop, stall, reject, got 'stal'"):
        proxy.set_mode("stal")
    assert proxy.mode == "pass" and MODES == ("pass", "drop", "stall", "reject")


def test_control_lines_answer_with_the_state_or_a_clear_error(proxy):
    assert control_line(proxy, '{"mode": "reject"}')["mode"] == "reject"
    assert refused(proxy)
    assert control_line(proxy, '{"mode": "pass", "cut": true}')["ok"]
    assert "unknown field(s) mod" in control_line(proxy, '{"mod": "drop"}')["error"]
    assert "got 'x'" in control_line(proxy, '{"mode": "x"}')["error"]
    assert "not JSON" in control_line(proxy, "mode drop")["error"]
    assert control_line(proxy, '{"stats": true}')["stats"]["cuts"] == 1


def test_command_line_with_a_control_port(echo):
    p = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tools", "netproxy.py"), "--listen", "0",
         "--target", "127.0.0.1:%d" % echo.server_address[1], "--control", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("netproxy: 127.0.0.1:"), line + p.stderr.read()
        port = int(line.split(":")[2].split()[0])
        ctl_port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            assert roundtrip(s, b"via cli") == b"via cli"
        with socket.create_connection(("127.0.0.1", ctl_port), timeout=TIMEOUT) as ctl:
            f = ctl.makefile("rw")
            f.write('{"mode": "reject"}\n')
            f.flush()
            answer = json.loads(f.readline())
            assert answer["mode"] == "reject" and answer["stats"]["to_client"] == 7
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    finally:
        p.terminate()
        p.wait(TIMEOUT)
        p.stdout.close()
        p.stderr.close()


def test_command_line_refuses_a_bad_target():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "netproxy.py"),
                        "--listen", "0", "--target", "csms"], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 2 and "expected HOST:PORT, got 'csms'" in r.stderr
