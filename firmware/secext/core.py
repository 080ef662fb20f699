# The body of firmware/secext (its __init__ keeps only the names and the hooks): the handlers
# of the actions, the security events' entry and the journaled notifications. Loaded when an
# action or an event comes, unloaded again after the boot's events (secext.attach).
import time

_OUTBOX_MAX = 8


def _extended_trigger(cp, p):
    from firmware.secext import trigger

    return trigger.extended(cp, p)


def _get_diagnostics(cp, p):
    from firmware.secext import logs

    return logs.get_diagnostics(cp, p)


def _get_log(cp, p):
    from firmware.secext import logs

    return logs.get_log(cp, p)


async def _send_diagnostics_status(cp, c):
    u = getattr(cp, "uploads", None)
    await cp.rpc.call("DiagnosticsStatusNotification", {
        "status": "Idle" if u is None else u.diag})


async def _send_log_status(cp, c):
    u = getattr(cp, "uploads", None)
    p = {"status": "Idle" if u is None else u.log}
    if u is not None and u.log_id is not None:
        p["requestId"] = u.log_id
    await cp.rpc.call("LogStatusNotification", p)


def _certs(name):
    def handler(cp, p):
        from firmware import certstore  # docs/security.md

        return getattr(certstore, name)(cp, p)
    return handler


def _signed_update(cp, p):
    from firmware.ota import signed  # docs/ota.md

    return signed.request(cp, p)


# action -> fn(cp, payload) -> result dict or a coroutine giving it (as ocpp/remote.py's handlers)
ACTIONS = {
    "ExtendedTriggerMessage": _extended_trigger,
    "GetDiagnostics": _get_diagnostics,
    "GetLog": _get_log,


    "SignedUpdateFirmware": _signed_update,
    "InstallCertificate": _certs("install"),
    "DeleteCertificate": _certs("delete"),
    "GetInstalledCertificateIds": _certs("installed_ids"),
}
# message -> async fn(cp, connector): what TriggerMessage / ExtendedTriggerMessage send
SENDS = {
    "DiagnosticsStatusNotification": _send_diagnostics_status,
    "LogStatusNotification": _send_log_status,
}


def security_event(cp, kind, info=""):
    """Raise security event `kind` (secext/events.py: logged; a critical one is sent)."""
    from firmware.secext import events

    try:
        events.record(cp, kind, info)
    except Exception as e:  # noqa: BLE001 - a security event must never stop its caller
        cp.fault("security event %s" % kind, e)


def notify(cp, action, payload):
    """A status notification (Firmware-, Diagnostics-, LogStatusNotification, a security
    event) with the journal's guaranteed delivery: written to flash now, sent in order with
    the transaction messages once BootNotification is accepted, kept across offline periods
    and reboots. A "timestamp" may be a stamp (cp.stamp()): it is resolved when sent. It is
    droppable: a journal that fills up (a long offline period of reboots) drops these and the
    periodic MeterValues, oldest first, before it refuses a transaction. When the journal
    refuses it, it waits in RAM for the link instead (at most _OUTBOX_MAX), and that is logged.
    """
    from firmware.ocpp.jram import JournalError

    try:
        cp.journal.push(action, {"p": payload}, droppable=True)
    except (JournalError, OSError) as e:
        if len(cp.outbox) >= _OUTBOX_MAX:
            cp.log("ocpp: %s lost: %s, and %d messages wait in RAM" % (
                action, e, len(cp.outbox)))
        else:
            cp.log("ocpp: %s kept in RAM only: %s" % (action, e))
            cp.outbox.append((action, cp.tk.resolve(payload, time.ticks_ms())))
    cp.wake.set()


def once(cp, kind, info):
    """A non-critical event of the link (the whitepaper does not send these): logged once
    per connection (each refused connect, each bad frame would otherwise write flash)."""
    n = cp.link.connects
    if getattr(cp, "_sec_once", None) != (kind, n):
        cp._sec_once = (kind, n)
        security_event(cp, kind, info)


def stepped(cp, step, source):
    """The clock stepped (timekeep.TimeKeeper.on_step): a critical event, each time."""
    security_event(cp, "SettingSystemTime", "clock stepped %d s by %s" % (step, source))


def attach(cp, restart_reason):
    """Register the actions (as secext's stubs: this module is unloaded after the boot);
    raise the boot's security events: StartupOfTheDevice, and ResetOrReboot after a restart
    the firmware chose (restart_reason: firmware/restart.py's word, or "watchdog"); a power
    cut gives no reason."""
    from firmware import secext

    for a in ACTIONS:
        cp.rpc.ext[a] = secext._action(a)
    for m in SENDS:
        cp.rpc.ext_send[m] = secext._send(m)
    cp.tk.on_step = secext._hook(cp, "step")
    cp.security.on_event = secext._hook(cp, None)
    cp.rpc.on_bad = secext._hook(cp, "InvalidMessages")
    if restart_reason is not None:
        security_event(cp, "ResetOrReboot", restart_reason)
    security_event(cp, "StartupOfTheDevice", "after " + (
        restart_reason or "a power cut or reset"))
