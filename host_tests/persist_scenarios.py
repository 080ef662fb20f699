# Power-cut scenarios for every persistent file of the firmware (docs/safety.md, "Files on
# flash"), on host_tests/flashsim.py. Runs on CPython (host_tests/test_persist_cuts.py) and on
# the MicroPython unix port (host_tests/mpy/check_persist_cuts.py).
#
# A scenario: setup() writes the old value (then synced), save() writes the new one, boot()
# reads what a booting firmware reads, through the store's own load path. run() cuts power at
# every step of save() (and after it returned), boots the flash as each MODE leaves it, with
# and without FAT rename semantics, and checks: boot raises nothing, finds the old or the new
# value (never nothing, never garbage), the new one once save() returned, and the same again
# on a second boot.
from firmware import config, persist, timekeep
from firmware.meters import energy
from firmware.ocpp import (authlist, cp, journal, keys, remote, security, smart, smart_store,
                           txn, ws)
from flashsim import MODES, Cut, SimFlash, on

MODULES = (persist, config, energy, authlist, cp, journal, keys, security, smart_store, txn)
T0 = 1767225600  # 2026-01-01


def _lockout(old, new):
    def setup():
        persist.save_flag("lockout", old)

    def save():
        persist.save_flag("lockout", new)

    def boot():  # firmware.app reads it so, with False where this says None (no file)
        return persist.load_flag("lockout", None, True)
    return setup, save, boot


def _config(old, new):
    def text(a):
        return '{"rating_a": 32, "max_current_a": %d, "free_vend": true}' % a

    def setup():
        persist.write_atomic("config.json", text(old), "w")

    def save():  # what tools/deploy.py does on the device, with the same steps
        persist.write_atomic("config.json", text(new), "w")

    def boot():
        c = config.load("config.json")
        return ("errors", c.errors) if c.errors else c.max_current_a
    return setup, save, boot


def _keys(old, new):
    def setup():
        keys.Keys("ocpp_keys.json").change("HeartbeatInterval", str(old))

    def save():
        keys.Keys("ocpp_keys.json").change("HeartbeatInterval", str(new))

    def boot():
        k = keys.Keys("ocpp_keys.json")
        return ("errors", k.errors) if k.errors else k.get("HeartbeatInterval")
    return setup, save, boot


def _entries(n, status):
    return [("TAG%02d" % i, (status, None, None)) for i in range(n)]


def _local_list():
    def setup():
        assert authlist.LocalList("ocpp_list.bin").update(1, _entries(5, "Accepted"),
                                                          True) == "Accepted"

    def save():
        assert authlist.LocalList("ocpp_list.bin").update(2, _entries(7, "Blocked"),
                                                          True) == "Accepted"

    def boot():
        ll = authlist.LocalList("ocpp_list.bin")
        if ll.errors:
            return ("errors", ll.errors)
        return ll.version, len(ll), ll.lookup("TAG03")
    return setup, save, boot


def _cache():
    def setup():
        authlist.AuthCache("ocpp_cache.bin").put("CARD1", "Accepted", None, None, T0)

    def save():
        authlist.AuthCache("ocpp_cache.bin").put("CARD1", "Blocked", None, "GROUP", T0 + 9)

    def boot():
        c = authlist.AuthCache("ocpp_cache.bin")
        return ("errors", c.errors) if c.errors else c.lookup("CARD1")
    return setup, save, boot


def _profile(limit):
    return {"chargingProfileId": 7, "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2026-01-01T00:00:00Z",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}


def _profiles():
    def setup():
        smart.Profiles("ocpp_profiles.json").set(1, _profile(16))

    def save():
        smart.Profiles("ocpp_profiles.json").set(1, _profile(10))

    def boot():
        ps = smart.Profiles("ocpp_profiles.json")
        if ps.errors:
            return ("errors", ps.errors)
        return ps.limit(T0 + 60)[0] if len(ps) else None
    return setup, save, boot


class _Cp:
    def __init__(self):
        self.available = [True, True]
        self.pending_avail = None

    def log(self, msg):
        pass

    say = log  # ChargePoint.say: the "ocpp: " lines

    def now_s(self):
        return T0 + 5

    def stamp(self):
        return T0 + 5


def _availability():
    def setup():
        c = _Cp()
        c.available = [False, True]
        remote.save_state(c)

    def save():
        c = _Cp()
        c.available = [True, False]
        remote.save_state(c)

    def boot():
        c = _Cp()
        remote.load_state(c)
        return c.available
    return setup, save, boot


class _Energy:
    def __init__(self, wh):
        self.wh = wh


class _Tx:
    def __init__(self, wh):
        self.cp = _Cp()
        self.open = {"l": -3, "tag": "CARD1", "start_s": T0, "data": []}
        self.e = _Energy(wh)  # report.TxEnergy's register


def _open_tx():
    def setup():
        txn.Transactions._save(_Tx(1200))

    def save():
        txn.Transactions._save(_Tx(1234))

    def boot():
        try:  # what txn's recovery reads of ocpp_tx.json
            d = persist.load_json(txn.TX_FILE)
        except (OSError, ValueError):
            d = None
        return d.get("wh") if type(d) is dict else None
    return setup, save, boot


def _energy():
    def setup():
        e = energy.EnergyStore("energy_ev")
        e.set(1000, 0)
        e.flush()

    def save():
        e = energy.EnergyStore("energy_ev")
        e.add(12)  # one step (10 Wh) gathered: written

    def boot():
        e = energy.EnergyStore("energy_ev")
        return e.wh if e.loaded else None
    return setup, save, boot


def _mv(i):
    return {"l": -1, "p": {"connectorId": 1, "meterValue": [{
        "timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": str(1000 + i)}]}]}}


def _journal(compact):
    max_bytes = 800 if compact else 65536  # 800: the push of the Stop compacts first

    def setup():
        j = journal.Journal("ocpp.jnl")
        j.push("StartTransaction", {"l": -1, "p": {"connectorId": 1, "idTag": "AB"}})
        for i in range(4):
            j.push("MeterValues", _mv(i), droppable=True)
        for i in range(3):
            j.ack(j.peek()[0])
        j.close()

    def save():
        j = journal.Journal("ocpp.jnl", max_bytes)
        j.push("StopTransaction", {"l": -1, "p": {"meterStop": 1234}})
        assert j.stats()["compactions"] == (1 if compact else 0)
        j.close()

    def boot():
        j = journal.Journal("ocpp.jnl", max_bytes)
        r = j.peek()
        got = j.pending(), r and r[1], j.open_locals()
        j.close()
        return got
    return setup, save, boot


def _clock():
    # clock.json: one save per boot (the new boot's entry); the offset of boot 1 must stay
    def setup():
        timekeep.TimeKeeper(log=lambda m: None, now_ms=0).set(T0 + 86400, "csms", 5000)

    def save():
        timekeep.TimeKeeper(log=lambda m: None, now_ms=0)

    def boot():
        d = timekeep.load_state()
        return d if d is None or d is False else (d[0], [e[:2] for e in d[1]])
    return setup, save, boot


_KEY1, _KEY2 = "646b327130726675327130662d326630726467", "30313233343536373839616263646566"


def _security(step):
    """security.py's two files (ocpp_security.json, then ocpp_keys.json): "key" a new
    AuthorizationKey accepted (the old one kept pending), "fallback" the CSMS refused it and
    the previous one connected, "profile" a refused SecurityProfile switch falls back."""
    def sec():
        return security.Security({"url": "ws://h/o", "cp_id": "CP1"},
                                 keys.Keys("ocpp_keys.json"), lambda m: None)

    def setup():
        s = sec()
        s.keys.change("AuthorizationKey", _KEY1)
        if step == "fallback":
            s.change("AuthorizationKey", _KEY2)
        if step == "profile":
            s.change("SecurityProfile", "1")

    def save():
        s = sec()
        if step == "key":
            s.change("AuthorizationKey", _KEY2)
        elif step == "fallback":
            s.refused(ws.WsRefused("HTTP 401", 401))
            s.connected()
        else:
            s.refused(ws.WsRefused("HTTP 401", 401))

    def boot():
        s = sec()
        return s.profile() if step == "profile" else s.password()
    return setup, save, boot


def _restart():
    def setup():
        pass

    def save():
        persist.mark_restart("ocpp-soft")

    def boot():
        return persist.take_restart()
    return setup, save, boot


# name, (setup, save, boot), old value, new value (as boot returns them)
SCENARIOS = [
    ("lockout set", _lockout(False, True), False, True),
    ("lockout cleared", _lockout(True, False), True, False),
    ("config", _config(16, 20), 16, 20),
    ("keys", _keys(120, 60), 120, 60),
    ("local list", _local_list(), (1, 5, ("Accepted", None, None)),
     (2, 7, ("Blocked", None, None))),
    ("cache", _cache(), ("Accepted", None, None), ("Blocked", None, "GROUP")),
    ("profiles", _profiles(), 16, 10),
    ("availability", _availability(), [False, True], [True, False]),
    ("open transaction", _open_tx(), 1200, 1234),
    ("energy register", _energy(), 1000, 1012),
    ("journal", _journal(False), (2, "MeterValues", [-1]), (3, "MeterValues", [])),
    ("journal compaction", _journal(True), (2, "MeterValues", [-1]),
     (3, "MeterValues", [])),
    ("restart marker", _restart(), None, "ocpp-soft"),
    ("clock", _clock(), (T0 + 86400, [[1, T0 + 86395]]),
     (T0 + 86400, [[1, T0 + 86395], [2, None]])),
    ("AuthorizationKey change", _security("key"), b"dk2q0rfu2q0f-2f0rdg", b"0123456789abcdef"),
    ("AuthorizationKey fallback", _security("fallback"), b"0123456789abcdef",
     b"dk2q0rfu2q0f-2f0rdg"),
    ("SecurityProfile fallback", _security("profile"), 1, 0),
]


EMPTY = "the value boot() finds on an empty flash"


def _nothing():
    pass


# The same saves on a flash where the store has never been written (its first save).
# old: what boots from an empty flash; new: what boots after the save ran whole.
SCENARIOS += [(s[0] + " (first save)", (_nothing, s[1][1], s[1][2]), EMPTY, EMPTY)
              for s in SCENARIOS
              if s[0] not in ("restart marker", "journal compaction", "lockout cleared",
                              "AuthorizationKey fallback", "SecurityProfile fallback")]


def base_flash(setup):
    f = SimFlash()
    with on(f, MODULES):
        setup()
    f.sync()
    return f


def count_steps(base, save):
    f = base.boot("eager")
    with on(f, MODULES):
        save()
    return f.steps


def run(scenario, fats=(False, True), modes=MODES):
    """Cut at every step of the scenario's save; returns (cuts tried, problems found)."""
    name, (setup, save, boot), old, new = scenario
    base = base_flash(setup)
    if old == EMPTY:
        with on(SimFlash(), MODULES):
            old = boot()
        f = base.boot("eager")
        with on(f, MODULES):
            save()
            new = boot()
        if new == old:
            return 0, ["%s: the save changed nothing (%r)" % (name, new)]
    tried = 0
    problems = []
    for fat in fats:
        f0 = base.boot("eager", fat=fat)
        with on(f0, MODULES):
            got = boot()
        if got != old:
            problems.append("%s: setup left %r, not %r" % (name, got, old))
            continue
        steps = count_steps(base.boot("eager", fat=fat), save)
        for k in range(steps + 1):
            for mode in modes:
                tried += 1
                f = base.boot("eager", fat=fat, cut_at=k)
                done = True
                try:
                    with on(f, MODULES):
                        save()
                except Cut:
                    done = False
                where = "%s: cut at step %d of %d (%s%s)" % (
                    name, k, steps, mode, ", FAT" if fat else "")
                b = f.boot(mode)
                try:
                    with on(b, MODULES):
                        got = boot()
                        again = boot()
                except Exception as e:  # noqa: BLE001 - that is what the test looks for
                    problems.append("%s: boot raised %r" % (where, e))
                    continue
                if got not in (old, new):
                    problems.append("%s: booted with %r (old %r, new %r)" % (where, got, old,
                                                                             new))
                elif done and got != new:
                    problems.append("%s: save returned, boot found the old %r" % (where, got))
                elif again != got and name != "restart marker":
                    problems.append("%s: second boot %r, first %r" % (where, again, got))
    return tried, problems
