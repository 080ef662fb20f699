# MQTT for the owner (docs/mqtt.md): publishes the owner model's status (firmware/owner) on
# <prefix>/<name> topics, retained, and takes settings commands on <prefix>/<name>/set and
# <prefix>/set (a JSON object, as POST /api/settings) through the owner model's checks: a
# refused command is published on <prefix>/error and logged, and changes nothing. Home
# Assistant discovery (firmware/mqtt/ha.py) goes out after every connection and whenever
# Home Assistant announces itself (<discovery_prefix>/status "online"), one message at a
# time so that only one payload is held. Reads the owner model only; never the controller.
import asyncio
import json


from firmware.mqtt import ha
from firmware.mqtt.client import Client
from firmware.ticks import ticks_diff, ticks_ms

_TICK_MS = const(1000)  # state is checked this often (and on every applied change)
_MAX_CMD = const(512)  # bytes of a command payload
# state topics that follow at once; the others (measurements) at most every period_s
FAST = ("status", "pilot", "offer_a", "offer_reason", "mode", "current_a", "enable")
_SET = {"mode": "mode", "current_a": "current_a", "enable": "enable"}  # <name>/set -> setting


def _num(v, scale=1, nd=1):
    if v is None:
        return "None"  # Home Assistant's "unknown" (its MQTT PAYLOAD_NONE)
    v = v / scale
    return ("%." + str(nd) + "f") % v if nd else str(int(v))


def values(st, max_a):
    """{topic name: payload text} from an owner status dict."""
    cur = st.get("current_a") or (None, None, None)
    own = st.get("current_set_a")
    wh = st.get("energy_wh")
    swh = st.get("session_wh")
    return {
        "status": str(st.get("status")),
        "pilot": str(st.get("state")),  # IEC 61851 A..F: what energy managers read
        "power_w": _num(st.get("power_w"), 1, 0),
        "current_l1_a": _num(cur[0]),
        "current_l2_a": _num(cur[1]),
        "current_l3_a": _num(cur[2]),
        "offer_a": _num(st.get("offer_a")),
        "offer_reason": str(st.get("limit_why") or st.get("reason") or ""),
        "session_energy_kwh": _num(swh, 1000, 3),
        "energy_kwh": _num(wh, 1000, 3),
        "mode": str(st.get("mode")),
        # no own limit: the installer's is the one in force
        "current_a": str(own if own is not None else max_a),
        "enable": "ON" if st.get("enable", True) else "OFF",
    }


def command(name, text):
    """{setting: value} from a command on <prefix>/<name>/set (name "" : <prefix>/set);
    ValueError naming what is wrong."""
    if name == "":
        try:
            d = json.loads(text)
        except ValueError:
            raise ValueError("set: not a JSON object: %r" % (text[:40],))
        if type(d) is not dict:
            raise ValueError("set: not a JSON object: %r" % (text[:40],))
        return d
    key = _SET.get(name)
    if key is None:
        raise ValueError("%s/set: unknown command (mode, current_a, enable)" % (name,))
    t = text.strip()
    if key == "enable":
        if t.upper() in ("ON", "TRUE", "1"):
            return {key: True}
        if t.upper() in ("OFF", "FALSE", "0"):
            return {key: False}
        raise ValueError("enable/set: %r refused: allowed ON or OFF" % (t[:20],))
    if key == "current_a":
        try:
            f = float(t)
        except ValueError:
            raise ValueError("current_a/set: %r refused: not a number of amps" % (t[:20],))
        if f != int(f):
            raise ValueError("current_a/set: %r refused: whole amps only" % (t[:20],))
        return {key: int(f)}
    return {key: t}


class Bridge:
    def __init__(self, s, owner, max_a, device, log=print, net=None, ssl=None):
        self.s = s
        self.owner = owner
        self.max_a = max_a
        self.device = device
        self.log = log
        p = self.prefix = s["prefix"]
        self.avail = p + "/availability"
        subs = [(p + "/+/set", 1), (p + "/set", 1)]
        if s["discovery"]:
            subs.append((s["discovery_prefix"] + "/status", 0))
        self.client = Client(s["host"], s["port"], "wallbox-" + s["node_id"], s["keepalive_s"],
                             s["user"], s["password"], (self.avail, "offline", True), subs,
                             self._message, self._connected, net, ssl, log=log)
        self.sent = {}  # topic name -> payload last queued on this connection
        self._disc = len(ha.ENTITIES)  # next discovery entity to send
        self._measured = None
        self.refused = 0
        self.last_error = None

    # -- tasks -----------------------------------------------------------------------------------
    def tasks(self):
        return (("mqtt", self.client.run), ("mqtt state", self.run))

    async def run(self):
        period = self.s["period_s"] * 1000
        while True:
            c = self.client
            if c.connected:
                if self._disc < len(ha.ENTITIES) and c.queued() == 0:
                    self._discovery_one()
                now = ticks_ms()
                full = self._measured is None or ticks_diff(now, self._measured) >= period
                if full:
                    self._measured = now
                self.publish_state(full)
            await asyncio.sleep_ms(_TICK_MS if self._disc >= len(ha.ENTITIES) else 50)

    def publish_state(self, measurements=True):
        """Queue the state topics whose payload changed (FAST ones always, the others when
        `measurements`)."""
        st = self.owner.status()
        for name, text in values(st, self.max_a).items():
            if self.sent.get(name) == text or (not measurements and name not in FAST):
                continue
            self.sent[name] = text
            self.client.publish(self.prefix + "/" + name, text, True)
        v = st.get("version")
        if v != self.sent.get("version"):  # the owner's settings changed (or a new link)
            self.sent["version"] = v
            try:
                text = json.dumps(self.owner.settings())
            except ValueError as e:  # config.json unreadable: the console says how to fix
                self.log("mqtt: settings not published: %s" % e)
                return
            self.client.publish(self.prefix + "/settings", text, True)

    def _discovery_one(self):
        i = self._disc
        self._disc = i + 1
        s = self.s
        self.client.publish(ha.topic(s["discovery_prefix"], s["node_id"], i),
                            ha.config(i, self.prefix, s["node_id"], self.max_a, self.device),
                            True)

    # -- client callbacks ------------------------------------------------------------------------
    def _connected(self):
        self.sent = {}  # republish everything: the broker may have lost its retained store
        self._measured = None  # measurements too, at once
        self.client.publish(self.avail, "online", True)
        if self.s["discovery"]:
            self._disc = 0

    def _message(self, topic, payload, retained):
        s = self.s
        if s["discovery"] and topic == s["discovery_prefix"] + "/status":
            if bytes(payload) == b"online":  # Home Assistant (re)started: tell it again
                self._disc = 0
                self.sent = {}
                self._measured = None
            return
        p = self.prefix + "/"
        if not topic.startswith(p) or not topic.endswith("set"):
            return
        name = topic[len(p):-3].rstrip("/")
        if not payload:
            return  # an empty message clears a retained one: nothing to apply
        try:
            # A retained command comes again from the broker's store at every subscription:
            # applied then, it would undo every later change after each reconnect.
            if retained:
                raise ValueError("%s: a retained command is not applied (publish commands "
                                 "without retain; clear it with an empty retained message)"
                                 % topic)
            if len(payload) > _MAX_CMD:
                raise ValueError("%s: payload over %d bytes" % (topic, _MAX_CMD))
            try:
                text = str(payload, "utf-8")
            except UnicodeError:
                raise ValueError("%s: payload not UTF-8 text" % topic)
            changes = command(name, text)
            self.owner.apply(changes)
        except ValueError as e:  # SettingsError is one: its text names every refused setting
            self.refused += 1
            self.last_error = str(e)
            self.log("mqtt: command refused: %s" % e)
            self.client.publish(p + "error", json.dumps({"topic": topic, "error": str(e)}))
            return
        self.publish_state(False)  # the new setting and offer without waiting a tick

    def info(self):
        d = self.client.info()
        d["refused"] = self.refused
        d["last_refused"] = self.last_error
        return d

    def diag(self, out):
        c = self.client
        out("mqtt       %s:%d %s  connects %d  sent %d  received %d  queued %d  dropped %d" % (
            c.host, c.port, "connected" if c.connected else "down", c.connects, c.sent,
            c.received, c.queued(), c.dropped))
        if c.last_error:
            out("mqtt       last error: %s" % c.last_error)
        if self.last_error:
            out("mqtt       %d commands refused, last: %s" % (self.refused, self.last_error))
