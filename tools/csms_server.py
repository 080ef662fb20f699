"""The dev CSMS's server (tools/csms.py is its command line and CsmsThread): class Csms, one
WebSocket session per charge point, the answers to its CALLs, the records, the control port.
Every frame a charge point sends goes through tools/csms_check.py first."""
import asyncio
import base64
import datetime
import itertools
import json
import os
import ssl
import sys
import time
import urllib.parse

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import csms_styles  # noqa: E402
from csms_check import CALL, CALLERROR, CALLRESULT, Conversation  # noqa: E402

HOST = "127.0.0.1"
NOTIFICATIONS = ("FirmwareStatusNotification", "DiagnosticsStatusNotification",
                 "LogStatusNotification", "SecurityEventNotification",
                 "SignedFirmwareStatusNotification")


class CsmsError(Exception):
    pass


def now_iso():
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def _cert_cn(connection):
    """The commonName of the client certificate the TLS layer verified, else None."""
    tr = getattr(connection, "transport", None)
    cert = tr.get_extra_info("peercert") if tr is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return value
    return None


class _Link:
    """One connected charge point."""

    def __init__(self, cp, ws):
        self.cp, self.ws = cp, ws
        self.conv = Conversation()
        self.futures = {}  # our CALL id -> future of its answer
        self.calls = asyncio.Queue()  # the charge point's CALLs, answered in order
        self.ids = itertools.count(1)


class Csms:
    def __init__(self, port=0, *, boot_status="Accepted", interval=300, tags=None,
                 password=None, cert=None, key=None, remote_start_on_preparing=None,
                 control_port=None, log=None, answer_delay=0.0, ping_interval=None,
                 style="dev", seed=None, fresh_ids=None, transactions=None,
                 lose_answers=None, client_ca=None, client_cert_required=False):
        self.port, self.control_port = port, control_port
        self.boot_status, self.interval = boot_status, interval
        # idTag -> status, or an idTagInfo-like dict (status, expiryDate, parentIdTag) that
        # the styles which send those fields use; unknown tags are Invalid if any are given
        self.tags = dict(tags or {})
        self.password, self.cert, self.key = password, cert, key
        # wss: client certificates from this CA are asked for; one that verifies and names
        # the charge point (CN) stands for its Basic auth (security profile 3)
        self.client_ca, self.client_cert_required = client_ca, client_cert_required
        self.remote_start_on_preparing = remote_start_on_preparing
        self.answer_delay, self.ping_interval = answer_delay, ping_interval
        # action -> how many of its answers to lose: the CALL is handled (and recorded), then
        # the connection drops instead of the answer going out, as when a link dies then
        self.lose_answers = dict(lose_answers or {})
        self.log_path = log
        self.links = {}  # cp id -> _Link
        self.frames = []  # {"cp", "dir": "in"|"out", "text"}
        self.violations = []  # {"cp", "frame", "reason"}
        # id -> {"id", "cp", "connectorId", "idTag", "meterStart", "timestamp", "start",
        #        "stop", "meter_values", "start_frames", "stop_frames", "seq"}; pass another
        # CSMS's `transactions` to restart "the same" CSMS with its database
        self.transactions = transactions if transactions is not None else {}
        self.starts = []  # (cp, payload, transactionId answered) of every StartTransaction
        self.unknown_stops = []  # (cp, payload) of Stops for an id this CSMS never gave
        self.boots, self.statuses, self.authorizations = [], [], []  # (cp, payload)
        self.meter_values, self.notifications, self.data_transfers = [], [], []
        self.events = []  # connections, refusals, remote starts: {"event", "cp", ...}
        self.accepted = {}  # cp id -> status of its last BootNotification answer
        self.beats = []  # (cp, action, time.monotonic()) of each Boot and Heartbeat (fleet)
        self._triggered = {}  # cp id -> set of actions a TriggerMessage asked for
        self._starts = {}  # (cp, connectorId, idTag, meterStart, timestamp) -> id
        self.style = csms_styles.make(style, self, seed)
        self.fresh_ids = self.style.fresh_ids if fresh_ids is None else fresh_ids
        if self.transactions:  # numbering goes on after the database's last id
            self.style.next_id = max(max(self.transactions), 0) + 1
        self._changed = None
        self._server = self._control = self._log = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self):
        self._changed = asyncio.Event()
        ctx = None
        if self.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)
            if self.client_ca:
                ctx.verify_mode = (ssl.CERT_REQUIRED if self.client_cert_required
                                   else ssl.CERT_OPTIONAL)
                ctx.load_verify_locations(self.client_ca)
        if self.log_path:
            self._log = open(self.log_path, "a", encoding="utf-8")
        self._server = await serve(self._session, HOST, self.port, subprotocols=["ocpp1.6"],
                                   process_request=self._admit, ssl=ctx, compression=None,
                                   ping_interval=self.ping_interval)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.control_port is not None:
            self._control = await asyncio.start_server(self._control_client, HOST,
                                                       self.control_port)
            self.control_port = self._control.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        for srv in (self._control, self._server):
            if srv is not None:
                srv.close()
                await srv.wait_closed()
        if self._log:
            self._log.close()
            self._log = None

    @property
    def url(self):
        return "%s://%s:%d/" % ("wss" if self.cert else "ws", HOST, self.port)

    # -- records --------------------------------------------------------------------------
    def _note(self, kind, record):
        if self._log:
            self._log.write(json.dumps(dict(record, t=now_iso(), event=kind), default=str)
                            + "\n")
            self._log.flush()
        if self._changed is not None:
            self._changed.set()

    def _violation(self, cp, frame, reason):
        v = {"cp": cp, "frame": frame, "reason": reason}
        self.violations.append(v)
        self._note("violation", v)

    def _event(self, event, cp, **kw):
        e = dict(kw, event=event, cp=cp)
        self.events.append(e)
        self._note(event, e)

    async def wait_for(self, predicate, timeout=10.0):
        """Wait until predicate() is true (checked after every frame); its value, or
        CsmsError after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - loop.time()
            if left <= 0:
                raise CsmsError("timed out after %.1f s waiting for %r" % (timeout, predicate))
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    # -- the WebSocket side ---------------------------------------------------------------
    def _admit(self, connection, request):
        cp = urllib.parse.unquote(request.path.split("?")[0].strip("/"))
        if not cp or "/" in cp:
            return connection.respond(404, "connect to /<charge point id>\n")
        if self.password is not None and _cert_cn(connection) != cp:
            pw = self.password if isinstance(self.password, bytes) else self.password.encode()
            want = "Basic " + base64.b64encode(cp.encode() + b":" + pw).decode()
            if request.headers.get("Authorization") != want:
                self._event("refused", cp, reason="Basic auth")
                r = connection.respond(401, "bad or missing Basic auth\n")
                r.headers["WWW-Authenticate"] = 'Basic realm="csms", charset="UTF-8"'
                return r
        return None

    async def _session(self, ws):
        cp = urllib.parse.unquote(ws.request.path.split("?")[0].strip("/"))
        old = self.links.get(cp)
        if old is not None:
            await old.ws.close(1000, "replaced by a new connection")
        link = _Link(cp, ws)
        self.links[cp] = link
        self._event("connected", cp, basic="Authorization" in ws.request.headers,
                    cert=_cert_cn(ws))
        worker = asyncio.create_task(self._answer_calls(link))
        try:
            async for text in ws:
                self._received(link, text)
        except ConnectionClosed:
            pass
        finally:
            worker.cancel()
            for f in link.futures.values():
                if not f.done():
                    f.set_exception(CsmsError("%s disconnected" % cp))
                    f.exception()  # a caller still gets it; nobody waiting is no error
            if self.links.get(cp) is link:
                del self.links[cp]
            self._event("disconnected", cp)

    async def _send(self, link, msg):
        text = json.dumps(msg)
        self.frames.append({"cp": link.cp, "dir": "out", "text": text})
        self._note("frame", {"cp": link.cp, "dir": "out", "text": text})
        await link.ws.send(text)

    def _received(self, link, text):
        if isinstance(text, bytes):
            self._violation(link.cp, repr(text[:200]), "binary frame (OCPP-J uses text)")
            return
        self.frames.append({"cp": link.cp, "dir": "in", "text": text})
        self._note("frame", {"cp": link.cp, "dir": "in", "text": text})
        try:
            m = link.conv.received(text)
        except Exception as e:  # e.g. RecursionError: JSON nested 100,000 deep
            self._violation(link.cp, text[:1000], "frame could not be read: %r" % e)
            return
        for reason in m.problems:
            self._violation(link.cp, text, reason)
        if m.kind == CALL and m.id is not None:
            if (m.error is None and m.action != "BootNotification"
                    and self.accepted.get(link.cp, "Accepted") != "Accepted"):
                asked = self._triggered.get(link.cp, set())
                if m.action in asked:
                    asked.discard(m.action)
                else:
                    self._violation(link.cp, text, "%s before an accepted BootNotification"
                                    % m.action)
            link.calls.put_nowait(m)
        elif m.kind in (CALLRESULT, CALLERROR) and m.id in link.futures:
            f = link.futures.pop(m.id)
            if not f.done():  # a malformed answer (a violation already) reads as an error
                f.set_result(m.payload if m.payload is not None else (
                    "FormationViolation", "malformed answer: " + text[:200], {}))

    async def _answer_calls(self, link):
        while True:
            m = await link.calls.get()
            if self.answer_delay:
                await asyncio.sleep(self.answer_delay)
            if m.error is not None:
                reply = [CALLERROR, m.id, m.error[0], m.error[1], {}]
            else:
                try:
                    reply = [CALLRESULT, m.id, self._handle(link.cp, m.action, m.payload)]
                except csms_styles.CallError as e:  # the style's way to refuse
                    reply = [CALLERROR, m.id, e.code, e.description, {}]
                except Exception as e:  # a bug here must not end the session
                    self._event("handler_failed", link.cp, action=m.action, error=repr(e))
                    reply = [CALLERROR, m.id, "InternalError", repr(e)[:200], {}]
            if self.lose_answers.get(m.action, 0) > 0:
                self.lose_answers[m.action] -= 1
                self._event("answer_lost", link.cp, action=m.action, reply=reply)
                link.ws.transport.abort()
                return
            # answered as soon as it is on its way: the charge point may send its next CALL
            # the moment it has the answer, before this task runs again
            link.conv.answered(m.id)
            try:
                await self._send(link, reply)
            except ConnectionClosed:
                return
            if (m.action == "StatusNotification" and m.error is None
                    and self.remote_start_on_preparing
                    and m.payload.get("connectorId") == 1
                    and m.payload.get("status") == "Preparing"):
                asyncio.create_task(self._remote_start(link.cp))

    async def _remote_start(self, cp):
        payload = {"connectorId": 1, "idTag": self.remote_start_on_preparing}
        try:
            result = await self.call(cp, "RemoteStartTransaction", payload)
        except CsmsError as e:
            result = "failed: %s" % e
        self._event("remote_start", cp, payload=payload, result=result)

    # -- answers to the charge point's CALLs ----------------------------------------------
    def strict_violation(self, cp, payload, reason):
        """A style's complaint about a CALL that is valid OCPP but wrong for this CSMS."""
        self._violation(cp, json.dumps(payload), reason)

    def _handle(self, cp, action, p):
        style = self.style
        if action in style.unsupported:
            raise csms_styles.CallError("NotSupported", "%s is not supported" % action)
        if action == "BootNotification":
            self.boots.append((cp, p))
            self.beats.append((cp, action, time.monotonic()))
            self.accepted[cp] = self.boot_status
            return style.boot(p)
        if action == "Heartbeat":
            self.beats.append((cp, action, time.monotonic()))
            return style.heartbeat()
        if action == "StatusNotification":
            self.statuses.append((cp, p))
            return {}
        if action == "Authorize":
            self.authorizations.append((cp, p))
            return style.authorize(p)
        if action == "StartTransaction":
            return self._start_transaction(cp, p)
        if action == "StopTransaction":
            return self._stop_transaction(cp, p)
        if action == "MeterValues":
            self.meter_values.append((cp, p))
            tx = self.transactions.get(p.get("transactionId"))
            if tx is not None:
                tx["meter_values"].append(p)
            elif "transactionId" in p:
                style.meter_values_unknown(cp, p)
            return {}
        if action == "DataTransfer":
            self.data_transfers.append((cp, p))
            return style.data_transfer(p)
        if action in NOTIFICATIONS:
            self.notifications.append((cp, action, p))
            return {}
        if action == "SignCertificate":
            return {"status": "Rejected"}
        raise CsmsError("no answer for %s" % action)

    def _open(self):
        return [t for t in self.transactions.values() if t["stop"] is None
                and t["start"] is not None]

    def _start_transaction(self, cp, p):
        key = (cp, p["connectorId"], p["idTag"], p["meterStart"], p["timestamp"])
        tid = None if self.fresh_ids else self._starts.get(key)
        if tid is None:
            tid, info, store = self.style.start(cp, p, self._open())
        else:  # a retransmission of the same start gets the same id
            info, store = self.style.id_tag_info(p["idTag"], "start"), True
        if tid is None:
            tid = self.style.new_id()
        if store and tid not in self.transactions:
            self._starts[key] = tid
            self.transactions[tid] = {
                "id": tid, "cp": cp, "connectorId": p["connectorId"], "idTag": p["idTag"],
                "meterStart": p["meterStart"], "timestamp": p["timestamp"], "start": p,
                "stop": None, "meter_values": [], "start_frames": 0, "stop_frames": 0,
                "seq": len(self.starts)}
        if store:
            self.transactions[tid]["start_frames"] += 1
        self.starts.append((cp, p, tid))
        self._note("transaction", {"cp": cp, "id": tid, "start": p, "stored": store})
        return {"transactionId": tid, "idTagInfo": info}

    def _stop_transaction(self, cp, p):
        tid = p["transactionId"]
        tx = self.transactions.get(tid)
        if tx is None:  # e.g. the id 0 of a refused start, or a charge point's own id
            self.unknown_stops.append((cp, p))
            tx = self.style.stop_unknown(cp, p, self._open())
        if tx is not None:
            if tx["stop"] is None:
                tx["stop"] = p
            tx["stop_frames"] += 1
        self._note("transaction", {"cp": cp, "id": tid, "stop": p,
                                   "closed": None if tx is None else tx["id"]})
        return self.style.stop(p)

    # -- commands to a charge point -------------------------------------------------------
    async def call(self, cp, action, payload, timeout=30.0):
        """Send a CALL to a connected charge point: its CALLRESULT payload (a dict), or a
        CALLERROR as a tuple (code, description, details). CsmsError if it is not connected,
        disconnects or does not answer in time."""
        link = self.links.get(cp)
        if link is None:
            raise CsmsError("%s is not connected" % cp)
        mid = "csms-%d" % next(link.ids)
        f = asyncio.get_running_loop().create_future()
        link.futures[mid] = f
        link.conv.pending[mid] = action
        if action in ("TriggerMessage", "ExtendedTriggerMessage") and isinstance(payload, dict):
            self._triggered.setdefault(cp, set()).add(payload.get("requestedMessage"))
        try:
            await self._send(link, [CALL, mid, action, payload])
        except ConnectionClosed:
            raise CsmsError("%s disconnected" % cp)
        try:
            return await asyncio.wait_for(f, timeout)
        except asyncio.TimeoutError:
            link.futures.pop(mid, None)
            raise CsmsError("%s did not answer %s within %.1f s" % (cp, action, timeout))

    def status(self):
        return {"url": self.url, "files": getattr(self, "files_url", None),
                "connected": sorted(self.links),
                "transactions": list(self.transactions.values()),
                "violations": self.violations, "boots": len(self.boots),
                "notifications": [list(n) for n in self.notifications[-20:]]}

    async def _control_client(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    req = json.loads(line)
                    if req.get("cmd") == "call":
                        r = await self.call(req["cp"], req["action"], req.get("payload", {}),
                                            float(req.get("timeout", 30)))
                        out = {"error": list(r)} if isinstance(r, tuple) else {"result": r}
                    elif req.get("cmd") == "status":
                        out = self.status()
                    else:
                        out = {"failed": "unknown cmd %r (call, status)" % req.get("cmd")}
                except (ValueError, KeyError, TypeError, AttributeError, CsmsError) as e:
                    out = {"failed": "%s: %s" % (type(e).__name__, e)}
                writer.write((json.dumps(out, default=str) + "\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

