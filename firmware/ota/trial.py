# The trial boot's health check (docs/ota.md, "Slots and the trial boot"): a slot booted on
# trial confirms itself only when, at least min_s after boot and within limit_s, the charge
# controller steps, the supervisor has seen no failure, no fault is latched, and OCPP (when the
# config has it) had its BootNotification accepted. Otherwise it marks the trial failed with the
# reason and restarts through the one orderly path (restart.OTA): the bootloader boots the
# previous slot, which reports the rollback (report_boot()).
import asyncio
import time

from firmware import persist
from firmware.ota import slots, updater
from firmware.restart import OTA

_POLL_MS = 500
_STEP_AGE_MS = 2000  # the controller stepped within this


def unhealthy(app, now_ms):
    """Why the running firmware is not healthy now, or None."""
    if app.sup.failed is not None:
        return "supervisor: %s failed" % (app.sup.failed,)
    if time.ticks_diff(now_ms, app.ctl.last_step_ms) > _STEP_AGE_MS:
        return "the charge controller is not running"
    fault = app.ctl.session.fault
    if fault is not None:
        return "fault %s latched" % (fault,)
    if app.cfg.ocpp is not None:
        if app.ocpp is None:
            return "OCPP is configured but did not start"
        if app.ocpp.registration != "Accepted":
            return "BootNotification not accepted (%s)" % (app.ocpp.registration,)
    return None


def report_boot(log):
    """At boot: log what the last update came to (a rollback, with why), once; the report or
    None. A bad pointer file is logged and ignored."""
    try:
        r = slots.take_report()
    except (OSError, ValueError) as e:
        log("ota: cannot read the boot pointer: %r" % (e,))
        return None
    if r and r.get("event") == "rolled-back":
        log("ota: update to %s rolled back: %s" % (r.get("version"), r.get("why")))
    return r


def task(app, trial):
    """The supervised task factory for a running trial (slots.running_trial())."""
    t0 = time.ticks_ms()  # at boot: a restart of the task does not extend the limit

    async def check():
        min_ms = int(trial.get("min_s", slots.MIN_S) * 1000)
        limit_ms = int(trial.get("limit_s", slots.LIMIT_S) * 1000)
        app.log("ota: %s on trial, confirmed once healthy (%d..%d s)" % (
            trial.get("version"), min_ms // 1000, limit_ms // 1000))
        while True:
            await asyncio.sleep_ms(_POLL_MS)
            now = time.ticks_ms()
            up = time.ticks_diff(now, t0)
            why = unhealthy(app, now)
            if why is None and up >= min_ms and trial.get("image"):
                from firmware.ota import image

                try:
                    image.mark_valid()  # the bootloader keeps the new image from now on
                except OSError as e:
                    why = "mark_app_valid_cancel_rollback failed: %r" % (e,)
                    up = limit_ms  # fails now: restarts unmarked, both roll back
            if why is None and up >= min_ms:
                slots.confirm()
                app.log("ota: %s confirmed" % trial.get("version"))
                up_ = getattr(app.ocpp, "updater", None)
                if up_ is not None and persist.exists(updater.STATUS_FILE):
                    updater.mark_installed()  # an update the CSMS asked for
                    await up_.after_boot()
                return
            if up >= limit_ms:
                why = "health check: %s after %d s" % (why, up // 1000)
                app.log("ota: trial failed: " + why)
                slots.fail(why)
                await app.restart.now(OTA)
                return
    return check


def attach(app):
    """Called by firmware.app at boot: the rollback report, and the health check task when
    this boot is a trial."""
    report_boot(app.log)
    try:
        t = slots.running_trial()
    except (OSError, ValueError):
        t = None
    if t is not None:
        app.sup.add("ota trial", task(app, t))
    return t
