"""Host-side WebSocket servers that the MicroPython client in host_tests/mpy/ws_client.py
talks to (host_tests/test_ws.py starts them on 127.0.0.1, free ports, in a thread).

- A real server, PyPI `websockets` with subprotocols=["ocpp1.6"]: ws://, wss:// with the
  test CA's certificate for localhost/127.0.0.1, wss:// with a certificate for another host
  name. What it does depends on the path: /echo, /ping (it pings, then says "pong ok"),
  /frag (a message in 3 fragments), /close4001 (it closes), /auth (Basic auth checked).
- A raw asyncio peer that misbehaves on purpose, one behaviour per path (PEER_PATHS).

Both record what they saw per path in `Servers.seen[path]` (a dict): the close code the
client sent ("close_code", None for a close without code, absent when none came), whether
every client frame was masked ("unmasked" counts those that were not), the messages.
"""
import asyncio
import base64
import hashlib
import ssl
import struct
import threading
from http import HTTPStatus

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

import simrig  # noqa: F401 - puts tools/ on sys.path
from ocpp_fuzz_gen import frame  # noqa: E402 - one server-frame builder for both peers

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
AUTH_USER = "CP01"
AUTH_PASSWORD = "pa:ss w\u00f6rd"  # a ':' and a non-ASCII character, both allowed
WAIT_S = 20  # generous: a loaded CI machine


async def read_frame(reader):
    """(fin, op, payload, masked) of the client's next frame."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    key = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(n)
    return b0 & 0x80, b0 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(data)), b1 & 0x80


def accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def response(key, proto="ocpp1.6", accept_value=None):
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Accept: " + (accept_value or accept(key))]
    if proto:
        lines.append("Sec-WebSocket-Protocol: " + proto)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# Raw peer: path -> list of steps after the upgrade. A step is bytes (sent), ("wait", text)
# (wait for that text message from the client), or "eof" (drop the connection).
PEER_PATHS = {
    "/masked": [frame(1, b"masked hello", mask=b"\x01\x02\x03\x04")],
    "/rsv": [frame(1, b"compressed?", rsv=4)],
    "/binary": [frame(2, b"\x00\x01binary")],
    "/badop": [frame(3, b"reserved opcode")],
    "/huge64": [frame(1, length=1 << 40)],  # declares 1 TiB, sends nothing more
    "/huge16": [frame(1, length=65535)],  # declares more than max_frame
    "/hugeneg": [frame(1, length=1 << 63)],  # the top bit of a 64-bit length must be 0
    "/toolong": [frame(1, b"a" * 100, fin=False), frame(0, length=8192)],
    "/bigctl": [frame(9, b"p" * 200)],
    "/fragctl": [frame(9, b"ping", fin=False)],
    "/cont": [frame(0, b"orphan")],
    "/newmsg": [frame(1, b"first ", fin=False), frame(1, b"second")],
    "/utf8ff": [frame(1, b"ok \xff")],
    "/utf8surrogate": [frame(1, b"ok \xed\xa0\x80")],
    "/utf8overlong": [frame(1, b"ok \xc0\xaf")],
    "/utf8toobig": [frame(1, b"ok \xf4\x90\x80\x80")],
    "/utf8split": [frame(1, b"price \xe2\x82", fin=False), frame(9, b"mid"),
                   frame(0, b"\xac ok")],  # fmt: skip
    "/close999": [frame(8, struct.pack("!H", 999))],
    "/close1byte": [frame(8, b"\x03")],
    "/closeutf8": [frame(8, struct.pack("!H", 1000) + b"\xff")],
    "/closeempty": [frame(8)],
    "/eof": [frame(1, length=256) + b"x" * 10, "eof"],  # drops the link mid-frame
    "/stall": [frame(1, b"stalled message")[:1], ("wait", "go1"),
               frame(1, b"stalled message")[1:7], ("wait", "go2"),
               frame(1, b"stalled message")[7:]],  # fmt: skip
}
# Upgrade answers that must fail the connection (no frames follow)
BAD_UPGRADES = {
    "/noproto": lambda key: response(key, proto=None),
    "/otherproto": lambda key: response(key, proto="ocpp2.0.1"),
    "/badaccept": lambda key: response(key, accept_value=accept(key + "x")),
    "/404": lambda key: b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
}


class Servers:
    """Every server on its own event loop in a thread; start() then the ports, stop()."""

    def __init__(self, certs):
        self.certs = certs
        self.seen = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.ports = {}
        self._servers = []

    def start(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(WAIT_S)
        return self

    def stop(self):
        async def _stop():
            for s in self._servers:
                s.close()
            for t in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                t.cancel()

        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(WAIT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_S)

    def record(self, path):
        return self.seen.setdefault(path, {"unmasked": 0, "messages": []})

    def _tls(self, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx

    async def _start(self):
        c = self.certs
        kw = dict(subprotocols=["ocpp1.6"], ping_interval=None, compression=None,
                  process_request=self._check_auth)
        for name, ssl_ctx in (("ws", None), ("wss", self._tls(c["cert"], c["key"])),
                              ("wss_wrong", self._tls(c["wrong_cert"], c["wrong_key"]))):
            srv = await serve(self._ws_handler, "127.0.0.1", 0, ssl=ssl_ctx, **kw)
            self._servers.append(srv)
            self.ports[name] = srv.sockets[0].getsockname()[1]
        raw = await asyncio.start_server(self._raw_handler, "127.0.0.1", 0)
        self._servers.append(raw)
        self.ports["raw"] = raw.sockets[0].getsockname()[1]

    # -- the real server ---------------------------------------------------------------

    def _check_auth(self, conn, request):
        if not request.path.startswith("/auth"):
            return None
        rec = self.record(request.path)
        got = request.headers.get("Authorization", "")
        rec["authorization"] = got
        want = base64.b64encode(("%s:%s" % (AUTH_USER, AUTH_PASSWORD)).encode()).decode()
        if got != "Basic " + want:
            rec["rejected"] = True
            return conn.respond(HTTPStatus.UNAUTHORIZED, "bad credentials\n")
        return None

    async def _ws_handler(self, ws):
        path = ws.request.path
        rec = self.record(path)
        rec["subprotocol"] = ws.subprotocol
        try:
            if path.startswith("/ping"):
                waiter = await ws.ping(b"are you there")
                await asyncio.wait_for(waiter, WAIT_S)
                await ws.send("pong ok")
            elif path.startswith("/frag"):
                await ws.send(["frag", "mented ", "m\u00ebssage"])
            elif path.startswith("/close4001"):
                await ws.close(4001, "bye from server")
            async for msg in ws:
                rec["messages"].append(len(msg) if len(msg) > 64 else msg)
                await ws.send(msg)
        except ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            rec["close_code"] = ws.close_code
            rec["close_reason"] = ws.close_reason

    # -- the misbehaving peer ----------------------------------------------------------

    async def _raw_handler(self, reader, writer):
        path = None
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
            lines = request.decode().split("\r\n")
            path = lines[0].split()[1]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            rec = self.record(path)
            rec["headers"] = headers
            key = headers.get("sec-websocket-key", "")
            if path == "/silent":  # never answers the upgrade
                await reader.read()
                return
            if path in BAD_UPGRADES:
                writer.write(BAD_UPGRADES[path](key))
                await writer.drain()
                await asyncio.wait_for(reader.read(), WAIT_S)  # the client hangs up
                rec["client_hung_up"] = True
                return
            writer.write(response(key))
            for step in PEER_PATHS.get(path, []):
                if step == "eof":
                    writer.close()
                    return
                if isinstance(step, tuple):
                    await self._wait_text(reader, rec, step[1])
                else:
                    writer.write(step)
                    await writer.drain()
            await asyncio.wait_for(self._until_close(reader, writer, rec), WAIT_S)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError) as e:
            if path:
                self.record(path)["error"] = repr(e)
        finally:
            writer.close()

    async def _wait_text(self, reader, rec, text):
        while True:
            fin, op, data, masked = await asyncio.wait_for(read_frame(reader), WAIT_S)
            rec["unmasked"] += 0 if masked else 1
            if op == 1:
                rec["messages"].append(data.decode())
                if data.decode() == text:
                    return

    async def _until_close(self, reader, writer, rec):
        # Echoes text, answers pings, records the client's close frame and echoes it.
        while True:
            try:
                fin, op, data, masked = await read_frame(reader)
            except asyncio.IncompleteReadError:
                rec["eof_without_close"] = True
                return
            rec["unmasked"] += 0 if masked else 1
            if op == 8:
                rec["close_code"] = struct.unpack("!H", data[:2])[0] if data else None
                rec["close_reason"] = data[2:].decode(errors="replace")
                writer.write(frame(8, data[:2]))
                await writer.drain()
                return
            if op == 10:
                rec.setdefault("pongs", []).append(data)
            elif op == 9:
                writer.write(frame(10, data))
            elif op == 1:
                rec["messages"].append(data.decode())
                writer.write(frame(1, data))
