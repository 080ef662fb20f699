# Loopback control channel of the simulated wallbox (docs/sim.md). A test connects to
# 127.0.0.1:<port>, sends commands as JSON lines and receives observations as JSON lines,
# each stamped with "t": monotonic milliseconds (microsecond resolution) since start.
import asyncio
import hashlib
from array import array
import json
import random
import time

import _thread

from firmware import diag

_MAX_QUEUE = 20000  # observations kept while nobody reads; the oldest are dropped


class Control:
    def __init__(self, world, port):
        self.world = world
        self.port = port
        self.app = None
        self.q = []
        self.dropped = 0
        self.quit = asyncio.ThreadSafeFlag()  # set from any thread (watchdog reset)
        self._flag = asyncio.ThreadSafeFlag()
        self._lock = _thread.allocate_lock()  # observations come from the clock thread too
        self._client = False
        self.blocked_ms = 0  # interpreter time spent in `block` (tests, bench)
        self._crash_probe = False
        self._limit = None  # the limit loop's last observed decision, phases and inputs
        self._phases = None
        self._inputs = None
        self._stale = 0
        self._rnd16 = None  # the limit loop's own random draw while `random` fixes it

    # -- observations ----------------------------------------------------------------------
    def observe(self, kind, fields, age_ms=0):
        """Queue an observation stamped now, or age_ms before now."""
        with self._lock:
            fields["t"] = self.world.now_us() / 1000 - age_ms
            fields["k"] = kind
            if len(self.q) >= _MAX_QUEUE:
                self.q.pop(0)
                self.dropped += 1
            self.q.append(json.dumps(fields))
        self._flag.set()

    async def publish(self):
        """A reader of the controller's published state, as OCPP will be: wait on its
        flag, then report the new state and the events since the cursor."""
        ctl = self.app.ctl
        flag = ctl.subscribe()
        seen = -1
        cursor = 0
        while True:
            if ctl.version != seen:
                seen = ctl.version
                a = ctl.session.act
                self.observe("state", {
                    "status": a.status, "error": a.error, "info": a.info, "pilot": a.pilot,
                    "offer_da": a.offer_da, "reason": a.reason,
                })
            lim = getattr(self.app, "limits", None)
            if lim is not None:
                self._limit_obs(lim)
            events, lost, cursor = self.app.events.since(cursor)
            for t, code, val in events:
                self.observe("event", {"code": code, "val": val, "at_ms": t})
            if lost:
                self.observe("event", {"code": "lost", "val": lost})
            try:  # events without a state change (rcm test, trip) are picked up in 20 ms
                await asyncio.wait_for_ms(flag.wait(), 20)
            except asyncio.TimeoutError:
                pass

    def _limit_obs(self, lim):
        """`limit` on every change of the limit loop's decision (a, phases, reason; polled
        with the state every 20 ms; `at` is the decision's own time) and `inputs` on
        every change of the limit each input set in the last decision, or of the inputs
        whose fallback binds (firmware/limits/arbiter.py slots). Nothing is built while
        nothing changed (it runs every 20 ms in the firmware's heap)."""
        d = lim.applied
        if d is None:
            return
        arb = lim.arb
        ph = arb.phases
        now = time.ticks_ms()
        if d is not self._limit or ph != self._phases:  # a new decision is a new tuple
            self._limit = d
            self._phases = ph
            h = lim.history  # (ticks, amps, reason) of each decision: stamped when it was made
            age = time.ticks_diff(now, h[-1][0]) if h and h[-1][1:] == d[:2] else 0
            # stamped now (the log's t only goes forward); `at`: when it was decided
            self.observe("limit", {"a": d[0], "phases": ph, "reason": d[1], "bound": d[2],
                                   "at": self.world.now_us() / 1000 - max(age, 0)})
        eff = arb.eff
        seen = self._inputs
        n = len(eff)
        changed = seen is None or len(seen) != n
        mask = 0
        for k in range(n):
            if arb.stale(k, now):
                mask |= 1 << k
            if not changed and seen[k] != eff[k]:
                changed = True
        if changed or mask != self._stale:
            self._inputs = array("i", eff)
            self._stale = mask
            from firmware.limits.arbiter import NAMES, NONE

            self.observe("inputs", {
                "limits": {NAMES[k]: v / 10 for k, v in enumerate(eff) if v != NONE},
                "stale": [NAMES[k] for k in range(n) if mask >> k & 1]})

    async def probe(self):
        """A non-safety task that a test can make crash (do crash task=probe)."""
        while True:
            if self._crash_probe:
                why, self._crash_probe = self._crash_probe, False
                if why == "memory":  # as gc finding no block for an allocation
                    raise MemoryError("probe out of memory on request")
                raise ValueError("probe crashed on request")
            await asyncio.sleep_ms(20)

    def tasks(self):
        return [("control", self.publish), ("probe", self.probe)]

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

    def _later(self, c, name, arg):
        """delay_ms: the world makes the change from its clock thread, so it happens even
        while the interpreter is blocked. True if scheduled."""
        d = c.get("delay_ms")
        if d is None:
            return False
        self.world.later(int(d), name, arg)
        return True

    def do_cable(self, c):
        """Change only the PP resistance (ohms; null = cable gone), EV state unchanged."""
        w = self.world
        w.cable_ohms = c.get("ohms")
        w.obs("ev", {"what": "cable", "cable_ohms": w.cable_ohms})

    def do_unplug(self, c):
        ev_only = bool(c.get("ev_only", False))
        if not self._later(c, "unplug", ev_only):
            self.world.unplug(ev_only)

    def do_s2(self, c):
        if not self._later(c, "s2", bool(c["closed"])):
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

    def do_card(self, c):
        """A card at the reader (OCPP idTag, 1..20 characters)."""
        uid = c["uid"]
        if type(uid) is not str or not 0 < len(uid) <= 20:
            raise ValueError("card uid must be 1..20 characters")
        cards = getattr(self.app.board, "cards", None)
        if cards is None:
            raise ValueError("this board has no card reader")
        cards.present(uid)

    def do_powercut(self, c):
        """Power cut now or after delay_ms (from the clock thread: exact even when blocked)."""
        if not self._later(c, "powercut", None):
            self.world.power_cut()

    def do_fault(self, c):
        on = c.get("on", True)
        if c["name"] not in self.world.faults:
            self.world.set_fault(c["name"], on)  # raises: names the known faults
        if not self._later(c, "fault", (c["name"], on)):
            self.world.set_fault(c["name"], on)

    def do_block(self, c):
        """Block the interpreter in C (hashing, no await) for ms, once or, with every_ms,
        again and again at random moments: what a TLS handshake or a flash erase does."""
        ms = int(c["ms"])
        if not 0 < ms <= 10000:
            raise ValueError("block ms must be 1..10000")
        every = c.get("every_ms")
        asyncio.create_task(self._blocker(ms, every, c.get("seed", 1)))

    async def _blocker(self, ms, every, seed):
        buf = bytes(65536)
        rnd = random.Random(seed) if hasattr(random, "Random") else None
        if rnd is None:
            random.seed(seed)
        while True:
            if every:
                r = rnd.random() if rnd else random.random()
                await asyncio.sleep_ms(int(every * (0.5 + r)))
            self.observe("block", {"ms": ms, "on": True})
            t0 = time.ticks_ms()
            h = hashlib.sha256()
            while time.ticks_diff(time.ticks_ms(), t0) < ms:
                h.update(buf)  # ~0.3 ms in C per call, never an await
            self.blocked_ms += time.ticks_diff(time.ticks_ms(), t0)
            self.observe("block", {"ms": ms, "on": False})
            if not every:
                return

    def do_reflex(self, c):
        """Switch the reflex's driver off (a board without one, as a stock ESP32) or on."""
        b = self.app.board
        b.reflex = self.app.ctl.reflex if c["on"] else None

    def do_stats(self, c):
        """Loop lag of the charge controller and the reflex's counters."""
        ctl = self.app.ctl
        p50, p99, mx = ctl.lag_stats()
        rf = ctl.reflex
        self.observe("stats", {
            "lag_p50": p50, "lag_p99": p99, "lag_max": mx, "steps": ctl.steps,
            "reflex_runs": rf.runs if rf else 0, "reflex_fired": rf.fired if rf else 0,
            "blocked_ms": self.blocked_ms, "clock_errors": self.app.board.clock_errors,
            "restarts": {t.name: t.restarts for t in self.app.sup.tasks},
        })

    # Through the controller's validated inputs, as OCPP and the limit loop will.
    def do_auth(self, c):
        self.app.ctl.set_auth(c["on"])

    def do_available(self, c):
        self.app.ctl.set_available(c["on"])

    def do_limit(self, c):
        self.app.ctl.set_limit(c["a"], c.get("reason", "test limit"))

    def do_cap(self, c):
        self.app.ctl.set_cap(c["a"])

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
        """Make a task die: the charge controller (a driver raising: the safety path fails)
        or, with task "probe", a non-safety task (restarted and reported); with "memory":
        true the probe dies of MemoryError."""
        task = c.get("task", "charge")
        if task == "charge":
            self.app.board.pilot._burst = None
        elif task == "probe":
            self._crash_probe = "memory" if c.get("memory") is True else True
        else:
            raise ValueError("crash task must be charge or probe")

    def do_net(self, c):
        """Cut ("down": every connection closed at once) or restore ("up") the simulated
        link (boards/sim/net.py)."""
        state = c["state"]
        if state not in ("up", "down"):
            raise ValueError("net state must be up or down, got %r" % (state,))
        self.app.board.net().set_state(state)
        self.observe("net", {"state": state})

    def do_grid(self, c):
        """The grid model (boards/sim/grid.py): house load per phase, PV, frequency, the DSO
        signal, the grid meter answering or not."""
        self.world.set_grid(c)

    def do_random(self, c):
        """Fix the limit loop's random draws (0..65535; the UK randomised delay is that
        share of random_delay_s) so that a test knows the delay; v null: random again."""
        from firmware.limits import loop

        v = c.get("v")
        if self._rnd16 is None:
            self._rnd16 = loop._rnd16
        if v is None:
            loop._rnd16 = self._rnd16
            return
        if type(v) is not int or not 0 <= v <= 0xFFFF:
            raise ValueError("random v must be 0..65535 or null, got %r" % (v,))
        loop._rnd16 = lambda: v

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
            with self._lock:  # the clock thread appends too
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
