# Heap figures of the firmware for a full session on the simulated board, without the control
# channel and its observation stream (the measuring apparatus of the simulator):
#   micropython [-X heapsize=N] -m boards.sim.heapcheck
#   micropython [-X heapsize=N] -m boards.sim.heapcheck --ocpp URL [--ca FILE]
#                                  [--journal N] [--charge-s S] [--relink] [--verbose]
#   micropython -m boards.sim.heapcheck --limits   (a CT grid meter, a fuse, minpv: the limit
#                                                   loop deciding from grid readings)
#   micropython -m boards.sim.heapcheck --mqtt HOST:PORT   (MQTT to that broker, discovery on,
#                                     measurements every second: tools/bench_mqtt.py)
# Prints one JSON line: code (gc.mem_alloc after every import), peak (live data after a
# collection, sampled every 10 ms through the session), runtime = peak - code, and whether the
# session completed (plug, charge, EV full, unplug, Available).
# With --ocpp the OCPP client runs too (every module imported before "code" is taken, as a
# board with frozen modules would have them in flash): the journal is first filled with one
# finished offline transaction of N messages (Start, N-2 MeterValues, Stop) that goes out at
# boot, the car charges for S seconds while the CSMS (tools/bench_ocpp.py) does what it wants
# (SendLocalList, GetConfiguration, ...), --relink cuts the link once while charging (a new
# TLS handshake), and the run ends when the journal is empty again. With --ota the update
# modules are imported first too, the install's reads sample the heap, and the run ends once
# the update the CSMS asked for has its outcome.
import gc
import json
import sys

from boards.sim import pollfix
from boards.sim.board import SimBoard, heap_sampler
from boards.sim.world import World
from firmware import app as fw_app
from firmware import config
from firmware.meter import Reading

import asyncio  # noqa: E402 (frozen, already loaded)
import time  # noqa: E402


def _opts(argv):
    o = {"--ocpp": None, "--ca": None, "--journal": "0", "--charge-s": "0", "--mqtt": None,
         "--web": None, "--hold-s": "0"}
    k = 1
    while k < len(argv):
        if argv[k] in o and k + 1 < len(argv):
            o[argv[k]] = argv[k + 1]
            k += 2
        else:
            o[argv[k]] = True
            k += 1
    return o


OPTS = _opts(sys.argv)
# Modules the firmware imports on first use: loaded here so that "code" holds them (on a board
# they are frozen into flash); what remains in "runtime" is the firmware's data.
_LAZY = ["drivers.reflex", "random", "errno", "select"]
if OPTS["--ocpp"]:
    from boards.sim import sha1

    sha1.install()  # a measuring build without mbedTLS (tools/bench_ocpp.py, 32-bit)
    _LAZY += ["firmware.ocpp." + m for m in (
        "authlist", "clock", "cp", "journal", "keys", "remote", "rpc", "schema",
        "smart", "smart_store", "txn", "ws", "wsframe")]
    _LAZY += ["boards.sim.net", "firmware.net", "firmware.backoff", "asyncio.stream"]
if OPTS["--mqtt"]:  # the MQTT client, its bridge and the owner model
    _LAZY += ["firmware.mqtt." + m for m in ("conf", "proto", "client", "ha", "bridge")]
    _LAZY += ["firmware.owner", "firmware.owner.model", "firmware.owner.settings",
              "boards.sim.net", "firmware.net", "firmware.backoff", "asyncio.stream",
              "firmware.version"]
if OPTS.get("--ota"):  # an UpdateFirmware comes (tools/bench_ota.py): its modules too
    _LAZY += ["firmware.ota." + m for m in ("updater", "download", "slots", "bundle", "rsa",
                                            "signed", "image", "trial")]
    _LAZY += ["firmware.secext." + m for m in ("events", "seclog")]
if OPTS["--web"]:  # the web interface (docs/api.md): its modules count as code too
    _LAZY += ["microdot", "microdot.microdot", "firmware.owner", "firmware.owner.model",
              "firmware.owner.settings", "firmware.web", "firmware.web.server",
              "firmware.web.api", "firmware.web.auth", "firmware.diag", "asyncio.stream",
              "hashlib", "os"]
for _m in _LAZY:
    try:
        __import__(_m)
    except ImportError:
        pass
journal = sys.modules.get("firmware.ocpp.journal")



def _qstr_pool_ahead():
    """Allocate the interpreter's next qstr pool now, so that it is not counted as runtime.
    The modules loaded above from .mpy put their ~2,500 names in qstr pools on the heap (a
    board has them frozen in flash, in a pool of its own); each new pool is twice the size of
    the last, so the firmware's first name made at runtime could allocate a pool of ~18 KB
    that a board with frozen modules never needs (the 32-bit OCPP + MQTT runtime peak read
    50.9 KB for this, 32.4 KB without). Names are interned (hasattr) until the heap jumps by
    a pool; what that costs is returned and left out of runtime. The firmware's own runtime
    names then fill that pool without their entries counted (~7 B each, a few dozen): their
    text still counts."""
    gc.collect()
    m0 = gc.mem_alloc()
    for k in range(20000):
        a = gc.mem_alloc()
        hasattr(gc, "_qpad%d" % k)  # interns the name
        if gc.mem_alloc() - a > 2048:  # a name's text comes in chunks of ~128 B; a pool
            break
    gc.collect()
    return gc.mem_alloc() - m0


pollfix.reserve()  # as boards/sim/main.py: the unix port's poller (its array is not runtime)
gc.collect()
CODE = gc.mem_alloc()
QSTR_AHEAD = _qstr_pool_ahead()


async def _wait(cond, ms):
    t0 = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            return False
        await asyncio.sleep_ms(5)
    return True


MARKS = {}


def _mark(name):
    gc.collect()
    MARKS[name] = gc.mem_alloc() - CODE - QSTR_AHEAD


def _status(app, status):
    return lambda: app.ctl.session.act.status == status


def _fill_journal(n):
    """One finished offline transaction of n messages, as a long offline session leaves it."""
    j = journal.Journal(max_bytes=1024 * sys.modules["firmware.ocpp.cp"].JOURNAL_KB)
    local = j.next_local_id()
    t = "2026-11-21T10:00:00Z"
    j.push("StartTransaction", {"l": local, "p": {
        "connectorId": 1, "idTag": "OFFLINE1", "meterStart": 0, "timestamp": t}})
    for k in range(n - 2):
        j.push("MeterValues", {"l": local, "p": {"connectorId": 1, "meterValue": [{
            "timestamp": t, "sampledValue": [{
                "value": str(k), "context": "Sample.Periodic", "unit": "Wh",
                "measurand": "Energy.Active.Import.Register"}]}]}}, droppable=True)
    j.push("StopTransaction", {"l": local, "p": {
        "meterStop": n, "timestamp": t, "reason": "Local"}})
    pending = j.pending()
    j.close()
    return pending


async def _grid(board):
    """--limits: a grid meter's reading, every 500 ms: the EV's phase currents plus the
    house's 1.5 kW (as a meter task fills it in place: no allocation)."""
    g = board.grid_reading
    ev = board.meter_reading
    while True:
        for p in range(3):
            i = ev.i_da[p]
            g.i_da[p] = (i if i >= 0 else 0) + 22
            g.v_dv[p] = 2300
        g.p_total_w = (g.i_da[0] + g.i_da[1] + g.i_da[2]) * 23
        g.stamp(time.ticks_ms())
        await asyncio.sleep_ms(500)


class _Sampled:
    """The bundle file during the install, which does not yield to the scheduler: the heap
    is sampled every 4 reads and after the manifest is parsed (tools/bench_ota.py)."""

    def __init__(self, f, peak):
        self.f = f
        self.peak = peak
        self.n = 0

    def _tick(self, force=False):
        self.n += 1
        if force or self.n % 4 == 0:
            gc.collect()
            m = gc.mem_alloc()
            self.peak[0] = max(self.peak[0], m)
            MARKS["install peak"] = max(MARKS.get("install peak", 0), m - CODE - QSTR_AHEAD)

    def read(self, n=-1):
        self._tick()
        return self.f.read(n)

    def readinto(self, b):
        self._tick()
        return self.f.readinto(b)

    def seek(self, *a):
        return self.f.seek(*a)

    def tell(self):
        return self.f.tell()


class _Json:
    """bundle.py's json: the heap sampled right after the manifest is parsed."""

    peak = None

    @staticmethod
    def loads(b):
        r = json.loads(b)
        _Sampled(None, _Json.peak)._tick(force=True)
        return r


def _sample_installs(peak):
    from firmware.ota import bundle, slots

    inner = slots.install
    slots.install = lambda f, *a, **k: inner(_Sampled(f, peak), *a, **k)
    _Json.peak = peak
    bundle.json = _Json


async def _session(app, world, board, peak, seen, charge_s):
    ocpp = OPTS["--ocpp"]
    extra = [("heap", lambda: heap_sampler(peak, 10))]
    if OPTS.get("--limits"):
        extra.append(("grid", lambda: _grid(board)))
    app.start(extra)
    await asyncio.sleep_ms(200)
    if OPTS["--mqtt"]:
        from firmware.mqtt import ha

        m = app.mqtt
        ok = m is not None and await _wait(lambda: m.client.connected and m._disc >= len(
            ha.ENTITIES) and m.client.queued() == 0, 10000)
        seen.append("mqtt connected" if ok else "mqtt not connected")
        await asyncio.sleep_ms(1500)
        _mark("mqtt connected, idle")
    if ocpp:
        ok = await _wait(lambda: app.ocpp.registration == "Accepted", 30000)
        ok = ok and await _wait(lambda: app.ocpp.journal.pending() == 0, 120000)
        seen.append("journal sent" if ok else "journal stuck")
        await asyncio.sleep_ms(300)
        _mark("connected, idle")
    if OPTS["--web"]:
        print("web up")  # the host's clients start now (tools/bench_web.py)
        await asyncio.sleep_ms(int(OPTS["--hold-s"]) * 1000)
        _mark("web, idle")
    world.plug(32)
    ok = await _wait(_status(app, "Charging"), 10000)
    seen.append(app.ctl.session.act.status)
    await asyncio.sleep_ms(300)
    _mark("charging")
    if charge_s:
        t0 = time.ticks_ms()
        relinked = not OPTS.get("--relink")
        while ok and time.ticks_diff(time.ticks_ms(), t0) < charge_s * 1000:
            await asyncio.sleep_ms(100)
            if not relinked and time.ticks_diff(time.ticks_ms(), t0) > charge_s * 500:
                relinked = True
                board.net().set_state("down")
                await asyncio.sleep_ms(300)
                board.net().set_state("up")
        for _ in range(20):  # the world thread may write back an older value: until it sticks
            world.ev.soc_wh = world.ev.capacity_wh - 30
            await asyncio.sleep_ms(50)
            if world.ev.soc_wh >= world.ev.capacity_wh - 40:
                break
    ok = ok and await _wait(_status(app, "SuspendedEV"), 60000)  # battery full: EV opens S2
    seen.append(app.ctl.session.act.status)
    await asyncio.sleep_ms(500)
    world.unplug()
    ok = ok and await _wait(_status(app, "Available"), 3000)
    seen.append(app.ctl.session.act.status)
    if ocpp:
        ok = ok and await _wait(lambda: app.ocpp.journal.pending() == 0, 30000)
        seen.append("journal empty" if ok else "journal stuck")
    if OPTS.get("--ota"):  # the update's outcome (it installs once the transaction ended)
        ok = ok and await _wait(lambda: getattr(app.ocpp.updater, "status", "") in (
            "InstallationFailed", "DownloadFailed", "Installed"), 60000)
        seen.append("update: %s" % app.ocpp.updater.status)
    await asyncio.sleep_ms(200)
    _mark("after the session")
    app.stop()
    await asyncio.sleep_ms(0)
    return ok


def main():
    world = World(lambda kind, fields: None)
    world.ev.capacity_wh = 1000
    world.ev.soc_wh = 970
    charge_s = int(OPTS["--charge-s"])
    if charge_s:
        world.ev.soc_wh = 0
    board = SimBoard(world)
    d = {"rating_a": 32, "max_current_a": 16}
    if OPTS.get("--limits"):  # the limit loop at work: a grid reading, a fuse, minpv
        board.grid_reading = Reading()
        d["limits"] = {"main_fuse_a": 25, "total_a": 60, "mode": "minpv"}
    queued = 0
    if OPTS["--mqtt"]:
        host, port = OPTS["--mqtt"].rsplit(":", 1)
        d["mqtt"] = {"host": host, "port": int(port), "period_s": 1}
    if OPTS["--ocpp"]:
        d["free_vend"] = True
        d["ocpp"] = {"url": OPTS["--ocpp"], "cp_id": "HEAP"}
        if OPTS["--ca"]:
            d["ocpp"]["ca"] = OPTS["--ca"]
        if int(OPTS["--journal"]):
            queued = _fill_journal(int(OPTS["--journal"]))
    if OPTS["--web"]:
        d["web"] = {"host": "127.0.0.1", "port": int(OPTS["--web"])}
    cfg = config.from_dict(d)
    app = fw_app.App(board, cfg=cfg, log=print if OPTS.get("--verbose") else lambda m: None)
    _mark("firmware built")
    peak = [0]
    seen = []
    if OPTS.get("--ota"):
        _sample_installs(peak)
    ok = asyncio.run(_session(app, world, board, peak, seen, charge_s))
    print(json.dumps({"code": CODE, "peak": peak[0], "runtime": peak[0] - CODE - QSTR_AHEAD,
                      "qstr_ahead": QSTR_AHEAD,
                      "completed": ok, "statuses": seen, "energy_wh": world.energy_wh,
                      "journal_at_boot": queued, "marks": MARKS,
                      "kernels": fw_app.diag.kernel_impl()}))


main()
