# WebSocket client (RFC 6455) on asyncio streams: the transport of the OCPP-J link.
#
#   w = await ws.connect("wss://csms.example/ocpp/CP01", user="CP01", password=key, cadata=ca)
#   text = await w.recv()       # one task reads (answers pings, handles close) ...
#   await w.send(text)          # ... while others send and ping
#   await w.close()
#
# This module opens the link (URL, TCP, TLS with the CSMS's CA and host name checked, the
# HTTP upgrade with Basic auth); firmware/ocpp/wsframe.py is the open connection (framing).
import asyncio
import binascii
import hashlib
from os import urandom


from .security import der, to_bytes
from .wsframe import WebSocket, WsClosed, WsError, _wait_ms  # noqa: F401 (API)
from ..ticks import ticks_add, ticks_diff, ticks_ms

_MAX_HTTP = const(4096)  # bytes of HTTP response header accepted at the upgrade
_BEGIN = b"-----BEGIN CERTIFICATE-----"
# The response headers the upgrade reads (lower case), in the order _upgrade unpacks them.
_HEADERS = (b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-protocol",
            b"sec-websocket-extensions")


class WsRefused(WsError):
    """The server refused the connection: .status is its HTTP status, 0 for a failed TLS
    handshake or a close before any answer (a refusal, unlike an unreachable network)."""

    def __init__(self, msg, status):
        super().__init__(msg)
        self.status = status


def parse_url(url):
    """(tls, host, port, authority, path) of a ws:// or wss:// URL; WsError if it is bad."""
    if not isinstance(url, str):
        raise WsError("bad URL %r: %s" % (url, "not a string"))
    for i, c in enumerate(url):  # (the URL is not shown: it may hold a user:password@)
        if c <= " " or c == "\x7f":
            raise WsError("bad URL: control character at %d" % i)
    tls = url.startswith("wss://")
    rest = url[6 if tls else 5:]
    i = rest.find("/")
    auth, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    if "@" in auth:
        raise WsError("bad URL: user@host (the password goes in ocpp.password)")
    v6 = auth[:1] == "["
    j = auth.rfind(":")
    if v6 and j < auth.find("]"):  # a colon inside the [IPv6] literal: no port
        j = -1
    host, port = (auth, "443" if tls else "80") if j < 0 else (auth[:j], auth[j + 1:])
    if v6:
        host = host[1:-1]
    why = None
    if not tls and not url.startswith("ws://"):
        why = "not ws:// or wss://"
    elif "#" in rest:
        why = "#fragment"
    elif v6 and auth.find("]") != len(host) + 1:
        why = "[IPv6]"
    elif not host:
        why = "no host"
    elif not port.isdigit() or not 0 < int(port) < 65536:
        why = "bad port %r" % port
    if why:
        raise WsError("bad URL %r: %s" % (url, why))
    return tls, host, int(port), auth, path


def _tls_context(cadata, client=None):
    import ssl

    if not cadata:
        raise WsError("wss:// needs the CA (cadata)")
    # TLS 1.2 at least: MicroPython's mbedTLS 3 has nothing older, CPython >= 3.10 refuses it
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED  # chain and, with server_hostname, the host name
    what = "CA (cadata)"
    try:  # DER as it is, PEM (one or more certificates) decoded: some mbedTLS builds parse
        # no PEM themselves; der() names what is neither
        cadata = to_bytes(cadata)
        pems = cadata.split(_BEGIN)[1:]
        for c in pems or [cadata]:
            ctx.load_verify_locations(cadata=der(_BEGIN + c if pems else c, "cadata"))
        if client is not None:  # (certificate, key) as DER: security profile 3
            what = "client certificate/key"
            ctx.load_cert_chain(client[0], client[1])
    except (ValueError, OSError, TypeError) as e:
        raise WsError("bad %s: %s" % (what, e))
    return ctx


def _net_error(e, where, tls, phase):
    """A WsError that names the cause of a failed connect. phase: 0 opening the connection,
    1 the upgrade before an answer byte (MicroPython's TLS handshake runs here), 2 after."""
    if isinstance(e, WsError):
        return e
    name, text, en = type(e).__name__, str(e), getattr(e, "errno", None)
    if isinstance(e, asyncio.TimeoutError):
        why = "timed out"
    elif en == 111:  # ECONNREFUSED (CPython's ConnectionRefusedError too)
        why = "refused"
    elif phase == 0 and (name == "gaierror" or "addrinfo" in text):
        return WsError("cannot resolve %s (DNS): %s" % (where, text))
    elif tls and phase < 2 and (isinstance(e, ValueError) or "SSL" in name
                                or (isinstance(en, int) and en < 0)):  # mbedTLS codes are < 0
        return WsRefused("TLS handshake with %s failed: %s" % (where, text.strip()), 0)
    elif isinstance(e, EOFError) or phase > 0 and en in (32, 103, 104):  # EPIPE, ECONNRESET..
        # a TLS 1.3 server refuses a client certificate after the handshake, at our request
        return WsRefused("%s closed at the upgrade%s" % (
            where, " (client certificate refused?)" if tls else ""), 0)
    else:
        why = "failed: %s %s" % (name, text)
    return WsError("connect to %s %s" % (where, why))


async def connect(url, max_frame=8192, timeout_ms=10000, open_connection=None,
                  protocol="ocpp1.6", user=None, password=None, cadata=None, client=None):
    """Open a WebSocket to `url` (TCP, TLS for wss, HTTP upgrade) within timeout_ms.
    client: (certificate, key) DER bytes presented to a server that asks for one (TLS)."""
    tls, host, port, auth, path = parse_url(url)
    where = "%s:%d" % (host, port)
    ctx = _tls_context(cadata, client) if tls else None
    hdrs = ""  # the upgrade request's optional header lines
    if user is not None:  # HTTP Basic authentication (RFC 7617, UTF-8)
        u = to_bytes(user)
        if b":" in u:
            raise WsError("user must not contain ':'")
        hdrs = "Authorization: Basic %s\r\n" % binascii.b2a_base64(
            u + b":" + to_bytes(password or b""))[:-1].decode()
    opener = open_connection or asyncio.open_connection
    deadline = ticks_add(ticks_ms(), timeout_ms)
    try:  # (ctx is None for ws://; CPython wants no server_hostname then)
        r, w = await _wait_ms(opener(host, port, ssl=ctx, server_hostname=host if tls else None),
                              timeout_ms)
    except Exception as e:  # DNS, refused, unreachable; TLS too where the opener does it
        raise _net_error(e, where, tls, 0)
    try:  # no Nagle wait on a plain socket (IPPROTO_TCP, TCP_NODELAY; lwIP and Linux)
        w.s.setsockopt(6, 1, 1)
    except Exception:  # TLS socket, CPython stream, a port without it: frames are one write
        pass
    ws = WebSocket(r, w, max_frame)
    try:
        left = max(1, ticks_diff(deadline, ticks_ms()))
        await _wait_ms(_upgrade(ws, auth, path, protocol, hdrs), left)
    except BaseException as e:
        await ws._shutdown()
        if isinstance(e, Exception):
            raise _net_error(e, where, tls, 2 if ws._rx_any else 1)
        raise
    return ws


async def _upgrade(conn, auth, path, protocol, hdrs):
    """The HTTP upgrade (RFC 6455 section 4.1) on an open stream: WsError unless the server
    agreed to `protocol`."""
    key = binascii.b2a_base64(urandom(16))[:-1]
    if protocol:
        hdrs += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    conn._w.write((
        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
        % (path, auth, key.decode(), hdrs)).encode())
    await conn._w.drain()
    got = None  # after the status line: the values of _HEADERS, b"": not sent (or empty)
    size = 0
    while True:  # the status line, then the headers up to the empty line
        line = await conn._r.readline()
        conn._rx_any = True
        if not line:
            raise EOFError
        size += len(line)
        if size > _MAX_HTTP or line[-1:] != b"\n":
            raise WsError("bad HTTP header")
        if got is None:
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
                raise WsError("not HTTP: %r" % line[:60])
            status = int(parts[1])
            if status != 101:
                raise WsRefused("HTTP %d %s" % (status, parts[2].strip().decode()
                                                 if len(parts) > 2 else ""), status)
            got = [b""] * 5
        elif line in (b"\r\n", b"\n"):
            break
        else:
            i = line.find(b":")
            name = line[:i].strip().lower()
            if i > 0 and name in _HEADERS:
                got[_HEADERS.index(name)] = line[i + 1:].strip()
    upgrade, connection, accept, proto, extensions = got
    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
    want = binascii.b2a_base64(hashlib.sha1(key + guid).digest())[:-1]
    if upgrade.lower() != b"websocket" or b"upgrade" not in connection.lower():
        raise WsError("HTTP 101 without Upgrade")
    if accept != want:
        raise WsError("bad Sec-WebSocket-Accept")
    if extensions:
        raise WsError("extension not offered")
    proto = proto.decode()
    if proto != (protocol or ""):
        raise WsError("Sec-WebSocket-Protocol %r" % (proto or "(none)",))
