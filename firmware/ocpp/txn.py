# Transactions of the one connector: authorisation (card, remote start, local list, cache,
# offline rules), start and stop decisions, meter values, and the journal that carries every
# transaction message to the CSMS in order - offline, across reboots and power cuts.
# Journal records are {"l": local transaction id, "p": payload without transactionId}; the
# CSMS's transactionId is filled in when the record is sent (journal.tx_id), so a
# transaction started offline is mapped once its StartTransaction.conf arrives.

from .. import persist
from ..charge.pilot import connected
from .authlist import AuthListError, stored_info
from .journal import JournalError
from .report import TxEnergy, meter_value
from ..ticks import ticks_add, ticks_diff, ticks_ms

TX_FILE = "ocpp_tx.json"  # the open transaction (a power cut ends it with PowerLoss)
_STOP_DATA_MAX = const(8)  # StopTxn*Data samples kept for transactionData


class Transactions:
    def __init__(self, cp):
        self.cp = cp
        self.open = None  # the open transaction (dict), or None
        self.auth = None  # authorised, waiting for the plug: {"tag", "parent", "at"}
        self.finished = False  # stopped while the EV is still plugged (Finishing)
        self.stop_reason = None  # a stop asked for (remote, local, reset, invalid id)
        self.stop_tag = None
        self.plugged = False  # an EV connected, as OCPP sees it (pilot.connected)
        self.hold = None  # (tag, parent) whose card unlocks a cable left in the socket
        # the journal sender's (jram.send_next): failed attempts of the head record, and the
        # ticks it may go again
        self.attempts = 0
        self.retry_ms = 0
        self._next_sample = None
        self._next_aligned = None
        self.e = TxEnergy(cp)  # meterStart / meterStop (never below a value reported)
        # a stop asked: (ticks, the Stop's timestamp) of that moment; meterStop waits for the
        # meter (TxEnergy.stop_settled)
        self._stopping = None
        # A transaction open at the last power cut ends now, with reason PowerLoss. The
        # journal says which are open (a Start and no Stop: the Stop may be journaled while the
        # file below was not yet removed, or the file lost); ocpp_tx.json gives the last
        # energy register saved and when (saved before every journaled reading, so meterStop
        # is never below one; not while the flash gate is closed: then the meter's register in
        # the backup words, e.saved(), bounds it - docs/safety.md, the bounded-loss rule).
        # The Stop's reason, from how the last boot ended (persist.restart_reason,
        # firmware/restart.py): no marker is a power cut (or the reset button: it cannot be
        # told apart); an OCPP Reset whose Stop did not make it to the journal is that reset;
        # a watchdog, the supervisor, a crash, a stop or an update is a reboot the firmware made.
        why = persist.restart_reason
        why = "PowerLoss" if why is None else {
            "ocpp-hard": "HardReset", "ocpp-soft": "SoftReset"}.get(why, "Reboot")
        try:
            d = persist.load_json(TX_FILE)
        except (OSError, ValueError):  # none, or unreadable
            d = None
        if type(d) is not dict:
            d = {}
        t = d.get("t")
        self.e.raise_to(d.get("wh"))  # meterStop: this, or the meter's saved register if higher
        try:
            opens = cp.journal.open_locals()
        except (JournalError, OSError) as e:
            cp.say("journal unreadable: %r" % (e,))
            opens = []
        for local in opens:
            # the last time saved in the cut boot (boot-relative if its clock was unknown)
            ts = t if d.get("l") == local and type(t) in (int, list) else cp.stamp()
            p = {"meterStop": self.e.now(), "reason": why, "timestamp": ts}
            try:
                cp.journal.push("StopTransaction", {"l": local, "p": p})
                cp.say("transaction %s stopped (%s), meterStop %d Wh" % (
                    local, why, p["meterStop"]))  # why: the restart's
            except (JournalError, OSError) as e:
                cp.say("stop at boot not journaled: %r" % (e,))
                break  # the file stays: the next boot tries again
        else:
            persist.remove(TX_FILE)
        cp.profiles.end_transaction(None)  # no transaction survives a reboot: nor its TxProfile

    # -- energy and samples ----------------------------------------------------------------
    def sample(self, context, key, stamp=False):
        """One meterValue for the measurands configured under `key` (a CSL), the energy
        register read now; stamp: it goes to the journal, its time resolved when sent
        (timekeep.py)."""
        cp = self.cp
        mv = meter_value(cp, context, key, self.e.now())
        if stamp:
            mv["timestamp"] = cp.stamp()
        return mv

    # -- the open transaction on flash ---------------------------------------------------
    def _save(self):
        """ocpp_tx.json; skipped while the flash gate is closed (the contactor is closed on a
        board where an erase blinds the safety path): the meter's register lives in RAM-free
        backup words meanwhile (boards/backed.py), and the PowerLoss Stop takes it."""
        if not persist.flash_ok():
            return
        persist.save_json(TX_FILE, {"l": self.open["l"], "wh": self.e.wh, "t": self.cp.stamp()})

    def flush(self):
        """An orderly restart: save the open transaction's register as it is now."""
        if self.open is not None:
            self.e.now()  # read the register
            self._save()

    # -- decisions (the observer task; never waits on the network) -------------------------
    def observe(self, now):
        cp = self.cp
        a = cp.ctl.session.act
        c = connected(a.pilot)
        was = self.plugged  # the last pass's
        plugged = self.plugged = was if c is None else c
        o = self.open
        if o is None:
            if not plugged:
                if was or self.finished:
                    self.finished = False
                    if self.auth is None:
                        cp.ctl.set_auth(False)
                a_ = self.auth
                if a_ is not None and ticks_diff(now, a_["at"]) > 1000 * cp.keys.get(
                        "ConnectionTimeOut"):
                    cp.say("ConnectionTimeOut: auth dropped")
                    self.auth = None
                    cp.ctl.set_auth(False)
            elif self.auth is None and cp.cfg.free_vend and not self.finished:
                # free vend: the idTag is the config's free_vend_id, "FreeVend" without one
                self.auth = {"tag": cp.section.get("free_vend_id", "FreeVend"),
                             "parent": None, "at": now}
            wh = self.e.at_start(now, plugged and self.auth is not None and (
                a.status != "Faulted" and cp.available[0] and cp.available[1]))
            if wh is not None:
                self._start(now, wh)
        else:
            if was and not plugged:
                # UnlockConnectorOnEVSideDisconnect false: a cable left in the socket stays
                # locked until the transaction's card (or UnlockConnector) frees it.
                if not cp.keys.get("UnlockConnectorOnEVSideDisconnect") and (
                        cp.cfg.connector == "type2_socket" and cp.ctl.inputs.pp_da > 0):
                    self.hold = (o["tag"], o.get("parent"))
                    cp.ctl.set_lock_hold(True)
                    cp.say("EV unplugged: the cable stays locked until %s's card" % o["tag"])
                if cp.keys.get("StopTransactionOnEVSideDisconnect"):
                    self.stop_reason = self.stop_reason or "EVDisconnected"
            self.e.watch(now, a.close)
            if self.stop_reason is not None:
                st = self._stopping
                if st is None:  # open the contactor first, then read meterStop
                    st = self._stopping = (now, cp.stamp())
                    cp.ctl.set_auth(False)
                if self.e.stop_settled(now, st[0], a.close):
                    self._stop(plugged)
        if self.hold is not None and cp.ctl.inputs.pp_da <= 0:
            self.release("cable removed")

    def release(self, why):
        """Unlock a cable held after the EV side unplugged."""
        if self.hold is not None:
            self.hold = None
            self.cp.ctl.set_lock_hold(False)
            self.cp.say("cable unlocked (%s)" % why)

    def _start(self, now, wh):
        cp = self.cp
        au = self.auth
        tag, parent = au["tag"], au.get("parent")
        at = cp.stamp()
        p = {"connectorId": 1, "idTag": tag, "meterStart": wh, "timestamp": at}
        r = cp.reservation
        if r is not None and _same(r["tag"], tag, parent, r.get("parent")):
            p["reservationId"] = r["id"]
            cp.reservation = None
        try:
            local = cp.journal.next_local_id()
            self.open = {"l": local, "tag": tag, "parent": parent, "at": at, "data": []}
            self._save()  # before the journal: a cut after the push below finds the energy
            cp.journal.push("StartTransaction", {"l": local, "p": p})
        except (JournalError, OSError) as e:
            cp.say("transaction refused: %s" % (e,))
            self.open = self.auth = None
            cp.ctl.set_auth(False)
            persist.remove(TX_FILE)
            return
        self.auth = None
        cp.ctl.set_auth(True)
        cp.say("transaction %s started for %s, meterStart %d Wh" % (local, tag, wh))
        self._values("Transaction.Begin", "MeterValuesSampledData")
        self._next_sample = None
        prof = au.get("profile")
        if prof is not None:  # RemoteStart's TxProfile: in force before the CSMS's answer
            cp.profiles.set(1, prof, tx_id=local)
        cp.wake.set()

    def _stop(self, plugged):
        cp = self.cp
        o = self.open
        reason, tag = self.stop_reason, self.stop_tag
        cp.ctl.set_auth(False)
        p = {"meterStop": self.e.now(), "timestamp": self._stopping[1], "reason": reason}
        self._stopping = None
        if tag:
            p["idTag"] = tag
        self._keep("Transaction.End", "StopTxnSampledData")
        if o["data"]:
            p["transactionData"] = o["data"]
            if o.get("cut"):
                cp.say("transactionData: %d earlier samples left out" % o["cut"])
        try:
            cp.journal.push("StopTransaction", {"l": o["l"], "p": p})
        except JournalError as e:  # never dropped by the journal; report it loudly
            cp.say("StopTransaction NOT journaled: %s" % (e,))
        cp.profiles.end_transaction(self.profile_id())
        self.open = None
        self.stop_reason = self.stop_tag = None
        self.finished = plugged
        persist.remove(TX_FILE)
        cp.say("transaction %s stopped (%s), meterStop %d Wh" % (
            o["l"], reason, p["meterStop"]))
        if cp.pending_avail is not None:
            from . import remote

            w, cp.pending_avail = cp.pending_avail, None
            remote.apply_availability(cp, *w)
        cp.wake.set()

    def timers(self, now, s):
        cp = self.cp
        o = self.open
        if self._stopping is not None:
            return  # stopping: the next reading is the Stop's (sent after nothing of its own)
        iv = cp.keys.get("MeterValueSampleInterval") * 1000
        if o is not None and iv > 0:
            ns = self._next_sample
            if ns is not None and ticks_diff(now, ns) >= 0:
                self._values("Sample.Periodic", "MeterValuesSampledData", "StopTxnSampledData")
                ns = ticks_add(ns, iv)
            if ns is None or ticks_diff(now, ns) > 0:  # the first, or fell behind: (re)anchor
                ns = ticks_add(now, iv)
            self._next_sample = ns
        al = cp.keys.get("ClockAlignedDataInterval")
        if al > 0 and s is not None:
            na = self._next_aligned
            if na is None or na - s > al or s >= na:  # (re)anchored after a clock step
                self._next_aligned = (s // al + 1) * al
            if na is None or s < na:
                return
            # a clock-aligned sample: the transaction's, or one for the connector
            if o is not None:
                self._values("Sample.Clock", "MeterValuesAlignedData", "StopTxnAlignedData")
            elif cp.link.connected and len(cp.outbox) < 4:
                cp.outbox.append(("MeterValues", {"connectorId": 1, "meterValue": [
                    self.sample("Sample.Clock", "MeterValuesAlignedData")]}))
                cp.wake.set()

    def _keep(self, context, key):
        """One sample for transactionData when the StopTxn*Data key `key` names measurands:
        the last _STOP_DATA_MAX are kept (RAM and frame size); the first one dropped is
        logged, the count goes with the stop."""
        if not self.cp.keys.get(key):
            return
        o = self.open
        d = o["data"]
        d.append(self.sample(context, key, True))
        if len(d) > _STOP_DATA_MAX:
            del d[0]
            n = o["cut"] = o.get("cut", 0) + 1
            if n == 1:
                self.cp.say("transactionData keeps the last %d samples" % _STOP_DATA_MAX)

    def _values(self, context, key, stop_key=None):
        """MeterValues of the open transaction to the journal (the measurands of `key`), and a
        sample for the Stop's transactionData (stop_key: _keep)."""
        o = self.open
        p = {"connectorId": 1, "meterValue": [self.sample(context, key, True)]}
        try:
            self._save()  # first: after a cut, meterStop is never below a journaled reading
            self.cp.journal.push("MeterValues", {"l": o["l"], "p": p}, droppable=True)
        except (JournalError, OSError) as e:
            self.cp.say("MeterValues not journaled: %s" % (e,))
        self.cp.wake.set()
        if stop_key:
            self._keep(context, stop_key)

    def start_s(self):
        """Wall time the open transaction started (exact once the time is known), or None."""
        o = self.open
        return None if o is None else self.cp.tk.wall_of(o["at"], ticks_ms())

    def csms_id(self):
        o = self.open
        return None if o is None else self.cp.journal.tx_id(o["l"])

    def profile_id(self):
        """The id TxProfiles of the open transaction are bound to: the CSMS's transactionId
        once known, the local id before (smart.retag swaps it when the answer comes)."""
        t = self.csms_id()
        return self.open["l"] if t is None and self.open else t

    # -- authorisation ---------------------------------------------------------------------
    def card(self, tag):
        """A card at the reader: stops our transaction, cancels a waiting authorisation, or
        asks for a new one; the card of a held cable unlocks it."""
        h = self.hold
        if h is not None and _same(h[0], tag):
            self.release("card %s" % tag)
            if self.open is None:
                return
        o = self.open
        parent = None
        if o is not None:
            if _same(o["tag"], tag):
                self.stop_reason, self.stop_tag = "Local", tag
                return
            parent = o.get("parent")  # another card of its group may stop it
        elif self.auth is not None and _same(self.auth["tag"], tag):
            self.auth = None
            self.cp.ctl.set_auth(False)
            return
        self.cp.spawn(self.authorize(tag, parent), "authorize")

    async def authorize(self, tag, stop_parent=None, remote_ok=False, profile=None):
        """Decide on an idTag (card or RemoteStart): online Authorize, or the local list,
        cache and offline rules. Returns True when accepted. profile: RemoteStart's
        TxProfile, which goes with the authorisation (and is gone when it is dropped)."""
        cp = self.cp
        k = cp.keys
        local = None  # (status, expiry s or None, parent): the local list's, else the cache's
        if k.get("LocalAuthListEnabled"):
            local = cp.list.lookup(tag)
        if local is None and k.get("AuthorizationCacheEnabled"):
            local = cp.cache.lookup(tag)
        if local is not None:
            ls, exp, lp = local
            s = cp.now_s()
            if exp is not None and s is not None and exp < s:
                ls = "Expired"
        status = parent = None
        if remote_ok:
            status = "Accepted"
        elif cp.link.connected and cp.registration == "Accepted":
            if local and ls == "Accepted" and k.get("LocalPreAuthorize"):
                status, parent = ls, lp
            else:
                info = None
                try:
                    info = (await cp.rpc.call("Authorize", {"idTag": tag}))["idTagInfo"]
                except Exception as e:  # RpcError, the link's error: no answer
                    cp.say("Authorize failed (%r), deciding offline" % (e,))
                if info is not None:
                    status, parent = info["status"], info.get("parentIdTag") or None
                    self.remember(tag, info)
        if status is None:
            if local is None:
                status = "Accepted" if k.get("AllowOfflineTxForUnknownId") else "Invalid"
            elif k.get("LocalAuthorizeOffline"):
                status, parent = ls, lp
            else:
                status = "Invalid"
        if status != "Accepted":
            cp.say("idTag %s not accepted (%s)" % (tag, status))
            return False
        if stop_parent is not None:  # another card of the same group ends the transaction
            if self.open is not None and parent is not None and _same(parent, stop_parent):
                self.stop_reason, self.stop_tag = "Local", tag
            return False
        r = cp.reservation
        if r is not None and not _same(r["tag"], tag, parent, r.get("parent")):
            cp.say("connector reserved for another idTag")
            return False
        if self.open is not None:
            return False
        self.auth = {"tag": tag, "parent": parent, "at": ticks_ms(), "profile": profile}
        cp.wake.set()
        return True


    def started(self, local, tag, conf):
        """StartTransaction.conf (jram.send_next): the CSMS's id for TxProfiles, its idTagInfo."""
        cp = self.cp
        tid = conf["transactionId"]
        cp.profiles.retag(local, tid)  # RemoteStart's TxProfile
        info = conf["idTagInfo"]
        self.remember(tag, info)
        o = self.open
        if o is None or o["l"] != local:
            return
        parent = info.get("parentIdTag") or None
        if parent is not None:
            o["parent"] = parent  # the group whose cards stop it (remote and offline starts too)
        if info["status"] == "Accepted":
            return
        if cp.keys.get("StopTransactionOnInvalidId"):
            self.stop_reason = "DeAuthorized"
            what = "stopping"
        else:
            # OCPP 1.6 (StopTransactionOnInvalidId false): energy delivery stops, the
            # transaction stays open until it ends otherwise (card, unplug, remote stop).
            cp.ctl.set_auth(False)
            o["suspended"] = True
            what = "energy stopped, transaction %s kept" % tid
        cp.say("idTag %s %s by the CSMS: %s" % (tag, info["status"], what))
        cp.wake.set()


    def remember(self, tag, info):
        """Put an idTagInfo the CSMS gave into the cache (when enabled), as
        authlist.stored_info keeps it, or leave it out with a log line; never raises."""
        cp = self.cp
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

def _same(a, b, pa=None, pb=None):
    """idTags are case-insensitive; a matching parentIdTag counts as the same group (an
    empty one is no group)."""
    if a.lower() == b.lower():
        return True
    return bool(pa) and bool(pb) and pa.lower() == pb.lower()
