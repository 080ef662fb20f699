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


def save_outcome(status):
    persist.save_json(STATUS_FILE, {"status": status})


class Updater:
    def __init__(self, cp, board, tls_context=None):
        self.cp = cp
        self.board = board
        self.tls = tls_context
        self.status = "Idle"  # the last FirmwareStatusNotification (TriggerMessage answers it)
        self.busy = False

    def running(self):
        from firmware.version import VERSION

        return {"version": VERSION, "board": self.board.name,
                "mpy": getattr(sys.implementation, "_mpy", 0), "hw": self.board.hw_rev}

    def request(self, p):
        """UpdateFirmware.req (schema-checked): start the job; the answer is {}."""
        from firmware.ota.download import DownloadError, parse_url

        try:
            parse_url(p["location"])
        except DownloadError as e:
            self.cp.log("ota: UpdateFirmware refused: %s" % e)
            self.cp.spawn(self.notify("DownloadFailed"), "UpdateFirmware")
            return {}
        if self.busy:
            self.cp.log("ota: UpdateFirmware while an update is under way: ignored")
            return {}
        self.busy = True
        self.cp.spawn(self._run(p), "UpdateFirmware")
        return {}

    async def notify(self, status):
        """Through the journal: a status while offline is sent after the reconnect."""
        from firmware import secext

        self.status = status
        secext.notify(self.cp, "FirmwareStatusNotification", {"status": status})

    async def failed(self, status):
        """The job ended without an install: told now, nothing left for the next boot."""
        await self.notify(status)
        persist.remove(STATUS_FILE)

    async def _run(self, p):
        try:
            await self._job(p)
        finally:
            self.busy = False

    async def _job(self, p):
        from firmware.ota import slots
        from firmware.ota.bundle import BundleError
        from firmware.ota.download import Download, DownloadError
        from firmware.ocpp import clock

        cp = self.cp
        await asyncio.sleep_ms(200)  # the UpdateFirmware.conf goes out first
        try:
            at = clock.parse(p["retrieveDate"])
        except ValueError:
            at = None
        while at is not None:
            now = cp.now_s()
            if now is None or now >= at:
                break
            await asyncio.sleep_ms(min(60, at - now) * 1000)
        save_outcome("DownloadFailed")  # what a power cut from here on comes to
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
        d = Download(p["location"], DOWNLOAD_FILE, tls_context=tls, log=cp.log)
        try:
            await d.run(p.get("retries", 1), p.get("retryInterval", 30) * 1000)
        except DownloadError as e:
            cp.log("ota: download failed: %s" % e)
            await self.failed("DownloadFailed")
            return
        cp.log("ota: downloaded %d bytes, sha256 %s" % (d.size, d.sha256))
        save_outcome("InstallationFailed")  # until the new firmware confirms itself
        await self.notify("Downloaded")
        while cp.tx.open is not None:  # installed once the transaction has ended
            await asyncio.sleep_ms(_TX_POLL_MS)
        await self.notify("Installing")
        try:
            keys = _keys()
            with open(DOWNLOAD_FILE, "rb") as f:
                m = slots.install(f, keys, self.running())
        except (BundleError, OSError, ValueError) as e:
            cp.log("ota: bundle refused: %s" % e)
            if isinstance(e, BundleError) and ("signature" in str(e) or "unsigned" in str(e)):
                from firmware import secext

                secext.security_event(cp, "InvalidFirmwareSignature", str(e))
            await self.failed("InstallationFailed")
            return
        finally:
            persist.remove(DOWNLOAD_FILE)
        cp.log("ota: %s installed, restarting on trial" % m["version"])
        t0 = time.ticks_ms()
        while cp.journal.pending() and time.ticks_diff(time.ticks_ms(), t0) < 5000:
            await asyncio.sleep_ms(100)
        await cp.restart.now(OTA)

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
        st = s.get("status") or "InstallationFailed"
        await self.notify(st)
        if st == "Installed":
            from firmware import secext
            from firmware.version import VERSION

            secext.security_event(self.cp, "FirmwareUpdated", "version " + VERSION)
        persist.remove(STATUS_FILE)


def _keys():
    from firmware.ota import rsa

    d = persist.load_json(KEYS_FILE)
    if not isinstance(d, dict) or not isinstance(d.get("keys"), list):
        raise ValueError("%s: no trusted update key on this device" % KEYS_FILE)
    return [rsa.key_from_json(k) for k in d["keys"]]
