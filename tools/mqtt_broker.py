"""Debian's mosquitto on 127.0.0.1 with a generated config, for the MQTT tests
(host_tests/mqttrig.py) and tools/bench_mqtt.py.

    b = Broker(workdir).start(); ... b.stop(); b.start()  # same port: a broker restart
"""
import os
import shutil
import socket
import subprocess
import time

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


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
