"""A real MQTT broker for the tests (Debian's mosquitto on 127.0.0.1) and an observer on it
(aiomqtt, in a thread of its own so that synchronous simulator tests can use it)."""
import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


def need_broker():
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian package mosquitto: tools/setup.sh "
                    "installs it)")
    try:
        import aiomqtt  # noqa: F401
    except ImportError:
        pytest.skip("aiomqtt is not installed (requirements.txt: make setup)")


def _free_port():
    # mosquitto 2 takes no port 0 (a "listener 0" is a unix socket): the OS chooses a free
    # port here and mosquitto binds it right after
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """mosquitto on 127.0.0.1:port with a generated config; no persistence, so a restart
    forgets every retained message (what the device must then publish again)."""

    def __init__(self, workdir, user=None, password=None, tls=None):
        self.dir = str(workdir)
        self.port = _free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        lines = ["listener %d 127.0.0.1" % self.port, "persistence false"]
        if os.geteuid() == 0:  # started as root it would drop to the user mosquitto, which
            lines.append("user root")  # cannot read the test's private temporary folder
        if tls:  # (certificate chain, key) files: a TLS listener
            lines += ["certfile " + tls[0], "keyfile " + tls[1]]
        if user:
            pw = os.path.join(self.dir, "passwd")
            with open(pw, "w") as f:
                f.write("%s:%s\n" % (user, password))
            subprocess.run(["mosquitto_passwd", "-U", pw], check=True, capture_output=True)
            lines += ["allow_anonymous false", "password_file " + pw]
        else:
            lines.append("allow_anonymous true")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self.log = os.path.join(self.dir, "mosquitto.log")

    def start(self, timeout=5):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf, "-v"], stdout=log,
                                         stderr=subprocess.STDOUT)
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start: %s" % open(self.log).read()[-2000:])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


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

    def close(self):
        self._stop = True
        self.future.cancel()
        time.sleep(0.05)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(3)


def topic_is(t, payload=None):
    return lambda m: m[0] == t and (payload is None or m[1] == payload)
