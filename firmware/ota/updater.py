# OCPP 1.6 UpdateFirmware (docs/ota.md, "From the CSMS"): the request is answered at once; a
# task waits for retrieveDate, downloads the bundle (firmware/ota/download.py) while charging
# goes on, waits until no transaction runs, installs it into the other slot
# (firmware/ota/slots.py) and restarts through the one orderly path (restart.OTA). Each step
# is told to the CSMS with FirmwareStatusNotification: Downloading, Downloaded or
# DownloadFailed, Installing, then InstallationFailed (a refused bundle) or, after the reboot,
# Installed from the new firmware once it confirmed itself, or InstallationFailed from the old
# one after a rollback (the outcome waits in ota_status.json until BootNotification was
# accepted, so a reboot does not lose it). The failure a power cut would leave is on flash
# before each step: DownloadFailed when the download starts, InstallationFailed once it is
# downloaded, so a cut anywhere is told once after the next boot (the new firmware replaces it
# with Installed once it confirmed itself).
import asyncio
import sys
import time

from firmware import persist
from firmware.ota import STATUS_FILE  # {"status": ...}: told after the reboot
from firmware.restart import OTA

# Loaded when the CSMS asks for an update or an outcome waits to be told (ota.Lazy stands in
# until then); slots.py is imported where it is used (modules load from .mpy files into the
# heap: 3.6 KB on a 32-bit board for slots.py alone).

DOWNLOAD_FILE = "ota_download.wbota"
KEYS_FILE = "ota_keys.json"
_TX_POLL_MS = 1000


def save_outcome(status, req=None):
    """The status the next boot tells (req: a SignedUpdateFirmware's requestId)."""
    persist.save_json(STATUS_FILE, {"status": status, "requestId": req})


# statuses after which an update can no longer be canceled (the slot is being written)
_PAST_CANCEL = ("Installing", "InstallRebooting", "Installed")


def mark_installed():
    """The trial confirmed itself: what the next after_boot() tells is Installed."""
    try:
        s = persist.load_json(STATUS_FILE)
    except ValueError:
        s = None
    save_outcome("Installed", s.get("requestId") if isinstance(s, dict) else None)


class Updater:
    def __init__(self, cp, board, tls_context=None):
        self.cp = cp
        self.board = board
        self.tls = tls_context
        self.status = "Idle"  # the last FirmwareStatusNotification (TriggerMessage answers it)
        self.busy = False
        self.req = None  # a signed update's requestId: statuses go as SignedFirmware...
        self.job = self.task = None
        self.canceled = False  # start() canceled the job under way

    def running(self):
        from firmware.version import VERSION

        return {"version": VERSION, "board": self.board.name,
                "mpy": getattr(sys.implementation, "_mpy", 0), "hw": self.board.hw_rev}

    def request(self, p):
        """UpdateFirmware.req (schema-checked): start the job; the answer is {}. A device
        with a manufacturer root (signed updates) answers NotSupported, as the security
        whitepaper asks (firmware/ota/signed.py)."""
        from firmware.ota import signed

        if persist.exists(signed.ROOTS_FILE):
            from firmware.ocpp.rpc import RpcError

            raise RpcError("NotSupported", "UpdateFirmware: this charge point takes only "
                           "SignedUpdateFirmware")
        self.start({"location": p["location"], "retrieve": p["retrieveDate"],
                    "retries": p.get("retries"), "interval": p.get("retryInterval")},
                   "UpdateFirmware")
        return {}

    def start(self, job, what):
        """Start an update job (a dict: location, retrieve, retries, interval; a signed one
        also req, key, sig, install, cancel: it replaces a job under way that is not yet
        installing); True if it started (or failed at once), False if one is under way."""
        from firmware.ota.download import DownloadError, parse_url

        self.canceled = False
        try:
            parse_url(job["location"])
        except DownloadError as e:
            self.cp.log("ota: %s refused: %s" % (what, e))
            self.req = job.get("req")
            self.cp.spawn(self.notify("DownloadFailed"), what)
            return True
        if self.busy:
            if not job.get("cancel") or self.status in _PAST_CANCEL:
                self.cp.log("ota: %s while an update is under way: ignored" % what)
                return False
            self.task.cancel()  # a signed update replaces one not yet installing
            self.canceled = True
            self.cp.log("ota: the update under way is canceled for %s" % what)
            persist.remove(DOWNLOAD_FILE + ".part")
            persist.remove(DOWNLOAD_FILE)
        self.busy = True
        self.req = job.get("req")
        self.job = job
        self.task = self.cp.spawn(self._run(job), what)
        return True

    async def notify(self, status):
        """Through the journal: a status while offline is sent after the reconnect."""
        from firmware import secext

        self.status = status
        what = "FirmwareStatusNotification"
        p = {"status": status}
        if self.req is not None:
            what = "SignedFirmwareStatusNotification"
            p["requestId"] = self.req
        secext.notify(self.cp, what, p)

    async def tell(self):
        """TriggerMessage FirmwareStatusNotification: the last status again (as
        SignedFirmwareStatusNotification with its requestId after a signed update)."""
        await self.notify(self.status)

    async def failed(self, status):
        """The job ended without an install: told now, nothing left for the next boot."""
        await self.notify(status)
        persist.remove(STATUS_FILE)

    async def _run(self, job):
        try:
            await self._job(job)
        finally:
            if self.job is job:  # not a canceled one's end
                self.busy = False

    async def _until(self, date):
        """Until the CSMS's clock says date (RFC 3339; None or unreadable: at once)."""
        from firmware.ocpp import clock

        try:
            at = clock.parse(date)
        except ValueError:
            return
        while True:
            now = self.cp.now_s()
            if now is None or now >= at:
                return
            await asyncio.sleep_ms(min(60, at - now) * 1000)

    async def _job(self, p):
        from firmware.ota import slots
        from firmware.ota.bundle import BundleError
        from firmware.ota.download import Download, DownloadError

        cp = self.cp
        req = p.get("req")
        await asyncio.sleep_ms(200)  # the UpdateFirmware.conf goes out first
        await self._until(p["retrieve"])
        save_outcome("DownloadFailed", req)  # what a power cut from here on comes to
        await self.notify("Downloading")
        tls = self.tls
        if tls is None and p["location"].lower().startswith("https:"):
            from firmware.ocpp.ws import _tls_context  # verified as the CSMS link is

            try:
                tls = _tls_context(getattr(cp.security, "cadata", None))
            except Exception as e:  # noqa: BLE001 - WsError: no CA configured
                cp.log("ota: download: %s" % e)
                await self.failed("DownloadFailed")
                return
        sink = _image_sink(p.get("key"), self.running())
        d = Download(p["location"], DOWNLOAD_FILE, tls_context=tls, log=cp.log, sink=sink)
        try:
            await d.run(1 if p["retries"] is None else p["retries"],
                        (30 if p["interval"] is None else p["interval"]) * 1000)
        except DownloadError as e:
            cp.log("ota: download failed: %s" % e)
            await self.failed("DownloadFailed")
            return
        except BundleError as e:  # its head or its image, refused while it downloaded
            persist.remove(DOWNLOAD_FILE + ".part")
            await self._refused(e, req)
            return
        cp.log("ota: downloaded %d bytes, sha256 %s" % (d.size, d.sha256))
        save_outcome("InstallationFailed", req)  # until the new firmware confirms itself
        await self.notify("Downloaded")
        if p.get("key") is not None:  # signed: the whole file's signature, the cert's key
            from firmware.ota import signed

            why = signed.check_file(p["key"], d.sha256, p["sig"])
            if why is not None:
                from firmware import secext

                cp.log("ota: firmware signature refused: %s" % why)
                secext.security_event(cp, "InvalidFirmwareSignature", why)
                persist.remove(DOWNLOAD_FILE)
                await self.failed("InvalidSignature")
                return
            await self.notify("SignatureVerified")
            if p.get("install") and cp.now_s() is not None:
                await self.notify("InstallScheduled")
                await self._until(p["install"])
        while cp.tx.open is not None:  # installed once the transaction has ended
            await asyncio.sleep_ms(_TX_POLL_MS)
        await self.notify("Installing")
        try:
            keys = _keys(p.get("key"))
            with open(DOWNLOAD_FILE, "rb") as f:
                m = slots.install(f, keys, self.running(),
                                  streamed=sink is not None and sink.done)
        except (BundleError, OSError, ValueError) as e:
            await self._refused(e, req)
            return
        finally:
            persist.remove(DOWNLOAD_FILE)
        cp.log("ota: %s installed, restarting on trial" % m["version"])
        if req is not None:
            await self.notify("InstallRebooting")
        t0 = time.ticks_ms()
        while cp.journal.pending() and time.ticks_diff(time.ticks_ms(), t0) < 5000:
            await asyncio.sleep_ms(100)
        await cp.restart.now(OTA)

    async def _refused(self, e, req):
        self.cp.log("ota: bundle refused: %s" % e)
        if "signature" in str(e) or "unsigned" in str(e):
            from firmware import secext

            secext.security_event(self.cp, "InvalidFirmwareSignature", str(e))
        bad = req is not None and _integrity(str(e))
        await self.failed("InstallVerificationFailed" if bad else "InstallationFailed")

    async def watch(self):
        """A task from boot: once BootNotification is accepted, after_boot()."""
        while self.cp.registration != "Accepted":
            await asyncio.sleep_ms(500)
        await self.after_boot()

    async def after_boot(self):
        """Once BootNotification was accepted: tell the outcome of the last update, once."""
        try:
            s = persist.load_json(STATUS_FILE)
        except ValueError:
            s = None
        if not isinstance(s, dict):
            return
        from firmware.ota import slots

        if not self.busy:  # what a cut download or install left on flash
            persist.remove(DOWNLOAD_FILE + ".part")
            persist.remove(DOWNLOAD_FILE)

        if slots.running_trial() is not None:
            return  # on trial: told when it confirms (or by the old firmware after rollback)
        self.req = s.get("requestId")
        st = s.get("status") or "InstallationFailed"
        await self.notify(st)
        if st == "Installed":
            from firmware import secext
            from firmware.version import VERSION

            secext.security_event(self.cp, "FirmwareUpdated", "version " + VERSION)
        persist.remove(STATUS_FILE)


def _keys(extra=None):
    """The keys a bundle's manifest may be signed with: ota_keys.json's, and a signed
    update's certificate key (it chains to a manufacturer root)."""
    from firmware.ota import rsa

    d = persist.load_json(KEYS_FILE)
    if not isinstance(d, dict) or not isinstance(d.get("keys"), list):
        if extra is not None:
            return [extra]
        raise ValueError("%s: no trusted update key on this device" % KEYS_FILE)
    return [rsa.key_from_json(k) for k in d["keys"]] + ([extra] if extra else [])


def _image_sink(key, running):
    """On a board with esp32.Partition: the download streams a bundle's MicroPython image
    into the next OTA partition (firmware/ota/imgstream.py), not onto the filesystem."""
    from firmware.ota import image

    if image._partition() is None:
        return None
    from firmware.ota.imgstream import Stream

    try:
        return Stream(_keys(key), running)
    except ValueError:
        return None  # no trusted key: the install refuses it and says so


def _integrity(why):
    """A refusal that says the bundle is not what was signed (InstallVerificationFailed),
    not that it does not fit this device (InstallationFailed)."""
    for w in ("signature", "SHA-256", "truncated", "bytes after", "bad magic", "unsigned"):
        if w in why:
            return True
    return False
