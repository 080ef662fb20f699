# Loopback control channel of the simulated wallbox (docs/sim.md). A test connects to
# 127.0.0.1:<port>, sends commands as JSON lines and receives observations as JSON lines,
# each stamped with "t": monotonic milliseconds (microsecond resolution) since start.
import asyncio
import json

from firmware import diag

_MAX_QUEUE = 20000  # observations kept while nobody reads; the oldest are dropped


class Control:
    def __init__(self, world, port):
        self.world = world
        self.port = port
        self.app = None
        self.q = []
        self.dropped = 0
        self.quit = asyncio.Event()
        self._flag = asyncio.ThreadSafeFlag()
        self._client = False

    # -- observations ----------------------------------------------------------------------
    def observe(self, kind, fields):
        fields["t"] = self.world.now_us() / 1000
        fields["k"] = kind
        if len(self.q) >= _MAX_QUEUE:
            self.q.pop(0)
            self.dropped += 1
        self.q.append(json.dumps(fields))
        self._flag.set()

    def on_change(self, a):
        """Charge-controller hook: what a user would see changed."""
        self.observe("state", {
            "status": a.status, "error": a.error, "info": a.info, "pilot": a.pilot,
            "offer_da": a.offer_da, "reason": a.reason,
        })

    def on_event(self, t, code, val):
        self.observe("event", {"code": code, "val": val})

    # -- commands --------------------------------------------------------------------------
    def handle(self, line):
        try:
            cmd = json.loads(line)
        except ValueError:
            return self.observe("error", {"msg": "command is not JSON: %r" % line[:80]})
        if type(cmd) is not dict or type(cmd.get("do")) is not str:
            return self.observe("error", {"msg": "command needs a \"do\" string: %r" % line[:80]})
        fn = getattr(self, "do_" + cmd["do"], None)
        if fn is None:
            return self.observe("error", {"msg": "unknown command %r" % cmd["do"]})
        try:
            fn(cmd)
        except (KeyError, ValueError, TypeError) as e:
            return self.observe("error", {"msg": "%s: %r" % (cmd["do"], e)})
        self.observe("ack", {"do": cmd["do"], "id": cmd.get("id")})

    def do_plug(self, c):
        self.world.plug(c.get("cable_a", 32))

    def do_cable(self, c):
        """Change only the PP resistance (ohms; null = cable gone), EV state unchanged."""
        w = self.world
        w.cable_ohms = c.get("ohms")
        w.obs("ev", {"what": "cable", "cable_ohms": w.cable_ohms})

    def do_unplug(self, c):
        self.world.unplug()

    def do_s2(self, c):
        self.world.set_s2(bool(c["closed"]))

    def do_ev(self, c):
        ev = self.world.ev
        for key, attr, scale in _EV_KEYS:
            if key in c:
                v = c[key]
                if type(v) not in (int, float, bool):
                    raise ValueError("ev %s must be a number or bool" % key)
                setattr(ev, attr, type(getattr(ev, attr))(v * scale))
        if "soc_pct" in c:
            ev.soc_wh = ev.capacity_wh * c["soc_pct"] / 100
        self.world.obs("ev", {"what": "params", "max_da": ev.max_da, "vent": ev.vent})

    def do_fault(self, c):
        self.world.set_fault(c["name"], c.get("on", True))

    def _inputs(self):
        return self.app.ctl.inputs

    def do_auth(self, c):
        self._inputs().authorized = bool(c["on"])

    def do_available(self, c):
        self._inputs().available = bool(c["on"])

    def do_limit(self, c):
        i = self._inputs()
        i.limit_da = int(c["a"] * 10)
        i.limit_reason = c.get("reason", "test limit")

    def do_cap(self, c):
        self._inputs().cap_da = int(c["a"] * 10)

    def do_diag(self, c):
        lines = []
        what = c.get("what", "status")
        if what not in ("status", "why", "events"):
            raise ValueError("diag what must be status, why or events")
        getattr(diag, what)(out=lines.append)
        self.observe("diag", {"what": what, "lines": lines})

    def do_clear_lockout(self, c):
        diag.clear_lockout(out=lambda s: None)

    def do_crash(self, c):
        """Make the charge-controller task die (a driver raising), to test the supervisor."""
        self.app.board.pilot._burst = None

    def do_quit(self, c):
        self.quit.set()

    def do_ping(self, c):
        pass

    # -- the socket ------------------------------------------------------------------------
    async def serve(self):
        return await asyncio.start_server(self._serve_client, "127.0.0.1", self.port)

    async def _serve_client(self, reader, writer):
        if self._client:
            writer.close()
            return
        self._client = True
        pump = asyncio.create_task(self._pump(writer))
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                line = line.decode().strip()
                if line:
                    self.handle(line)
        finally:
            self.quit.set()
            await asyncio.sleep_ms(20)
            pump.cancel()

    async def _pump(self, writer):
        while True:
            if not self.q:
                await self._flag.wait()
            q, self.q = self.q, []
            writer.write(("\n".join(q) + "\n").encode())
            await writer.drain()

    async def flush(self):
        for _ in range(100):
            if not self.q:
                return
            await asyncio.sleep_ms(10)


# command key, Ev attribute, scale
_EV_KEYS = (
    ("max_current_a", "max_da", 10),
    ("reaction_ms", "reaction_ms", 1),
    ("ready_ms", "ready_ms", 1),
    ("stop_ms", "stop_ms", 1),
    ("capacity_wh", "capacity_wh", 1),
    ("phases", "phases", 1),
    ("vent", "vent", 1),
    ("auto", "auto", 1),
)
