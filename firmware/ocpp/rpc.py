# OCPP-J 1.6 RPC over a WebSocket: CALL [2, id, action, payload], CALLRESULT [3, id, payload],
# CALLERROR [4, id, code, description, details]. At most one CALL of ours is outstanding
# (OCPP-J 4.1.1); its answer is awaited with a timeout. Incoming CALLs are validated
# (firmware/ocpp/schema.py) before any handler runs; a handler returns the result payload or
# raises RpcError(code, description). Every frame is untrusted: a bad one is answered with
# the CALLERROR OCPP-J names, logged in one line, and never kills the reader.
import asyncio
import json
import os


from . import schema

_CALL = const(2)
_RESULT = const(3)
_ERROR = const(4)
_MAX_ID = const(36)
_TIMEOUT_MS = const(30000)  # for the answer to our CALL
# A frame whose id cannot be read is answered to id "-1" (OCPP 2.0.1 4.2.3's rule, adopted).


class RpcError(Exception):
    """A CALLERROR to send (from a handler) or received (from call()); code is OCPP-J's."""

    def __init__(self, code, description, msg_id=None):
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


def parse(text):
    """One frame -> (kind, id, a, b): a CALL's action and payload, a CALLRESULT's payload and
    None, a CALLERROR's code and description. Raises RpcError (code, description) with
    .msg_id set where an answer can be addressed."""
    try:
        f = json.loads(text)
    except (ValueError, TypeError):
        raise RpcError("ProtocolError", "not JSON", "-1")
    if type(f) is not list or len(f) < 3 or type(f[0]) is not int:
        raise RpcError("ProtocolError", "not an OCPP-J array", "-1")
    kind, mid = f[0], f[1]
    if type(mid) is not str or not mid or len(mid) > _MAX_ID:
        raise RpcError("ProtocolError", "message id not 1..36 characters", "-1")
    if kind == _CALL:
        if len(f) != 4 or type(f[2]) is not str:
            raise RpcError("FormationViolation", "CALL not [2, id, action, payload]", mid)
        if type(f[3]) is not dict:
            raise RpcError("FormationViolation", "%s payload not an object" % f[2], mid)
        return kind, mid, f[2], f[3]
    if kind == _RESULT and len(f) == 3:
        return kind, mid, f[2], None
    if kind == _ERROR and len(f) in (4, 5):
        return kind, mid, f[2], f[3]
    raise RpcError("ProtocolError", "bad message type or length")  # a result/error: no answer


class Rpc:
    """`send` is an async callable taking the text of one frame. The link feeds every
    received text to `received()`; `call()` sends ours and awaits its answer."""

    def __init__(self, send, handlers, log, ctx=None):
        self.send = send
        # handlers.<action>: fn(ctx, payload) -> result payload (a dict, or a status string),
        # or a coroutine that gives one (firmware/ocpp/remote.py)
        self.handlers = handlers
        self.ctx = ctx
        self.log = log
        self._lock = asyncio.Lock()
        self._flag = asyncio.ThreadSafeFlag()
        self._pending = None  # id of our outstanding CALL
        self._answer = None
        self._n = 0
        # ids: a random prefix per boot (a CSMS never sees an id of the last boot again)
        self._prefix = "%x-" % int.from_bytes(os.urandom(3), "big")
        self.mute = False  # True: the CSMS's CALLs are dropped unanswered (boot Rejected)
        self.inbox = None  # the text received() handles next (the link puts it here)
        # An extension package's actions (app.py fills them: firmware/secext), looked up
        # after `handlers`; ext_send: message -> async fn(ctx, connector) for TriggerMessage.
        self.ext = {}
        self.ext_send = {}
        self.on_bad = None  # fn(why): a frame that is no OCPP-J message (a security event)

    async def call(self, action, payload):
        """Send a CALL; return the CALLRESULT payload (checked against the schema: what the
        charge point needs strictly, the rest logged). Raises RpcError for a CALLERROR or a
        result it cannot use, its timeout (code "Timeout"), or the link's error."""
        await self._lock.acquire()
        try:
            self._n = n = (self._n + 1) & 0x3FFFFFFF
            self._pending = mid = self._prefix + str(n)
            self._answer = None
            self._flag.clear()
            await self.send(dumps([_CALL, mid, action, payload]))
            try:
                await asyncio.wait_for_ms(self._flag.wait(), _TIMEOUT_MS)
            except asyncio.TimeoutError:
                raise RpcError("Timeout", "no answer to " + action)
            kind, body, desc = self._answer
        finally:
            self._pending = None
            self._lock.release()
        if kind == _ERROR:
            raise RpcError(body, desc)
        bad = schema.check_response(action, body)
        if bad is not None:
            # An answer is thrown away only when a field the charge point needs is
            # missing or wrong: an extra field or another date format from a real CSMS
            # must not cost a transactionId (it would be sent again: a new transaction).
            worse = schema.check_response(action, body, True)  # lax
            if worse is not None:
                raise RpcError(worse[0], "%s.conf: %s" % (action, worse[1]))
            self.log("%s.conf used despite %s: %s" % (action, bad[0], bad[1]))
        return body

    def cancel(self):
        """The link dropped: wake a waiting call() with an error."""
        if self._pending is not None:
            self._answer = (_ERROR, "GenericError", "connection lost")
            self._flag.set()

    async def received(self):
        """One text message from the server, handed in self.inbox: an answer to our CALL, or
        a CALL to handle. Not an argument: no frame of this coroutine, nor of the link's,
        then holds the text, nor the CALL's payload, while the answer is sent (the session's
        heap peak)."""
        out = self._take()  # a sync frame: what it held is gone when it returns
        if type(out) is tuple:  # (mid, action, the handler's coroutine)
            mid, action, out = out
            try:
                out = await out
            except Exception as e:
                out = self._failed(mid, action, e)
            else:
                out = _result(mid, out)
        if out is not None:
            await self.send(out)

    def _take(self):
        """Parse and handle self.inbox: the text to send (an answer, an error), None, or
        (mid, coroutine) for a handler that must be awaited."""
        text, self.inbox = self.inbox, None
        try:
            kind, mid, action, payload = parse(text)
        except RpcError as e:
            # (clipped by characters: MicroPython's %.80s counts bytes and could cut a
            # character in two, an invalid UTF-8 line in the log)
            self.log("bad frame (%s: %s): %s" % (e.code, e.description, text[:80]))
            if self.on_bad is not None:
                self.on_bad(e.description)
            return None if e.msg_id is None else _error(e.msg_id, e)
        text = None  # noqa: F841 - the frame's text is not needed past here: free it
        if kind != _CALL:
            if mid != self._pending or self._answer is not None:
                self.log("answer for unknown id %s dropped" % mid)  # (parse: <= 36 chars)
                return None
            if kind == _ERROR and (type(action) is not str or type(payload) is not str):
                action, payload = "GenericError", "malformed CALLERROR"
            self._answer = (kind, action, payload)  # (_RESULT, payload, None)
            self._flag.set()
            return None
        if self.mute:
            self.log("%s not answered: boot Rejected" % action[:40])
            return None
        known = action in schema.REQUESTS  # the only names looked up in handlers
        handler = known and (getattr(self.handlers, action, None) or self.ext.get(action))
        if not handler:
            code, why = ("NotSupported", "not supported") if known else ("NotImplemented",
                                                                         "unknown")
            return _error(mid, RpcError(code, "%s %s" % (action[:40], why)))
        bad = schema.check_request(action, payload)
        if bad is not None:
            self.log("%s refused: %s %s" % (action, bad[0], bad[1]))
            return _error(mid, RpcError(*bad))
        try:
            result = handler(self.ctx, payload)
        except Exception as e:  # a handler bug: answer, report, keep the link
            return self._failed(mid, action, e)
        if type(result) in (dict, str):
            return _result(mid, result)
        return (mid, action, result)

    def _failed(self, mid, action, e):
        """A handler raised: its RpcError is the answer; anything else is a bug (logged)."""
        if not isinstance(e, RpcError):
            self.log("%s handler failed: %r" % (action, e))
            e = RpcError("InternalError", "handler failed")
        return _error(mid, e)


def _error(mid, e):
    """The CALLERROR frame answering mid with RpcError e."""
    return dumps([_ERROR, mid, e.code, e.description[:255], {}])


def _result(mid, result):
    """A handler's answer: its dict, or {"status": result} for a string."""
    return dumps([_RESULT, mid, {"status": result} if type(result) is str else result])
