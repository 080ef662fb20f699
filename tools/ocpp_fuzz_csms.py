"""The hostile CSMS of the OCPP fuzz test (tools/ocpp_fuzz.py): raw asyncio WebSocket server
on 127.0.0.1 that does the HTTP upgrade itself, sends each case of tools/ocpp_fuzz_gen.py,
answers the firmware's own CALLs minimally and checks every answer the charge point owes
(_check_answer is the oracle). ocpp_fuzz.py runs it beside the simulated wallbox and
re-exports these names.
"""
import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import csms_check  # noqa: E402
import ocpp_fuzz_gen as gen  # noqa: E402

HOST = "127.0.0.1"
CP_ID = "FUZZ"
ANSWER_S = 15.0  # generous: a loaded 2-core CI machine
CLOSE_S = 10.0
RECONNECT_S = 30.0
EXAMPLES = 3
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FuzzError(Exception):
    pass


def _clip(x, n=160):
    s = x if isinstance(x, str) else repr(x)
    return s if len(s) <= n else s[:n] + "..."


def _iso(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class _QuickAck(asyncio.StreamReaderProtocol):
    """asyncio.start_server's protocol, acknowledging every segment at once. The client
    writes a frame's header and its payload in two send()s; with Nagle on its side the
    payload waits for our ACK of the header, which Linux delays by up to 40 ms. (A CSMS
    that answers at once piggybacks the ACK; the fuzzer, waiting for a whole frame, cannot.)"""

    _sock = None

    def connection_made(self, transport):
        self._sock = transport.get_extra_info("socket")
        super().connection_made(transport)

    def data_received(self, data):
        if _QUICKACK is not None and self._sock is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        super().data_received(data)


class Conn:
    """One WebSocket connection of the charge point."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.answers = asyncio.Queue()  # (frame, text, utf8 ok) of each CALLRESULT/CALLERROR
        self.close_code = "none"  # the client's close frame: its code, None for no code
        self.closed = asyncio.Event()
        self.gone = asyncio.Event()
        self.lock = asyncio.Lock()  # whole writes (a stalled frame too) under it
        self.conv = csms_check.Conversation()


class Fuzzer:
    def __init__(self):
        self.port = None
        self.conn = None
        self.arrived = None  # resolved with the next new connection
        self.connects = 0
        self.booted = threading.Event()
        self.tx_id = 0
        self.stats = {f: {"sent": 0, "right": 0, "wrong": 0, "reconnects": 0, "examples": []}
                      for f in gen.FAMILIES}
        self.client_problems = []
        self.calls = {}  # the firmware's CALLs by action
        self.last = None  # the case before
        self.silent = None  # a case that gets no answer, judged by the next one's answer

    async def start(self):
        loop = asyncio.get_running_loop()
        self.arrived = loop.create_future()
        self.server = await loop.create_server(
            lambda: _QuickAck(asyncio.StreamReader(loop=loop), self._accept), HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self):
        self.server.close()
        if self.conn is not None:
            self.conn.w.close()

    # -- the server side ---------------------------------------------------------------------
    async def _accept(self, r, w):
        try:
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            w.close()
            return
        hdr = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            k, _, v = line.partition(":")
            hdr[k.strip().lower()] = v.strip()
        key = hdr.get("sec-websocket-key", "")
        protos = [p.strip() for p in hdr.get("sec-websocket-protocol", "").split(",")]
        if not key or "ocpp1.6" not in protos:
            self._problem("upgrade without a key or without ocpp1.6", head[:200])
            w.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            w.close()
            return
        acc = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        w.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                 "Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
                 % acc).encode())
        conn = Conn(r, w)
        self.conn = conn
        self.connects += 1
        fut, self.arrived = self.arrived, asyncio.get_running_loop().create_future()
        fut.set_result(conn)
        try:
            await self._read(conn)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            conn.gone.set()
            w.close()

    def _problem(self, what, data):
        self.client_problems.append("%s: %s" % (what, _clip(data)))

    async def _read(self, conn):
        msg, op0 = bytearray(), 0
        while True:
            b0, b1 = await conn.r.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await conn.r.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await conn.r.readexactly(8))
            if not b1 & 0x80 or b0 & 0x70:
                self._problem("client frame unmasked or with RSV bits", bytes((b0, b1)))
            key = await conn.r.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
            data = bytearray(await conn.r.readexactly(n))
            for i in range(n):
                data[i] ^= key[i & 3]
            op, fin = b0 & 0x0F, b0 & 0x80
            if op == 9:
                await self._write(conn, gen.frame(10, bytes(data)))
            elif op == 8:
                conn.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
                conn.closed.set()
                conn.w.close()  # the server closes the TCP connection (RFC 6455 7.1.1)
                return
            elif op in (0, 1):
                if op == 1:
                    msg, op0 = bytearray(), 1
                msg += data
                if fin and op0:
                    await self._message(conn, bytes(msg))
                    op0 = 0
            elif op != 10:
                self._problem("client frame with opcode %d" % op, bytes(data[:60]))

    async def _write(self, conn, data):
        async with conn.lock:
            conn.w.write(data)
            await conn.w.drain()

    async def _message(self, conn, raw):
        try:
            text, ok = raw.decode("utf-8"), True
        except UnicodeDecodeError:
            self._problem("text frame that is not UTF-8", raw)
            text, ok = raw.decode("utf-8", "surrogatepass" if b"\xed" in raw else "replace"), False
        try:
            m = json.loads(text)
        except ValueError:
            self._problem("frame that is not JSON", text)
            return
        if type(m) is list and len(m) > 2 and m[0] in (3, 4):
            conn.answers.put_nowait((m, text, ok))
            return
        inb = conn.conv.received(text)
        for p in inb.problems:
            self._problem(p, text)
        if inb.kind == 2 and inb.id is not None:
            await self._answer_call(conn, inb.id, inb.action, inb.payload)

    async def _answer_call(self, conn, mid, action, p):
        self.calls[action] = self.calls.get(action, 0) + 1
        if action == "BootNotification":
            res = {"status": "Accepted", "currentTime": _iso(), "interval": 300}
            self.booted.set()
        elif action == "Heartbeat":
            res = {"currentTime": _iso()}
        elif action == "StartTransaction":
            self.tx_id += 1
            res = {"idTagInfo": {"status": "Accepted"}, "transactionId": self.tx_id}
        elif action == "Authorize":
            res = {"idTagInfo": {"status": "Accepted"}}
        elif action == "DataTransfer":
            res = {"status": "UnknownVendorId"}
        elif action in csms_check.CP_ACTIONS:
            res = {}  # StatusNotification, MeterValues, StopTransaction, notifications
        else:
            res = None
        f = [3, mid, res] if res is not None else [4, mid, "NotImplemented", "", {}]
        try:
            await self._write(conn, gen.text_frame(json.dumps(f)))
        except (ConnectionError, OSError):
            return
        conn.conv.answered(mid)

    # -- the cases ---------------------------------------------------------------------------
    async def run_cases(self, cases, progress=None):
        for k, case in enumerate(cases):
            # A frame that gets no answer needs no probe of its own when the next case is
            # answered with an id of its own: that answer must then come first.
            nxt = cases[k + 1] if k + 1 < len(cases) else None
            await self.run_case(case, defer=case.expect[0] == "none" and nxt is not None
                                and nxt.expect[0] in ("error", "result")
                                and nxt.expect[1] != gen.NO_ID)
            if progress is not None and (k + 1) % 1000 == 0:
                progress(k + 1)

    async def run_case(self, case, defer=False):
        """Send one case and judge what comes back; with defer (a case that gets no answer),
        leave out its probe: the next case's answer judges it."""
        st = self.stats[case.family]
        st["sent"] += 1
        conn = self.conn
        if conn is None or conn.gone.is_set():
            conn = await self._reconnect(conn)
        while not conn.answers.empty():  # answers to nothing (or late ones)
            m = conn.answers.get_nowait()[0]
            self._wrong(self.last or case, "an extra answer after it: %s" % _clip(m))
        self.last = case
        try:
            async with conn.lock:
                for step in case.wire[:-1] if defer else case.wire:
                    if step is None:
                        conn.w.transport.abort()
                    elif isinstance(step, float):
                        await asyncio.sleep(step)
                    else:
                        conn.w.write(step)
                        await conn.w.drain()
        except (ConnectionError, OSError):
            pass  # the client dropped the link first: judged below
        if defer:
            self.silent = case
            return
        why = await self._judge(conn, case)
        if why is None:
            st["right"] += 1
        else:
            self._wrong(case, why)

    def _wrong(self, case, why):
        st = self.stats[case.family]
        st["wrong"] += 1
        if len(st["examples"]) < EXAMPLES:
            st["examples"].append("%s %s -> %s" % (case.kind, _clip(case.text, 200), why))

    async def _reconnect(self, old):
        """The connection after `old` (which is dropped if still open)."""
        if old is not None and not old.gone.is_set():
            old.w.transport.abort()
        c = self.conn
        if c is not None and c is not old and not c.gone.is_set():
            return c
        try:
            return await asyncio.wait_for(asyncio.shield(self.arrived), RECONNECT_S)
        except asyncio.TimeoutError:
            raise FuzzError("the charge point did not connect again within %d s" % RECONNECT_S)

    async def _next_answer(self, conn):
        get = asyncio.ensure_future(conn.answers.get())
        gone = asyncio.ensure_future(conn.gone.wait())
        new = self.arrived
        await asyncio.wait({get, gone, new}, timeout=ANSWER_S,
                           return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if get.done():
            return get.result()
        get.cancel()
        if new.done():
            return "the client connected again instead of answering"
        if gone.done() or conn.gone.is_set():
            return "the link closed (client close code %s) instead of an answer" % (
                conn.close_code,)
        return "no answer within %d s" % ANSWER_S

    async def _judge(self, conn, case):
        kind = case.expect[0]
        st = self.stats[case.family]
        if kind in ("close", "drop"):
            why = None
            if kind == "close":
                try:
                    await asyncio.wait_for(conn.gone.wait(), CLOSE_S)
                except asyncio.TimeoutError:
                    why = "the link stayed open"
                if conn.close_code != case.expect[1]:
                    why = "closed with code %s, expected %s" % (conn.close_code, case.expect[1])
            await self._reconnect(conn)
            st["reconnects"] += 1
            return why
        got = await self._next_answer(conn)
        silent, self.silent = self.silent, None
        if silent is not None:  # the case before gets no answer: this one's must come first
            if isinstance(got, str) or got[0][1] == case.expect[1]:
                self.stats[silent.family]["right"] += 1
            else:
                self._wrong(silent, "answered (no answer is due): %s" % _clip(got[1]))
                got = await self._next_answer(conn)
        if isinstance(got, str):
            await self._reconnect(conn)
            st["reconnects"] += 1
            if silent is not None:
                got += " (after a frame that gets no answer: %s)" % _clip(silent.text)
            return got
        return _check_answer(case.expect, *got)


def _check_answer(expect, m, text, utf8_ok):
    """None if the answer `m` (received as `text`) is the one `expect` says, else why not."""
    if not utf8_ok:
        return "the answer is not valid UTF-8: %s" % _clip(text.encode("utf-8", "surrogatepass"))
    kind = expect[0]
    if m[0] == 4 and (len(m) != 5 or type(m[2]) is not str or type(m[3]) is not str
                      or type(m[4]) is not dict):
        return "malformed CALLERROR %s" % _clip(text)
    if kind == "none":
        if m[:3] != [4, expect[1], gen.NOT_IMPLEMENTED]:
            return "answered (no answer is due): %s" % _clip(text)
        return None
    if m[1] != expect[1]:
        return "answer for id %s, expected %s: %s" % (_clip(m[1], 40), _clip(expect[1], 40),
                                                       _clip(text))
    if kind == "error":
        if m[0] != 4 or m[2] not in expect[2]:
            return "expected CALLERROR %s, got %s" % ("/".join(expect[2]), _clip(text))
        return None
    if m[0] != 3 or len(m) != 3 or type(m[2]) is not dict:
        return "expected a CALLRESULT, got %s" % _clip(text)
    bad = csms_check.check_payload(expect[2] + "Response",
                                   json.loads(text, parse_float=Decimal)[2])
    if bad is not None:
        return "%s.conf breaks the schema (%s %s): %s" % (expect[2], bad[0], bad[1], _clip(text))
    if expect[3] is not None and m[2].get("status") not in expect[3]:
        return "status %s, expected %s" % (m[2].get("status"), "/".join(expect[3]))
    return None
