"""A real MQTT broker for the tests (Debian's mosquitto on 127.0.0.1) and an observer on it
(aiomqtt, in a thread of its own so that synchronous simulator tests can use it)."""
import asyncio
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
from mqtt_broker import MOSQUITTO, Broker  # noqa: E402, F401


def need_broker():
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian package mosquitto: tools/setup.sh "
                    "installs it)")
    try:
        import aiomqtt  # noqa: F401
    except ImportError:
        pytest.skip("aiomqtt is not installed (requirements.txt: make setup)")


class Observer:
    """Subscribes to `filters` and keeps every message as (topic, payload text, retain),
    reconnecting when the broker restarts."""

    def __init__(self, port, filters=("#",)):
        self.port = port
        self.filters = filters
        self.msgs = []
        self.connects = 0
        self._client = None
        self._stop = False
        self._ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.future = asyncio.run_coroutine_threadsafe(self._run(), self.loop)
        if not self._ready.wait(5):
            raise RuntimeError("observer did not connect")

    async def _run(self):
        import aiomqtt

        self._task = asyncio.current_task()
        while not self._stop:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier="observer") as c:
                    for f in self.filters:
                        await c.subscribe(f, qos=1)
                    self._client = c
                    self.connects += 1
                    self._ready.set()
                    async for m in c.messages:
                        self.msgs.append((str(m.topic), bytes(m.payload).decode(), m.retain))
            except aiomqtt.MqttError:
                self._client = None
                await asyncio.sleep(0.1)

    def publish(self, topic, payload, qos=1, retain=False):
        t_end = time.monotonic() + 5
        while self._client is None and time.monotonic() < t_end:
            time.sleep(0.05)
        fut = asyncio.run_coroutine_threadsafe(
            self._client.publish(topic, payload, qos=qos, retain=retain), self.loop)
        fut.result(5)

    def wait_for(self, pred, timeout=10, since=0):
        """The first message (topic, payload, retain) from index `since` that pred accepts."""
        t_end = time.monotonic() + timeout
        while True:
            for m in self.msgs[since:]:
                if pred(m):
                    return m
            if time.monotonic() > t_end:
                raise AssertionError("no such message in %.0f s; got %r" % (
                    timeout, self.msgs[since:][-30:]))
            time.sleep(0.02)

    def last(self, topic):
        for m in reversed(self.msgs):
            if m[0] == topic:
                return m[1]
        return None

    async def _shutdown(self):
        self._task.cancel()
        try:
            await self._task
        except BaseException:  # noqa: BLE001 - its cancellation, or what it died of
            pass

    def close(self):
        self._stop = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(3)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(3)


def topic_is(t, payload=None):
    return lambda m: m[0] == t and (payload is None or m[1] == payload)
