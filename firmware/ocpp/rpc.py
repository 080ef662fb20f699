# OCPP-J 1.6 RPC over a WebSocket: CALL [2, id, action, payload], CALLRESULT [3, id, payload],
# CALLERROR [4, id, code, description, details]. At most one CALL of ours is outstanding
# (OCPP-J 4.1.1); its answer is awaited with a timeout. Incoming CALLs are validated
# (firmware/ocpp/schema.py) before any handler runs; a handler returns the result payload or
# raises RpcError(code, description). Every frame is untrusted: a bad one is answered with
# the CALLERROR OCPP-J names, logged in one line, and never kills the reader.
import asyncio
import json

from micropython import const

from firmware.ocpp import schema

CALL = const(2)
RESULT = const(3)
ERROR = const(4)
MAX_ID = const(36)
_NO_ID = "-1"  # OCPP 2.0.1 4.2.3's rule, adopted for a frame whose id cannot be read

NOT_IMPLEMENTED = "NotImplemented"
NOT_SUPPORTED = "NotSupported"
INTERNAL = "InternalError"
PROTOCOL = "ProtocolError"
SECURITY = "SecurityError"
FORMATION = "FormationViolation"
GENERIC = "GenericError"
CODES = (NOT_IMPLEMENTED, NOT_SUPPORTED, INTERNAL, PROTOCOL, SECURITY, FORMATION,
         "PropertyConstraintViolation", "OccurrenceConstraintViolation",
         "TypeConstraintViolation", GENERIC)


class RpcError(Exception):
    """A CALLERROR to send (from a handler) or received (from call()); code is OCPP-J's."""

    def __init__(self, code, description="", msg_id=None):
        super().__init__(code, description)
        self.code = code
        self.description = description
        self.msg_id = msg_id  # parse(): the id an answer to a bad frame goes to, or None


def dumps(x):
    """json.dumps for the wire. MicroPython's json keeps a \\uD83D\\uDE00 it parsed as two
    3-byte surrogate halves (CESU-8) and writes them back raw: not UTF-8, and a strict CSMS
    closes the link (1007). Such halves go out as \\u escapes again, so the CSMS reads back
    exactly the string it sent (an id, a property name, an idTag)."""
    text = json.dumps(x)
    try:
        if len(memoryview(text)) == len(text):  # MicroPython: bytes == characters, ASCII
            return text
    except TypeError:  # CPython: memoryview takes no str; its json writes ASCII anyway
        if text.isascii():
            return text
    b = text.encode("utf-8", "surrogatepass")
    if b.find(b"\xed") < 0:
        return text
    out = bytearray()
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c == 0xED and i + 2 < n and b[i + 1] >= 0xA0:  # U+D800..DFFF
            out += ("\\u%04x" % (0xD000 | (b[i + 1] & 0x3F) << 6 | (b[i + 2] & 0x3F))).encode()
            i += 3
        else:
            out.append(c)
            i += 1
    return str(out, "utf-8")


class RpcTimeout(RpcError):
    def __init__(self, action):
        super().__init__("Timeout", "no answer to %s" % action)


def parse(text):
    """One frame -> (kind, id, action or code, payload or description). Raises RpcError
    (code, description) with .msg_id set where an answer can be addressed."""
    try:
        f = json.loads(text)
    except (ValueError, TypeError):
        raise RpcError(PROTOCOL, "not JSON", _NO_ID)
    if type(f) is not list or len(f) < 3 or type(f[0]) is not int:
        raise RpcError(PROTOCOL, "not an OCPP-J message array", _NO_ID)
    kind, mid = f[0], f[1]
    if type(mid) is not str or not mid or len(mid) > MAX_ID:
        raise RpcError(PROTOCOL, "message id must be a string of 1..36 characters", _NO_ID)
    if kind == CALL:
        if len(f) != 4 or type(f[2]) is not str:
            raise RpcError(FORMATION, "CALL must be [2, id, action, payload]", mid)
        if type(f[3]) is not dict:
            raise RpcError(FORMATION, "%s: payload must be a JSON object" % f[2], mid)
        return kind, mid, f[2], f[3]
    if kind == RESULT and len(f) == 3:
        return kind, mid, None, f[2]
    if kind == ERROR and len(f) in (4, 5):
        return kind, mid, f[2], f[3]
    raise RpcError(PROTOCOL, "unknown message type or length")  # a result or error: no answer


class Rpc:
    """`send` is an async callable taking the text of one frame. The link feeds every
    received text to `received()`; `call()` sends ours and awaits its answer."""

    def __init__(self, send, handlers, log=print, timeout_ms=30000, seed=0, ctx=None):
        self._send = send
        # action -> fn(ctx, payload) -> result payload (a dict, or a status string), or a
        # coroutine that gives one
        self.handlers = handlers
        self.ctx = ctx
        self.log = log
        self.timeout_ms = timeout_ms
        self._lock = asyncio.Lock()
        self._flag = asyncio.ThreadSafeFlag()
        self._pending = None  # id of our outstanding CALL
        self._answer = None
        self._n = 0
        self._prefix = "%x-" % (seed & 0xFFFFFF)
        self.mute = False  # True: the CSMS's CALLs are dropped unanswered (boot Rejected)
        self.inbox = None  # the text received() handles next (the link puts it here)
        # An extension package's actions (app.py fills them: firmware/secext), looked up
        # after `handlers`; ext_send: message -> async fn(ctx, connector) for TriggerMessage.
        self.ext = {}
        self.ext_send = {}
        self.on_bad = None  # fn(why): a frame that is no OCPP-J message (a security event)

    def _new_id(self):
        self._n = (self._n + 1) & 0x3FFFFFFF
        return self._prefix + str(self._n)

    async def call(self, action, payload, timeout_ms=None):
        """Send a CALL; return the CALLRESULT payload (checked against the schema: what the
        charge point needs strictly, the rest logged). Raises RpcError for a CALLERROR or a
        result it cannot use, RpcTimeout, or the link's error."""
        async with self._lock:
            mid = self._new_id()
            self._pending = mid
            self._answer = None
            self._flag.clear()
            try:
                await self._send(dumps([CALL, mid, action, payload]))
                try:
                    await asyncio.wait_for_ms(self._flag.wait(), timeout_ms or self.timeout_ms)
                except asyncio.TimeoutError:
                    raise RpcTimeout(action)
            finally:
                self._pending = None
            kind, body, desc = self._answer
            if kind == ERROR:
                raise RpcError(body, desc)
            bad = schema.check_response(action, body)
            if bad is not None:
                # An answer is thrown away only when a field the charge point needs is
                # missing or wrong: an extra field or another date format from a real CSMS
                # must not cost a transactionId (it would be sent again: a new transaction).
                worse = schema.check_response(action, body, lax=True)
                if worse is not None:
                    raise RpcError(worse[0], "%s.conf: %s" % (action, worse[1]))
                self.log("%s.conf used despite %s: %s" % (action, bad[0], bad[1]))
            return body

    def cancel(self):
        """The link dropped: wake a waiting call() with an error."""
        if self._pending is not None:
            self._answer = (ERROR, "GenericError", "connection lost")
            self._flag.set()

    async def received(self, text=None, seen=None):
        """One text message from the server: an answer to our CALL, or a CALL to handle.
        seen(): called as it arrives (the link's last-message time). The link hands the text
        in self.inbox (text None): no frame of this coroutine, nor of the link's, then holds
        it, nor the CALL's payload, while the answer is sent (the session's heap peak)."""
        if seen is not None:
            seen()
        if text is not None:
            self.inbox = text
        text = None
        out = self._take()  # a sync frame: what it held is gone when it returns
        if type(out) is tuple:  # (mid, the handler's coroutine)
            out = await self._finish(out)
        if out is not None:
            await self._send(out)

    def _take(self):
        """Parse and handle self.inbox: the text to send (an answer, an error), None, or
        (mid, coroutine) for a handler that must be awaited."""
        text, self.inbox = self.inbox, None
        try:
            kind, mid, action, payload = parse(text)
        except RpcError as e:
            self.log("bad frame (%s: %s): %s" % (e.code, e.description, _clip(text)))
            if self.on_bad is not None:
                self.on_bad(e.description)
            mid = e.msg_id
            return None if mid is None else self._error_text(mid, e.code, e.description)
        text = None  # noqa: F841 - the frame's text is not needed past here: free it
        if kind != CALL:
            if mid != self._pending or self._answer is not None:
                self.log("answer for unknown id %s dropped" % _clip(mid))
                return None
            if kind == ERROR and (type(action) is not str or type(payload) is not str):
                action, payload = GENERIC, "malformed CALLERROR"
            self._answer = (kind, payload if kind == RESULT else action,
                            payload if kind == ERROR else "")
            self._flag.set()
            return None
        if self.mute:
            self.log("%s not answered: the CSMS rejected our BootNotification" % _clip(
                action, 40))
            return None
        handler = self.handlers.get(action) or self.ext.get(action)
        if handler is None:
            known = action in schema.REQUESTS
            code = NOT_SUPPORTED if known else NOT_IMPLEMENTED
            return self._error_text(mid, code, "%s %s" % (
                action if len(action) <= 40 else action[:40] + "...",
                "not supported" if known else "unknown"))
        bad = schema.check_request(action, payload)
        if bad is not None:
            self.log("%s refused: %s %s" % (action, bad[0], bad[1]))
            return self._error_text(mid, bad[0], bad[1])
        try:
            result = handler(self.ctx, payload)
        except RpcError as e:
            return self._error_text(mid, e.code, e.description)
        except Exception as e:  # a handler bug: answer, report, keep the link
            return self._failed(mid, action, e)
        if type(result) in (dict, str):
            return _result(mid, result)
        return (mid, action, result)

    async def _finish(self, t):
        mid, action, coro = t
        try:
            result = await coro
        except RpcError as e:
            return self._error_text(mid, e.code, e.description)
        except Exception as e:
            return self._failed(mid, action, e)
        return _result(mid, result)

    def _failed(self, mid, action, e):
        self.log("%s handler failed: %r" % (action, e))
        return self._error_text(mid, INTERNAL, "handler failed")

    def _error_text(self, mid, code, description):
        return dumps([ERROR, mid, code, description[:255], {}])


def _result(mid, result):
    """A handler's answer: its dict, or {"status": result} for a string."""
    return dumps([RESULT, mid, {"status": result} if type(result) is str else result])


def _clip(s, n=80):
    s = str(s)
    return s if len(s) <= n else s[:n] + "..."
