# A small asyncio MQTT 3.1.1 client for the owner interface (docs/mqtt.md). It owns one
# broker connection and nothing else: the link comes from the board's network manager
# (firmware/net.py: Wi-Fi, Ethernet, the simulator's switchable loopback), which retries it
# with its own backoff, so the client never touches the radio. Per connection:
#   CONNECT with a last will (the availability topic, retained "offline"), SUBSCRIBE to the
#   command filters, then one reader task and one sender task. The sender alone writes the
#   socket (publishes, PUBACKs, PINGREQ every keepalive/2 of silence); the reader hands each
#   PUBLISH to on_message. No byte for 1.5 x keepalive (3.1.2.10) or any error ends the
#   connection; the next one comes after a Backoff wait (firmware/backoff.py).
# Outgoing messages wait in a bounded queue that keeps only the newest payload per topic
# (state is what matters, not its history) and drops the oldest entry beyond `queue_max`,
# counted in `dropped`. Outgoing messages are QoS 0 (state is retained and republished on
# every connection); commands are subscribed at QoS 1 and acknowledged.
import asyncio


from firmware.backoff import Backoff
from firmware.mqtt import proto
from firmware.mqtt.proto import MqttError
from firmware.ticks import ticks_diff, ticks_ms

_MAX_IN = const(2048)  # bytes of a received packet kept; a longer one is skipped and logged
_CONNECT_MS = const(10000)  # TCP (and TLS) plus CONNACK
_SUB_PID = const(1)
_CHUNK = const(256)
_TICK_MS = const(1000)  # the session wakes the sender this often (keepalive) and sees a loss


class Client:
    def __init__(self, host, port, client_id, keepalive_s=60, user=None, password=None,
                 will=None, subs=(), on_message=None, on_connect=None, net=None, ssl=None,
                 queue_max=24, log=print, backoff=None):
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.user = user
        self.password = password
        self.will = will  # (topic, payload, retain)
        self.subs = subs  # [(filter, qos)]
        # (topic str, payload bytes, retained: from the broker's store, not sent just now);
        # an exception it raises is logged
        self.on_message = on_message
        self.on_connect = on_connect  # called once connected: queue the birth and state
        self.net = net
        self.ssl = ssl  # an ssl.SSLContext (server checked) or None
        self.queue_max = queue_max
        self.log = log
        self.backoff = backoff or Backoff(1000, 60000)
        self._q = []  # [topic, payload, retain], oldest first
        self._ctl = []  # PUBACKs and PINGREQ: the sender writes them first
        self._wake = asyncio.Event()
        self._lost = False  # this connection failed
        self._sleeper = None  # the session's task while it ticks
        self._w = None
        self.connected = False
        self.connects = 0
        self.dropped = 0  # queued messages given up because the queue was full
        self.sent = 0
        self.received = 0
        self.last_error = None
        self._rx_ms = self._tx_ms = self._ping_ms = ticks_ms()

    # -- what the bridge calls -----------------------------------------------------------------
    def publish(self, topic, payload, retain=False):
        """Queue a message (QoS 0); a queued one for the same topic is replaced."""
        q = self._q
        for e in q:
            if e[0] == topic:
                e[1] = payload
                e[2] = retain
                break
        else:
            if len(q) >= self.queue_max:
                q.pop(0)
                self.dropped += 1
            q.append([topic, payload, retain])
        self._wake.set()

    def queued(self):
        return len(self._q)

    def info(self):
        return {"broker": "%s:%d" % (self.host, self.port), "connected": self.connected,
                "connects": self.connects, "sent": self.sent, "received": self.received,
                "queued": len(self._q), "dropped": self.dropped, "last_error": self.last_error}

    # -- the connection loop -------------------------------------------------------------------
    async def run(self):
        while True:
            try:
                await self._session()
            except (OSError, EOFError, MqttError, ValueError, asyncio.TimeoutError) as e:
                self._down(e)
            wait = self.backoff.next_ms()
            self.log("mqtt: %s:%d down (%s); retry in %d ms" % (
                self.host, self.port, self.last_error, wait))
            await asyncio.sleep_ms(wait)

    def _down(self, e):
        self.last_error = str(e) or e.__class__.__name__
        self.connected = False

    async def _open(self):
        if self.net is not None:
            await self.net.up()
            return await self.net.open(self.host, self.port, ssl=self.ssl,
                                       server_hostname=self.host if self.ssl else None,
                                       timeout_ms=_CONNECT_MS)
        if self.ssl:
            return await asyncio.wait_for_ms(asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, server_hostname=self.host), _CONNECT_MS)
        return await asyncio.wait_for_ms(asyncio.open_connection(self.host, self.port),
                                         _CONNECT_MS)

    async def _session(self):
        r, w = await self._open()
        self._w = w
        tasks = ()
        try:
            w.write(proto.connect(self.client_id, self.keepalive_s, self.user, self.password,
                                  self.will))
            await w.drain()
            first, body = await asyncio.wait_for_ms(self._packet(r), _CONNECT_MS)
            if first & 0xF0 != proto.CONNACK:
                raise MqttError("expected CONNACK, got packet type %d" % (first >> 4))
            why = proto.connack(body)
            if why:
                raise MqttError(why)
            if self.subs:
                w.write(proto.subscribe(_SUB_PID, self.subs))
                await w.drain()
            self.connected = True
            self.connects += 1
            self.backoff.reset()
            self._rx_ms = self._tx_ms = self._ping_ms = ticks_ms()
            self._ctl = []
            self._lost = False
            self.log("mqtt: connected to %s:%d" % (self.host, self.port))
            if self.on_connect is not None:
                self.on_connect()
            tasks = (asyncio.create_task(self._reader(r)), asyncio.create_task(self._sender(w)))
            # The sender waits for work without a timer of its own (a wait_for held ~340 B of
            # heap for the whole connection on the 32-bit build): this task wakes it for the
            # keepalive once a second; a failure (_fail) cancels this sleep at once.
            self._sleeper = asyncio.current_task()
            try:
                while not self._lost:
                    await asyncio.sleep_ms(_TICK_MS)
                    self._wake.set()
            except asyncio.CancelledError:
                if not self._lost:  # not _fail's: the task itself is cancelled
                    raise
            raise MqttError(self.last_error or "connection lost")
        finally:
            self._sleeper = None
            self.connected = False
            for t in tasks:
                t.cancel()
            self._w = None
            try:
                w.close()
            except OSError:
                pass

    def _fail(self, e):
        """The reader's or the sender's failure ends this connection (the session's tick
        sleep is cancelled: the session ends it now)."""
        if not self._lost:
            self.last_error = str(e) or e.__class__.__name__
            self._lost = True
            t = self._sleeper
            if t is not None:
                t.cancel()

    async def _packet(self, r):
        """(first byte, body) of the next packet; a body over _MAX_IN is skipped (b"")."""
        first = (await r.readexactly(1))[0]
        n = 0
        shift = 0
        while True:
            b = (await r.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MqttError("bad remaining length")
        self._rx_ms = ticks_ms()
        if n > _MAX_IN:
            self.log("mqtt: a packet of %d bytes skipped (over %d)" % (n, _MAX_IN))
            while n:
                k = min(n, _CHUNK)
                await r.readexactly(k)
                n -= k
            return first, b""
        return first, (await r.readexactly(n)) if n else b""

    async def _reader(self, r):
        try:
            while True:
                first, body = await self._packet(r)
                kind = first & 0xF0
                if kind == proto.PUBLISH and body:
                    topic, payload, qos, pid = proto.parse_publish(first, body)
                    if qos == 2:
                        raise MqttError("QoS 2 PUBLISH on a QoS 1 subscription")
                    if qos:
                        self._ctl.append(proto.puback(pid))
                        self._wake.set()
                    self.received += 1
                    self._deliver(topic, payload, first & 1)
                elif kind == proto.SUBACK and b"\x80" in body[2:]:
                    self.log("mqtt: the broker refused a subscription (commands may not arrive)")
        except Exception as e:  # noqa: BLE001 - any failure ends this connection, not the task
            self._fail(e)

    def _deliver(self, topic, payload, retained):
        if self.on_message is None:
            return
        try:
            self.on_message(topic, payload, bool(retained))
        except Exception as e:  # noqa: BLE001 - a bad command must not end the connection
            self.log("mqtt: handling %s failed: %r" % (topic, e))

    async def _sender(self, w):
        half = self.keepalive_s * 500
        try:
            while True:
                await self._wake.wait()  # a message queued, or the session's tick
                self._wake.clear()
                now = ticks_ms()
                if ticks_diff(now, self._rx_ms) > self.keepalive_s * 1500:
                    raise MqttError("no answer from the broker for %d s" % (
                        self.keepalive_s * 3 // 2))
                # A PINGREQ when we have been silent (3.1.2.10) or the broker has: its
                # PINGRESP proves the link; one per half keepalive at most.
                if ticks_diff(now, self._ping_ms) >= half and (
                        ticks_diff(now, self._tx_ms) >= half
                        or ticks_diff(now, self._rx_ms) >= half):
                    self._ctl.append(proto.PING)
                    self._ping_ms = now
                while self._ctl:
                    w.write(self._ctl.pop(0))
                    await w.drain()
                    self._tx_ms = ticks_ms()
                while self._q and not self._ctl:
                    topic, payload, retain = self._q.pop(0)
                    w.write(proto.publish(topic, payload, retain))
                    await w.drain()
                    self._tx_ms = ticks_ms()
                    self.sent += 1
        except Exception as e:  # noqa: BLE001 - any failure ends this connection, not the task
            self._fail(e)
