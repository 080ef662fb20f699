# The journal's sender side: the sender task takes the oldest transaction message
# (StartTransaction, MeterValues, StopTransaction) from the journal, fills in the CSMS's
# transactionId, sends it and acknowledges it once answered. Policy (docs/ocpp.md):
# - once the CSMS has answered, the record is acknowledged whatever the answer holds: a
#   StartTransaction sent again would open a second transaction at the CSMS;
# - a CALLERROR or timeout while online is an attempt; MeterValues and StopTransaction are
#   given up after TransactionMessageAttempts, a StartTransaction never (its MeterValues and
#   Stop wait behind it for the id the CSMS gives);
# - the idTagInfo of Start/Stop answers goes into the cache as authlist.stored_info keeps it.
import time

from firmware.ocpp import rpc
from firmware.ocpp.authlist import AuthListError, stored_info
from firmware.ocpp.journal import JournalError


async def send_next(tx):
    """At most one transaction message; True when one was sent (or dropped)."""
    cp = tx.cp
    j = cp.journal
    rec = j.peek()
    if rec is None:
        return False
    seq, action, body = rec
    if tx._attempts and time.ticks_diff(time.ticks_ms(), tx._retry_ms) < 0:
        return False
    # times stamped before the clock was known get their wall time now (timekeep.py)
    p = cp.tk.resolve(body["p"], time.ticks_ms())
    local = body.get("l")  # none: a status notification (firmware/secext.notify)
    if local is not None and action != "StartTransaction":
        tid = j.tx_id(local)
        if tid is None:  # its Start was answered with an id the journal cannot keep
            cp.say("%s of transaction %s dropped: no transactionId" % (action, local))
            j.ack(seq)
            return True
        p["transactionId"] = tid
    try:
        conf = await cp.rpc.call(action, p)
    except rpc.RpcError as e:
        if not cp.link.connected:
            raise  # offline: not an attempt; resent after the reconnect
        if local is None and e.code != "Timeout":  # a notification refused (NotSupported)
            cp.say("%s dropped: %s %s" % (action, e.code, e.description))
            j.ack(seq)
            return True
        _failed(tx, seq, action, e)
        return True
    # Answered: from here on nothing may keep the record from being acknowledged.
    tx._attempts = 0
    if action == "StartTransaction":
        try:
            j.map_tx(local, conf["transactionId"])
        except JournalError as e:
            cp.say("transaction %s: %s; its MeterValues and Stop cannot be sent" % (
                local, e))
    j.ack(seq)
    try:
        if action == "StartTransaction":
            _started(tx, local, p["idTag"], conf)
        elif action == "StopTransaction" and "idTagInfo" in conf and "idTag" in p:
            remember(cp, p["idTag"], conf["idTagInfo"])
    except Exception as e:  # a fault here must not undo the delivery: say it, count it
        cp.fault("after %s.conf" % action, e)
    return True


def _failed(tx, seq, action, e):
    """A CALLERROR (or timeout) while online: one attempt. A StartTransaction is retried
    every TransactionMessageRetryInterval x TransactionMessageAttempts once the attempts are
    used, never given up; other messages are given up after the attempts."""
    cp = tx.cp
    k = cp.keys
    tx._attempts += 1
    most = max(1, k.get("TransactionMessageAttempts"))
    if tx._attempts >= most and action != "StartTransaction":
        cp.say("%s given up after %d attempts: %s %s" % (
            action, tx._attempts, e.code, e.description))
        tx._attempts = 0
        cp.journal.ack(seq)
        return
    wait = max(1, k.get("TransactionMessageRetryInterval")) * min(tx._attempts, most)
    tx._retry_ms = time.ticks_add(time.ticks_ms(), 1000 * wait)
    cp.say("%s attempt %d failed (%s %s), retry in %d s" % (
        action, tx._attempts, e.code, e.description, wait))


def _started(tx, local, tag, conf):
    cp = tx.cp
    tid = conf["transactionId"]
    cp.profiles.retag(local, tid)  # RemoteStart's TxProfile
    info = conf["idTagInfo"]
    remember(cp, tag, info)
    o = tx.open
    if o is None or o["l"] != local:
        return
    parent = info.get("parentIdTag") or None
    if parent is not None:
        o["parent"] = parent  # the group whose cards stop it (remote and offline starts too)
    if info["status"] == "Accepted":
        return
    if cp.keys.get("StopTransactionOnInvalidId"):
        tx.stop_reason = "DeAuthorized"
        cp.say("idTag %s %s by the CSMS: stopping" % (tag, info["status"]))
    else:
        # OCPP 1.6 (StopTransactionOnInvalidId false): energy delivery stops, the
        # transaction stays open until it ends otherwise (card, unplug, remote stop).
        cp.ctl.set_auth(False)
        o["suspended"] = True
        cp.say("idTag %s %s by the CSMS: energy stopped, transaction %s kept" % (
            tag, info["status"], tid))
    cp.wake.set()


def remember(cp, tag, info):
    """Put an idTagInfo the CSMS gave into the cache (when enabled), as
    authlist.stored_info keeps it, or leave it out with a log line; never raises."""
    if not cp.keys.get("AuthorizationCacheEnabled"):
        return
    st = stored_info(info)
    if st is None:
        cp.say("%s not cached: expiryDate %r unreadable" % (tag, info["expiryDate"]))
        return
    if st[3]:
        cp.say("%s cached: %s" % (tag, st[3]))
    try:
        cp.cache.put(tag, st[0], st[1], st[2], cp.now_s() or 0)
    except (AuthListError, OSError) as e:
        cp.say("%s not cached: %s" % (tag, e))
