# The journal's sender side: the sender task takes the oldest transaction message
# (StartTransaction, MeterValues, StopTransaction) from the journal, fills in the CSMS's
# transactionId, sends it and acknowledges it once answered. Policy (docs/ocpp.md):
# - once the CSMS has answered, the record is acknowledged whatever the answer holds: a
#   StartTransaction sent again would open a second transaction at the CSMS;
# - a CALLERROR or timeout while online is an attempt; MeterValues and StopTransaction are
#   given up after TransactionMessageAttempts, a StartTransaction never (its MeterValues and
#   Stop wait behind it for the id the CSMS gives);
# - the idTagInfo of Start/Stop answers goes into the cache as authlist.stored_info keeps it
#   (txn.Transactions.started and remember: what the answer means for the transaction).
import time

from firmware.ocpp import rpc
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
        why = "%s %s" % (e.code, e.description)
        if local is None and e.code != "Timeout":  # a notification refused (NotSupported)
            cp.say("%s dropped: %s" % (action, why))
        else:
            # one attempt. A StartTransaction is retried every TransactionMessageRetryInterval
            # x TransactionMessageAttempts once the attempts are used, never given up; other
            # messages are given up after the attempts.
            k = cp.keys
            n = tx._attempts = tx._attempts + 1
            most = max(1, k.get("TransactionMessageAttempts"))
            if n < most or action == "StartTransaction":
                wait = max(1, k.get("TransactionMessageRetryInterval")) * min(n, most)
                tx._retry_ms = time.ticks_add(time.ticks_ms(), 1000 * wait)
                cp.say("%s attempt %d failed (%s), retry in %d s" % (action, n, why, wait))
                return True
            cp.say("%s given up after %d attempts: %s" % (action, n, why))
            tx._attempts = 0
        j.ack(seq)
        return True
    # Answered: from here on nothing may keep the record from being acknowledged.
    tx._attempts = 0
    if action == "StartTransaction":
        try:
            j.map_tx(local, conf["transactionId"])
        except JournalError as e:
            cp.say("transaction %s: %s; its MeterValues, Stop cannot be sent" % (
                local, e))
    j.ack(seq)
    try:
        if action == "StartTransaction":
            tx.started(local, p["idTag"], conf)
        elif action == "StopTransaction" and "idTagInfo" in conf and "idTag" in p:
            tx.remember(p["idTag"], conf["idTagInfo"])
    except Exception as e:  # a fault here must not undo the delivery: say it, count it
        cp.fault("after %s.conf" % action, e)
    return True
