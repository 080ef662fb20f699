"""Answer styles of the dev CSMS (tools/csms_server.py): how a real central system fills the
answers to a charge point's CALLs. Each style is modelled on the public source of one CSMS
(docs/ocpp.md, "How real central systems answer", names the files read):

  dev        the dev CSMS's own answers: UTC with milliseconds and Z, idTagInfo with the
             status only, a resent StartTransaction (same connector, idTag, meterStart and
             timestamp) keeps its id; a StopTransaction for an id it never gave is a violation
  fresh      dev, but every StartTransaction gets a new transactionId (no dedupe)
  steve      SteVe: times with milliseconds and the server's offset (+01:00), a resent Start
             keeps its id (SteVe looks it up by connector, idTag, timestamp, meterStart);
             a Stop for an unknown id is answered and filed as failed
  ocppcore   OCPP.Core: .NET times with 7 fraction digits and an offset, expiryDate
             2199-12-31T00:00:00+01:00 and parentIdTag "" on every Start, transactionId 0
             for a Start it does not accept, a new id for every Start; a Stop for an unknown id
             closes the charge point's latest open transaction, or gets CALLERROR
             PropertyConstraintViolation; every action it has no handler for (the
             notifications too) gets NotSupported
  citrineos  CitrineOS: JavaScript toISOString times, transactionId 0 for a Start it does not
             accept, ConcurrentTx (and id 0) while the idTag has an open transaction - also
             for a resent Start whose answer was lost; a Stop for an unknown id is answered
  openocpp   open-ocpp's example central system: whole UTC seconds, every tag Accepted with
             expiryDate now + 1 h, a counter id for every Start
  naive      the mobilityhouse `ocpp` examples: currentTime from datetime.utcnow().isoformat(),
             no time zone - NOT a valid OCPP date-time, but what those examples send
  hostile    varies every optional field and format the 1.6 JSON schemas permit, from a
             seeded random.Random: offsets -23:59..+23:59 and -00:00, 0..9 fraction digits,
             lower-case t and z (RFC 3339 5.6), expiryDate far future and past, parentIdTag
             absent, empty, 20 characters, non-ASCII or the idTag itself, transactionId 0,
             negative, -2^31 and 2^31-1, heartbeat interval 0, 1 or 2^31-1, idTagInfo in a
             StopTransaction.conf without an idTag. The schemas forbid unknown properties
             (additionalProperties false everywhere), so it adds none.
  hostile-safe  hostile without the expiryDate and parentIdTag values of the open firmware
             fault (issue 13, 1.1)

A style never changes what the test configured: the tags (csms.tags) decide the status, the
boot status stays csms.boot_status, and the BootNotification interval while Pending or
Rejected stays csms.interval."""
import datetime
import random

UTC = datetime.timezone.utc
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


class CallError(Exception):
    """Answer the CALL with this CALLERROR instead of a CALLRESULT."""

    def __init__(self, code, description=""):
        Exception.__init__(self, code, description)
        self.code, self.description = code, description


def _now():
    return datetime.datetime.now(UTC)


def _frac(t, digits):
    return ("." + ("%06d" % t.microsecond + "000")[:digits]) if digits else ""


def stamp(t, digits=3, offset_min=0, zone="Z", t_sep="T"):
    """`t` (aware) as RFC 3339 text: `digits` fraction digits, at `offset_min` minutes from
    UTC; zone "Z"/"z" (only at offset 0), "+00:00", "-00:00" or "" for an offset."""
    local = t.astimezone(datetime.timezone(datetime.timedelta(minutes=offset_min)))
    text = "%04d-%02d-%02d%s%02d:%02d:%02d%s" % (  # not strftime: %Y gives "1" for year 1
        local.year, local.month, local.day, t_sep, local.hour, local.minute, local.second,
        _frac(local, digits))
    if zone in ("Z", "z", "-00:00") and offset_min == 0:
        return text + zone
    sign = "-" if offset_min < 0 else "+"
    m = abs(offset_min)
    return text + "%s%02d:%02d" % (sign, m // 60, m % 60)


class Dev:
    """The dev CSMS's own answers; the base the other styles change."""

    name = "dev"
    fresh_ids = False  # a new transactionId for every StartTransaction
    unsupported = ()  # actions of the charge point it answers with CALLERROR NotSupported

    def __init__(self, csms, seed=None):
        self.csms = csms
        self.rng = random.Random(seed)
        self.next_id = 1

    # -- building blocks ------------------------------------------------------------------
    def time(self, t=None):
        return stamp(t or _now(), 3)

    def status(self, tag):
        known = self.csms.tags.get(tag)
        if known is None:
            return "Invalid" if self.csms.tags else "Accepted"
        return known["status"] if isinstance(known, dict) else known

    def tag_record(self, tag):
        known = self.csms.tags.get(tag)
        return known if isinstance(known, dict) else {}

    def id_tag_info(self, tag, when):
        """idTagInfo for `tag`; `when`: "authorize", "start" or "stop"."""
        return {"status": self.status(tag)}

    def new_id(self):
        tid = self.next_id
        self.next_id += 1
        return tid

    # -- the answers ----------------------------------------------------------------------
    def boot(self, p):
        return {"status": self.csms.boot_status, "currentTime": self.time(),
                "interval": self.csms.interval}

    def heartbeat(self):
        return {"currentTime": self.time()}

    def authorize(self, p):
        return {"idTagInfo": self.id_tag_info(p["idTag"], "authorize")}

    def start(self, cp, p, open_tx):
        """(transactionId, idTagInfo, store it?) for a StartTransaction. `open_tx`: the
        transactions of this CSMS not stopped yet (records)."""
        return None, self.id_tag_info(p["idTag"], "start"), True  # None: a new or resent id

    def stop_unknown(self, cp, p, open_tx):
        """A StopTransaction whose transactionId this CSMS never gave: the record to close
        (one of open_tx) or None; raise CallError to refuse it; a violation for dev."""
        self.csms.strict_violation(cp, p, "StopTransaction for transactionId %r, which this "
                                   "CSMS never gave" % (p["transactionId"],))
        return None

    def meter_values_unknown(self, cp, p):
        """MeterValues naming a transactionId this CSMS never gave: a violation for dev (a
        transaction's samples wait for its id); the real CSMSs store or drop them."""
        if self.name == "dev":
            self.csms.strict_violation(cp, p, "MeterValues for transactionId %r, which this "
                                       "CSMS never gave" % (p["transactionId"],))

    def stop(self, p):
        return {"idTagInfo": self.id_tag_info(p["idTag"], "stop")} if "idTag" in p else {}

    def data_transfer(self, p):
        return {"status": "UnknownVendorId"}


class Fresh(Dev):
    name = "fresh"
    fresh_ids = True


class Steve(Dev):
    name = "steve"

    def time(self, t=None):
        return stamp(t or _now(), 3, offset_min=60)

    def id_tag_info(self, tag, when):
        info = {"status": self.status(tag)}
        rec = self.tag_record(tag)
        for k in ("expiryDate", "parentIdTag"):
            if rec.get(k) is not None:
                info[k] = rec[k]
        return info

    def stop_unknown(self, cp, p, open_tx):
        return None  # answered; SteVe files it under transaction_stop_failed


class OcppCore(Dev):
    name = "ocppcore"
    fresh_ids = True
    unsupported = ("FirmwareStatusNotification", "DiagnosticsStatusNotification",
                   "LogStatusNotification", "SecurityEventNotification",
                   "SignedFirmwareStatusNotification", "SignCertificate")
    MAX_EXPIRY = "2199-12-31T00:00:00+01:00"

    def time(self, t=None):
        return stamp(t or _now(), 7, offset_min=60)

    def id_tag_info(self, tag, when):
        rec = self.tag_record(tag)
        info = {"status": self.status(tag), "parentIdTag": rec.get("parentIdTag") or ""}
        if when == "authorize":  # UtcNow + 5 min unless the tag has its own date
            info["expiryDate"] = rec.get("expiryDate") or stamp(
                _now() + datetime.timedelta(minutes=5), 7, zone="+00:00")
        else:
            info["expiryDate"] = rec.get("expiryDate") or self.MAX_EXPIRY
        return info

    def start(self, cp, p, open_tx):
        info = self.id_tag_info(p["idTag"], "start")
        if info["status"] != "Accepted":
            return 0, info, False  # nothing stored: the default id 0 goes out
        return None, info, True

    def stop_unknown(self, cp, p, open_tx):
        mine = [t for t in open_tx if t["cp"] == cp]
        if mine:
            return max(mine, key=lambda t: t["seq"])  # the latest open one of this cp
        raise CallError("PropertyConstraintViolation", "unknown transaction")

    def data_transfer(self, p):
        return {"status": "Rejected"}


class Citrine(Dev):
    name = "citrineos"
    fresh_ids = True

    def id_tag_info(self, tag, when):
        info = {"status": self.status(tag)}
        rec = self.tag_record(tag)
        if info["status"] == "Accepted" or when == "stop":
            for k in ("expiryDate", "parentIdTag"):
                if rec.get(k) is not None:
                    info[k] = rec[k]
        return info

    def start(self, cp, p, open_tx):
        info = self.id_tag_info(p["idTag"], "start")
        if info["status"] != "Accepted":
            return 0, {"status": info["status"]}, False
        if any(t["idTag"] == p["idTag"] for t in open_tx):
            return 0, {"status": "ConcurrentTx"}, False
        return None, info, True

    def stop_unknown(self, cp, p, open_tx):
        return None  # answered first, then logged as not found


class OpenOcpp(Dev):
    name = "openocpp"
    fresh_ids = True

    def time(self, t=None):
        return stamp(t or _now(), 0)

    def id_tag_info(self, tag, when):
        return {"status": self.status(tag), "expiryDate": self.time(
            _now() + datetime.timedelta(hours=1))}

    def stop_unknown(self, cp, p, open_tx):
        return None


class Naive(Dev):
    name = "naive"

    def time(self, t=None):
        return (t or _now()).replace(tzinfo=None).isoformat()


_PARENTS = (None, "", "P" * 20, "Gr\u00fcppe-\u00e9\u00e8", "\u7ec4")
_FAR = ("2199-12-31T00:00:00+01:00", "9999-12-31T23:59:59.999999999Z", "2106-02-07T06:28:16Z",
        "2038-01-19T03:14:08z")
_PAST = ("1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59-00:00",
         "2000-02-29t12:00:00.5+14:00")
_IDS = (0, -1, INT32_MIN, INT32_MAX, 1 << 30, -12345)


class Hostile(Dev):
    name = "hostile"
    fresh_ids = True

    def time(self, t=None):
        r = self.rng
        offset = r.choice((0, 0, -1439, 1439, 60, -330, 345, r.randint(-1439, 1439)))
        zone = r.choice(("Z", "z", "+00:00", "-00:00")) if offset == 0 else ""
        return stamp(t or _now(), r.randint(0, 9), offset, zone, r.choice("Tt"))

    def id_tag_info(self, tag, when):
        r = self.rng
        info = {"status": self.status(tag)}
        kind = r.randrange(4)
        if kind == 1:
            info["expiryDate"] = r.choice(_FAR)
        elif kind == 2:
            info["expiryDate"] = r.choice(_PAST)
        elif kind == 3:
            info["expiryDate"] = self.time(_now() + datetime.timedelta(seconds=r.choice(
                (-86400, -1, 1, 3600, 10 ** 9))))
        parent = r.choice(_PARENTS + (tag[:20],))
        if parent is not None:
            info["parentIdTag"] = parent
        return info

    def new_id(self):
        used = self.csms.transactions
        for tid in self.rng.sample(_IDS, len(_IDS)) + [
                self.rng.randint(INT32_MIN, INT32_MAX) for _ in range(50)]:
            if tid not in used:
                return tid
        raise CallError("InternalError", "no transactionId left")

    def boot(self, p):
        out = Dev.boot(self, p)
        if out["status"] == "Accepted":
            out["interval"] = self.rng.choice((self.csms.interval, 0, 1, 86400, INT32_MAX))
        return out

    def stop(self, p):
        if "idTag" in p or self.rng.random() < 0.5:
            return {"idTagInfo": self.id_tag_info(p.get("idTag", "X"), "stop")}
        return {}

    def stop_unknown(self, cp, p, open_tx):
        return None

    def data_transfer(self, p):
        out = {"status": self.rng.choice(("Accepted", "Rejected", "UnknownMessageId",
                                          "UnknownVendorId"))}
        if self.rng.random() < 0.5:
            out["data"] = self.rng.choice(("", "x" * 500, "{\"a\": 1}", "\u00e9\u4e2d"))
        return out


class HostileSafe(Hostile):
    """hostile without the values of the open firmware fault (issue 13, 1.1: an idTagInfo
    the cache cannot store blocks the journal): expiryDate within 1970..2105, parentIdTag
    absent or non-empty ASCII."""

    name = "hostile-safe"

    def id_tag_info(self, tag, when):
        info = Hostile.id_tag_info(self, tag, when)
        exp = info.get("expiryDate", "2000")
        if not "1970" <= exp[:4] <= "2105" or exp.startswith("1970-01-01"):
            info["expiryDate"] = "2105-12-31T23:59:59.5-01:00"
        parent = info.get("parentIdTag")
        if parent is not None and (not parent or not parent.isascii()):
            info["parentIdTag"] = "GROUP-" + str(len(parent))
        return info


STYLES = {s.name: s for s in (Dev, Fresh, Steve, OcppCore, Citrine, OpenOcpp, Naive, Hostile,
                              HostileSafe)}
# The styles whose every answer is valid OCPP 1.6 (the certification cases run against them)
LEGAL = ("dev", "fresh", "steve", "ocppcore", "citrineos", "openocpp", "hostile",
         "hostile-safe")


def make(name, csms, seed=None):
    """The style `name` (or a style class) for `csms`."""
    if not isinstance(name, str):
        return name(csms, seed)
    try:
        cls = STYLES[name]
    except KeyError:
        raise ValueError("unknown CSMS style %r (one of %s)" % (name, ", ".join(STYLES)))
    return cls(csms, seed)
