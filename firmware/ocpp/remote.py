# What the CSMS may ask of the charge point (Core, Local Auth List, Reservation, Remote
# Trigger, Smart Charging), and the Core messages the charge point sends of its own
# (BootNotification, Heartbeat) or when triggered. Each handler is a function named after the
# OCPP action it answers (rpc.Rpc looks it up in this module, and only for an action of
# schema.REQUESTS: no other name here can be reached from the network). Payloads reach these
# handlers only after the schema check (rpc.Rpc.received); each handler answers at once and
# leaves longer work (a reset, an authorisation) to a task, so the link's reader is never held
# up. Firmware Management and the security extension have no handler: rpc answers
# NotSupported.
import asyncio
import time


from .. import persist, restart, version
from . import authlist, clock, rpc

_UNLOCK_WAIT_MS = const(2500)
_TRIGGERS_MAX = const(8)  # distinct (message, connector) requests waiting for the sender
_RESET_FLUSH_MS = const(10000)
_BOOT_RETRY_S = const(30)

# Each handler: fn(cp, payload) -> result dict, a status string (the answer {"status": it})
# or a coroutine giving one (rpc awaits those). Module-level functions: no closure per
# handler in RAM.


# -- Core -----------------------------------------------------------------------------------
def ChangeAvailability(cp, p):
    c = p["connectorId"]
    if c not in (0, 1):
        return "Rejected"
    op = p["type"] == "Operative"
    w = cp.pending_avail
    if not op and cp.tx.open is not None:
        cp.pending_avail = (c, op)  # applied when the transaction ends; kept across a reboot
        save_state(cp)
        return "Scheduled"
    if w is not None and (w[0] == c or c == 0):
        cp.pending_avail = None  # a newer change for that connector replaces the scheduled one
    apply_availability(cp, c, op)
    return "Accepted"


def apply_availability(cp, c, op):
    cp.available[c] = op
    save_state(cp)
    cp.ctl.set_available(cp.available[0] and cp.available[1])
    cp.wake.set()


# Availability persists across reboots, as 1.6 says (ocpp_state.json).
def load_state(cp):
    try:
        d = persist.load_json("ocpp_state.json")
        a = d.get("available")
        if type(a) is list and len(a) == 2 and type(a[0]) is type(a[1]) is bool:
            cp.available = a
        w = d.get("scheduled")
        if type(w) is list and len(w) == 2 and w[0] in (0, 1) and type(w[1]) is bool:
            # a change Scheduled for the end of a transaction that a reboot ended
            cp.available[w[0]] = w[1]
            cp.say("scheduled availability applied")
            save_state(cp)
    except (OSError, ValueError, AttributeError):
        pass


def save_state(cp):
    try:
        persist.save_json("ocpp_state.json", {"available": cp.available,
                                              "scheduled": cp.pending_avail})
    except OSError as e:
        cp.say("availability not saved: %r" % (e,))


def ChangeConfiguration(cp, p):
    key = p["key"]
    if key in ("AuthorizationKey", "SecurityProfile"):  # firmware/ocpp/security.py
        st, again = cp.security.change(key, p["value"])
        if again:  # after this answer has gone out (A01, A05.FR.06)
            cp.link.restart = key + " changed"  # the link closes, connects again
        return st
    st = cp.keys.change(key, p["value"])
    cp.limit_changed()  # limits and intervals are re-read at once
    return st


def GetConfiguration(cp, p):
    try:
        known, unknown = cp.keys.configuration(p.get("key") or None)  # [] = all (1.6 5.8)
    except ValueError as e:  # more keys asked than GetConfigurationMaxKeys
        raise rpc.RpcError("OccurrenceConstraintViolation", str(e))
    out = {"configurationKey": known}
    if unknown:
        out["unknownKey"] = unknown
    return out


def ClearCache(cp, p):
    try:
        cp.cache.clear()
    except OSError as e:  # the flash gate (a session on STM32/ESP32: persist.FlashBusy)
        cp.say("ClearCache refused: %s" % (e,))
        return "Rejected"
    return "Accepted"


def DataTransfer(cp, p):
    return "UnknownVendorId"  # no vendor extensions


def RemoteStartTransaction(cp, p):
    tx = cp.tx
    tag = p["idTag"]
    prof = p.get("chargingProfile")
    r = cp.reservation
    if (p.get("connectorId", 1) != 1 or tx.open is not None or tx.auth is not None
            or not (cp.available[0] and cp.available[1]) or cp.st.status(1) == "Faulted"
            or prof is not None and prof.get("chargingProfilePurpose") != "TxProfile"
            or r is not None and r["tag"].lower() != tag.lower()):
        return "Rejected"
    # no stop_parent; remote_ok unless the key asks to authorise; the TxProfile
    cp.spawn(tx.authorize(tag, None, not cp.keys.get("AuthorizeRemoteTxRequests"), prof),
             "RemoteStartTransaction")
    return "Accepted"


def RemoteStopTransaction(cp, p):
    tx = cp.tx
    if tx.open is None or tx.csms_id() != p["transactionId"]:
        return "Rejected"
    tx.stop_reason = "Remote"
    cp.wake.set()
    return "Accepted"


def Reset(cp, p):
    if cp.reset_kind is None:
        cp.reset_kind = p["type"]
        cp.spawn(_reset(cp, p["type"] == "Hard"), "Reset")
    return "Accepted"


async def _reset(cp, hard):
    await asyncio.sleep_ms(200)  # the Reset.conf goes out first
    if cp.tx.open is not None:
        cp.tx.stop_reason = "HardReset" if hard else "SoftReset"
        cp.wake.set()
    # A soft reset waits (bounded) until the journal is delivered; a hard one only for the
    # stop to be journaled (the Stop reads the meter, <= 3 s): the journal survives the
    # reset either way.
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < (4000 if hard else _RESET_FLUSH_MS):
        if cp.tx.open is None and (hard or cp.journal.pending() == 0
                                   or not cp.link.connected):
            break
        await asyncio.sleep_ms(100)
    cp.say("hard reset" if hard else "soft reset")
    # The one restart path (firmware/restart.py): contactor open, stores saved, marker.
    await cp.restart.now(restart.OCPP_HARD if hard else restart.OCPP_SOFT)


async def UnlockConnector(cp, p):
    if p["connectorId"] != 1 or cp.cfg.connector != "type2_socket":
        return "NotSupported"  # no such connector, or a tethered cable
    tx = cp.tx
    tx.release("UnlockConnector")
    if tx.open is not None:
        tx.stop_reason = "UnlockCommand"
        cp.wake.set()
    else:
        cp.ctl.set_auth(False)
        tx.auth = None
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < _UNLOCK_WAIT_MS:
        if not cp.ctl.session.act.lock:
            return "Unlocked"
        await asyncio.sleep_ms(50)
    return "UnlockFailed"


# -- Local authorisation list -----------------------------------------------------------------
def GetLocalListVersion(cp, p):
    # 1.6 5.8: -1 only when local lists are not supported at all (they are: the profile is in
    # SupportedFeatureProfiles); a disabled list still has its version, 0 when empty.
    return {"listVersion": cp.list.version}


def SendLocalList(cp, p):
    if not cp.keys.get("LocalAuthListEnabled"):
        return "NotSupported"
    items = p.get("localAuthorizationList", [])
    if len(items) > cp.keys.get("SendLocalListMaxLength"):
        return "Failed"
    n = 0
    for e in items:  # in place: each entry's dicts are freed as its tuple replaces them
        tag, info = e["idTag"], e.get("idTagInfo")  # None: remove (left out of a Full one)
        if info is not None:
            info = authlist.stored_info(info)
            if info is None:
                cp.say("local list: %s left out: bad expiryDate" % tag)
                continue
            if info[3]:
                cp.say("local list: %s: %s" % (tag, info[3]))
            info = info[:3]
        if not authlist.storable(tag):  # no reader can present it
            cp.say("local list: %r left out: over 20 bytes" % tag)
            continue
        items[n] = (tag, info)
        n += 1
    del items[n:]
    try:
        return cp.list.update(p["listVersion"], items, p["updateType"] == "Full")
    except (ValueError, OSError) as e:  # authlist.AuthListError: what is wrong
        cp.say("SendLocalList failed: %s" % e)
        return "Failed"


# -- Reservation -------------------------------------------------------------------------------
def ReserveNow(cp, p):
    if p["connectorId"] != 1:
        return "Rejected"  # ReserveConnectorZeroSupported is false
    st = cp.st.status(1) or "Available"
    if st in ("Faulted", "Unavailable"):
        return st
    r = cp.reservation
    if (r is not None and r["id"] != p["reservationId"] or st not in ("Available", "Reserved")
            or cp.tx.open is not None or cp.tx.auth is not None):
        return "Occupied"
    try:
        expiry = clock.parse(p["expiryDate"])
    except ValueError as e:  # schema-valid but before 1970: long past
        cp.say("ReserveNow rejected: %s" % (e,))
        return "Rejected"
    now = cp.now_s()
    if now is not None and expiry <= now:
        return "Rejected"
    cp.reservation = {"id": p["reservationId"], "tag": p["idTag"],
                      "parent": p.get("parentIdTag") or None, "expiry": expiry}
    cp.wake.set()
    return "Accepted"


def CancelReservation(cp, p):
    r = cp.reservation
    if r is None or r["id"] != p["reservationId"]:
        return "Rejected"
    cp.reservation = None
    cp.wake.set()
    return "Accepted"


# -- Smart charging ----------------------------------------------------------------------------
def SetChargingProfile(cp, p):
    c = p["connectorId"]
    if c not in (0, 1):
        return "Rejected"
    st = cp.profiles.set(c, p["csChargingProfiles"], cp.tx.profile_id())
    if st != "Accepted":
        cp.say("SetChargingProfile Rejected: " + cp.profiles.why)
    cp.limit_changed()
    return st


def ClearChargingProfile(cp, p):
    st = cp.profiles.clear(p.get("id"), p.get("connectorId"), p.get("chargingProfilePurpose"),
                           p.get("stackLevel"))
    cp.limit_changed()
    return st


def GetCompositeSchedule(cp, p):
    v = cp.volts()
    ph = cp.limits.phases
    # (connector, now, duration, unit, tx_start, tx_id, volts, phases, max_amps); Rejected
    # for a connector other than 0 and 1 and before the time is known
    r = cp.profiles.composite(
        p["connectorId"], cp.now_s(), p["duration"], p.get("chargingRateUnit"),
        cp.tx.start_s(), cp.tx.profile_id(), v, ph,
        min(cp.cfg.rating_a or 6, cp.cfg.max_current_a))
    a = cp.limits.local_a()
    if a is None or r.get("status") != "Accepted":
        return r
    # The local limits (main fuse, DSO, ...: docs/limits.md) in the composite: no period
    # above them (OpenEVSE #856 reported the profiles alone); equal neighbours merge.
    sch = r["chargingSchedule"]
    watts = sch["chargingRateUnit"] == "W"
    out = []
    for q in sch["chargingSchedulePeriod"]:
        top = a * (v or 230) * q.get("numberPhases", ph) if watts else a
        if q["limit"] > top:
            q["limit"] = round(top, 1)
        if out and out[-1]["limit"] == q["limit"] and (
                out[-1].get("numberPhases") == q.get("numberPhases")):
            continue
        out.append(q)
    sch["chargingSchedulePeriod"] = out
    return r


# -- Firmware Management (firmware/ota/updater.py) ---------------------------------------------
def UpdateFirmware(cp, p):
    up = getattr(cp, "updater", None)
    if up is None:
        raise rpc.RpcError("NotSupported", "UpdateFirmware")
    return up.request(p)


# -- Remote trigger ----------------------------------------------------------------------------
def TriggerMessage(cp, p):
    what = p["requestedMessage"]
    c = p.get("connectorId")
    if c not in (None, 0, 1):
        return "Rejected"
    if what == "BootNotification" and cp.registration == "Accepted":
        return "Rejected"  # already accepted: nothing to boot again
    # Messages sent only by an extension (rpc.ext_send: firmware/secext, which checks its
    # own ExtendedTriggerMessage's): NotImplemented without it (1.6 section 6.54);
    # FirmwareStatusNotification needs UpdateFirmware (ota).
    if what == "DiagnosticsStatusNotification" and what not in cp.rpc.ext_send or (
            what == "FirmwareStatusNotification" and getattr(cp, "updater", None) is None):
        return "NotImplemented"
    if (what, c) not in cp.triggers:  # the same request twice is sent once
        if len(cp.triggers) >= _TRIGGERS_MAX:  # the sender is blocked: do not pile up
            return "Rejected"
        cp.triggers.append((what, c))
    cp.wake.set()
    return "Accepted"


async def send_triggered(cp, what, c):
    if what == "BootNotification":
        await boot(cp)
    elif what == "Heartbeat":
        await heartbeat(cp)
    elif what == "StatusNotification":
        for k in (0, 1) if c is None else (c,):
            if cp.st.status(k) is not None:
                await cp.st.send(k)
    elif what == "FirmwareStatusNotification":  # Idle: nothing under way (1.6 section 7.25)
        await cp.updater.tell()  # Signed... for a signed update (firmware/ota/updater.py)
    elif what == "MeterValues":
        c = 1 if c is None else c
        p = {"connectorId": c, "meterValue": [cp.tx.sample("Trigger", "MeterValuesSampledData")]}
        tid = cp.tx.csms_id()
        if tid is not None and c == 1:
            p["transactionId"] = tid
        await cp.rpc.call("MeterValues", p)
    else:  # an extension's (TriggerMessage queued it only if rpc.ext_send has it)
        await cp.rpc.ext_send[what](cp, c)


# -- What the charge point sends of its own (Core; cp.send_loop) ------------------------------
async def boot(cp):
    s = cp.section
    conf = await cp.rpc.call("BootNotification", {
        "chargePointVendor": s.get("vendor", "OpenWallbox")[:20],
        "chargePointModel": s.get("model", cp.board.name)[:20],
        "firmwareVersion": version.VERSION})
    cp.registration = reg = conf["status"]
    cp.rpc.mute = reg == "Rejected"  # 1.6 4.2: no answers while Rejected
    interval = conf["interval"]
    _set_clock(cp, conf)
    now = time.ticks_ms()
    if reg == "Accepted":
        if interval > 0:  # above the key's range (a day): clamped, and said so
            if interval > 86400:
                cp.say("HeartbeatInterval %d s clamped to 86400" % interval)
            cp.keys.change("HeartbeatInterval", str(min(interval, 86400)))
        cp.heartbeat_ms = now
        cp.st.sent = [None, None]  # every connector's status goes again
        cp.say("boot accepted")
    else:
        wait = interval if interval > 0 else _BOOT_RETRY_S
        cp.boot_retry_ms = time.ticks_add(now, wait * 1000)
        cp.say("boot %s, retry in %d s" % (reg, wait))


async def heartbeat(cp):
    conf = await cp.rpc.call("Heartbeat", {})
    _set_clock(cp, conf)
    cp.heartbeat_ms = time.ticks_ms()


def _set_clock(cp, p):
    """The clock from the currentTime of p (a BootNotification.conf or Heartbeat.conf)."""
    t = p["currentTime"]
    try:
        cp.tk.set(clock.parse(t), "csms", time.ticks_ms())
    except ValueError as e:
        cp.say("bad currentTime %r: %s" % (t, e))
