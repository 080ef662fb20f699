# Runs on the real MicroPython unix port (host_tests/test_micropython.py starts it): the OCPP
# stores (journal, configuration keys, local list and cache) on MicroPython's files, json and
# struct, with their heap figures printed.
import gc
import os
from binascii import hexlify

from firmware.ocpp.authlist import AuthCache, LocalList
from firmware.ocpp.journal import Journal, JournalError
from firmware.ocpp.keys import Keys

FAILS = []


def check(name, ok):
    print(("PASS " if ok else "FAIL ") + name)
    if not ok:
        FAILS.append(name)


D = "/tmp/wbstores_" + hexlify(os.urandom(4)).decode()
os.mkdir(D)


def mv(lid, i):
    return {"l": lid, "p": {"connectorId": 1, "meterValue": [{
        "timestamp": "2025-01-01T00:00:00Z", "sampledValue": [
            {"value": str(1000 + i), "measurand": "Energy.Active.Import.Register"},
            {"value": "7360", "measurand": "Power.Active.Import"}]}]}}


# ---- journal
p = D + "/j"
j = Journal(p)
lid = j.next_local_id()
s1 = j.push("StartTransaction", {"l": lid, "p": {"connectorId": 1, "idTag": "AB"}})
s2 = j.push("MeterValues", mv(lid, 1), droppable=True)
s3 = j.push("StopTransaction", {"l": lid, "p": {"meterStop": 5}})
check("journal order", j.peek()[0] == s1 and s1 < s2 < s3)
try:
    j.ack(s2)
    check("ack out of order refused", False)
except JournalError:
    check("ack out of order refused", True)
j.map_tx(lid, 321)
j.ack(s1)
j.close()
j = Journal(p)
check("journal reopened", j.pending() == 2 and j.peek()[0] == s2 and j.tx_id(lid) == 321)
check("local ids unique", j.next_local_id() < lid)
j.ack(s2)
j.ack(s3)
check("mapping forgotten after the stop", j.tx_id(lid) is None and j.pending() == 0)
j.close()
GARBAGE = b"\x50\x00\x10\x00garbage after a torn write"
with open(p, "ab") as f:
    f.write(GARBAGE)
j = Journal(p)
st = j.stats()
check("torn tail dropped: %d bytes" % st["torn_bytes"], st["torn_bytes"] == len(GARBAGE))
s4 = j.push("MeterValues", mv(lid, 2))
check("seq continues after a reboot", s4 > s3)
j.close()

# full policy on a small journal
p2 = D + "/small"
j = Journal(p2, max_bytes=2000)
l2 = j.next_local_id()
j.push("StartTransaction", {"l": l2, "p": {}})
for i in range(40):
    j.push("MeterValues", mv(l2, i), droppable=True)
j.push("StopTransaction", {"l": l2, "p": {}})
st = j.stats()
check("full: oldest MeterValues dropped (%d)" % st["dropped"],
      st["dropped"] > 0 and st["bytes"] <= 2000 and j.peek()[1] == "StartTransaction")
try:
    for i in range(100):
        j.push("StopTransaction", {"l": -99, "p": {"pad": "x" * 40}})
    check("full of stops refused", False)
except JournalError as e:
    check("full of stops refused: %s" % e, "journal full" in str(e))
j.close()

# 500 pending MeterValues: the journal keeps offsets, not payloads
p3 = D + "/big"
gc.collect()
m0 = gc.mem_alloc()
j = Journal(p3, max_bytes=262144)
l3 = j.next_local_id()
for i in range(500):
    j.push("MeterValues", mv(l3, i), droppable=True)
gc.collect()
m1 = gc.mem_alloc()
size = j.stats()["bytes"]
j.close()
j = None
gc.collect()
m2 = gc.mem_alloc()
j = Journal(p3, max_bytes=262144)
gc.collect()
m3 = gc.mem_alloc()
print("HEAP journal with 500 pending MeterValues (%d bytes on flash): %d bytes after pushing, "
      "%d after reopening" % (size, m1 - m0, m3 - m2))
check("500 pending kept", j.pending() == 500 and j.peek()[2]["p"]["meterValue"][0][
    "sampledValue"][0]["value"] == "1000")
check("journal RAM small (< 4 KB for 500)", m1 - m0 < 4096 and m3 - m2 < 4096)
gc.collect()
m0 = gc.mem_alloc()
gc.disable()
r = j.peek()
m1 = gc.mem_alloc()
gc.enable()
print("HEAP journal peek (one record read and parsed): %d bytes allocated" % (m1 - m0))
j.close()
j = r = None
# once all 500 are delivered the journal holds what an empty one holds (not their offsets)
gc.collect()
m0 = gc.mem_alloc()
j = Journal(p3, max_bytes=262144)
while j.pending():
    j.ack(j.peek()[0])
gc.collect()
m1 = gc.mem_alloc()
j.close()
j = None
gc.collect()
m2 = gc.mem_alloc()
j = Journal(D + "/empty", max_bytes=262144)
gc.collect()
m3 = gc.mem_alloc()
j.close()
j = None
print("HEAP journal after delivering 500 records: %d bytes; an empty journal: %d bytes"
      % (m1 - m0, m3 - m2))
check("delivered records hold no RAM", m1 - m0 < m3 - m2 + 256)

# ---- configuration keys
kp = D + "/keys.json"
k = Keys(kp, overrides={"SupportedMeasurands": "Energy.Active.Import.Register,Voltage"})
check("keys change", k.change("HeartbeatInterval", "120") == "Accepted"
      and k.change("NumberOfConnectors", "2") == "Rejected"
      and k.change("Nope", "1") == "NotSupported"
      and k.change("MeterValuesSampledData", "Current.Import") == "Rejected"
      and k.change("MeterValuesSampledData", "Voltage") == "Accepted")
KEY = "646b327130726675327130662d326630726467"
check("keys secret", k.change("AuthorizationKey", KEY) == "Accepted"
      and k.secret() == b"dk2q0rfu2q0f-2f0rdg")
check("keys security profile", k.change("SecurityProfile", "1") == "Accepted"
      and k.change("SecurityProfile", "4") == "Rejected")  # only up: security.py's rule
k2 = Keys(kp)
conf, unknown = k2.configuration(["HeartbeatInterval", "AuthorizationKey", "X"])
check("keys persisted", k2.get("HeartbeatInterval") == 120 and k2.get("SecurityProfile") == 1
      and conf[0]["value"] == "120" and "value" not in conf[1] and unknown == ["X"])
check("secret never shown", KEY not in repr(k2) + repr(k2.configuration()))
with open(kp, "w") as f:
    f.write("{broken")
k3 = Keys(kp)
check("corrupt keys file: defaults + error", k3.get("HeartbeatInterval") == 300
      and len(k3.errors) == 1)

# ---- local list and cache
lp = D + "/list.bin"
ll = LocalList(lp, max_entries=1200)
entries = [("TAG%05d" % i, ("Accepted", 1700000000 + i, None)) for i in range(1000)]


def with_free_heap(kb, fn):
    """fn() with only about kb KB of heap left free (the rest held by ballast): does it fit?"""
    gc.collect()
    ballast = []
    try:
        while gc.mem_free() > (kb + 2) * 1024:
            ballast.append(bytearray(1024))
    except MemoryError:
        pass
    try:
        return fn()
    except MemoryError:
        return None
    finally:
        ballast = None
        gc.collect()


check("the ballast works", with_free_heap(4, lambda: bytearray(8192)) is None)
for kb in (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128):
    r = with_free_heap(kb, lambda: ll.update(1, entries, True))
    if r is not None:
        break
print("HEAP local list full update of 1000 entries succeeds with %d..%d KB of free heap (the "
      "1000 entries given already in RAM)" % (kb, kb + 3))
check("list full update", r == "Accepted" and len(ll) == 1000)
ll = LocalList(lp, max_entries=1200)
check("list reopened", ll.version == 1 and ll.errors == [])
gc.collect()
m0 = gc.mem_alloc()
gc.disable()
hit = ll.lookup("tag00777")
m1 = gc.mem_alloc()
gc.enable()
print("HEAP local list lookup in 1000 entries: %d bytes allocated" % (m1 - m0))
check("list lookup case-insensitive", hit == ("Accepted", 1700000777, None))
check("list lookup small heap (< 1 KB)", m1 - m0 < 1024)
diff = [("TAG%05d" % i, ("Blocked", None, "P")) for i in range(1000, 1100)] + [
    ("TAG00001", None)]
for kb in (1, 2, 4, 8, 16, 32, 64):
    r = with_free_heap(kb, lambda: ll.update(2, diff, False))
    if r is not None:
        break
print("HEAP local list differential merge of 101 entries into 1000 succeeds with %d..%d KB "
      "of free heap" % (kb, kb + 3))
check("list merge", r == "Accepted" and len(ll) == 1099 and ll.lookup("TAG00001") is None
      and ll.lookup("tag01050") == ("Blocked", None, "P"))
check("list version mismatch", ll.update(2, diff, False) == "VersionMismatch")
with open(lp, "r+b") as f:
    f.seek(100)
    f.write(b"X")
ll = LocalList(lp)
check("corrupt list: empty + error", ll.version == 0 and len(ll) == 0 and len(ll.errors) == 1)
c = AuthCache(D + "/cache.bin", max_entries=3)
for i in range(4):
    c.put("C%d" % i, "Accepted", None, None, 10 + i)
check("cache replaces the oldest", len(c) == 3 and c.lookup("C0") is None
      and c.lookup("c3") == ("Accepted", None, None))

for name in os.listdir(D):
    os.remove(D + "/" + name)
os.rmdir(D)
print("DONE %d failed" % len(FAILS))
