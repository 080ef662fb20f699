# Runs on the real MicroPython unix port (host_tests/test_ocpp_answers.py starts it): the real
# ChargePoint (observer and sender tasks, rpc, journal, cache, local list, remote handlers)
# with a fake charge controller and board, and a scripted CSMS in the same process that
# answers each CALL of the charge point with what the plan says - the legal but unusual
# answers of real central systems. Prints one line "RESULT <json>": every CALL the CSMS got,
# the answers to the CSMS's own CALLs, the log, set_auth calls and cache lookups.
#
#   micropython ocpp_answers_rig.py PLAN.json WORKDIR
# PLAN: {"keys": {name: value}, "answers": {action: [payload | {"_error": code}, ...]},
#        "steps": [[op, args...], ...], "delay": {action: ms before its answer},
#        "meters": the config's meters section, "board_keys": board.ocpp_keys}
# Answers are used in order, then the default one. Steps (each on the device clock):
#   ["plug"] ["unplug"] ["card", tag] ["sleep", ms] ["until", action, n, timeout_ms]
#   ["booted", timeout_ms] (until the BootNotification is Accepted)
#   ["call", action, payload] ["lookup", "cache"|"list", tag] ["diag"]
#   ["break_peek"] (the journal's next peek raises once)
#   ["reader", fault text or null] (the card reader lost / back: board.cards.fault)
import asyncio
import json
import os
import sys
import time

PLAN_PATH, WORK = sys.argv[1], sys.argv[2]
with open(PLAN_PATH) as f:
    PLAN = json.load(f)
os.chdir(WORK)

from firmware.meter import Reading  # noqa: E402
from firmware.limits.loop import Limits  # noqa: E402
from firmware.ocpp import cp as cpmod  # noqa: E402
from firmware.restart import Restart  # noqa: E402

T0 = 1800000000  # 2027-01-15T08:00:00Z
LOG = []
GOT = []  # [action, payload] of every CALL the CSMS received, in order
REPLIES = []  # [action, result or error] of the CSMS's own CALLs
AUTH = []  # set_auth(on) calls, in order
OUT = {"lookups": [], "diag": []}


def log(m):
    LOG.append(m)


class NS:
    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


class Ctl:
    def __init__(self):
        self.session = NS(act=NS(pilot="A", status="Available", error="NoError", info="",
                                 lock=False, offer_da=0, close=False), halted=False)
        self.inputs = NS(pp_da=0, authorized=False, available=True)
        self._flags = []

    def subscribe(self):
        f = asyncio.ThreadSafeFlag()
        self._flags.append(f)
        return f

    def changed(self):
        for f in self._flags:
            f.set()

    def set_auth(self, on):
        self.inputs.authorized = on
        AUTH.append(on)
        self._update()

    def set_available(self, on):
        self.inputs.available = on

    def set_limit(self, amps, reason):
        pass

    def set_lock_hold(self, on):
        pass

    def fail_safe(self):
        pass

    def _update(self):
        a = self.session.act
        if a.pilot in (None, "A"):
            a.status, a.offer_da, a.close = "Available", 0, False
        elif self.inputs.authorized:
            a.status, a.offer_da, a.close = "Charging", 160, True
        else:
            a.status, a.offer_da, a.close = "Preparing", 0, False
        self.changed()


meter = Reading()  # the EV meter, polled by meter_task() below
meter.energy_wh, meter.p_total_w, meter.i_da[0], meter.v_dv[0], meter.freq_chz = (
    1000, 3680, 160, 2300, 5000)
board = NS(name="rig", meter_reading=meter, wall_s=lambda: T0, reset=lambda: None)
if "board_keys" in PLAN:
    board.ocpp_keys = PLAN["board_keys"]
if PLAN.get("reader"):  # a card reader: the ring its driver feeds (drivers/rfid.py)
    from drivers.rfid import CardReader

    board.cards = CardReader()
cfg = NS(free_vend=False, connector="type2_socket", phases=1, rating_a=16, max_current_a=16,
         meters=PLAN.get("meters"))
ctl = Ctl()


class Csms:
    """The link: frames from the charge point come here; answers go back through
    rpc.received, as the real link's reader would feed them."""

    def __init__(self):
        self.connected = True
        self.up = asyncio.Event()
        self.up.set()
        self.password = None
        self.last_rx_ms = self.last_tx_ms = None
        self.answers = PLAN.get("answers", {})
        self.used = {}
        self.n_tx = 0
        self.waiting = {}  # our CALL id -> action

    url = "rig"  # what ChargePoint.info() reads of its link
    connects = 1
    last_error = None

    async def run(self):
        await asyncio.sleep_ms(3600000)

    async def send(self, text):
        f = json.loads(text)
        if f[0] == 2:
            GOT.append([f[2], f[3]])
            asyncio.create_task(self.answer(f[1], f[2], f[3]))
        elif f[1] in self.waiting:
            act = self.waiting.pop(f[1])
            REPLIES.append([act, f[2] if f[0] == 3 else {"_error": f[2], "_why": f[3]}])

    def default(self, action, p):
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": "2027-01-15T08:00:00Z",
                    "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": "2027-01-15T08:00:00Z"}
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "StartTransaction":
            self.n_tx += 1
            return {"transactionId": 100 + self.n_tx, "idTagInfo": {"status": "Accepted"}}
        return {}

    async def answer(self, mid, action, p):
        await asyncio.sleep_ms(PLAN.get("delay", {}).get(action, 5))
        lst = self.answers.get(action) or []
        i = self.used.get(action, 0)
        self.used[action] = i + 1
        a = lst[i] if i < len(lst) else self.default(action, p)
        if "_error" in a:
            frame = [4, mid, a["_error"], "rig", {}]
        else:
            frame = [3, mid, a]
        cp.rpc.inbox = json.dumps(frame)
        await cp.rpc.received()

    async def call(self, action, payload):
        mid = "csms-%d" % len(REPLIES)
        self.waiting[mid] = action
        cp.rpc.inbox = json.dumps([2, mid, action, payload])
        await cp.rpc.received()


cp = cpmod.ChargePoint(ctl, board, {"url": "ws://rig", "cp_id": "RIG"}, cfg, log,
                       limits=Limits(ctl, cfg.rating_a, log, cfg=cfg, board=board),
                       restart=Restart(board, ctl.fail_safe, log))
for k, v in PLAN.get("keys", {}).items():
    st = cp.keys.change(k, str(v))
    if st != "Accepted":
        raise SystemExit("key %s=%s: %s" % (k, v, st))
csms = Csms()
cp.link = csms
cp.rpc.send = csms.send


def count(action):
    return sum(1 for a, _ in GOT if a == action)


async def step(s):
    op = s[0]
    a = ctl.session.act
    if op == "plug":
        a.pilot = "C"
        ctl.inputs.pp_da = 320
        ctl._update()
    elif op == "unplug":
        a.pilot = "A"
        ctl.inputs.pp_da = 0
        ctl._update()
    elif op == "card":
        cp.tx.card(s[1])
    elif op == "sleep":
        await asyncio.sleep_ms(s[1])
    elif op == "until":
        t0 = time.ticks_ms()
        while count(s[1]) < s[2]:
            if time.ticks_diff(time.ticks_ms(), t0) > s[3]:
                OUT.setdefault("timeouts", []).append(s[1:])
                break
            await asyncio.sleep_ms(20)
    elif op == "booted":  # wait (bounded) for the boot to be accepted, as a user plugs later
        t0 = time.ticks_ms()
        while cp.registration != "Accepted":
            if time.ticks_diff(time.ticks_ms(), t0) > s[1]:
                OUT.setdefault("timeouts", []).append(s)
                break
            await asyncio.sleep_ms(10)
    elif op == "call":
        await csms.call(s[1], s[2])
    elif op == "lookup":
        store = cp.cache if s[1] == "cache" else cp.list
        hit = store.lookup(s[2])
        OUT["lookups"].append([s[1], s[2], None if hit is None else list(hit)])
    elif op == "diag":
        cp.diag(OUT["diag"].append)
    elif op == "break_peek":  # the journal's next read fails once (an unreadable record)
        real = cp.journal.peek

        def peek():
            cp.journal.peek = real
            raise ValueError("rig: unreadable record")

        cp.journal.peek = peek
    elif op == "reader":  # what firmware/rfid.py does when the chip stops/starts answering
        board.cards.fault = s[1]
    else:
        raise SystemExit("unknown step %r" % (op,))


async def meter_task():
    while True:
        meter.stamp(time.ticks_ms())
        await asyncio.sleep_ms(100)


async def main():
    tasks = [asyncio.create_task(cp.run()), asyncio.create_task(cp.send_loop()),
             asyncio.create_task(meter_task())]
    await asyncio.sleep_ms(50)
    for s in PLAN.get("steps", []):
        await step(s)
    await asyncio.sleep_ms(PLAN.get("settle_ms", 300))
    for t in tasks:
        t.cancel()


asyncio.run(main())
OUT.update({"got": GOT, "replies": REPLIES, "log": LOG, "auth": AUTH,
            "journal": cp.journal.pending(), "faults": getattr(cp, "faults", None),
            "open": cp.tx.open is not None, "tx_id": cp.tx.csms_id(),
            "parent": cp.tx.open and cp.tx.open.get("parent"),
            "status": cp.st.status(1)})
print("RESULT " + json.dumps(OUT))
