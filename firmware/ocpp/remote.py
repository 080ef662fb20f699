# What the CSMS may ask of the charge point (Core, Local Auth List, Reservation, Remote
# Trigger, Smart Charging). Payloads reach these handlers only after the schema check
# (rpc.Rpc.received); each handler answers at once and leaves longer work (a reset, an
# authorisation) to a task, so the link's reader is never held up. Firmware Management and
# the security extension have no handler: rpc answers NotSupported.
import asyncio
import time

from firmware.ocpp import clock
from firmware.restart import OCPP_HARD, OCPP_SOFT
from firmware.ocpp.authlist import storable, stored_info
from firmware.ocpp.keys import KeysError
from firmware.ocpp.rpc import RpcError

_UNLOCK_WAIT_MS = 2500
_TRIGGERS_MAX = 8  # distinct (message, connector) requests waiting for the sender
# Messages sent only by an extension (rpc.ext_send: firmware/secext): NotImplemented without
# it (1.6 section 6.54); FirmwareStatusNotification needs UpdateFirmware (firmware/ota).
_NOT_TRIGGERED = ("DiagnosticsStatusNotification", "LogStatusNotification")
_RESET_FLUSH_MS = 10000


# -- Core -----------------------------------------------------------------------------------
def change_availability(cp, p):
    c = p["connectorId"]
    if c not in (0, 1):
        return "Rejected"
    op = p["type"] == "Operative"
    w = cp.pending_avail
    if not op and cp.tx.open is not None:
        cp.pending_avail = (c, op)  # applied when the transaction ends; kept across a reboot
        _save(cp)
        return "Scheduled"
    if w is not None and (w[0] == c or c == 0):
        cp.pending_avail = None  # a newer change for that connector replaces the scheduled one
    apply_availability(cp, c, op)
    return "Accepted"


def _save(cp):
    try:
        cp.save_state()
    except OSError as e:
        cp.say("availability not saved: %r" % (e,))


def apply_availability(cp, c, op):
    cp.available[c] = op
    _save(cp)
    cp.ctl.set_available(cp.available[0] and cp.available[1])
    cp.wake.set()


def change_configuration(cp, p):
    key = p["key"]
    if key in ("AuthorizationKey", "SecurityProfile"):  # firmware/ocpp/security.py
        st, again = cp.security.change(key, p["value"])
        if again:  # after this answer has gone out (A01, A05.FR.06)
            cp.link.reconnect("%s changed" % key)
        return st
    st = cp.keys.change(key, p["value"])
    cp.limit_changed()  # limits and intervals are re-read at once
    return st


def get_configuration(cp, p):
    try:
        known, unknown = cp.keys.configuration(p.get("key") or None)  # [] = all (1.6 5.8)
    except KeysError as e:
        raise RpcError("OccurrenceConstraintViolation", str(e))
    out = {"configurationKey": known}
    if unknown:
        out["unknownKey"] = unknown
    return out


def clear_cache(cp, p):
    try:
        cp.cache.clear()
    except OSError as e:  # the flash gate (a session on STM32/ESP32: persist.FlashBusy)
        cp.say("ClearCache refused: %s" % (e,))
        return "Rejected"
    return "Accepted"


def data_transfer(cp, p):
    return "UnknownVendorId"  # no vendor extensions


def remote_start(cp, p):
    tx = cp.tx
    c = p.get("connectorId", 1)
    tag = p["idTag"]
    prof = p.get("chargingProfile")
    if c != 1 or tx.open is not None or tx.auth is not None:
        return "Rejected"
    if not (cp.available[0] and cp.available[1]) or cp.st.status(1) == "Faulted":
        return "Rejected"
    if prof is not None and prof.get("chargingProfilePurpose") != "TxProfile":
        return "Rejected"
    r = cp.reservation
    if r is not None and r["tag"].lower() != tag.lower():
        return "Rejected"
    cp.spawn(tx.authorize(tag, remote_ok=not cp.keys.get("AuthorizeRemoteTxRequests"),
                          profile=prof), "RemoteStartTransaction")
    return "Accepted"


def remote_stop(cp, p):
    tx = cp.tx
    if tx.open is None or tx.csms_id() != p["transactionId"]:
        return "Rejected"
    tx.stop_reason = "Remote"
    cp.wake.set()
    return "Accepted"


def reset(cp, p):
    kind = p["type"]
    if cp.reset_kind is None:
        cp.reset_kind = kind
        cp.spawn(_reset(cp, kind), "Reset")
    return "Accepted"


async def _reset(cp, kind):
    await asyncio.sleep_ms(200)  # the Reset.conf goes out first
    if cp.tx.open is not None:
        cp.tx.stop_reason = "SoftReset" if kind == "Soft" else "HardReset"
        cp.wake.set()
    # A soft reset waits (bounded) until the journal is delivered; a hard one only for the
    # stop to be journaled: the journal survives the reset either way.
    t0 = time.ticks_ms()
    limit = _RESET_FLUSH_MS if kind == "Soft" else 4000  # the Stop reads the meter (<= 3 s)
    while time.ticks_diff(time.ticks_ms(), t0) < limit:
        if cp.tx.open is None and (kind == "Hard" or cp.journal.pending() == 0
                                   or not cp.link.connected):
            break
        await asyncio.sleep_ms(100)
    cp.say("%s reset" % kind.lower())
    # The one restart path (firmware/restart.py): contactor open, stores saved, marker.
    await cp.restart.now(OCPP_HARD if kind == "Hard" else OCPP_SOFT)


async def unlock(cp, p):
    if p["connectorId"] != 1 or cp.cfg.connector != "type2_socket":
        return "NotSupported"  # no such connector, or a tethered cable
    cp.tx.release("UnlockConnector")
    if cp.tx.open is not None:
        cp.tx.stop_reason = "UnlockCommand"
        cp.wake.set()
    else:
        cp.ctl.set_auth(False)
        cp.tx.auth = None
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < _UNLOCK_WAIT_MS:
        if not cp.ctl.session.act.lock:
            return "Unlocked"
        await asyncio.sleep_ms(50)
    return "UnlockFailed"


# -- Local authorisation list -----------------------------------------------------------------
def list_version(cp, p):
    # 1.6 5.8: -1 only when local lists are not supported at all (they are: the profile is in
    # SupportedFeatureProfiles); a disabled list still has its version, 0 when empty.
    return {"listVersion": cp.list.version}


def send_local_list(cp, p):
    if not cp.keys.get("LocalAuthListEnabled"):
        return "NotSupported"
    items = p.get("localAuthorizationList", [])
    if len(items) > cp.keys.get("SendLocalListMaxLength"):
        return "Failed"
    full = p["updateType"] == "Full"
    n = 0
    for e in items:  # in place: each entry's dicts are freed as its tuple replaces them
        tag, info = e["idTag"], e.get("idTagInfo")
        if info is None and full:
            continue  # nothing to store for it
        if info is not None:
            info = stored_info(info)
            if info is None:
                cp.say("local list: %s left out: expiryDate unreadable" % tag)
                continue
            if info[3]:
                cp.say("local list: %s: %s" % (tag, info[3]))
            info = info[:3]
        if not storable(tag):  # no reader can present it
            cp.say("local list: idTag %r left out: over 20 bytes of UTF-8" % tag)
            continue
        items[n] = (tag, info)
        n += 1
    del items[n:]
    st = cp.list.update(p["listVersion"], items, full)
    if st == "Failed":
        cp.say("SendLocalList failed: %s" % cp.list.last_error)
    return st


# -- Reservation -------------------------------------------------------------------------------
def reserve_now(cp, p):
    c = p["connectorId"]
    if c != 1:
        return "Rejected"  # ReserveConnectorZeroSupported is false
    st = cp.st.status(1) or "Available"
    if st == "Faulted":
        return "Faulted"
    if st == "Unavailable":
        return "Unavailable"
    r = cp.reservation
    if r is not None and r["id"] != p["reservationId"]:
        return "Occupied"
    if st not in ("Available", "Reserved") or cp.tx.open is not None or cp.tx.auth is not None:
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


def cancel_reservation(cp, p):
    r = cp.reservation
    if r is None or r["id"] != p["reservationId"]:
        return "Rejected"
    cp.reservation = None
    cp.wake.set()
    return "Accepted"


# -- Smart charging ----------------------------------------------------------------------------
def set_profile(cp, p):
    c = p["connectorId"]
    if c not in (0, 1):
        return "Rejected"
    st = cp.profiles.set(c, p["csChargingProfiles"], tx_id=cp.tx.profile_id())
    cp.limit_changed()
    return st


def clear_profile(cp, p):
    st = cp.profiles.clear(p.get("id"), p.get("connectorId"), p.get("chargingProfilePurpose"),
                           p.get("stackLevel"))
    cp.limit_changed()
    return st


def composite(cp, p):
    c = p["connectorId"]
    now = cp.now_s()
    if c not in (0, 1) or now is None:
        return "Rejected"
    r = cp.profiles.composite(
        c, now, p["duration"], p.get("chargingRateUnit"),
        tx_start_s=cp.tx.start_s(), tx_id=cp.tx.profile_id(), volts=cp.volts(),
        phases=cp.limits.phases, max_amps=min(cp.cfg.rating_a or 6, cp.cfg.max_current_a))
    local = getattr(cp.limits, "local_a", None)
    a = local() if local is not None else None
    if a is not None and r.get("status") == "Accepted":
        _clip_local(r["chargingSchedule"], a, cp.volts() or 230, cp.limits.phases)
    return r


def _clip_local(sch, a, volts, phases):
    """The local limits (main fuse, DSO, ...: docs/limits.md) in the composite: no period
    above them (OpenEVSE #856 reported the profiles alone); equal neighbours merge."""
    watts = sch["chargingRateUnit"] == "W"
    out = []
    for q in sch["chargingSchedulePeriod"]:
        top = a * volts * q.get("numberPhases", phases) if watts else a
        if q["limit"] > top:
            q["limit"] = round(top, 1)
        if out and out[-1]["limit"] == q["limit"] and (
                out[-1].get("numberPhases") == q.get("numberPhases")):
            continue
        out.append(q)
    sch["chargingSchedulePeriod"] = out


# -- Firmware Management (firmware/ota/updater.py) ---------------------------------------------
def update_firmware(cp, p):
    up = getattr(cp, "updater", None)
    if up is None:
        raise RpcError("NotSupported", "UpdateFirmware")
    return up.request(p)


# -- Remote trigger ----------------------------------------------------------------------------
def trigger(cp, p):
    what = p["requestedMessage"]
    c = p.get("connectorId")
    if c is not None and c not in (0, 1):
        return "Rejected"
    if what == "BootNotification" and cp.registration == "Accepted":
        return "Rejected"  # already accepted: nothing to boot again
    if what in _NOT_TRIGGERED and what not in cp.rpc.ext_send or (
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
        await cp.boot()
    elif what == "Heartbeat":
        await cp.heartbeat()
    elif what == "StatusNotification":
        for k in (0, 1) if c is None else (c,):
            if cp.st.status(k) is not None:
                await cp.st.send(k)
    elif what == "FirmwareStatusNotification":  # Idle: nothing under way (1.6 section 7.25)
        await cp.updater.tell()  # Signed... for a signed update (firmware/ota/updater.py)
    elif what == "MeterValues":
        p = {"connectorId": 1 if c is None else c,
             "meterValue": [cp.tx.sample("Trigger", "MeterValuesSampledData")]}
        tid = cp.tx.csms_id()
        if tid is not None and p["connectorId"] == 1:
            p["transactionId"] = tid
        await cp.rpc.call("MeterValues", p)
    else:
        fn = cp.rpc.ext_send.get(what)
        if fn is None:
            raise RpcError("NotImplemented", what)
        await fn(cp, c)


# action -> fn(cp, payload) -> result dict, a status string (the answer {"status": it}) or a
# coroutine giving one (rpc awaits those); a module-level table: no closure per handler in RAM
HANDLERS = {
    "CancelReservation": cancel_reservation,
    "ChangeAvailability": change_availability,
    "ChangeConfiguration": change_configuration,
    "ClearCache": clear_cache,
    "ClearChargingProfile": clear_profile,
    "DataTransfer": data_transfer,
    "GetCompositeSchedule": composite,
    "GetConfiguration": get_configuration,
    "GetLocalListVersion": list_version,
    "RemoteStartTransaction": remote_start,
    "RemoteStopTransaction": remote_stop,
    "ReserveNow": reserve_now,
    "Reset": reset,
    "SendLocalList": send_local_list,
    "SetChargingProfile": set_profile,
    "TriggerMessage": trigger,
    "UnlockConnector": unlock,
    "UpdateFirmware": update_firmware,
}
