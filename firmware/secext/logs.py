# GetDiagnostics (OCPP 1.6 Firmware Management) and GetLog (security whitepaper, edition 3):
# the file is written to flash (at most MAX_BYTES, a line at a time: never whole in RAM),
# then uploaded by HTTP(S) PUT (upload.py) and removed. The statuses go through the journal
# (secext.notify): DiagnosticsStatusNotification Uploading, then Uploaded or UploadFailed;
# LogStatusNotification Uploading, then Uploaded or UploadFailure, with the request's
# requestId. What the file holds (docs/ocpp.md, "Diagnostics and logs"): DiagnosticsLog and
# GetDiagnostics: diag.status(), diag.why(), the recent events, the journal's counters and the
# security log; SecurityLog: the security log. The time window (startTime/stopTime,
# oldestTimestamp/latestTimestamp) selects the security log's lines; the rest is the state now.
import asyncio
import time


from firmware import persist
from firmware.secext import notify

DIAG_FILE = "diag_upload.txt"
LOG_FILE = "log_upload.txt"
MAX_BYTES = const(16384)
_GATE_POLL_MS = const(1000)


class Uploads:
    """What is under way, per charge point (cp.uploads): TriggerMessage answers from it."""

    def __init__(self):
        self.diag = "Idle"  # DiagnosticsStatus: Idle or Uploading
        self.log = "Idle"  # UploadLogStatus of the GetLog under way, Idle when none
        self.log_id = None  # its requestId
        self.log_task = None


def uploads(cp):
    u = getattr(cp, "uploads", None)
    if u is None:
        u = cp.uploads = Uploads()
    return u


def _name(cp, kind):
    s = cp.now_s()
    return "%s-%s-%d.txt" % (cp.section.get("cp_id", "cp"), kind, s if s is not None else 0)


def _when(cp, text):
    from firmware.ocpp import clock

    if text is None:
        return None
    try:
        return clock.parse(text)
    except ValueError:
        return None


# -- GetDiagnostics --------------------------------------------------------------------------
def get_diagnostics(cp, p):
    from firmware.secext.upload import UploadError, target

    u = uploads(cp)
    name = _name(cp, "diagnostics")
    try:
        target(p["location"], name)
    except UploadError as e:  # ftp://: no file will come (1.6: the answer names none)
        cp.log("diagnostics: GetDiagnostics refused: %s" % e)
        notify(cp, "DiagnosticsStatusNotification", {"status": "UploadFailed"})
        return {}
    if u.diag != "Idle":
        cp.log("diagnostics: GetDiagnostics while an upload is under way: ignored")
        return {}
    u.diag = "Uploading"
    cp.spawn(_diag_job(cp, u, p, name), "GetDiagnostics")
    return {"fileName": name}


async def _diag_job(cp, u, p, name):
    try:
        st = await _job(cp, p["location"], DIAG_FILE, name, "diagnostics",
                        _when(cp, p.get("startTime")), _when(cp, p.get("stopTime")),
                        p.get("retries", 1), p.get("retryInterval", 30),
                        "DiagnosticsStatusNotification", None)
    finally:
        u.diag = "Idle"
    notify(cp, "DiagnosticsStatusNotification", {
        "status": "Uploaded" if st == "Uploaded" else "UploadFailed"})


# -- GetLog ----------------------------------------------------------------------------------
def get_log(cp, p):
    from firmware.secext.upload import UploadError, target

    u = uploads(cp)
    lg = p["log"]
    kind = "security" if p["logType"] == "SecurityLog" else "diagnostics"
    name = _name(cp, kind + "log")
    try:
        target(lg["remoteLocation"], name)
    except UploadError as e:
        cp.log("log: GetLog refused: %s" % e)
        return {"status": "Rejected"}
    status = "Accepted"
    if u.log_task is not None:  # the whitepaper: a new request cancels the one under way
        cp.log("log: GetLog %s cancelled by GetLog %s" % (u.log_id, p["requestId"]))
        u.log_task.cancel()
        status = "AcceptedCanceled"
    u.log, u.log_id = "Uploading", p["requestId"]
    u.log_task = cp.spawn(_log_job(cp, u, p, name, kind), "GetLog")
    return {"status": status, "filename": name}


async def _log_job(cp, u, p, name, kind):
    lg = p["log"]
    rid = p["requestId"]
    me = u.log_task
    try:
        st = await _job(cp, lg["remoteLocation"], LOG_FILE, name, kind,
                        _when(cp, lg.get("oldestTimestamp")),
                        _when(cp, lg.get("latestTimestamp")), p.get("retries", 1),
                        p.get("retryInterval", 30), "LogStatusNotification", rid)
    finally:
        if u.log_task is me or me is None:
            u.log, u.log_id, u.log_task = "Idle", None, None
    notify(cp, "LogStatusNotification", {"status": st, "requestId": rid})


# -- the job both share ---------------------------------------------------------------------
async def _job(cp, location, path, name, kind, start, stop, retries, retry_s, action, rid):
    """Write the file, tell Uploading, upload it; the outcome as an UploadLogStatus:
    Uploaded, PermissionDenied (HTTP 401/403), NotSupportedOperation (HTTP 405/501) or
    UploadFailure. The file is removed."""
    from firmware.secext import upload

    await asyncio.sleep_ms(100)  # the answer goes out first
    p = {"status": "Uploading"}
    if rid is not None:
        p["requestId"] = rid
    notify(cp, action, p)
    try:
        await _gate()
        size = await write(cp, path, kind, start, stop)
        await upload.run(cp, location, path, name, size, max(0, retries), max(0, retry_s))
        cp.log("%s: %s uploaded (%d bytes)" % (kind, name, size))
        return "Uploaded"
    except (upload.UploadError, OSError) as e:
        cp.log("%s: upload failed: %s" % (kind, e))
        code = getattr(e, "status", None)
        if code in (401, 403):
            return "PermissionDenied"
        if code in (405, 501):
            return "NotSupportedOperation"
        return "UploadFailure"
    finally:
        persist.remove(path)


async def _gate():
    """Yield; return once the flash may be written (the gate: docs/safety.md). The file is
    written between these waits only, so a contactor that closes meanwhile pauses it."""
    await asyncio.sleep_ms(0)
    while not persist.flash_ok():
        await asyncio.sleep_ms(_GATE_POLL_MS)


async def write(cp, path, kind, start=None, stop=None, max_bytes=MAX_BYTES):
    """Write the file for `kind` ("diagnostics" or "security") to path; its size. Yields
    between sections and every 16 security log lines: the controller's task keeps its pace."""
    from firmware import diag
    from firmware.version import VERSION

    n = [0, False]
    with open(path, "w") as f:
        def out(line):
            if n[1]:
                return
            line = "%s\n" % line
            if n[0] + len(line) > max_bytes - 40:
                f.write("... cut at %d bytes\n" % max_bytes)
                n[1] = True
                return
            f.write(line)
            n[0] += len(line)

        out("wallbox %s log: board %s, firmware %s, charge point %s, at %s" % (
            kind, cp.board.name, VERSION, cp.section.get("cp_id"), cp.iso_now() or "unknown"))
        if kind == "diagnostics":
            out("== status")
            diag.status(out)
            await _gate()
            out("== limits")
            diag.why(out)
            out("== events (newest last)")
            diag.events(32, out)
            out("== ocpp journal %s" % (cp.journal.stats(),))
            await _gate()
        out("== security log%s" % ("" if start is None and stop is None else
                                   " from %s to %s" % (start, stop)))
        await _security_lines(cp, out, start, stop)
    persist.sync()
    return persist.os.stat(path)[6]


async def _security_lines(cp, out, start, stop):
    from firmware.ocpp import clock
    from firmware.secext import events

    now = time.ticks_ms()
    k = 0
    for st, kind, info in events.log(cp).lines():
        k += 1
        if not k & 15:
            await _gate()
        try:
            t = cp.tk.wall_of(st, now)
        except ValueError:
            t = None
        if t is not None and (start is not None and t < start or stop is not None and
                              t > stop):
            continue
        out("%s %s %s" % (clock.iso(t) if t is not None else "unknown-time", kind, info))
