# WebSocket framing (RFC 6455) of the OCPP-J link: the open connection object that
# firmware.ocpp.ws.connect() returns, its receive state machine and masked sends.
#
# Text messages only (OCPP-J), no extensions. Everything the server sends is untrusted: a
# protocol error closes the link with the RFC's close code and raises WsClosed; a declared
# length is checked against max_frame before any byte of the payload is read. A recv()
# cancelled mid-frame (asyncio.wait_for_ms) keeps its progress in the object, so the next
# recv() goes on from the same byte.
import asyncio
import struct
import sys
from os import urandom  # every port the firmware runs on has it (cp.py, backoff.py use it)


from drivers import kernels
from ..ticks import ticks_ms

_MPY = sys.implementation.name == "micropython"

_OP_CONT = const(0)
_OP_TEXT = const(1)
_OP_BINARY = const(2)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)
_RX_HEAD = const(0)  # reading the header: its 2 first bytes, then the 16- or 64-bit length
_RX_BODY = const(1)  # reading the payload
_OUT_CHUNK = const(512)  # bytes masked and written at a time
_CLOSE_MS = const(2000)  # how long close() waits for the server's close frame


if _MPY:
    _wait_ms = asyncio.wait_for_ms
else:  # CPython

    def _wait_ms(aw, ms):
        return asyncio.wait_for(aw, ms / 1000)


class WsError(Exception):
    """The WebSocket link failed; .code is the close code sent or received, or None."""

    code = None


class WsClosed(WsError):
    """The connection is closed; .code and .reason say how (1006: lost without a close)."""

    def __init__(self, code, reason):
        super().__init__("websocket closed (%s)%s" % (code, ": " + reason if reason else ""))
        self.code = code
        self.reason = reason


def _text(buf):
    """The str of a UTF-8 buffer, or None when it is not valid UTF-8 (RFC 3629)."""
    try:
        s = str(buf, "utf-8")
    except UnicodeError:
        return None
    if len(s) == len(buf):  # ASCII: nothing more to check
        return s
    # What MicroPython's decoder lets through but RFC 3629 forbids: bytes that never occur
    # (C0, C1, F5-F7), and lead bytes whose second byte is restricted (overlong forms,
    # UTF-16 surrogates, code points above U+10FFFF).
    for b in (b"\xc0", b"\xc1", b"\xf5", b"\xf6", b"\xf7"):
        if b in buf:
            return None
    for b, lo, hi in ((b"\xe0", 0xA0, 0xBF), (b"\xed", 0x80, 0x9F), (b"\xf0", 0x90, 0xBF),
                      (b"\xf4", 0x80, 0x8F)):
        i = buf.find(b)
        while i >= 0:  # the decoder saw a complete sequence, so buf[i + 1] exists
            if not lo <= buf[i + 1] <= hi:
                return None
            i = buf.find(b, i + 1)
    return s


def _close_payload(code, reason):
    r = reason.encode() if reason else b""
    n = len(r)
    if n > 123:  # a close frame holds 125 bytes; cut the reason between two characters
        n = 123
        while r[n] & 0xC0 == 0x80:
            n -= 1
    return bytearray(struct.pack("!H", code) + r[:n])


class WebSocket:
    """An open client connection; made by connect()."""

    def __init__(self, reader, writer, max_frame):
        self._r = reader
        self._w = writer
        self._readinto = getattr(reader, "readinto", None) or self._readinto_py
        self._max = max_frame
        self._wlock = asyncio.Lock()
        self._done = asyncio.Event()  # set once closed
        # A frame's header (bytes 0-1, then the extended length), then a control frame's
        # payload: both go here, one after the other.
        self._ctl = bytearray(125)
        self._rx = _RX_HEAD
        self._buf = self._ctl  # where the bytes being read go: [_pos, _end)
        self._pos = 0
        self._end = 2
        self._op = 0  # the frame's opcode
        self._fin = False  # ... and FIN bit
        self._msg = None  # text message being assembled (None: none is unfinished)
        self._reading = False
        self._close_sent = False
        self._rx_any = False  # an HTTP response byte arrived (TLS handshake done)
        self.last_rx_ms = ticks_ms()
        self.closed = False
        self.code = None
        self.reason = ""

    # -- receiving -----------------------------------------------------------------------

    async def recv(self):
        """The next complete text message (str). Raises WsClosed once the link is closed."""
        if self._reading:
            raise WsError("recv() already running")
        self._reading = True
        try:
            while True:
                if self.closed:
                    await self._lost("", None)
                # one frame, read or read on (the text once it completes a message)
                h = self._ctl
                if self._rx == _RX_HEAD:
                    await self._fill()
                    b0, b1 = h[0], h[1]
                    op = b0 & 0x0F
                    n = b1 & 0x7F
                    why = None
                    if b0 & 0x70:
                        why = "RSV bits set"
                    elif b1 & 0x80:
                        why = "masked frame"
                    elif op > _OP_PONG or _OP_BINARY < op < _OP_CLOSE:
                        why = "unknown opcode %d" % op
                    elif op >= _OP_CLOSE and not b0 & 0x80:
                        why = "fragmented control frame"
                    elif op >= _OP_CLOSE and n > 125:
                        why = "control frame over 125 bytes"
                    if why:
                        await self._fail(1002, why)
                    # the 16- or 64-bit length follows: h[2:4], h[2:10]
                    if n > 125 and self._end == 2:
                        self._end = 4 if n == 126 else 10
                        await self._fill()
                    if n == 126:
                        n = h[2] << 8 | h[3]
                    elif n == 127:
                        if h[2] & 0x80:
                            await self._fail(1002, "64-bit length, top bit set")
                        if h[2] | h[3] | h[4] | h[5]:  # no int beyond 32 bits, as on a board
                            await self._fail(1009, "frame of 2^32 bytes or more")
                        n = h[6] << 24 | h[7] << 16 | h[8] << 8 | h[9]
                    self._op, self._fin = op, b0 & 0x80
                    # The length is known: the frame is checked before any of its payload is read,
                    # and where that payload goes is set.
                    if op >= _OP_CLOSE:
                        self._buf, self._pos, self._end = h, 0, n
                    else:
                        old = self._msg  # the fragments before this frame, or None
                        if (op == _OP_CONT) == (old is None):
                            await self._fail(1002, "continuation without a message"
                                             if old is None else
                                             "new message inside a fragmented one")
                        if op == _OP_BINARY:
                            await self._fail(1003, "binary message")
                        mlen = len(old) if old else 0
                        total = mlen + n
                        if total > self._max:
                            await self._fail(1009, "message over %d bytes" % self._max)
                        self._msg = bytearray(total)
                        if old:
                            self._msg[:mlen] = old
                            old = None  # (not held while the payload is read)
                        self._buf, self._pos, self._end = self._msg, mlen, total
                    self._rx = _RX_BODY
                await self._fill()  # _RX_BODY
                op, n = self._op, self._end
                self._rx, self._buf, self._pos, self._end = _RX_HEAD, h, 0, 2
                if op == _OP_PING:  # (h is not read into before the pong is out: we read)
                    await self._write_frame(_OP_PONG, memoryview(h)[:n])
                elif op == _OP_CLOSE:
                    await self._on_close(n)  # (raises WsClosed)
                elif op < _OP_CLOSE and self._fin:  # a complete message (a pong: nothing to do)
                    msg, self._msg = self._msg, None
                    text = _text(msg)
                    if text is None:
                        await self._fail(1007, "text not UTF-8")
                    return text
        except (OSError, EOFError) as e:  # EOF, reset, or the socket closed by close()
            mid = self._rx != _RX_HEAD or self._pos
            await self._lost(" mid-frame" if mid else "", e)
        finally:
            self._reading = False

    async def _lost(self, where, e):
        # Raises WsClosed; a link not closed before was lost (1006) `where` (" mid-frame"...)
        # by the error `e`.
        if not self.closed:
            self.code, self.reason = 1006, "connection lost%s (%r)" % (where, e)
        await self._shutdown()
        raise WsClosed(self.code, self.reason)

    async def _readinto_py(self, mv):  # CPython's StreamReader has no readinto
        data = await self._r.read(len(mv))
        mv[: len(data)] = data
        return len(data)

    async def _fill(self):
        # Reads self._buf[self._pos:self._end]; the progress stays in self._pos, so a
        # cancelled read loses nothing.
        while self._pos < self._end:
            k = await self._readinto(memoryview(self._buf)[self._pos:self._end])
            if k is None:  # nothing yet (a TLS record without application data)
                continue
            if not k:
                raise EOFError
            self._pos += k
            self.last_rx_ms = ticks_ms()

    async def _on_close(self, n):
        # The server's close frame (its n bytes in self._ctl): answered, then WsClosed.
        c = self._ctl
        code, reason = 1005, ""  # 1005: the close frame had no code
        if n == 1:
            await self._fail(1002, "1-byte close frame")
        if n:
            code = c[0] << 8 | c[1]
            if not (1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999):
                await self._fail(1002, "invalid close code %d" % code)
            reason = _text(c[2:n])
            if reason is None:
                await self._fail(1007, "close reason not UTF-8")
        if not self._close_sent:  # answer the server's close (echo its code)
            self._close_sent = True
            try:
                await _wait_ms(self._write_frame(_OP_CLOSE, memoryview(c)[:min(n, 2)]), _CLOSE_MS)
            except Exception:
                pass
        if not self.closed:
            self.code, self.reason, self.closed = code, reason, True
        await self._shutdown()
        raise WsClosed(code, reason)

    async def _fail(self, code, why):
        # Fail the connection (RFC 6455 7.1.7): send close with `code`, drop the socket.
        if not self.closed:
            self.code, self.reason, self.closed = code, why, True
            if not self._close_sent:
                self._close_sent = True
                try:
                    await _wait_ms(self._write_frame(_OP_CLOSE, _close_payload(code, why)),
                                   _CLOSE_MS)
                    await _wait_ms(self._discard(), _CLOSE_MS)
                except Exception:
                    pass
            await self._shutdown()
        raise WsClosed(code, why)

    async def _discard(self):
        # After a protocol error the server's bytes are frames no more: drop them until it
        # closes the TCP connection (RFC 6455 7.1.1). Closing our socket with bytes unread
        # would reset the link, and the server might never read our close frame.
        mv = memoryview(self._ctl)
        while await self._readinto(mv) != 0:
            pass

    # -- sending -------------------------------------------------------------------------

    async def _write_frame(self, op, payload):
        # One frame with a fresh key, masked chunk by chunk through a buffer made for the
        # frame (at most _OUT_CHUNK + 14 bytes; none is held between frames): a message is
        # never copied whole (payload: str, bytes or bytearray, left as it is). Whole frames
        # only under the lock.
        try:  # the bytes without a copy (MicroPython gives a str's UTF-8 bytes this way)
            src = memoryview(payload)
        except TypeError:  # CPython
            src = memoryview(payload.encode())
        n = len(src)
        if n < 126:
            hdr = struct.pack("!BB", 0x80 | op, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x80 | op, 0xFE, n)
        else:
            hdr = struct.pack("!BBII", 0x80 | op, 0xFF, 0, n)
        key = urandom(4)
        await self._wlock.acquire()
        try:
            w = self._w
            if w is None:
                raise WsClosed(self.code, self.reason)
            # The header goes out with the first chunk: a frame up to _OUT_CHUNK bytes is one
            # write (two small writes would wait on Nagle + the server's delayed ACK).
            out = bytearray(min(n, _OUT_CHUNK) + 14)
            m = len(hdr) + 4
            out[: m - 4] = hdr
            out[m - 4: m] = key
            pos = 0
            while True:
                k = min(n - pos, _OUT_CHUNK)
                body = memoryview(out)[m: m + k]
                body[:] = src[pos: pos + k]
                kernels.ws_mask(body, key, pos)
                chunk = memoryview(out)[: m + k]
                w.write(chunk if _MPY else bytes(chunk))  # CPython may keep a view
                pos += k
                m = 0
                # Waits only for bytes the socket did not take (MicroPython's stream keeps
                # them in out_buf; CPython's: always): a frame the socket takes at once goes
                # out without a yield, so its text is not held while the other tasks run.
                if getattr(w, "out_buf", 1):
                    await w.drain()
                if pos >= n:
                    break
        finally:
            self._wlock.release()

    async def send(self, text, op=_OP_TEXT):
        """Send one text message (str) as a single masked frame (op: ping() sends a ping)."""
        if self.closed or self._close_sent:
            raise WsClosed(self.code, self.reason or "closing")
        try:
            await self._write_frame(op, text)
        except OSError as e:
            await self._lost(" while sending", e)

    async def ping(self):
        """Send an empty ping; the server's pong updates last_rx_ms (read by recv())."""
        await self.send(b"", _OP_PING)

    # -- closing -------------------------------------------------------------------------

    async def close(self, code=1000, reason=""):
        """Close handshake: send close, wait up to 2 s for the server's, drop the socket.
        Never raises (except CancelledError)."""
        try:
            if not self.closed:
                await _wait_ms(self._closing(code, reason), _CLOSE_MS)
        except Exception:
            pass
        finally:
            if not self.closed:
                self.code, self.reason = code, reason
            await self._shutdown()

    async def _closing(self, code, reason):
        if not self._close_sent:
            self._close_sent = True
            await self._write_frame(_OP_CLOSE, _close_payload(code, reason))
        if self._reading:  # the reader task sees the server's close
            await self._done.wait()
            return
        while True:  # read on (and drop messages) until the server's close arrives
            await self.recv()

    async def _shutdown(self):
        self.closed = True
        self._done.set()
        w, self._w = self._w, None
        if w is not None:
            try:
                w.close()
                await w.wait_closed()
            except Exception:
                pass
